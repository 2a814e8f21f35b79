"""The batch plan: which molecules each batch simulates, written before they are submitted.

A batch-mode run appends one row to ``batches.csv`` for every molecule a batch submits, before
submitting it: the batch (0 is the initial random batch), its order in the batch, the SMILES,
the model version it was ranked with (empty for batch 0 and random search), the model's
predicted IE (eV), ``planned`` (the batch's first picks, written together) or
``replacement`` (a pick taken later because a simulation of the batch failed), and the model's
predicted std of the IE (eV; empty in folders of older kits).

Rows that do not parse (the rules of :data:`PLAN`) are moved to
``batches.rejected.csv`` when a run opens the folder, with a note naming the file and line, so
one garbage row never stops a resume; the batch it belonged to is completed from the rest.

A batch is complete once iterations.csv has its row (batch 0: once the initial batch has its
successes). A run that was stopped inside a batch finds the batch's rows here and completes
that batch, with the same model, before it picks the next one, so a resumed run simulates the
same molecules in the same batches as a run that was never stopped.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils.records.ledger import Ledger, RecordFile

PLAN_FILE = "batches.csv"
PLAN_FIELDS = ["batch", "order", "smiles", "model_version", "predicted_ie", "kind",
               "predicted_std"]  # added later: new columns go at the end
PLANNED = "planned"
REPLACEMENT = "replacement"
#: batches.csv: its columns, what they must hold (a row that does not is set aside), how it is read.
PLAN = RecordFile(
    PLAN_FILE, PLAN_FIELDS,
    {"batch": "int", "order": "int", "smiles": "smiles", "model_version": "int?",
     "predicted_ie": "float?", "kind": f"{PLANNED}|{REPLACEMENT}", "predicted_std": "float?"},
    {"keep_default_na": False, "na_values": [""], "dtype": {"smiles": str, "kind": str}})


def read_plan(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The rows of batches.csv of a run folder that parse (an empty frame with its columns if
    there is none); rows that do not are in ``frame.attrs["rejected"]``."""
    return PLAN.read(run_dir)


@dataclass
class BatchPlan:
    """The planned batches of one run folder, appended to as batches are planned."""

    run_dir: Path
    #: Appends the rows (the run's ledger: one ``durable`` flag for all its records).
    ledger: Ledger
    rows: list[dict] = field(default_factory=list)
    #: Each batch's molecules and model version, looked up once per batch and per replacement.
    _smiles: dict[int, list[str]] = field(default_factory=dict, repr=False)
    _version: dict[int, int | None] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, run_dir: str | os.PathLike, ledger: Ledger | None = None) -> BatchPlan:
        """Read the plan a previous session left: a torn last row (a killed writer) is cut
        off and rows that do not parse are set aside, each with a note (call it holding the
        folder's lock: it rewrites the file). New rows go through ``ledger`` (the run's, else
        this folder's own)."""
        plan = cls(Path(run_dir), Ledger.of(run_dir, ledger))
        for note in plan.ledger.tidy(PLAN):
            print(f"note: {note}", file=sys.stderr)
        for row in read_plan(run_dir).to_dict("records"):
            plan._keep(row)
        return plan

    def _keep(self, row: dict) -> None:
        batch = int(row["batch"])
        self.rows.append(row)
        self._smiles.setdefault(batch, []).append(row["smiles"])
        self._version.setdefault(batch, _int_or_none(row["model_version"]))

    def smiles(self, batch: int) -> list[str]:
        """The batch's molecules in the order they were planned (empty if never planned)."""
        return list(self._smiles.get(batch, ()))

    def model_version(self, batch: int) -> int | None:
        """The model version the batch was ranked with (None: batch 0, random, or unplanned)."""
        return self._version.get(batch)

    def add(self, batch: int, smiles: Iterable[str], *, kind: str = PLANNED,
            model_version: int | None = None, predicted: Any = None) -> list[dict]:
        """Append the batch's next molecules (skipping any it planned already); the new rows."""
        known = set(self._smiles.get(batch, ()))
        order = len(known)
        added = []
        for s in smiles:
            if s in known:
                continue
            known.add(s)
            row = {"batch": batch, "order": order, "smiles": s, "model_version": model_version,
                   "predicted_ie": predicted.get(s, math.nan) if predicted is not None else None,
                   "kind": kind, "predicted_std": _std_of(predicted, s)}
            self.ledger.append(PLAN, row)
            self._keep(row)
            added.append(row)
            order += 1
        return added


def _std_of(predicted: Any, smiles: str) -> float | None:
    """The predicted std of a molecule, from predictions that carry one (else None)."""
    std = getattr(predicted, "std", None)
    return std(smiles) if callable(std) else None


def _int_or_none(value: Any) -> int | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else int(out)
