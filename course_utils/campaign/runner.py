"""The active-learning campaign: the model picks molecules, Parsl simulates them, it retrains.

Same steps as notebook 3: a seeded random initial batch; then train the model (KNN by default) on every
successful simulation, score the whole search space, pick the best molecules never run before,
simulate them; until ``max_training_count`` simulations have succeeded. Failed simulations are
recorded with their error and replaced by new molecules, never by ones already tried.

Its parts live beside it in :mod:`course_utils.campaign`: parameters, acquisition, simulators,
the batch plan that makes a resumed run pick what an unstopped one picks, retraining and
validation, model versions (lineage), arrival of the search space, trust checks and the stop
rule; records in :mod:`course_utils.records`, stops and failures in
:mod:`course_utils.resilience`.

:class:`Campaign` is one plain class that holds its parts as attributes and calls them through
their contracts (:mod:`course_utils.campaign.parts`): ``simulator``, ``model`` (kept in use by
``keeper``, :mod:`course_utils.campaign.model_keeper`), ``acquisition``, ``retrain_policy``,
``stop_rule``, ``arrival``, ``trust``. Its public steps are the ones notebook 3 calls:
``initial_batch``, ``score_search_space``, ``wait_for``, ``adopt_model``, ``new_model``,
``predictions``, ``pick``, ``simulate``, ``simulate_batch``, ``record_iteration``, ``finish``, and
``run``, which runs one of the two loops: ``batch`` (:mod:`course_utils.campaign.batch_loop`:
wait for the whole batch, as the original tutorial) or ``streaming``
(:mod:`course_utils.campaign.streaming_loop`: keep every worker busy). What a run reports
(results.json, figures) is written by :mod:`course_utils.campaign.outputs`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.campaign.batch_loop import run_batches
from course_utils.campaign.batch_plan import PLANNED, REPLACEMENT, BatchPlan
from course_utils.campaign.lineage import ModelLineage
from course_utils.campaign.lost_workers import Death, WorkerWatch
from course_utils.campaign.model_keeper import ModelKeeper, Predicted, TrainingRound
from course_utils.campaign.outputs import (
    draw_figures,
    evaluation_of,
    ground_truth_for,
    models_block,
    write_results,
)
from course_utils.campaign.parameters import (
    ACQUISITIONS,
    MODES,
    RESUME_KEYS,
    CampaignParameterError,
    CampaignParameters,
)
from course_utils.campaign.parts import RankingContext
from course_utils.campaign.retraining import ValidationSplit
from course_utils.campaign.simulators import ReplayMissingError
from course_utils.campaign.stopping import (
    StopDecision,
    history_from_records,
    stop_message,
    stopped_early_status,
    stopping_block,
)
from course_utils.campaign.streaming_loop import run_streaming
from course_utils.campaign.trust import TRUST_RULE, truthy
from course_utils.configs import make_config
from course_utils.ground_truth.evaluation import HeldOutSample, heldout_sample
from course_utils.ml.calibration import calibration
from course_utils.resilience import (
    CampaignInterrupted,
    CampaignStopped,
    is_timeout,
    one_line,
    public_step,
    restart_workers,
    stop_asked_here,
    stop_signals,
)
from course_utils.search_space import iter_unseen, load_search_space, sample_smiles

#: What a notebook needs to run a campaign, importable from here in one line. Modules import
#: each name from its home (parameters, resilience), never through this list.
__all__ = [
    "ACQUISITIONS",
    "MODES",
    "Campaign",
    "CampaignInterrupted",
    "CampaignParameterError",
    "CampaignParameters",
    "CampaignResult",
    "run_campaign",
]


# --- the run ---------------------------------------------------------------------------------
@dataclass
class CampaignResult:
    out_dir: Path
    results: dict[str, Any]
    simulations: pd.DataFrame
    iterations: pd.DataFrame
    plot_path: Path | None = None

    @property
    def best(self) -> dict[str, Any] | None:
        return self.results.get("best")


@dataclass
class _Pending:
    smiles: str
    batch: int
    submit_time: float
    predicted: float = math.nan
    predicted_std: float = math.nan


@dataclass
class Campaign:
    """One campaign writing into ``out_dir``; :meth:`run` needs a loaded Parsl DataFlowKernel."""

    parameters: CampaignParameters
    out_dir: Path
    progress: bool = True
    on_update: Callable[[dict[str, Any]], None] | None = None
    #: Draw ml_in_the_loop.png at the end (sweeps of many replays may skip it).
    plot: bool = True
    _pending: dict[Future, _Pending] = field(default_factory=dict, init=False)

    #: A worker that died (or a task that vanished) is an infrastructure failure: the molecule
    #: is submitted again, at most this many times, before it counts as a failed simulation.
    LOST_RETRIES = 2
    #: How often waits wake up to look for a stop request or a stalled task.
    POLL_S = 0.5

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir).resolve()  # the kernel may change directory later
        p = self.parameters
        space = load_search_space(p.search_space)
        self.space: list[str] = space["smiles"].tolist()
        parts = p.parts(len(self.space))  # validated, each part built once (campaign.build)
        # Only after validation: bad parameters must leave no folder or file behind.
        self._lock: rec.RunLock | None = rec.acquire_run_lock(self.out_dir)
        try:
            self.recorder = rec.CampaignRecorder.open(self.out_dir)
            self.recorder.check_parameters(p.to_dict(), RESUME_KEYS,
                                           defaults=CampaignParameters().to_dict())
            self.resumed = len(self.recorder.simulations)
            # --- the parts, each called through its contract (campaign.parts)
            self.simulator = parts.simulator(workers=self.workers, space=self.space)
            ledger = self.recorder.ledger  # appends every record file of the run, one flag:
            ledger.durable = self.simulator.needs_parsl  # a replay (ms a row) skips the fsync
            self.engine = self.simulator.engine
            self.models = ModelLineage.open(self.out_dir, ledger)  # versions go on after the last one
            self.plan = BatchPlan.open(self.out_dir, ledger)  # what each batch simulates (batch mode)
        except BaseException:
            self.release_lock()  # a campaign that cannot start must not keep the folder
            raise
        self.model = parts.model  # unfitted: the keeper fits copies of it
        self.acquisition = parts.acquisition
        self.retrain_policy = parts.retrain_policy
        self.stop_rule = parts.stop_rule  # when the search is done
        self.arrival = parts.arrival
        self.trust = (None if parts.trust is None else
                      parts.trust.open(self.out_dir, self.recorder.ledger))
        self.split = ValidationSplit(p.valid_fraction, p.seed)
        self.keeper = ModelKeeper(
            self.model, self.simulator, self.models, space=self.space,
            chunks=p.score_chunks or self.workers, parameters=p.to_dict(), engine=self.engine,
            retrain=self.retrain_policy.text, wait=self.wait_bounded,
            heldout=self._heldout(), notify=self._notify, progress=self.progress)
        # --- the run's own state
        self._bar = None
        self._lost: Counter[str] = Counter()
        self._workers = WorkerWatch() if self.simulator.needs_parsl else None  # dead workers
        self._last_progress = time.monotonic()
        self.stop_requested: str | None = None  # set by a signal; acted on at a safe point
        self._steps = 0  # public steps running (they nest: run -> initial_batch -> simulate)
        self._stopped = False  # the last stop was acted on; the next step starts afresh
        self.stop_decision: StopDecision | None = None  # set once the rule fires
        self._stopped_at: dict[str, Any] = {}
        self.trust_fired = False
        self._waves = self.arrival.wave_of(self.space, p.seed)
        self._wave_by_smiles = (dict(zip(self.space, self._waves.tolist(), strict=True))
                                if self.arrival.waves > 1 else {})
        self._batch_index: dict[int, list[dict]] = {}  # simulation records by batch
        self._indexed = 0  # records in _batch_index so far

    def _heldout(self) -> HeldOutSample | None:
        """The random molecules each model version is checked on, where a table knows them."""
        p = self.parameters
        truth = ground_truth_for(str(p.search_space), p.ground_truth, len(self.space))
        return None if truth is None else heldout_sample(self.space, truth)

    def release_lock(self) -> None:
        """Let another run write into ``out_dir`` (idempotent); the run's last step."""
        lock, self._lock = getattr(self, "_lock", None), None
        if lock is not None:
            lock.release()

    # --- what the run stands at -----------------------------------------------------------
    @property
    def replayed(self) -> bool:
        return self.parameters.simulator == "replay"

    def elapsed(self) -> float:
        return self.recorder.elapsed_offset + self.simulator.now()

    @property
    def n_ok(self) -> int:
        return len(self.recorder.successes)

    @property
    def max_failures(self) -> int:
        p = self.parameters
        return p.max_failures if p.max_failures is not None else max(8, p.max_training_count)

    @property
    def n_failed(self) -> int:
        """Failed simulations (chemistry or timeouts); lost tasks are retried, not counted."""
        return sum(r["status"] not in (rec.STATUS_OK, rec.STATUS_LOST)
                   for r in self.recorder.simulations)

    @property
    def running(self) -> int:
        """Simulations submitted and not collected yet."""
        return len(self._pending)

    @property
    def workers(self) -> int:
        return self.parameters.workers or os.cpu_count() or 1

    @property
    def stall_timeout_s(self) -> float:
        """No result for this long means the pending tasks were lost: Parsl's walltime would
        have ended any simulation that was really running."""
        walltime = self.parameters.simulation_walltime
        return walltime + max(10.0, 0.1 * walltime)

    @property
    def next_iteration(self) -> int:
        return len(self.recorder.iterations) + 1

    @property
    def model_info(self) -> dict[str, Any] | None:
        """The saved version of the model in use (its models/vNNNN.json)."""
        return self.keeper.info

    def has_room(self) -> bool:
        """May one more simulation start? Not if all running ones failing would pass the limit."""
        return self.n_failed + len(self._pending) <= self.max_failures

    def _tried(self) -> set[str]:
        tried = self.recorder.attempted | {p.smiles for p in self._pending.values()}
        return tried | self.trust.trusted_smiles if self.trust is not None else tried

    def _notify(self, event: str, **info: Any) -> None:
        if self._bar is not None:
            self._bar.n = min(self.n_ok, self.parameters.max_training_count)
            best = self.recorder.best()
            if best is not None:
                self._bar.set_postfix_str(f"best {float(best['ie']):.3f} eV", refresh=False)
            self._bar.refresh()
        if self.on_update is not None:
            best = self.recorder.best()
            self.on_update({"event": event, "n_ok": self.n_ok, "n_failed": self.n_failed,
                            "max": self.parameters.max_training_count,
                            "best_ie": float(best["ie"]) if best else None,
                            "best_smiles": best["smiles"] if best else None,
                            "elapsed_s": self.elapsed(), **info})

    def announce(self, phase: str) -> None:
        """Say what the run is doing now (event ``phase``): a panel shows it while no
        simulation has finished yet, so a slow step is never silent."""
        self._notify("phase", phase=phase)

    # --- stops and waits --------------------------------------------------------------------
    def _check_stop(self) -> None:
        self.stop_requested = self.stop_requested or stop_asked_here()  # the panel's Stop
        if self.stop_requested:
            raise KeyboardInterrupt(self.stop_requested)

    @contextmanager
    def stop_path(self) -> Iterator[None]:
        """The one way a stop ends :meth:`run` or any public step a notebook calls.

        The stop button, Ctrl-C or SIGTERM only ask for a stop (handled at the next safe point,
        on the main thread); when it comes, what finished is kept, results.json says
        ``interrupted``, and :class:`CampaignInterrupted` ends the cell with one line. Calling
        the step (or the whole notebook) again resumes.
        """
        if self._steps == 0 and self._stopped:  # a step after a stop: the stop was acted on
            self.stop_requested, self._stopped = None, False
        self._steps += 1
        try:
            with stop_signals(self):
                yield
        except CampaignInterrupted:
            raise
        except KeyboardInterrupt as err:  # keep what finished, say how to go on
            self._cancel_pending()
            cause = str(err) if str(err).startswith("stopped by") else "interrupted"
            self._write_results("interrupted", f"{cause}; run again to resume")
            self._stopped = True
            raise CampaignInterrupted(self.out_dir, self.n_ok, cause) from None
        finally:
            self._steps -= 1

    @public_step
    def wait_for(self, future: Future) -> Any:
        """Wait for a future (scores, a model) and return its result, on the stop path: the
        stop button works while it waits, as in every step."""
        while not future.done():
            self._check_stop()
            wait([future], timeout=self.POLL_S)
        return future.result()

    def wait_bounded(self, futures: list[Future], timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for all of ``futures``, honouring a stop request every
        ``POLL_S``; the caller looks at what is done."""
        started = time.monotonic()
        while not all(f.done() for f in futures) and time.monotonic() - started < timeout_s:
            self._check_stop()
            wait(futures, timeout=self.POLL_S)
            self._watch_workers(futures)
        self._check_stop()

    def _cancel_pending(self) -> None:
        """On an interrupt, keep what already finished; unfinished work is simply redone later."""
        self.stop_requested = self.stop_requested or "stopping"  # no resubmission from here on
        for future in list(self._pending):
            if future.done():
                self._collect(future)
            else:  # Parsl futures cannot be cancelled; the task's result is just not waited for
                self._pending.pop(future, None)

    # --- simulations ------------------------------------------------------------------------
    def submit(self, smiles: str, batch: int, predicted: float = math.nan,
               predicted_std: float = math.nan) -> Future:
        """Start one simulation of batch ``batch`` (``predicted``, ``predicted_std``: the
        model's IE and its std, kept beside the result to measure the model's error and
        calibration)."""
        future = self.simulator.submit(smiles)
        submitted = self.elapsed() if self.replayed else time.time()
        self._pending[future] = _Pending(smiles, batch, submitted, predicted, predicted_std)
        return future

    def _collect(self, future: Future, lost_reason: str | None = None) -> dict:
        """Turn a finished (or given-up) future into a record, whatever happened, and write it.

        A task whose worker died is recorded as ``lost`` and submitted again; only a molecule
        that keeps killing its workers ends as ``failed``.
        """
        pending = self._pending.pop(future)
        err = None if lost_reason else future.exception()
        if lost_reason is None and err is None:
            record = dict(future.result())
        elif err is not None and is_timeout(err):
            record = {"smiles": pending.smiles, "ie": math.nan, "status": rec.STATUS_TIMEOUT,
                      "error": one_line(err, 500)}
        else:
            reason = lost_reason or one_line(err, 500)
            self._lost[pending.smiles] += 1
            retry = self._lost[pending.smiles] <= self.LOST_RETRIES
            status = rec.STATUS_LOST if retry else rec.STATUS_FAILED
            if not retry:
                reason = (f"WorkerLost: the worker died {self._lost[pending.smiles]} times "
                          f"while simulating it (last: {reason})")
            record = {"smiles": pending.smiles, "ie": math.nan, "status": status, "error": reason}
        record.update(batch=pending.batch, submit_time=pending.submit_time,
                      elapsed_s=self.elapsed(), wave=self._wave_by_smiles.get(pending.smiles, 0))
        row = self.recorder.add_simulation(record)
        row["predicted"], row["predicted_std"] = pending.predicted, pending.predicted_std
        self._last_progress = time.monotonic()
        if row["status"] == rec.STATUS_LOST and not self.stop_requested:
            self.submit(pending.smiles, pending.batch, pending.predicted, pending.predicted_std)
        self._notify("simulation", smiles=row["smiles"], status=row["status"])
        return row

    def collect_finished(self, extra: Iterable[Future] = ()) -> list[dict]:
        """Wait a little for simulations (or one of ``extra`` futures); record what finished.

        Wakes every ``POLL_S`` to honour a stop request. A dead worker is noticed in seconds:
        Parsl fails a task whose worker died with ``WorkerLost`` (recorded ``lost`` and
        resubmitted by :meth:`_collect`); a death Parsl does not report leaves a pool that never
        runs a task again, so it is replaced and what it held resubmitted
        (:mod:`~course_utils.campaign.lost_workers`). Last, tasks that produced nothing for
        ``stall_timeout_s`` are given up (a vanished task must not hang the run).
        """
        self._check_stop()
        finished = self.simulator.wait([*self._pending, *extra], timeout=self.POLL_S)
        rows = [self._collect(f) for f in finished if f in self._pending]
        dead = self._watch_workers(finished)
        if dead is not None:  # what the replaced pool held is lost: run it again
            for future in list(self._pending):
                rows.append(self._collect(future, lost_reason=(
                    f"WorkerLost: a {dead.what} died and its pool stopped taking tasks; "
                    "the workers were restarted")))
        elif not finished and time.monotonic() - self._last_progress > self.stall_timeout_s:
            limit = self.stall_timeout_s
            restart_workers("no result for too long")
            if self._workers is not None:
                self._workers.reset()
            for future, pending in list(self._pending.items()):
                if time.time() - pending.submit_time > limit:
                    rows.append(self._collect(future, lost_reason=(
                        f"TaskLost: no result after {limit:.0f} s; its worker probably died")))
        self._check_stop()
        return rows

    def _watch_workers(self, futures: Iterable[Future]) -> Death | None:
        """Tell the worker watch which of ``futures`` Parsl failed with ``WorkerLost`` and let
        it look at the pools; replace the pools if one is stuck (a death Parsl did not report)
        and return that death. Tasks the old pools held fail later with ``ManagerLost``."""
        if self._workers is None:
            return None
        self._workers.note(futures)
        self._workers.poll()
        dead = self._workers.stuck()
        if dead is not None:
            if not dead.block_ended():  # else Parsl already replaces the block
                restart_workers(f"a {dead.what} died and Parsl did not report it")
            self._workers.reset()
        return dead

    @public_step
    def simulate(self, candidates: Iterable[str], target: int, batch: int,
                 predictions: pd.DataFrame | None = None) -> list[dict]:
        """Run candidates until ``target`` more succeed; each failure is replaced by the next one.

        ``predictions`` (the model's, if any) are kept beside each result to measure model error.
        """
        candidates = iter(candidates)
        predicted = Predicted(predictions, self.keeper.space_position)
        done: list[dict] = []
        successes = 0

        def top_up() -> None:
            while successes + len(self._pending) < target and self.has_room():
                smiles = next(candidates, None)
                if smiles is None:
                    return
                self.submit(smiles, batch, *predicted.pair(smiles))

        top_up()
        while self._pending:
            for row in self.collect_finished():
                done.append(row)
                successes += row["status"] == rec.STATUS_OK
            top_up()
        return done

    def _fresh(self, ordered: Iterable[str]) -> Iterator[str]:
        """Candidates that were never simulated and are not running, checked at the last moment."""
        for smiles in ordered:
            if smiles not in self._tried():
                yield smiles

    def simulate_batch(self, batch: int, candidates: Iterable[str], target: int,
                       predictions: pd.DataFrame | None = None) -> list[dict]:
        """Simulate batch ``batch`` until ``target`` of its simulations succeeded; its rows.

        The batch's first picks are written to the plan (batches.csv) before any is submitted,
        and each replacement before it is: a resumed run first finishes the molecules the
        stopped one planned, then takes replacements from ``candidates``, which must be the
        same ranking (so ``candidates`` rank as of the batch's start, see :meth:`pick`).
        Rows the batch recorded before a stop are part of what is returned.
        """
        earlier = self.batch_rows(batch, predictions)
        predicted = Predicted(predictions, self.keeper.space_position)
        need = target - sum(r["status"] == rec.STATUS_OK for r in earlier)
        if need <= 0:
            return earlier
        version = self.keeper.version if predictions is not None else None
        seen: set[str] = set()  # the ranking yields the batch's planned molecules again
        stream = (s for s in self._fresh(chain(self.plan.smiles(batch), candidates))
                  if not (s in seen or seen.add(s)))
        first = list(islice(stream, need))
        self.plan.add(batch, first, kind=PLANNED, model_version=version, predicted=predicted)

        def planned() -> Iterator[str]:
            yield from first
            for smiles in stream:  # a replacement is planned before it is submitted
                self.plan.add(batch, [smiles], kind=REPLACEMENT, model_version=version,
                              predicted=predicted)
                yield smiles

        return earlier + self.simulate(planned(), need, batch, predictions)

    def checked_batch(self, iteration: int, picks: Iterable[str], predictions: pd.DataFrame,
                      size: int) -> tuple[list[dict], int]:
        """One batch of ``size`` picks with trust checks: the model's values and the cheap MPI
        check of the picks run as two futures at once; only the picks they disagree on get
        full simulations (so the budget is never overshot).

        Returns the full simulations' rows and the number of picks checked.
        """
        p = self.parameters
        timeout = self.keeper.SCORING_TIMEOUT_S
        batch = self.plan.smiles(iteration)[:size] or list(islice(picks, size))
        if not batch:
            return [], 0
        version = self.keeper.version
        self.plan.add(iteration, batch, model_version=version,
                      predicted=Predicted(predictions, self.keeper.space_position))
        if any(int(r["iteration"]) == iteration for r in self.trust.rows):
            return self.batch_rows(iteration, predictions), len(batch)  # done before a stop
        model_values = self.simulator.predict(self.keeper.in_use, batch)
        cheap_file = self.out_dir / "checks" / f"iteration-{iteration:04d}.csv"
        cheap = self.simulator.cheap(batch, p.trust_ranks, cheap_file)
        self.wait_bounded([model_values, cheap], timeout)
        if cheap.done() and cheap.exception() is None:
            cheap_table = cheap.result()
        else:  # a failed or hung check trusts nothing: every pick gets its full simulation
            why = (one_line(cheap.exception()) if cheap.done()
                   else f"no result after {timeout:.0f} s")
            print(f"cheap check of iteration {iteration} failed ({why}); simulating every pick",
                  file=sys.stderr)
            cheap_table = pd.DataFrame({"smiles": batch, "ie": math.nan, "status": "failed",
                                        "error": why, "rank": -1, "seconds": math.nan})
        if not model_values.done():
            raise CampaignStopped(f"the model's predictions of iteration {iteration} did not "
                                  f"arrive within {timeout:.0f} s")
        checks = self.trust.judge(iteration, batch, model_values.result(), cheap_table, version)
        untrusted = [c["smiles"] for c in checks if not c["trusted"]]
        rows = self.batch_rows(iteration, predictions)  # simulated before a stop
        todo = [s for s in untrusted if s not in self.recorder.attempted]
        if todo:  # no replacements: a failed full simulation leaves its pick unlabelled
            rows += self.simulate(iter(todo), len(todo), batch=iteration, predictions=predictions)
        self.trust.record(checks, rows)
        return rows, len(batch)

    def batch_rows(self, batch: int, predictions: pd.DataFrame | None = None) -> list[dict]:
        """Copies of the batch's records, with the model's ``predicted`` IE and its
        ``predicted_std`` (for its error and calibration)."""
        predicted = Predicted(predictions, self.keeper.space_position)
        return [{"predicted": predicted.get(r["smiles"]), "predicted_std": predicted.std(r["smiles"]),
                 **r} for r in self._batch_rows(batch)]

    def _by_batch(self) -> dict[int, list[dict]]:
        """The simulation records by batch, indexed as they arrive (records only grow)."""
        sims = self.recorder.simulations
        for r in sims[self._indexed:]:
            self._batch_index.setdefault(_batch_of(r), []).append(r)
        self._indexed = len(sims)
        return self._batch_index

    def _batch_rows(self, batch: int) -> list[dict]:
        """The simulation records of one batch (a resumed batch has some already)."""
        return list(self._by_batch().get(batch, ()))

    def tried_before(self, batch: int) -> set[str]:
        """Molecules tried before batch ``batch`` began: in batch mode, what :meth:`_tried` was
        when it was picked, rebuilt from the records however often the run was stopped."""
        tried = {r["smiles"] for b, rows in self._by_batch().items() if b < batch
                 for r in rows if r["status"] != rec.STATUS_LOST}
        if self.trust is not None:
            tried |= {r["smiles"] for r in self.trust.rows
                      if int(r["iteration"]) < batch and truthy(r["trusted"])}
        return tried

    def ok_before(self, batch: int) -> int:
        """Successful simulations before batch ``batch`` began."""
        return sum(r["status"] == rec.STATUS_OK for b, rows in self._by_batch().items()
                   if b < batch for r in rows)

    def initial_candidates(self, n_ok: int | None = None) -> Iterator[str]:
        """The initial batch's seeded random candidates (``n_ok``: successes the arrival
        scheme counts; the batch's start for its first picks, so a resume draws the same)."""
        p = self.parameters
        space = self.available_space(n_ok)
        yield from self._fresh(sample_smiles(space, p.initial_training_count, seed=p.seed))
        yield from self._fresh(iter_unseen(space, seed=p.seed + 1, exclude=self._tried()))

    @public_step
    def initial_batch(self) -> list[dict]:
        """Step 1: a seeded random sample until ``initial_training_count`` simulations succeed
        (and, with a validation share, until the model has enough training molecules)."""
        p = self.parameters
        rows = []
        if self.n_ok < p.initial_training_count:
            self.announce(f"simulating the initial batch ({p.initial_training_count} random "
                          "molecules)")
            rows = self.simulate_batch(0, self.initial_candidates(n_ok=0),
                                       p.initial_training_count)
        while (len(self.training_data()) < self.model.min_training
               and self.n_ok < p.max_training_count):
            known = len(self._batch_rows(0))
            ok = sum(r["status"] == rec.STATUS_OK for r in self._batch_rows(0))
            rows = self.simulate_batch(0, self.initial_candidates(), ok + 1)
            if len(rows) == known:
                break  # search space exhausted
        return rows

    # --- data: what trains, what validates, what may be picked --------------------------
    def training_data(self, upto: int | None = None) -> pd.DataFrame:
        """Successful simulations the model learns from: all but the validation share
        (``upto``: of the first ``upto`` simulation records only)."""
        data = (self.recorder.training_data() if upto is None
                else _training_frame(self.recorder.simulations[:upto]))
        if self.split.fraction <= 0:
            return data
        keep = [not self.split.is_validation(s) for s in data["smiles"]]
        return data[keep].reset_index(drop=True)

    def validation_rows(self, upto: int | None = None) -> list[dict]:
        return [r for r in self.recorder.simulations[:upto]
                if r["status"] == rec.STATUS_OK and self.split.is_validation(r["smiles"])]

    def training_round(self, trigger: str = "", upto: int | None = None) -> TrainingRound:
        """What a model trained now learns from (``upto``: the first ``upto`` records only: a
        saved version's data, to rebuild that version); ``trigger``: why it is trained."""
        return TrainingRound(trigger or "requested", self.training_data(upto),
                             self.recorder.simulations[:upto], self.validation_rows(upto))

    def available(self, n_ok: int | None = None) -> np.ndarray | None:
        """Mask of the search space the arrival scheme has unlocked after ``n_ok`` successes
        (default: so far); None: all of it."""
        if self.arrival.waves <= 1:
            return None
        return self._waves < self.arrival.unlocked(self.n_ok if n_ok is None else n_ok)

    def available_space(self, n_ok: int | None = None) -> list[str]:
        mask = self.available(n_ok)
        return self.space if mask is None else [s for s, m in zip(self.space, mask, strict=True)
                                                if m]

    # --- the model's steps ------------------------------------------------------------------
    @public_step
    def score_search_space(self, trigger: str = "", upto: int | None = None) -> Future:
        """Step 2: fit -> chunked scoring -> reduce, chained as Parsl apps; returns a future.

        The future's result is an (n, 2) array of predicted IE and std, in search-space order;
        :meth:`wait_for` waits for it on the stop path, :meth:`predictions` turns it into a
        table, and :meth:`adopt_model` makes its model the one in use and saves it as a version.
        ``trigger``: why the model is trained (for its lineage).
        """
        return self.keeper.start(self.training_round(trigger, upto))

    @public_step
    def adopt_model(self, future: Future) -> pd.DataFrame:
        """Wait for a scoring round, make its model the one in use and save it as a version
        (models/, lineage.csv); its predictions of the search space."""
        self.wait_for(future)
        return self.keeper.adopt(future)

    @public_step
    def new_model(self, trigger: str) -> pd.DataFrame:
        """Train, score and save a new model version (a failed round is run again); its
        predictions of the search space."""
        return self.keeper.adopt(self.keeper.score_with_retries(self.training_round(trigger)))

    def restore_model(self, version: int) -> bool:
        """Make a saved version the model in use again (see :meth:`ModelKeeper.restore`)."""
        return self.keeper.restore(version, self.training_round, len(self.recorder.simulations))

    def predictions(self, scores: np.ndarray) -> pd.DataFrame:
        """Scores from :meth:`score_search_space` as ``smiles``, ``ie``, ``ie_spread`` (eV)."""
        return self.keeper.table(scores)

    def pick(self, predictions: pd.DataFrame | None, iteration: int,
             exclude: set[str] | None = None, n_ok: int | None = None) -> Iterator[str]:
        """Step 3: untried molecules in the order the acquisition strategy prefers (lazy).

        ``exclude`` and ``n_ok`` (default: now) are what was tried and succeeded when the batch
        began: random draws depend on them, so a resumed batch passes its start's values.
        """
        p = self.parameters
        rng = np.random.default_rng([p.seed, iteration])
        if predictions is None:  # random search needs no model
            predictions = pd.DataFrame({"smiles": self.keeper.space_smiles, "ie": 0.0,
                                        "ie_spread": 0.0})
        mask = self.available(n_ok)
        if mask is not None and len(predictions) == len(mask):
            predictions = predictions[mask]
        positions = self.keeper.space_position if len(predictions) == len(self.space) else None
        context = RankingContext(best_ie=self.best_ie_before(None if exclude is None else iteration),
                                 model=self.keeper.in_use, draws=p.batch_size)
        exclude = self._tried() if exclude is None else exclude
        return self._fresh(self.acquisition.rank(predictions, exclude, rng, positions, context))

    def best_ie_before(self, batch: int | None = None) -> float:
        """Best simulated IE (eV) of the batches before ``batch`` (all if None); NaN if none."""
        return max((float(r["ie"]) for b, rows in self._by_batch().items()
                    if batch is None or b < batch for r in rows if r["status"] == rec.STATUS_OK),
                   default=math.nan)

    def _model_error(self, rows: list[dict]) -> dict[str, float]:
        """iterations.csv's error columns for the picks' predictions: mean absolute error (eV),
        mean absolute percentage error, R², and how often the truth was within 1 and 2 of the
        model's predicted std (NaN where not computable)."""
        picks = [(float(r["ie"]), r["predicted"], r.get("predicted_std", math.nan)) for r in rows
                 if r["status"] == rec.STATUS_OK and not math.isnan(r.get("predicted", math.nan))]
        if not picks:
            return {"mae_ev": math.nan, "mape_pct": math.nan, "r2": math.nan,
                    "within_1sd": math.nan, "within_2sd": math.nan}
        true, pred, std = np.array(picks, dtype=float).T
        measured = calibration(true, pred, std)
        return {"mae_ev": measured.mae_ev,
                "mape_pct": float(np.mean(np.abs(pred - true) / true) * 100),
                "r2": measured.r2, "within_1sd": measured.within_1sd,
                "within_2sd": measured.within_2sd}

    # --- main loop ----------------------------------------------------------------------
    def run(self) -> CampaignResult:
        """Run to the end. A stop (signal, Ctrl-C) raises :class:`CampaignInterrupted` after
        the records are safe; a run that cannot go on ends as ``stopped`` with its reason."""
        from tqdm.auto import tqdm

        p = self.parameters
        if self.progress:
            self._bar = tqdm(total=p.max_training_count, desc="successful simulations",
                             unit="sim", initial=min(self.n_ok, p.max_training_count))
        try:
            with self.stop_path():
                try:
                    self._write_results("running", "")
                    self.initial_batch()
                    # A resumed run asks its stop rule first: its records may already satisfy it.
                    ready = (self.n_ok >= p.initial_training_count
                             and not self.ask_stop_rule(on_resume=True))
                    if ready and p.mode == "batch":
                        run_batches(self)
                    elif ready:
                        run_streaming(self)
                except KeyboardInterrupt:
                    raise  # the stop path keeps what finished and says how to resume
                except CampaignStopped as err:
                    self._cancel_pending()
                    return self.finish("stopped", str(err))
                except ReplayMissingError as err:
                    self._cancel_pending()
                    self._write_results("failed", str(err))
                    raise
                except BaseException as err:
                    self._cancel_pending()
                    self._write_results("failed", one_line(err))
                    raise
                finally:
                    if self._bar is not None:
                        self._bar.close()
            return self.finish()
        finally:
            self.release_lock()

    def outcome(self) -> tuple[str, str]:
        """("complete", "") once the budget is met, else ("stopped", why)."""
        p = self.parameters
        if self.n_ok >= p.max_training_count:
            return "complete", ""
        if self.trust_fired:
            block = self.trust.block(True, None)
            return stopped_early_status(TRUST_RULE), (
                f"stopped early: {p.trust_streak} consecutive batches in which the cheap check "
                f"agreed with the model on every pick (within {p.trust_tol} eV), with "
                f"{self.n_ok} of {p.max_training_count} full simulations; "
                f"{block['full_simulations_saved']} full simulations saved")
        if self.stop_decision is not None:
            return stopped_early_status(self.stop_decision.rule), self._stop_message()
        if self.n_failed > self.max_failures:
            return "stopped", (f"stopped with {self.n_ok} of {p.max_training_count} successful "
                               f"simulations: {self.n_failed} failures, more than "
                               f"max_failures={self.max_failures}; see failures")
        return "stopped", (f"stopped with {self.n_ok} of {p.max_training_count} successful "
                           "simulations: no untried molecule left in the search space")

    @public_step
    def finish(self, status: str | None = None, message: str = "") -> CampaignResult:
        """Last step: write the results file and the plot; return everything the run produced.

        Without a ``status`` the campaign works out how it ended (:meth:`outcome`): complete,
        stopped early by its rule or trust streak, or stopped with the reason.
        """
        if status is None:
            status, message = self.outcome()
        results = self._write_results(status, message, evaluate=True)
        plot_path = draw_figures(self.out_dir) if self.plot and self.recorder.successes else None
        self._notify("done", status=status)
        self.release_lock()
        return CampaignResult(self.out_dir, results, rec.read_simulations(self.out_dir),
                              rec.read_iterations(self.out_dir), plot_path)

    @public_step
    def record_iteration(self, iteration: int, training_size: int, rows: list[dict], *,
                         model_s: float = 0.0, select_s: float = 0.0,
                         simulate_s: float = 0.0) -> None:
        """Write iteration ``iteration`` to iterations.csv (``rows``: its simulations;
        ``training_size``: successes when it began; the seconds its steps took)."""
        error = self._model_error(rows)
        best = self.recorder.best()
        self.recorder.add_iteration({
            "iteration": iteration, "training_size": training_size,
            "n_new": sum(r["status"] == rec.STATUS_OK for r in rows),
            "best_ie": float(best["ie"]) if best else math.nan,
            "model_time_s": model_s, "select_time_s": select_s,
            "simulate_time_s": simulate_s, **error,
            "elapsed_s": self.elapsed(), **self.keeper.columns(),
        })
        self._write_results("running", "")
        self._notify("iteration", iteration=iteration, **error)

    # --- what the run reports -------------------------------------------------------------
    def evaluation(self) -> dict[str, Any] | None:
        """Regret, rank, top-k recall against the ground truth; None without a table."""
        p = self.parameters
        return evaluation_of(self.out_dir, str(p.search_space), p.ground_truth, len(self.space))

    def _write_results(self, status: str, message: str, evaluate: bool = False
                       ) -> dict[str, Any]:
        p = self.parameters
        blocks: dict[str, Any] = {
            "resumed_from_simulations": self.resumed, "simulator": p.simulator,
            "replayed": self.replayed, "stopping": self.stopping_block(),
            "models": models_block(self.models, retrain=self.retrain_policy.text,
                                   valid_fraction=self.split.fraction, arrival=self.arrival.text),
            "trust": (None if self.trust is None else
                      self.trust.block(self.trust_fired, self._seconds_per_success()))}
        if evaluate:
            blocks["evaluation"] = self.evaluation()
        return write_results(self.recorder, p.to_dict(), status=status, message=message,
                             engine=self.engine, wall_time_s=self.elapsed(), blocks=blocks,
                             workers=self.workers)

    # --- stop rule ----------------------------------------------------------------------
    def ask_stop_rule(self, on_resume: bool = False) -> bool:
        """Ask the stop rule about the whole history (resumed records too); True once it fired.

        Only while budget is left (at the budget the run is complete anyway) and once an
        iteration exists: the initial random batch alone says nothing about the search.
        """
        if self.stop_decision is not None:
            return True
        p = self.parameters
        if not self.recorder.iterations or self.n_ok >= p.max_training_count:
            return False
        if on_resume and p.mode == "batch" and self.plan.smiles(self.next_iteration):
            return False  # the rule let this batch start before the stop: it is finished first
        history = history_from_records(self.recorder.simulations, self.recorder.iterations,
                                       p.max_training_count)
        self.stop_decision = self.stop_rule.check(history)
        if self.stop_decision is not None:
            self._stopped_at = {"elapsed_s": self.elapsed(), "on_resume": on_resume}
        return self.stop_decision is not None

    def _seconds_per_success(self) -> float | None:
        """Mean compute seconds of a successful simulation so far (None if none is timed)."""
        spans = [float(r["end_time"]) - float(r["start_time"]) for r in self.recorder.successes
                 if r.get("end_time") is not None and r.get("start_time") is not None]
        spans = [s for s in spans if math.isfinite(s) and s >= 0]
        return float(np.mean(spans)) if spans else None

    def stopping_block(self) -> dict[str, Any]:
        """results.json's ``stopping``: the rule, whether and when it fired, what it saved."""
        return stopping_block(self.stop_rule.text, self.stop_decision, self._stopped_at,
                              left=max(self.parameters.max_training_count - self.n_ok, 0),
                              seconds_per_simulation=self._seconds_per_success(),
                              workers=self.workers)

    def _stop_message(self) -> str:
        return stop_message(self.stopping_block(), self.parameters.max_training_count)


def run_campaign(
    parameters: CampaignParameters | dict[str, Any],
    out_dir: str | Path,
    *,
    progress: bool = True,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    config_options: dict[str, Any] | None = None,
    plot: bool = True,
) -> CampaignResult:
    """Run (or resume) a campaign into ``out_dir``, loading Parsl unless it is loaded already."""
    import parsl
    from parsl.errors import NoDataFlowKernelError


    if isinstance(parameters, dict):
        parameters = CampaignParameters.from_mapping(parameters)
    campaign = Campaign(parameters, Path(out_dir), progress=progress, on_update=on_update,
                        plot=plot)
    try:
        with stop_signals(campaign):
            if not campaign.simulator.needs_parsl:  # replay: everything in this process
                return campaign.run()
            try:
                parsl.dfk()
            except NoDataFlowKernelError:
                options = {"run_dir": str(Path(out_dir) / "runinfo"), **(config_options or {})}
                if parameters.workers is not None:  # per node on Polaris
                    options.setdefault("workers", parameters.workers)
                campaign.announce("starting Parsl (its workers take a few seconds)")
                with parsl.load(make_config(parameters.config, **options)):
                    return campaign.run()
            return campaign.run()
    finally:
        campaign.release_lock()


def _batch_of(row: dict) -> int:
    """A record's batch (-1 if it has none: a folder of an older kit)."""
    try:
        return int(row["batch"])
    except (KeyError, TypeError, ValueError):
        return -1


def _training_frame(records: list[dict]) -> pd.DataFrame:
    """(smiles, ie) of the successful ``records``, sorted as the recorder's training data is."""
    rows = [(r["smiles"], float(r["ie"])) for r in records if r["status"] == rec.STATUS_OK]
    frame = pd.DataFrame(rows, columns=["smiles", "ie"])
    return frame.sort_values("smiles", kind="stable").reset_index(drop=True)
