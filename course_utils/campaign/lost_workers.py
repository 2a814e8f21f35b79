"""Noticing a dead worker in seconds: Parsl's own reports first, then the pool's processes.

What Parsl does when one process of a local worker pool dies (measured with Parsl 2026.10,
``heartbeat_period=2``):

* a worker killed while it runs a task: the pool's watchdog fails that task with ``WorkerLost``
  within one heartbeat period and starts a replacement worker; nothing else is needed;
* the pool itself killed: its tasks fail with ``ManagerLost`` only after ``heartbeat_threshold``
  (30 s here) and Parsl starts a new block;
* a worker killed while idle (it waits in the pool's task queue, holding the queue's lock):
  Parsl reports nothing; the pool restarts the worker but never runs a task again;
* the pool's multiprocessing manager killed: Parsl reports nothing, the pool's watchdog thread
  dies and its monitoring thread floods manager.log; no task runs again.

Before this module the last two waited for the campaign's walltime stall (``no result after
330 s``). :class:`WorkerWatch` looks at the executor's blocks (their job PIDs, as Parsl's local
provider records them) and the pool processes under them. A pool process that dies is first
left to Parsl: if no ``WorkerLost`` arrives within :attr:`WorkerWatch.grace_s`, the pool is
taken as stuck and the campaign replaces it and resubmits what it held (measured on a loaded
2-core machine: ``lost`` recorded 5 s after the kill, the retry running after 10-15 s, once
the new pool is up). Pools on other hosts (Polaris) are not visible here; there
``WorkerLost``, ``ManagerLost`` and the walltime stall remain.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

#: What Parsl's watchdog period is taken to be when no executor says (its default is 30 s).
DEFAULT_HEARTBEAT_S = 5.0
#: Time for Parsl's ``WorkerLost`` to travel pool -> interchange -> executor, after the watchdog.
REPORT_SLACK_S = 1.5
#: How often the process table is read (each read scans /proc once).
SCAN_PERIOD_S = 1.0
_POOL_MODULE = "process_worker_pool"
#: A watched process: start time (tells a reused PID apart), description, (executor, block).
_Process = tuple[float, str, tuple[str, "str | None"]]


def worker_losses(err: BaseException | None, depth: int = 6) -> list[BaseException]:
    """Parsl's ``WorkerLost`` reports behind a task's exception: itself, what it was raised
    from, and the failed dependencies a ``DependencyError`` carries (a scoring round fails
    that way when one of its chunks lost its worker). One report may appear more than once."""
    if err is None or depth == 0:
        return []
    if any(cls.__name__ == "WorkerLost" for cls in type(err).__mro__):
        return [err]
    found = worker_losses(err.__cause__ or err.__context__, depth - 1)
    for pair in getattr(err, "dependent_exceptions_tids", None) or []:
        if isinstance(pair, tuple) and pair and isinstance(pair[0], BaseException):
            found += worker_losses(pair[0], depth - 1)
    return found


def is_worker_lost(err: BaseException | None) -> bool:
    """Whether Parsl reported a task's worker dead (``WorkerLost``, also when wrapped)."""
    return bool(worker_losses(err))


@dataclass
class Death:
    """A pool process seen gone: which one, and when (``time.monotonic()``)."""

    pid: int
    what: str
    seen_at: float
    #: (executor label, block id) of its pool.
    block: tuple[str, str | None] = ("", None)

    def block_ended(self) -> bool:
        """Whether Parsl itself already saw the pool's block end (then its strategy starts
        another one: restarting the workers would only stop the new, healthy block)."""
        import parsl
        from parsl.errors import NoDataFlowKernelError

        label, block = self.block
        try:
            executor = parsl.dfk().executors.get(label)
        except NoDataFlowKernelError:
            return True
        state = dict(getattr(executor, "status_facade", {})).get(block)
        return bool(getattr(state, "terminal", False))


@dataclass
class WorkerWatch:
    """The local worker pools of the loaded Parsl executors, and which of their processes died.

    Call :meth:`note` with the futures a wait returned (it counts Parsl's ``WorkerLost``
    reports) and then :meth:`poll` (it reads the process table at most every
    ``SCAN_PERIOD_S``); :meth:`stuck` names a death Parsl did not explain in time.
    Call :meth:`reset` once the pools were replaced on purpose.
    """

    #: Processes being watched: pid -> (start time, what it is, its block).
    _known: dict[int, _Process] = field(default_factory=dict)
    _deaths: deque[Death] = field(default_factory=deque)
    _reports: deque[float] = field(default_factory=deque)
    _noted: weakref.WeakSet[Future] = field(default_factory=weakref.WeakSet)
    #: Reports counted lately (exceptions cannot be weakly referenced; one is shared by every
    #: task that depended on the lost one).
    _counted: deque[BaseException] = field(default_factory=lambda: deque(maxlen=64))
    _scanned_at: float = -1e9
    _heartbeat_s: float = DEFAULT_HEARTBEAT_S

    @property
    def grace_s(self) -> float:
        """How long Parsl gets to report a death as ``WorkerLost`` before the pool counts as
        stuck: one period of the pool's watchdog, plus the report's way back."""
        return self._heartbeat_s + REPORT_SLACK_S

    def reset(self) -> None:
        """Forget every process and death (the pools were replaced on purpose)."""
        self._known.clear()
        self._deaths.clear()
        self._reports.clear()
        self._scanned_at = -1e9

    def note(self, futures: Iterable[Future]) -> None:
        """Count each of ``futures`` that Parsl failed with ``WorkerLost`` (once): each explains
        one death, seen here already or about to be."""
        for future in futures:
            if future.done() and not future.cancelled() and future not in self._noted:
                self._noted.add(future)
                for loss in worker_losses(future.exception()):
                    if not any(loss is seen for seen in self._counted):
                        self._counted.append(loss)
                        self._reports.append(time.monotonic())
        self._match()

    def poll(self) -> None:
        """Look at the pools' processes (at most every ``SCAN_PERIOD_S``); note any that died."""
        now = time.monotonic()
        if now - self._scanned_at < SCAN_PERIOD_S:
            return
        self._scanned_at = now
        found = _pool_processes()
        if found is None:  # no Parsl loaded: nothing to watch
            self.reset()
            return
        current, heartbeat = found
        self._heartbeat_s = heartbeat or DEFAULT_HEARTBEAT_S
        for pid, (start, what, block) in list(self._known.items()):
            if pid not in current or current[pid][0] != start:
                del self._known[pid]
                self._deaths.append(Death(pid, what, now, block))
        self._known.update(current)
        self._match()

    def stuck(self) -> Death | None:
        """A death Parsl has not explained within :attr:`grace_s`: its pool no longer runs tasks."""
        self._match()
        if self._deaths and time.monotonic() - self._deaths[0].seen_at > self.grace_s:
            return self._deaths[0]
        return None

    def _match(self) -> None:
        """Pair deaths with ``WorkerLost`` reports (either may come first); drop stale reports."""
        now = time.monotonic()
        while self._reports and self._deaths:
            self._reports.popleft()
            self._deaths.popleft()
        while self._reports and now - self._reports[0] > 2 * self.grace_s:
            self._reports.popleft()  # no death seen here: a pool on another host


def _pool_processes() -> tuple[dict[int, _Process], float] | None:
    """The local pools of the loaded executors (found under the job PIDs their provider
    recorded) and the pools' direct children (workers, the pool's multiprocessing manager), as
    pid -> (start time, description, (executor label, block id)); and the executors' longest
    heartbeat period (0 if none). None when no Parsl DataFlowKernel is loaded."""
    import parsl
    import psutil
    from parsl.errors import NoDataFlowKernelError

    try:
        executors = list(parsl.dfk().executors.values())
    except NoDataFlowKernelError:
        return None
    found: dict[int, _Process] = {}
    heartbeat = 0.0
    for executor in executors:
        resources = getattr(getattr(executor, "provider", None), "resources", None)
        if not isinstance(resources, dict):
            continue
        heartbeat = max(heartbeat, float(getattr(executor, "heartbeat_period", 0) or 0))
        blocks = dict(getattr(executor, "job_ids_to_block", {}))
        states = dict(getattr(executor, "status_facade", {}))
        for job_id, job in list(resources.items()):
            pid = job.get("remote_pid") if isinstance(job, dict) else None
            if not isinstance(pid, int):
                continue  # a batch job: its pools run on other hosts
            block = (str(getattr(executor, "label", "")), blocks.get(job_id))
            if getattr(states.get(block[1]), "terminal", False):
                continue  # ended or scaled in: its processes are going away on purpose
            try:
                below = psutil.Process(pid).children(recursive=True)
            except psutil.Error:
                continue
            for proc in below:
                try:
                    if not any(_POOL_MODULE in part for part in proc.cmdline()[:3]):
                        continue
                    found[proc.pid] = (proc.create_time(), f"worker pool (PID {proc.pid})", block)
                    for child in proc.children():
                        if child.status() != psutil.STATUS_ZOMBIE:  # a zombie is dead, unreaped
                            found[child.pid] = (child.create_time(),
                                                f"worker pool process (PID {child.pid})", block)
                except psutil.Error:
                    continue
    return found, heartbeat
