"""What a campaign leaves behind: simulation and iteration records, and its results file.

Rows are appended and flushed the moment a result arrives, so a killed run loses nothing and a
re-run with the same output folder can resume without recomputing finished simulations.

Files in an output folder:
  simulations.csv  one row per simulation attempt (SMILES, IE in eV, status, error, batch, times)
  iterations.csv   one row per model generation (training size, timings, model error)
  parameters.json  the parameters the folder was started with (checked when resuming)
  results.json     parameters, environment, totals, best *simulated* molecule (rewritten as it goes)
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

SIMULATION_FIELDS = [
    "smiles", "ie", "status", "error", "batch", "submit_time", "start_time", "end_time",
    "elapsed_s", "host", "manager", "worker", "pid",
]
ITERATION_FIELDS = [
    "iteration", "training_size", "n_new", "best_ie", "model_time_s", "select_time_s",
    "simulate_time_s", "mae_ev", "mape_pct", "elapsed_s",
]
SIMULATIONS_FILE = "simulations.csv"
ITERATIONS_FILE = "iterations.csv"
PARAMETERS_FILE = "parameters.json"
RESULTS_FILE = "results.json"
PLOT_FILE = "ml_in_the_loop.png"

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_TIMEOUT = "timeout"
STATUS_LOST = "lost"  # the worker died or the task could not run


class ResumeMismatchError(ValueError):
    """The output folder holds a run whose parameters do not match this one."""


def _append_row(path: Path, fields: list[str], row: Mapping[str, Any]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: _csv_value(row.get(k)) for k in fields})
        handle.flush()
        os.fsync(handle.fileno())


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)  # full precision: results.json must match these values exactly
    return value


def read_simulations(out_dir: str | os.PathLike) -> pd.DataFrame:
    """All simulation records of a folder (empty frame with the right columns if none)."""
    path = Path(out_dir) / SIMULATIONS_FILE
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=SIMULATION_FIELDS)
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""],
                        dtype={"smiles": str, "error": str, "status": str})
    frame["error"] = frame["error"].fillna("")
    return frame


def read_iterations(out_dir: str | os.PathLike) -> pd.DataFrame:
    path = Path(out_dir) / ITERATIONS_FILE
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=ITERATION_FIELDS)
    return pd.read_csv(path)


def atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


@dataclass
class CampaignRecorder:
    """Appends records to an output folder and remembers what is already done there."""

    out_dir: Path
    simulations: list[dict] = field(default_factory=list)
    iterations: list[dict] = field(default_factory=list)
    elapsed_offset: float = 0.0

    @classmethod
    def open(cls, out_dir: str | os.PathLike) -> CampaignRecorder:
        """Open (creating if needed) a folder, loading records a previous run left there."""
        path = Path(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        sims = read_simulations(path)
        its = read_iterations(path)
        recorder = cls(path)
        recorder.simulations = sims.to_dict("records")
        recorder.iterations = its.to_dict("records")
        # Wall time carries on from where the previous session stopped.
        elapsed = [*sims["elapsed_s"].dropna().tolist(), *its["elapsed_s"].dropna().tolist()]
        recorder.elapsed_offset = float(max(elapsed)) if elapsed else 0.0
        return recorder

    # --- what is known -------------------------------------------------------------------
    @property
    def attempted(self) -> set[str]:
        return {r["smiles"] for r in self.simulations}

    @property
    def successes(self) -> list[dict]:
        return [r for r in self.simulations if r["status"] == STATUS_OK]

    def training_data(self) -> pd.DataFrame:
        """Successful simulations as (smiles, ie), sorted: training must not depend on arrival order."""
        rows = [(r["smiles"], float(r["ie"])) for r in self.successes]
        frame = pd.DataFrame(rows, columns=["smiles", "ie"])
        return frame.sort_values("smiles", kind="stable").reset_index(drop=True)

    def best(self) -> dict | None:
        ok = self.successes
        return max(ok, key=lambda r: float(r["ie"])) if ok else None

    # --- writing -------------------------------------------------------------------------
    def add_simulation(self, record: Mapping[str, Any]) -> dict:
        row = {k: record.get(k) for k in SIMULATION_FIELDS}
        self.simulations.append(row)
        _append_row(self.out_dir / SIMULATIONS_FILE, SIMULATION_FIELDS, row)
        return row

    def add_iteration(self, record: Mapping[str, Any]) -> dict:
        row = {k: record.get(k) for k in ITERATION_FIELDS}
        self.iterations.append(row)
        _append_row(self.out_dir / ITERATIONS_FILE, ITERATION_FIELDS, row)
        return row

    def check_parameters(self, parameters: Mapping[str, Any], must_match: tuple[str, ...]) -> None:
        """Refuse to mix two different campaigns in one folder; record the parameters otherwise."""
        path = self.out_dir / PARAMETERS_FILE
        if path.exists() and self.simulations:
            previous = json.loads(path.read_text())
            diffs = [f"{k}: {previous.get(k)!r} there, {parameters.get(k)!r} now"
                     for k in must_match if previous.get(k) != parameters.get(k)]
            if diffs:
                raise ResumeMismatchError(
                    f"{self.out_dir} holds a run with other parameters ({'; '.join(diffs)}); "
                    "use a new output folder or the same parameters to resume"
                )
        atomic_write_json(path, dict(parameters))


def environment_info(engine: str | None = None) -> dict[str, Any]:
    """Where and with what a run happened, for the results file and for graders."""
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
    return {
        "status": status,
        "message": message,
        "parameters": dict(parameters),
        "environment": dict(environment),
        "totals": {
            "simulations": len(sims),
            "successful": counts.get(STATUS_OK, 0),
            "failed": len(sims) - counts.get(STATUS_OK, 0),
            "by_status": counts,
            "iterations": len(recorder.iterations),
            "wall_time_s": wall_time_s,
        },
        "best": best_info,
        "top_simulated": [{"smiles": r["smiles"], "ie": float(r["ie"])} for r in ok[:top]],
        "failures": [{"smiles": r["smiles"], "status": r["status"], "error": r["error"]}
                     for r in sims if r["status"] != STATUS_OK],
        "units": {"ie": "eV", "time": "s"},
    }


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out
