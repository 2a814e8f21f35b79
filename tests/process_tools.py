"""Looking at real processes from tests: what a run started, and whether any of it survived."""

from __future__ import annotations

import time

import psutil

PARSL_MARKERS = ("process_worker_pool", "parsl_guard", "parsl: HTEX interchange", "interchange.py")


def descendants(pid: int) -> dict[int, float]:
    """Every process below ``pid`` now, with its start time (to tell a reused PID apart)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return {}
    out = {}
    for child in children:
        try:
            out[child.pid] = child.create_time()
        except psutil.Error:
            continue
    return out


def worker_processes(pid: int) -> list[psutil.Process]:
    """The Parsl worker processes (the pool's multiprocessing children) of the run ``pid``."""
    found = []
    for child_pid in run_processes(pid):
        try:
            proc = psutil.Process(child_pid)
            if "spawn_main" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def survivors(processes: dict[int, float], timeout: float = 60.0) -> list[str]:
    """Those of ``processes`` still alive after ``timeout`` seconds, described."""
    deadline = time.time() + timeout
    while True:
        alive = []
        for pid, start in processes.items():
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - start) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
            except psutil.Error:
                continue
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.5)


def parsl_processes(started_after: float) -> dict[int, float]:
    """Parsl interchanges, pools and guards started after ``started_after`` (epoch seconds)."""
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline", "create_time", "status"]):
        info = proc.info
        if info["create_time"] is None or info["create_time"] < started_after:
            continue
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        text = " ".join(info["cmdline"] or [])
        if any(marker in text for marker in PARSL_MARKERS):
            found[info["pid"]] = info["create_time"]
    return found


def run_processes(pid: int) -> dict[int, float]:
    """Everything a run started: its descendants, plus the worker pools Parsl's provider
    detached (they name the run's PID in their ``--watch`` token), with their descendants."""
    found = descendants(pid)
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        text = " ".join(proc.info["cmdline"] or [])
        if "parsl_guard" in text and f":{pid}:" in text:
            found[proc.info["pid"]] = proc.info["create_time"]
            found.update(descendants(proc.info["pid"]))
    return found
