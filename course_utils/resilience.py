"""When a run is stopped or its infrastructure fails: signals, lost tasks, one-line reasons."""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class CampaignInterrupted(KeyboardInterrupt):
    """A stopped run (stop button, Ctrl-C, SIGTERM, SIGHUP): records kept, how to resume.

    Jupyter shows ``_render_traceback_`` instead of a traceback, so the cell ends with one line.
    """

    def __init__(self, out_dir: Path, n_ok: int, cause: str = "interrupted"):
        self.out_dir, self.n_ok, self.cause = out_dir, n_ok, cause
        super().__init__(f"Campaign {cause}: {n_ok} successful simulations kept in {out_dir}; "
                         "run it again with the same output folder to resume (nothing finished "
                         "is recomputed).")

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


class CampaignStopped(RuntimeError):
    """The run cannot go on (for example scoring keeps failing); it ends with this one line."""


def is_timeout(err: BaseException) -> bool:
    """Parsl's walltime (``AppTimeout``) or any other timeout (a ``TimeoutError`` subclass): also
    when it struck inside an import or an engine and came back wrapped. The one timeout test:
    the campaign, the ground-truth builder and the chemistry all classify failures with it."""
    seen: BaseException | None = err
    for _ in range(5):
        if seen is None:
            break
        if any("Timeout" in cls.__name__ for cls in type(seen).__mro__) or "AppTimeout" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def one_line(err: BaseException | str, limit: int = 300) -> str:
    """A reason recorded in a run's files: ``Type: message`` with its lines joined, cut at
    ``limit``; a str is only joined and cut."""
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return " ".join(str(text).split())[:limit]


def error_message(err: BaseException | str) -> str:
    """What a command says about an error: its message's first line (a YAML or pandas message
    goes on for lines), or the type's name when the message is empty ("" for an empty str)."""
    lines = str(err).strip().splitlines()
    if lines:
        return lines[0]
    return "" if isinstance(err, str) else type(err).__name__


def fail(problem: str | BaseException) -> int:
    """Print ``error: <one line>`` on stderr, the one way every command refuses; returns 2,
    the exit code for that."""
    message = problem if isinstance(problem, str) else error_message(problem)
    print(f"error: {message}", file=sys.stderr)
    return 2


def restart_workers(why: str = "no result for too long") -> int:
    """Replace the loaded executors' worker blocks; Parsl starts fresh ones (``min_blocks``).

    A worker killed while it was taking a task from its pool's queue can leave that queue
    locked, so the pool accepts tasks but never runs them; resubmitting alone would hang again.
    ``why`` starts the line printed about it. Returns the number of blocks cancelled.
    """
    import parsl
    from parsl.errors import NoDataFlowKernelError

    try:
        executors = parsl.dfk().executors.values()
    except NoDataFlowKernelError:
        return 0
    cancelled = 0
    for executor in executors:
        if getattr(executor, "provider", None) is None or not hasattr(executor, "scale_in_facade"):
            continue
        try:  # the facade marks the blocks scaled in at once: the next strategy tick replaces them
            cancelled += len(executor.scale_in_facade(len(executor.status_facade)) or [])
        except Exception as err:  # noqa: BLE001 - best effort: the resubmission still happens
            print(f"could not restart the workers of {executor.label}: {one_line(err)}",
                  file=sys.stderr)
    if cancelled:
        print(f"{why}: restarted {cancelled} worker block(s)", file=sys.stderr)
    return cancelled


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class StopRequest:
    """A stop asked of a run (a signal, the panel's Stop): acted on at its next safe point.

    ``cause`` is None until a stop is asked; :meth:`check` is the safe point: it raises
    ``KeyboardInterrupt(cause)`` once one was asked, here or from another thread
    (:func:`request_stop`).
    """

    def __init__(self) -> None:
        self.cause: str | None = None

    def ask(self, cause: str) -> None:
        self.cause = self.cause or cause

    def clear(self) -> None:
        self.cause = None

    def check(self) -> None:
        self.cause = self.cause or stop_asked_here()
        if self.cause:
            raise KeyboardInterrupt(self.cause)


def public_step(method: Callable) -> Callable:
    """A campaign step a notebook may call on its own: it ends on a stop as a whole run does
    (through the campaign's ``interruptible``), not with a KeyboardInterrupt traceback."""

    @functools.wraps(method)
    def step(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.interruptible():
            return method(self, *args, **kwargs)

    return step


@contextmanager
def stop_signals(stop: StopRequest) -> Iterator[None]:
    """While a campaign runs, a stop signal only asks it to stop at the next safe point.

    The stop button, Ctrl-C, ``kill`` and a closed terminal all take the same path: finished
    results are written, Parsl shuts down, one line says how to resume. A second Ctrl-C
    stops at once. Only the main thread may install handlers; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if stop.cause and signum == signal.SIGINT:
            raise KeyboardInterrupt  # impatient second Ctrl-C
        stop.ask("interrupted" if signum == signal.SIGINT else f"stopped by {name}")

    previous = {}
    for name in STOP_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None:
            previous[signum] = signal.signal(signum, request)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- stops asked for from another thread: the panel's Stop button, the stop button when idle --
_THREAD_STOPS: dict[int, str] = {}
_WATCHED: set[threading.Thread] = set()
_LOCK = threading.Lock()


def request_stop(thread: threading.Thread, cause: str = "interrupted") -> None:
    """Ask the campaign running in ``thread`` to stop at its next safe point (within seconds).

    Signals reach only the main thread, so a run in a background thread (the homework panel's)
    is stopped this way; its campaign looks here whenever it checks for a stop.
    """
    if thread.is_alive():  # a finished thread's id may be reused by another run
        with _LOCK:
            _THREAD_STOPS.setdefault(thread.ident, cause)


def withdraw_stop(thread: threading.Thread) -> None:
    """Forget a stop asked of ``thread`` once its run ended (thread ids are reused)."""
    with _LOCK:
        _THREAD_STOPS.pop(thread.ident, None)


def stop_asked_here() -> str | None:
    """The cause of a stop asked of the current thread by :func:`request_stop`, if any."""
    return _THREAD_STOPS.get(threading.get_ident())


@contextmanager
def interrupts_stop(thread: threading.Thread) -> Iterator[None]:
    """While this is open, the kernel's stop button (SIGINT) stops the run in ``thread``.

    Needs :func:`relay_idle_interrupts` to have been called once from a cell.
    """
    with _LOCK:
        _WATCHED.add(thread)
    try:
        yield
    finally:
        with _LOCK:
            _WATCHED.discard(thread)


class _InterruptRelay:
    """SIGINT handler for an idle kernel: stop the watched runs, or do what was done before."""

    def __init__(self, previous: Any):
        self.previous = previous

    def __call__(self, signum: int, frame: Any) -> None:
        with _LOCK:
            watched = list(_WATCHED)
        for thread in watched:
            request_stop(thread, "interrupted")
        if watched or self.previous in (None, signal.SIG_IGN):
            return
        if callable(self.previous):
            self.previous(signum, frame)
        else:  # SIG_DFL: what Python itself does on Ctrl-C
            raise KeyboardInterrupt


def relay_idle_interrupts() -> bool:
    """Let the stop button reach runs in background threads while the kernel is idle.

    ipykernel ignores SIGINT between executions and, after each one, puts back the handler it
    saved before it (``saved_sigint_handler``). Replacing that saved handler from inside a cell
    puts the relay in place between executions from then on, without touching how cells are
    interrupted. Returns False outside an ipykernel cell (nothing to relay; Stop still works).
    """
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:
        return False
    if threading.current_thread() is not threading.main_thread() or not Kernel.initialized():
        return False
    kernel = Kernel.instance()
    saved = getattr(kernel, "saved_sigint_handler", None)
    if saved is None:
        return False
    if not isinstance(saved, _InterruptRelay):
        kernel.saved_sigint_handler = _InterruptRelay(saved)
    return True
