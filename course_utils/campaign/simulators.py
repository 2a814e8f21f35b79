"""The campaign's simulator part: how a molecule gets its IE, and where the model runs.

The campaign loop cannot tell these apart (the MolPAL ``Objective`` shape): it submits SMILES,
waits for finished futures, asks for scores, and reads the clock.

* ``xtb``: the full GFN2-xTB protocol on Parsl workers; the model trains and scores there too;
  the clock is the wall clock.
* ``replay``: answers come from the ground-truth table, instantly and in this process (no
  Parsl executor). Each answer is charged the seconds it took when the table was built, on a
  simulated clock with ``workers`` parallel workers, so time curves stay meaningful; failures
  replay as the same failures.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils.campaign.parts import Simulator
from course_utils.chemistry import resolve_engine
from course_utils.ground_truth.shipped import load_ground_truth, truth_of_space
from course_utils.ground_truth.table import (
    Coverage,
    GroundTruthError,
    derived,
    read_answerable,
    table_name,
)
from course_utils.ml.contract import Model, ScoresWholeSpace, SpaceScorer, prediction_table
from course_utils.mpi_cheap import evaluate_share, gather_frame, write_atomic
from course_utils.registry import Registry


class ReplayMissingError(LookupError):
    """Replay was asked for a molecule that the ground-truth table does not hold."""


class XtbSimulator:
    """Real simulations through the loaded Parsl executor."""

    name = "xtb"
    needs_parsl = True

    def __init__(self, engine: str, walltime: float):
        self.engine, self.walltime = engine, walltime
        self._t0 = time.time()

    def submit(self, smiles: str) -> Future:
        # deferred: apps imports parsl (~0.5-1 s)
        from course_utils.apps import simulate_record_app

        return simulate_record_app(smiles, engine=self.engine, walltime=self.walltime)

    def wait(self, futures: Sequence[Future], timeout: float) -> set[Future]:
        return set(wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)[0])

    def score(self, model: Model, training: pd.DataFrame, blocks: list) -> Future:
        """Fit -> chunked scoring -> reduce, chained as Parsl apps (a future of an (n, 2) array,
        with the fitted model's future as its ``model``)."""
        # deferred: apps imports parsl (~0.5-1 s)
        from course_utils.apps import fit_app, predict_block_app, stack_app

        fitted = fit_app(model, training)
        scores = stack_app(*[predict_block_app(fitted, block) for block in blocks])
        scores.model = fitted  # the campaign saves the model version it used
        return scores

    def predict(self, model: Model, smiles: Sequence[str]) -> Future:
        """The model's values for ``smiles`` on a worker (a future of smiles, ie, ie_spread)."""
        # deferred: apps imports parsl (~0.5-1 s)
        from course_utils.apps import predict_app

        return predict_app(model, list(smiles))

    def cheap(self, smiles: Sequence[str], ranks: int, out_file: str | Path) -> Future:
        """The cheap fidelity of ``smiles`` as one MPI task of ``ranks`` ranks (needs a ``-mpi``
        config); a future of the program's result table."""
        # deferred: apps imports parsl (~0.5-1 s)
        from course_utils.apps import cheap_results_app, submit_cheap_mpi

        out = str(Path(out_file).absolute())
        done = submit_cheap_mpi(list(smiles), out, ranks, engine=self.engine)
        return cheap_results_app(out, done=done)

    def now(self) -> float:
        """Seconds since this simulator was created (the campaign adds earlier sessions)."""
        return time.time() - self._t0


def _done(value: Any = None, error: BaseException | None = None) -> Future:
    future: Future = Future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
    return future


class ReplaySimulator:
    """Campaigns answered from a ground-truth table, on a simulated clock."""

    name = "replay"
    needs_parsl = False
    engine = "replay"  # what results.json names as the simulation engine

    def __init__(self, table: pd.DataFrame, workers: int, space: Sequence[str], *,
                 coverage: str = ""):
        self._rows = derived(table, "replay answers", _answers)
        self.coverage = coverage
        self.workers = max(int(workers), 1)
        self._free = [0.0] * self.workers  # when each simulated worker is next idle
        self._clock = 0.0
        self._end: dict[Future, float] = {}
        self._space = list(space)
        #: The model's whole-space scorer (its cache lives across rounds), once one scored.
        self.space_scorer: SpaceScorer | None = None

    def submit(self, smiles: str) -> Future:
        row = self._rows.get(smiles)
        if row is None:
            raise ReplayMissingError(
                f"replay cannot simulate {smiles}: it is not in the ground-truth table"
                + (f" ({self.coverage})" if self.coverage else "")
                + "; replay a search space the table covers, e.g. --search-space truth:qm9")
        ie, status, error, seconds = row
        seconds = float(seconds) if seconds == seconds else 0.0  # NaN (timeouts): no time known
        worker = min(range(self.workers), key=lambda w: (self._free[w], w))
        start = max(self._clock, self._free[worker])
        end = start + seconds
        self._free[worker] = end
        record = {"smiles": smiles, "ie": float(ie) if status == "ok" else math.nan,
                  "status": status, "error": "" if status == "ok" else str(error),
                  "host": "replay", "manager": "", "worker": worker, "pid": 0,
                  "start_time": start, "end_time": end}
        future = _done(record)
        self._end[future] = end
        return future

    def wait(self, futures: Sequence[Future], timeout: float) -> set[Future]:
        """The earliest-finishing simulation (in simulated time), and any finished non-simulation."""
        others = {f for f in futures if f not in self._end and f.done()}
        timed = [(self._end[f], i, f) for i, f in enumerate(futures) if f in self._end]
        if not timed:
            return others
        end, _, first = heapq.nsmallest(1, timed)[0]
        self._clock = max(self._clock, end)
        del self._end[first]
        return others | {first}

    def score(self, model: Model, training: pd.DataFrame, blocks: list) -> Future:
        """Fit and score in this process; the time it takes is charged to the clock.

        A model with a whole-space scorer (the KNN) reuses the previous round's work: its
        scores are bit for bit what ``predict`` of the whole space gives.
        """
        try:  # the scorer's cache (the space's fingerprints) is not the model's work: not charged
            scorer = self._scorer_for(model)
        except Exception as err:  # noqa: BLE001 - the campaign reports and retries it
            return _done(error=err)
        started = time.perf_counter()
        try:
            smiles, ie = training["smiles"].tolist(), training["ie"].to_numpy()
            if scorer is not None:
                scores = scorer.fit_and_score(model, smiles, ie)
            else:
                scores = np.column_stack(model.fit(smiles, ie).predict(self._space))
            result = _done(scores)
            result.model = model  # the campaign saves the model version it used
        except Exception as err:  # noqa: BLE001 - the campaign reports and retries it
            result = _done(error=err)
        self._clock += time.perf_counter() - started
        return result

    def _scorer_for(self, model: Model) -> SpaceScorer | None:
        """The model's whole-space scorer, kept while it serves the same kind of model."""
        if not isinstance(model, ScoresWholeSpace):
            return None
        if self.space_scorer is None or not self.space_scorer.serves(model):
            self.space_scorer = model.space_scorer(self._space)
        return self.space_scorer

    def predict(self, model: Model, smiles: Sequence[str]) -> Future:
        """The model's values for ``smiles``, in this process."""
        started = time.perf_counter()
        result = _done(prediction_table(model, smiles))
        self._clock += time.perf_counter() - started
        return result

    def cheap(self, smiles: Sequence[str], ranks: int, out_file: str | Path) -> Future:
        """The cheap fidelity, computed for real in this process (there is no table of it) and
        charged to the clock as if ``ranks`` MPI ranks had shared it; the same table as the
        MPI program writes."""
        items = list(smiles)
        try:
            frame = gather_frame([evaluate_share(items, range(len(items)))], len(items))
            write_atomic(frame, out_file)
        except Exception as err:  # noqa: BLE001 - the campaign treats it as a failed check
            return _done(error=err)
        self._clock += float(frame["seconds"].sum()) / max(int(ranks), 1)
        return _done(frame)

    def now(self) -> float:
        """Simulated seconds since this simulator was created (the campaign adds earlier
        sessions of a resumed run)."""
        return self._clock


def _answers(table: pd.DataFrame) -> dict[str, tuple]:
    """SMILES -> (IE, status, error, seconds) of every settled row of a ground-truth table."""
    known = table[table["status"].isin(("ok", "failed", "timeout"))]
    return {s: (ie, status, error, seconds) for s, ie, status, error, seconds in zip(
        known["smiles"], known["ie"], known["status"], known["error"], known["seconds"],
        strict=True)}


def ground_truth_file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be a replay's table (one line), or None: a missing file would read
    as an empty table and surface much later as "covers 0 of 130,831 molecules"."""
    if not str(path).strip():
        return "the ground-truth table's file name is empty; give a file, or none for the shipped table"
    where = Path(path)
    if where.is_file():
        return None
    what = "is a folder, not a file" if where.is_dir() else "not found"
    return (f"ground-truth table {path} {what}; give a table file from `python -m course_utils "
            "truth build`, or none for the shipped table")


def replay_table(space_name: str, path: str | None = None, space_size: int = 0,
                 space: Sequence[str] | None = None) -> tuple[pd.DataFrame, str]:
    """The table that answers a replay: ``path`` (a ``truth build`` file) if given, else the
    one shipped for ``space_name`` (``qm9``, or ``truth:qm9``, its covered part). Given the
    ``space``, its coverage counts only the space's molecules the table holds."""
    if path is not None:
        problem = ground_truth_file_problem(path)
        if problem:
            raise GroundTruthError(problem)
        table = read_answerable(path)
        coverage = (Coverage.of(table, space, str(path)) if space is not None
                    else Coverage(min(len(table), space_size), space_size, str(path)))
        return table, str(coverage)

    table = load_ground_truth(table_name(space_name))
    return table, str(table.attrs["coverage"])


def measured_table(space_name: str, path: str | None = None, space_size: int = 0
                   ) -> tuple[pd.DataFrame, str]:
    """The table a run on ``space_name`` is measured against: replay's table, but only the N
    molecules of ``truth:qm9:N`` (a build file given as ``path`` is used whole)."""
    table, coverage = replay_table(space_name, path, space_size)
    if path is None:
        table = truth_of_space(table, space_name)
        coverage = str(table.attrs["coverage"])
    return table, coverage


SIMULATOR_REGISTRY: Registry = Registry(
    "simulator", unknown="unknown simulator {text!r}; choose one of {choices}")


@SIMULATOR_REGISTRY.register("xtb")
def _xtb(*, engine: str | None, walltime: float, **_: Any) -> XtbSimulator:
    return XtbSimulator(resolve_engine(engine), walltime)


@SIMULATOR_REGISTRY.register("replay")
def _replay(*, workers: int, space: Iterable[str], space_name: str,
            ground_truth: str | None = None, **_: Any) -> ReplaySimulator:
    space = list(space)
    table, coverage = replay_table(space_name, ground_truth, len(space), space)
    return ReplaySimulator(table, workers, space, coverage=coverage)


SIMULATORS = SIMULATOR_REGISTRY.names


def make_simulator(name: str, *, engine: str | None, walltime: float, workers: int,
                   space: Iterable[str], space_name: str, ground_truth: str | None = None
                   ) -> Simulator:
    """The simulator ``name`` for a campaign (each takes what it needs of the rest)."""
    return SIMULATOR_REGISTRY.factory(name)(
        engine=engine, walltime=walltime, workers=workers, space=space, space_name=space_name,
        ground_truth=ground_truth)
