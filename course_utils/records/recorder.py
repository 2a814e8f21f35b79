"""The campaign recorder: a run folder's simulations and iterations, and what is done there.

Rows are appended and fsynced the moment a result arrives (:mod:`course_utils.records.ledger`),
so a killed run loses nothing and a re-run with the same output folder can resume without
recomputing finished simulations. Temporary files of an atomic save a kill interrupted
(``*.tmp``) are removed on resume.

Files in an output folder (this module's; lineage.csv, checks.csv and batches.csv belong to
:mod:`course_utils.campaign.lineage`, :mod:`~course_utils.campaign.trust` and
:mod:`~course_utils.campaign.batch_plan`):
  simulations.csv  one row per simulation attempt (SMILES, IE in eV, status, error, batch, times)
  iterations.csv   one row per model generation (training size, timings, model error)
  parameters.json  the parameters the folder was started with (checked when resuming)
  results.json     parameters, environment, totals, best *simulated* molecule (rewritten as it goes)
  .run.lock        held by the run writing into the folder (:mod:`course_utils.records.lock`)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils.records.jsonfiles import atomic_write_json, read_json_object
from course_utils.records.ledger import Ledger, RecordFile
from course_utils.records.rows import STATUS_LOST, STATUS_OK, possible_ie

SIMULATION_FIELDS = [
    "smiles", "ie", "status", "error", "batch", "submit_time", "start_time", "end_time",
    "elapsed_s", "host", "manager", "worker", "pid", "wave",
]
ITERATION_FIELDS = [
    "iteration", "training_size", "n_new", "best_ie", "model_time_s", "select_time_s",
    "simulate_time_s", "mae_ev", "mape_pct", "elapsed_s", "model_version", "valid_mae_ev",
    "valid_r2", "r2", "within_1sd", "within_2sd",  # added later: new columns go at the end
    "heldout_mae_ev",
]
SIMULATIONS_FILE = "simulations.csv"
ITERATIONS_FILE = "iterations.csv"
PARAMETERS_FILE = "parameters.json"
RESULTS_FILE = "results.json"
PLOT_FILE = "ml_in_the_loop.png"


class ResumeMismatchError(ValueError):
    """The output folder holds a run whose parameters do not match this one."""


#: simulations.csv and iterations.csv: what their columns must hold (:mod:`~.rows` kinds).
SIMULATIONS = RecordFile(
    SIMULATIONS_FILE, SIMULATION_FIELDS,
    {"smiles": "smiles", "ie": "ie?", "status": "status", "batch": "int?",
     "submit_time": "float?", "start_time": "float?", "end_time": "float?",
     "elapsed_s": "float?", "pid": "int?", "wave": "int?"},
    {"keep_default_na": False, "na_values": [""],
     "dtype": {"smiles": str, "error": str, "status": str}})
ITERATIONS = RecordFile(
    ITERATIONS_FILE, ITERATION_FIELDS,
    {"iteration": "int", "training_size": "int", "n_new": "int?", "best_ie": "ie?",
     "model_time_s": "float?", "select_time_s": "float?", "simulate_time_s": "float?",
     "mae_ev": "float?", "mape_pct": "float?", "elapsed_s": "float?", "model_version": "int?",
     "valid_mae_ev": "float?", "valid_r2": "float?", "r2": "float?", "within_1sd": "float?",
     "within_2sd": "float?", "heldout_mae_ev": "float?"})


def read_simulations(out_dir: str | os.PathLike) -> pd.DataFrame:
    """The simulation records of a folder that parse (empty frame with the right columns if
    none); rows that do not are in ``frame.attrs["rejected"]``."""
    path = Path(out_dir) / SIMULATIONS_FILE
    frame = SIMULATIONS.read(out_dir)
    missing = [c for c in ("smiles", "ie", "status", "error") if c not in frame.columns]
    if missing:
        raise ValueError(f"cannot read {path}: no column(s) {', '.join(missing)}")
    frame["error"] = frame["error"].fillna("")
    return frame


def read_iterations(out_dir: str | os.PathLike) -> pd.DataFrame:
    return ITERATIONS.read(out_dir)


#: Where atomic saves leave ``*.tmp`` files when killed: the run folder and these inside it.
TEMPORARY_DIRS = (".", "models", "checks")


def remove_stale_temporaries(folder: str | os.PathLike,
                             subdirs: tuple[str, ...] = TEMPORARY_DIRS) -> str | None:
    """Delete ``*.tmp`` files a killed atomic save left (never a finished file); one note.

    Only call it holding the folder's lock: a live writer's temporary file must not vanish.
    """
    gone = []
    for sub in subdirs:
        directory = Path(folder) / sub
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.tmp")):
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)
                gone.append(str(path.relative_to(folder)))
    if not gone:
        return None
    return (f"{folder}: removed {len(gone)} temporary file{'s' if len(gone) > 1 else ''} of an "
            f"interrupted save: {', '.join(gone)}")


@dataclass
class CampaignRecorder:
    """Appends records to an output folder and remembers what is already done there."""

    out_dir: Path
    #: Appends the rows (shared with the run's other record files: one ``durable`` flag).
    ledger: Ledger
    simulations: list[dict] = field(default_factory=list)
    iterations: list[dict] = field(default_factory=list)
    elapsed_offset: float = 0.0

    @classmethod
    def open(cls, out_dir: str | os.PathLike) -> CampaignRecorder:
        """Open (creating if needed) a folder, loading records a previous run left there.

        Torn last lines of a killed run are cut off first, so new rows never glue onto them;
        rows that do not parse are set aside, and temporary files of a killed save removed.
        """
        path = Path(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        ledger = Ledger(path)
        notes = [remove_stale_temporaries(path), *ledger.tidy(SIMULATIONS),
                 *ledger.tidy(ITERATIONS)]
        for note in notes:
            if note:
                print(f"note: {note}", file=sys.stderr)
        sims = read_simulations(path)
        its = read_iterations(path)
        recorder = cls(path, ledger)
        recorder.simulations = sims.to_dict("records")
        recorder.iterations = its.to_dict("records")
        # Wall time carries on from where the previous session stopped.
        elapsed = [*sims["elapsed_s"].dropna().tolist(), *its["elapsed_s"].dropna().tolist()]
        recorder.elapsed_offset = float(max(elapsed)) if elapsed else 0.0
        return recorder

    # --- what is known -------------------------------------------------------------------
    @property
    def attempted(self) -> set[str]:
        """Molecules with an outcome; a task lost with its worker is tried again (on resume too)."""
        return {r["smiles"] for r in self.simulations if r["status"] != STATUS_LOST}

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
        """Record one simulation (an impossible IE as the failure it is: :func:`possible_ie`)."""
        row = possible_ie({k: record.get(k) for k in SIMULATION_FIELDS})
        self.simulations.append(row)
        self.ledger.append(SIMULATIONS, row)
        return row

    def add_iteration(self, record: Mapping[str, Any]) -> dict:
        row = {k: record.get(k) for k in ITERATION_FIELDS}
        self.iterations.append(row)
        self.ledger.append(ITERATIONS, row)
        return row

    def check_parameters(self, parameters: Mapping[str, Any], must_match: tuple[str, ...],
                         defaults: Mapping[str, Any] | None = None) -> None:
        """Refuse to mix two different campaigns in one folder; record the parameters otherwise.

        A key missing from an older folder's parameters counts as its default value.
        """
        path = self.out_dir / PARAMETERS_FILE
        previous = self.previous_parameters() if self.simulations else None
        if self.simulations and previous is None:
            print(f"note: {self.out_dir}: neither {PARAMETERS_FILE} nor {RESULTS_FILE} holds "
                  "readable parameters (a run was killed while writing them); resuming with the "
                  "current ones", file=sys.stderr)
        if previous is not None:
            before = {k: previous.get(k, (defaults or {}).get(k)) for k in must_match}
            diffs = [f"{k}: {before[k]!r} there, {parameters.get(k)!r} now"
                     for k in must_match if before[k] != parameters.get(k)]
            if diffs:
                raise ResumeMismatchError(
                    f"{self.out_dir} holds a run with other parameters ({'; '.join(diffs)}); "
                    "use a new output folder or the same parameters to resume"
                )
        atomic_write_json(path, dict(parameters))

    def previous_parameters(self) -> dict[str, Any] | None:
        """The parameters the folder was started with (:func:`run_parameters`)."""
        return run_parameters(self.out_dir)


# --- a run folder and its JSON files ----------------------------------------------------------
def is_run_folder(path: str | os.PathLike) -> bool:
    """A folder a campaign has written to: it holds its parameters, simulations or results
    (a run that has not finished a simulation yet is still a run, with nothing to draw)."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists()
                                 for name in (RESULTS_FILE, SIMULATIONS_FILE, PARAMETERS_FILE))


def run_parameters(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The parameters a run folder was started with, or None if no file holds them readably.

    A run killed while writing leaves a torn or empty JSON file; results.json repeats the
    parameters, so either one is enough.
    """
    saved = read_json_object(Path(out_dir) / PARAMETERS_FILE)
    if saved is not None:
        return saved
    block = (read_json_object(Path(out_dir) / RESULTS_FILE) or {}).get("parameters")
    return block if isinstance(block, dict) else None

