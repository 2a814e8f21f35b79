"""When a run is stopped or its infrastructure fails: signals, lost tasks, one-line reasons."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
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
    """Parsl's walltime: also when it struck inside an import and came back wrapped."""
    seen: BaseException | None = err
    for _ in range(5):
        if seen is None:
            break
        if "Timeout" in type(seen).__name__ or "AppTimeout" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def one_line(err: BaseException | str, limit: int = 300) -> str:
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return " ".join(str(text).split())[:limit]


def restart_workers() -> int:
    """Replace the loaded executors' worker blocks; Parsl starts fresh ones (``min_blocks``).

    A worker killed while it was taking a task from its pool's queue can leave that queue
    locked, so the pool accepts tasks but never runs them; resubmitting alone would hang again.
    Returns the number of blocks cancelled.
    """
    import parsl
    from parsl.errors import NoDataFlowKernelError

    try:
        executors = parsl.dfk().executors.values()
    except NoDataFlowKernelError:
        return 0
    cancelled = 0
    for executor in executors:
        if getattr(executor, "provider", None) is None or not hasattr(executor, "scale_in"):
            continue
        try:
            cancelled += len(executor.scale_in(len(executor.status_facade)))
        except Exception as err:  # noqa: BLE001 - best effort: the resubmission still happens
            print(f"could not restart the workers of {executor.label}: {one_line(err)}",
                  file=sys.stderr)
    if cancelled:
        print(f"no result for too long: restarted {cancelled} worker block(s)", file=sys.stderr)
    return cancelled


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


@contextmanager
def stop_signals(campaign: Any) -> Iterator[None]:
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
        if campaign.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # impatient second Ctrl-C
        campaign.stop_requested = "interrupted" if signum == signal.SIGINT else f"stopped by {name}"

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
