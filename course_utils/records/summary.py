"""What a run amounts to: results.json's content, the environment it ran in, best-so-far.

Everything here is derived from the simulation records, so a summary or a figure can always be
regenerated from a run folder.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import socket
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from course_utils.records.recorder import CampaignRecorder
from course_utils.records.rows import STATUS_LOST, STATUS_OK


def environment_info(engine: str | None = None) -> dict[str, Any]:
    """Where and with what a run happened, for the results file and for graders."""
    import copy

    return copy.deepcopy(_environment_info(engine))


@functools.cache
def _environment_info(engine: str | None) -> dict[str, Any]:
    # Reading package metadata costs milliseconds; results.json is rewritten every iteration.
    versions = {}
    for package in ("course-utils", "parsl", "rdkit", "scikit-learn", "numpy", "pandas",
                    "ase", "xtb", "tblite"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "engine": engine,
        "packages": versions,
    }


def summarize(
    recorder: CampaignRecorder,
    parameters: Mapping[str, Any],
    *,
    status: str,
    environment: Mapping[str, Any],
    wall_time_s: float,
    message: str = "",
    top: int = 10,
) -> dict[str, Any]:
    """The results file's content: everything is derived from the simulation records."""
    sims = recorder.simulations
    ok = sorted(recorder.successes, key=lambda r: -float(r["ie"]))
    best = ok[0] if ok else None
    best_info = None
    if best is not None:
        order = [r["smiles"] for r in recorder.successes]
        best_info = {
            "smiles": best["smiles"],
            "ie": float(best["ie"]),
            "time_to_best_s": _float(best.get("elapsed_s")),
            "simulations_to_best": order.index(best["smiles"]) + 1,
        }
    counts: dict[str, int] = {}
    for r in sims:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lost = counts.get(STATUS_LOST, 0)  # infrastructure events, retried: not failed molecules
    return {
        "status": status,
        "message": message,
        "parameters": dict(parameters),
        "environment": dict(environment),
        "totals": {
            "simulations": len(sims) - lost,
            "successful": counts.get(STATUS_OK, 0),
            "failed": len(sims) - lost - counts.get(STATUS_OK, 0),
            "lost_and_retried": lost,
            "by_status": counts,
            "iterations": len(recorder.iterations),
            "wall_time_s": wall_time_s,
        },
        "best": best_info,
        "top_simulated": [{"smiles": r["smiles"], "ie": float(r["ie"])} for r in ok[:top]],
        "failures": [{"smiles": r["smiles"], "status": r["status"], "error": r["error"]}
                     for r in sims if r["status"] not in (STATUS_OK, STATUS_LOST)],
        "units": {"ie": "eV", "time": "s"},
    }


def running_best(values: Any) -> np.ndarray:
    """Best value so far at each position; a NaN never hides an earlier best (eV in, eV out).

    The one running maximum of the kit: campaign figures, the leaderboard, sweeps, strategy
    comparisons and the stopping rules all take their best-so-far from here.
    """
    values = np.asarray(values, dtype=float)
    return np.fmax.accumulate(values) if len(values) else values


def best_so_far(simulations: pd.DataFrame) -> pd.DataFrame:
    """Successful simulations in arrival (record) order, with the best IE so far (eV).

    Columns ``n_simulations`` (1, 2, ...), ``elapsed_s``, ``smiles``, ``ie`` and ``best_ie``;
    ``ie`` and ``elapsed_s`` as numbers (an unreadable value is NaN). Records are appended as
    simulations arrive, so their order is the campaign's own, whatever the clock column says.
    """
    ok = simulations[simulations["status"] == STATUS_OK]
    ie = pd.to_numeric(ok["ie"], errors="coerce").to_numpy(dtype=float)
    elapsed = pd.to_numeric(ok["elapsed_s"], errors="coerce").to_numpy(dtype=float)
    return pd.DataFrame({"n_simulations": np.arange(1, len(ok) + 1), "elapsed_s": elapsed,
                         "smiles": ok["smiles"].astype(str).to_numpy(), "ie": ie,
                         "best_ie": running_best(ie)})


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out
