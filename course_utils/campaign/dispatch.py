"""Dispatch: simulations in flight, from submission to a record, whatever happens to them.

The loops ask three things of it: :meth:`Dispatch.submit` a molecule, :meth:`Dispatch.collect`
what finished (a dead worker or a vanished task is noticed here and the molecule submitted
again), and :meth:`Dispatch.simulate` candidates until a number of them succeed. Waiting wakes
every ``POLL_S`` to honour a stop request (:class:`~course_utils.resilience.StopRequest`), so
the stop button works during every wait. It knows nothing of models or batches' meaning: a
batch number is a label it writes beside each record.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

from course_utils import records as rec
from course_utils.campaign.lost_workers import Death, WorkerWatch
from course_utils.campaign.model_keeper import Predicted
from course_utils.campaign.parts import Simulator
from course_utils.resilience import StopRequest, is_timeout, one_line, restart_workers


@dataclass
class Pending:
    """A simulation submitted and not recorded yet."""

    smiles: str
    batch: int
    submit_time: float
    predicted: float = math.nan
    predicted_std: float = math.nan


class Dispatch:
    """Simulations in flight for one run: submit, collect, retry the lost, give up the stalled."""

    #: A worker that died (or a task that vanished) is an infrastructure failure: the molecule
    #: is submitted again, at most this many times, before it counts as a failed simulation.
    LOST_RETRIES = 2
    #: How often waits wake up to look for a stop request or a stalled task.
    POLL_S = 0.5

    def __init__(self, simulator: Simulator, recorder: rec.CampaignRecorder, *,
                 stop: StopRequest, clock: Callable[[], float], walltime: float,
                 room: Callable[[int], bool], waves: Mapping[str, int],
                 notify: Callable[..., None]):
        self.simulator = simulator
        self.recorder = recorder
        self.stop = stop
        #: The run's clock (s): what ``elapsed_s`` and a replay's submit times read.
        self.clock = clock
        #: ``room(running)``: may one more start with ``running`` in flight (the failure limit)?
        self.room = room
        self.waves = waves  # arrival wave of each molecule (empty: one wave)
        self.notify = notify
        #: No result for this long means the pending tasks were lost: Parsl's walltime would
        #: have ended any simulation that was really running.
        self.stall_timeout_s = walltime + max(10.0, 0.1 * walltime)
        self.pending: dict[Future, Pending] = {}
        self._lost: Counter[str] = Counter()
        self._workers = WorkerWatch() if simulator.needs_parsl else None  # dead workers
        self._last_progress = time.monotonic()

    # --- what is in flight -----------------------------------------------------------------
    @property
    def running(self) -> int:
        """Simulations submitted and not collected yet."""
        return len(self.pending)

    def in_flight(self) -> set[str]:
        return {p.smiles for p in self.pending.values()}

    def has_room(self) -> bool:
        return self.room(len(self.pending))

    # --- one simulation ----------------------------------------------------------------------
    def submit(self, smiles: str, batch: int, predicted: float = math.nan,
               predicted_std: float = math.nan) -> Future:
        """Start one simulation of batch ``batch`` (``predicted``, ``predicted_std``: the
        model's IE and its std, kept beside the result to measure the model's error)."""
        future = self.simulator.submit(smiles)
        submitted = time.time() if self.simulator.needs_parsl else self.clock()
        self.pending[future] = Pending(smiles, batch, submitted, predicted, predicted_std)
        return future

    def _record(self, future: Future, lost_reason: str | None = None) -> dict:
        """Turn a finished (or given-up) future into a record, whatever happened, and write it.

        A task whose worker died is recorded as ``lost`` and submitted again; only a molecule
        that keeps killing its workers ends as ``failed``.
        """
        pending = self.pending.pop(future)
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
                      elapsed_s=self.clock(), wave=self.waves.get(pending.smiles, 0))
        row = self.recorder.add_simulation(record)
        row["predicted"], row["predicted_std"] = pending.predicted, pending.predicted_std
        self._last_progress = time.monotonic()
        if row["status"] == rec.STATUS_LOST and not self.stop.cause:
            self.submit(pending.smiles, pending.batch, pending.predicted, pending.predicted_std)
        self.notify("simulation", smiles=row["smiles"], status=row["status"])
        return row

    # --- waiting -----------------------------------------------------------------------------
    def collect(self, extra: Iterable[Future] = ()) -> list[dict]:
        """Wait a little for simulations (or one of ``extra`` futures); record what finished.

        A dead worker is noticed in seconds: Parsl fails a task whose worker died with
        ``WorkerLost`` (recorded ``lost`` and resubmitted); a death Parsl does not report leaves
        a pool that never runs a task again, so it is replaced and what it held resubmitted
        (:mod:`~course_utils.campaign.lost_workers`). Last, tasks that produced nothing for
        ``stall_timeout_s`` are given up (a vanished task must not hang the run).
        """
        self.stop.check()
        finished = self.simulator.wait([*self.pending, *extra], timeout=self.POLL_S)
        rows = [self._record(f) for f in finished if f in self.pending]
        dead = self._watch_workers(finished)
        if dead is not None:  # what the replaced pool held is lost: run it again
            for future in list(self.pending):
                rows.append(self._record(future, lost_reason=(
                    f"WorkerLost: a {dead.what} died and its pool stopped taking tasks; "
                    "the workers were restarted")))
        elif not finished and time.monotonic() - self._last_progress > self.stall_timeout_s:
            limit = self.stall_timeout_s
            restart_workers("no result for too long")
            if self._workers is not None:
                self._workers.reset()
            for future, pending in list(self.pending.items()):
                if time.time() - pending.submit_time > limit:
                    rows.append(self._record(future, lost_reason=(
                        f"TaskLost: no result after {limit:.0f} s; its worker probably died")))
        self.stop.check()
        return rows

    def wait_bounded(self, futures: list[Future], timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for all of ``futures``, honouring a stop request every
        ``POLL_S``; the caller looks at what is done."""
        started = time.monotonic()
        while not all(f.done() for f in futures) and time.monotonic() - started < timeout_s:
            self.stop.check()
            wait(futures, timeout=self.POLL_S)
            self._watch_workers(futures)
        self.stop.check()

    def result(self, future: Future) -> Any:
        """Wait for a future (scores, a model) and return its result; a stop ends the wait."""
        while not future.done():
            self.stop.check()
            wait([future], timeout=self.POLL_S)
        return future.result()

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

    def cancel(self) -> None:
        """On a stop, keep what already finished; unfinished work is simply redone later."""
        self.stop.ask(self.stop.cause or "stopping")  # no resubmission from here on
        for future in list(self.pending):
            if future.done():
                self._record(future)
            else:  # Parsl futures cannot be cancelled; the task's result is just not waited for
                self.pending.pop(future, None)

    # --- many simulations ------------------------------------------------------------------
    def simulate(self, candidates: Iterable[str], target: int, batch: int,
                 predicted: Predicted) -> list[dict]:
        """Run candidates until ``target`` more succeed; each failure is replaced by the next.

        ``predicted``: the model's values of the candidates, kept beside each result.
        """
        candidates: Iterator[str] = iter(candidates)
        done: list[dict] = []
        successes = 0

        def top_up() -> None:
            while successes + len(self.pending) < target and self.has_room():
                smiles = next(candidates, None)
                if smiles is None:
                    return
                self.submit(smiles, batch, *predicted.pair(smiles))

        top_up()
        while self.pending:
            for row in self.collect():
                done.append(row)
                successes += row["status"] == rec.STATUS_OK
            top_up()
        return done
