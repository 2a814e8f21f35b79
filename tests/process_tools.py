"""Looking at real processes from tests: what a run started, and whether any of it survived."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from course_utils import records as rec
from course_utils.search_space import sample_smiles

#: A molecule xTB takes ~17 s on (QM9's take < 3 s): the one simulation still running late.
SLOW = "C1CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC1"
MOLECULES = ["O", "C", "CC", "OC", "N", SLOW]

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


def start_slow_run(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A real CLI run on 2 workers whose initial batch holds the slow molecule: once the four
    others are done, it is the only simulation running."""
    space = tmp_path / "space.csv"
    pd.DataFrame({"smiles": MOLECULES}).to_csv(space, index=False)
    seed = next(s for s in range(50) if SLOW in sample_smiles(MOLECULES, 5, seed=s))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "course_utils", "run", "--initial-training-count", "5",
         "--max-training-count", "6", "--batch-size", "1", "--workers", "2", "--quiet",
         "--seed", str(seed), "--search-space", str(space), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        sims = rec.read_simulations(out) if (out / rec.SIMULATIONS_FILE).exists() else None
        if sims is not None and (sims["status"] == "ok").sum() >= 4:
            break
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the first four simulations did not finish in 240 s")
    assert SLOW not in set(rec.read_simulations(out)["smiles"])
    return proc, out
