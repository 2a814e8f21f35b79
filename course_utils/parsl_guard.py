"""Start Parsl's helper processes so that a user's stop reaches only the user's process.

Parsl's interchange normally starts in the caller's process group. Jupyter's stop button and a
terminal's Ctrl-C signal that whole group, so the interchange died first and the run then hung
waiting for it. Killed runs also left interchanges and worker pools (and the pools' worker
processes) running for hours. This module is the command the kit's configs give Parsl instead:

* ``interchange``: a new session (no user signal reaches it), plus a watchdog that ends it once
  the Python process that started the run is gone, however that process ended;
* ``worker``: a small supervisor around ``process_worker_pool``: if the run's process is gone
  (checked on the same host) or the pool itself dies, it kills every process the pool started.

Both are started with the same interpreter as the run (``sys.executable``), so they are found
even when the environment's ``bin`` is not on ``PATH`` (a Jupyter kernel started by a server
outside the course environment).
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

POLL_S = 1.0
_INTERCHANGE_MODULE = "parsl.executors.high_throughput.interchange"
_POOL_MODULE = "parsl.executors.high_throughput.process_worker_pool"


def watch_token(pid: int | None = None) -> str:
    """``host:pid:start`` of a process: the start time tells a live process from a reused PID."""
    import psutil

    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.3f}"


def _alive(token: str) -> bool:
    """Whether the watched process still runs; a process on another host counts as alive."""
    import psutil

    host, pid, start = token.rsplit(":", 2)
    if host != socket.gethostname():
        return True
    try:
        proc = psutil.Process(int(pid))
        same = abs(proc.create_time() - float(start)) < 0.01
        return same and proc.status() != psutil.STATUS_ZOMBIE  # killed, not yet reaped: gone
    except (psutil.NoSuchProcess, psutil.ZombieProcess, ValueError):
        return False


def interchange_command(token: str | None = None) -> list[str]:
    """What ``HighThroughputExecutor(interchange_launch_cmd=...)`` runs instead of interchange.py."""
    return [sys.executable, "-m", "course_utils.parsl_guard", "interchange",
            "--watch", token or watch_token()]


def worker_launch_command(token: str | None = None) -> str:
    """Parsl's worker launch command, with the pool started through the supervisor below."""
    from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

    prefix = (f"{shlex.quote(sys.executable)} -m course_utils.parsl_guard worker "
              f"--watch {token or watch_token()} --")
    return DEFAULT_LAUNCH_CMD.replace("process_worker_pool.py", prefix, 1)


def _watch(token: str, on_gone) -> None:
    def loop() -> None:
        while _alive(token):
            time.sleep(POLL_S)
        on_gone()

    threading.Thread(target=loop, name="parsl-guard-watchdog", daemon=True).start()


def _run_interchange(token: str) -> None:
    import runpy

    try:
        os.setsid()  # out of the user's process group: Ctrl-C and the stop button miss it
    except OSError:
        pass  # already a session leader
    _watch(token, lambda: os._exit(3))
    runpy.run_module(_INTERCHANGE_MODULE, run_name="__main__", alter_sys=True)


def _kill(pids: dict[int, float]) -> None:
    import psutil

    for pid, start in pids.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - start) < 0.01:
                proc.kill()
        except psutil.Error:
            continue


def _run_worker(token: str, args: list[str]) -> int:
    """Supervise the worker pool: forward termination, and leave no process of it behind."""
    import psutil

    pool = subprocess.Popen([sys.executable, "-m", _POOL_MODULE, *args])
    known: dict[int, float] = {}
    stop = threading.Event()

    def terminate(signum, _frame) -> None:
        stop.set()
        try:
            pool.send_signal(signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, terminate)
    code = 0
    while True:
        try:
            for child in psutil.Process(pool.pid).children(recursive=True):
                known.setdefault(child.pid, child.create_time())
        except psutil.Error:
            pass
        if pool.poll() is not None:
            code = pool.returncode
            break
        if stop.is_set() or not _alive(token):
            pool.terminate()
            try:
                code = pool.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pool.kill()
                code = pool.wait()
            break
        time.sleep(POLL_S)
    _kill(known)  # the pool's workers do not notice their pool's death on their own
    return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[1] != "--watch" or argv[0] not in ("interchange", "worker"):
        print("usage: python -m course_utils.parsl_guard interchange|worker --watch HOST:PID:START "
              "[-- POOL ARGS]", file=sys.stderr)
        return 2
    role, token, rest = argv[0], argv[2], argv[3:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if role == "interchange":
        sys.argv = [_INTERCHANGE_MODULE]
        _run_interchange(token)
        return 0
    return _run_worker(token, rest)


if __name__ == "__main__":
    sys.exit(main())
