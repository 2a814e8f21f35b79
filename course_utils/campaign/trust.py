"""The trust-check part: a cheap calculation beside the model decides where the full one is needed.

For each batch of picks the campaign runs two futures at the same time: the model's prediction
of the picks and the cheap fidelity of the picks (one MPI task, :mod:`course_utils.mpi_cheap`).
A pick whose two values agree within ``trust_tol`` eV is *trusted*: the model's value is
accepted and no full simulation runs for it. The others get the full simulation, which also
trains the next model. After ``trust_streak`` consecutive batches in which every pick was
trusted, the campaign stops: the model has been right often enough.

Every check is a row of ``checks.csv`` in the run folder (model, cheap and full values, whether
it was trusted); ``results.json`` gets a ``trust`` block with what the checks saved and cost.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils.records.ledger import Ledger, RecordFile

CHECKS_FILE = "checks.csv"
CHECK_FIELDS = [
    "iteration", "smiles", "model_ie", "model_spread", "cheap_ie", "cheap_status", "cheap_error",
    "difference_ev", "trusted", "full_ie", "full_status", "cheap_seconds", "model_version",
]
#: checks.csv: its columns, what they must hold (a row that does not is set aside), how it is read.
CHECKS = RecordFile(
    CHECKS_FILE, CHECK_FIELDS,
    {"iteration": "int", "smiles": "smiles", "model_ie": "float?", "model_spread": "float?",
     "cheap_ie": "ie?", "cheap_status": "text", "difference_ev": "float?",
     "trusted": "bool", "full_ie": "ie?", "full_status": "status?",
     "cheap_seconds": "float?", "model_version": "int?"},
    {"keep_default_na": False, "na_values": [""],
     "dtype": {"smiles": str, "cheap_error": str, "cheap_status": str, "full_status": str}})


def is_trusted(model_ie: float, cheap_ie: float, tol: float) -> bool:
    """The model's value is accepted when the cheap check agrees within ``tol`` eV (with a
    rounding allowance far below anything xTB resolves: 14.05 - 14.0 is 0.0500000000000007)."""
    return (math.isfinite(model_ie) and math.isfinite(cheap_ie)
            and abs(model_ie - cheap_ie) <= tol + 1e-9)


def read_checks(run_dir: str | os.PathLike) -> pd.DataFrame:
    return CHECKS.read(run_dir)


def trailing_streak(checks: Sequence[Mapping[str, Any]]) -> int:
    """Consecutive fully trusted batches at the end of the records (iterations in order)."""
    batches: dict[int, bool] = {}
    for row in checks:
        it = int(row["iteration"])
        batches[it] = batches.get(it, True) and truthy(row["trusted"])
    streak = 0
    for it in sorted(batches, reverse=True):
        if not batches[it]:
            break
        streak += 1
    return streak


def truthy(value: Any) -> bool:
    """A ``trusted`` cell as read back from CSV (``"True"``/``"1"``) or as written (``True``)."""
    return value is True or str(value).strip().lower() in ("true", "1")


@dataclass
class TrustLedger:
    """The checks of one run folder: what was checked, the current streak, and the totals."""

    run_dir: Path
    tol: float
    streak_needed: int
    ranks: int
    #: Appends the checks (the run's ledger: one ``durable`` flag for all its records).
    ledger: Ledger
    rows: list[dict] = field(default_factory=list)
    #: Picks the model's value was accepted for: tried, never simulated in full. Kept with
    #: ``rows`` (the campaign asks for it on every candidate it considers).
    trusted_smiles: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, run_dir: str | os.PathLike, tol: float, streak: int, ranks: int,
             ledger: Ledger | None = None) -> TrustLedger:
        """The checks a previous session left (torn or bad rows cut or set aside, with a
        note); new ones are appended through ``ledger`` (the run's, else this folder's own)."""
        checks = cls(Path(run_dir), tol, streak, ranks, Ledger.of(run_dir, ledger))
        for note in checks.ledger.tidy(CHECKS):
            print(f"note: {note}", file=sys.stderr)
        checks.rows = read_checks(run_dir).to_dict("records")
        checks.trusted_smiles = {r["smiles"] for r in checks.rows if truthy(r["trusted"])}
        return checks

    @property
    def streak(self) -> int:
        return trailing_streak(self.rows)

    def judge(self, iteration: int, picks: Sequence[str], model: pd.DataFrame,
              cheap: pd.DataFrame, model_version: int | None) -> list[dict]:
        """One check row per pick (not yet written: the full values come later)."""
        model_by = model.set_index("smiles")
        cheap_by = cheap.drop_duplicates("smiles").set_index("smiles")
        rows = []
        for smiles in picks:
            m = float(model_by.at[smiles, "ie"])
            c = cheap_by.loc[smiles] if smiles in cheap_by.index else None
            cheap_ie = float(c["ie"]) if c is not None else math.nan
            rows.append({
                "iteration": iteration, "smiles": smiles, "model_ie": m,
                "model_spread": float(model_by.at[smiles, "ie_spread"]),
                "cheap_ie": cheap_ie,
                "cheap_status": str(c["status"]) if c is not None else "missing",
                "cheap_error": str(c["error"]) if c is not None else "no result from the check",
                "difference_ev": abs(m - cheap_ie) if math.isfinite(cheap_ie) else math.nan,
                "trusted": is_trusted(m, cheap_ie, self.tol),
                "full_ie": math.nan, "full_status": "",
                "cheap_seconds": float(c["seconds"]) if c is not None else math.nan,
                "model_version": model_version})
        return rows

    def record(self, rows: list[dict], full: Sequence[Mapping[str, Any]]) -> None:
        """Add the full simulations' outcomes to the batch's rows and append them."""
        outcome = {r["smiles"]: r for r in full}
        for row in rows:
            done = outcome.get(row["smiles"])
            if done is not None:
                row["full_ie"] = float(done["ie"]) if done["status"] == "ok" else math.nan
                row["full_status"] = done["status"]
            self.ledger.append(CHECKS, row)
            self.rows.append(row)
            if row["trusted"]:
                self.trusted_smiles.add(row["smiles"])

    def block(self, fired: bool, seconds_per_full: float | None) -> dict[str, Any]:
        """results.json's ``trust``: what the checks saved, and what they cost."""
        trusted = [r for r in self.rows if truthy(r["trusted"])]
        cheap_s = sum(float(r["cheap_seconds"]) for r in self.rows
                      if isinstance(r["cheap_seconds"], int | float)
                      and math.isfinite(r["cheap_seconds"]))
        saved_s = None if seconds_per_full is None else len(trusted) * seconds_per_full
        return {
            "trust_tol_ev": self.tol, "trust_streak": self.streak_needed, "ranks": self.ranks,
            "batches_checked": len({int(r["iteration"]) for r in self.rows}),
            "picks_checked": len(self.rows), "trusted": len(trusted),
            "untrusted": len(self.rows) - len(trusted),
            "full_simulations_saved": len(trusted),
            "cheap_compute_s": cheap_s,
            "full_seconds_per_simulation": seconds_per_full,
            "full_compute_saved_s": saved_s,
            "net_compute_saved_s": None if saved_s is None else saved_s - cheap_s,
            "streak": self.streak, "stopped_by_streak": fired,
            "checks_file": CHECKS_FILE if self.rows else None,
        }
