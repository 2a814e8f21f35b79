"""A dead worker is noticed in seconds: real runs, a real worker process killed by its PID.

The time bounds are behaviour checks with a generous margin (a shared, loaded machine), not
benchmarks: before, a worker that died while idle stalled the run until the walltime stall
(``no result after 330 s``).
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import Future
from pathlib import Path

import pandas as pd
import psutil
import pytest
from process_tools import SLOW, start_slow_run

from course_utils import records as rec
from course_utils.campaign.dispatch import Dispatch
from course_utils.campaign.lost_workers import WorkerWatch, is_worker_lost, worker_losses

#: From the kill to the ``lost`` record: about 2-5 s measured; generous for a loaded machine.
NOTICED_WITHIN_S = 15.0
#: From the kill to the end of a run that nothing stalled (the slow molecule takes ~17 s).
STALL_FREE_S = 120.0


def test_parsl_s_worker_lost_is_recognised_also_when_wrapped():
    from parsl.executors.high_throughput.errors import WorkerLost

    lost = WorkerLost(0, "here")
    assert is_worker_lost(lost)
    try:
        raise RuntimeError("task failed") from lost
    except RuntimeError as wrapped:
        assert is_worker_lost(wrapped)
    assert not is_worker_lost(RuntimeError("WorkerLost"))  # a name in a message is not enough
    assert not is_worker_lost(None)


def test_one_lost_worker_behind_several_failed_dependencies_counts_once():
    """A scoring round whose fit lost its worker fails every chunk that needed the model:
    Parsl's DependencyErrors all carry the same WorkerLost, one death."""
    from parsl.dataflow.errors import DependencyError
    from parsl.executors.high_throughput.errors import WorkerLost

    lost = WorkerLost(1, "here")
    chunks = [DependencyError([(lost, "task 1")], task_id=i) for i in (2, 3)]
    stacked = DependencyError([(c, f"task {i}") for i, c in enumerate(chunks)], task_id=4)
    assert worker_losses(stacked) and all(x is lost for x in worker_losses(stacked))
    watch = WorkerWatch()
    futures = []
    for err in (*chunks, stacked):
        future = Future()
        future.set_exception(err)
        futures.append(future)
    watch.note(futures)
    watch.note(futures)  # the same futures seen again by the next wait
    assert len(watch._reports) == 1


def test_without_parsl_nothing_is_watched():
    watch = WorkerWatch()
    watch.poll()
    assert watch.stuck() is None


def _pool_children(run: subprocess.Popen, out: Path) -> tuple[psutil.Process, list[psutil.Process]]:
    """The pool's multiprocessing manager and its two worker processes, busiest first: Parsl's
    pool starts its manager before its workers; every PID a simulation record names (the
    worker that ran it) must be one of the workers."""
    from process_tools import run_processes

    pools, spawned = [], []
    for pid in run_processes(run.pid):
        try:
            cmd = psutil.Process(pid).cmdline()
        except psutil.Error:
            continue
        if any("process_worker_pool" in part for part in cmd[:3]):
            pools.append(psutil.Process(pid))
    assert len(pools) == 1, pools
    for child in pools[0].children():
        if "spawn_main" in " ".join(child.cmdline()):
            spawned.append(child)
    manager, *workers = sorted(spawned, key=lambda c: c.create_time())
    assert len(workers) == 2, spawned
    recorded = {int(p) for p in rec.read_simulations(out)["pid"].dropna()}
    assert recorded <= {w.pid for w in workers}, (recorded, workers)
    before = {w.pid: sum(w.cpu_times()[:2]) for w in workers}
    time.sleep(2.0)
    used = {w.pid: sum(w.cpu_times()[:2]) - before[w.pid] for w in workers}
    # One computes, one waits for tasks (on a loaded machine the busy one gets little CPU).
    assert max(used.values()) > 0.05 and min(used.values()) <= 0.02, used
    return manager, sorted(workers, key=lambda w: -used[w.pid])


def _wait_for_lost(out: Path, proc: subprocess.Popen, timeout: float = 300,
                   required: bool = True) -> float | None:
    """Wall-clock time at which the slow molecule's ``lost`` record appeared (None if the run
    ended without one and ``required`` is False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        sims = rec.read_simulations(out)
        if ((sims["smiles"] == SLOW) & (sims["status"] == "lost")).any():
            return time.time()
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if not required and proc.poll() is not None:
        return None
    pytest.fail("the slow molecule was never recorded lost")


def _finish(proc: subprocess.Popen, out: Path, restarts: int | None) -> pd.DataFrame:
    """The slow molecule's records once the run ended well; the pool was restarted
    ``restarts`` times (never again for the replacement's own processes going away)."""
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    if restarts is not None:
        assert err.count("died and Parsl did not report it") == restarts, err[-3000:]
    sims = rec.read_simulations(out)
    slow = sims[sims["smiles"] == SLOW]
    statuses = slow["status"].tolist()
    if restarts is None:  # Parsl's own replacement of the block may race ours: a second loss
        assert statuses[-1] == "ok" and 1 <= statuses.count("lost") <= Dispatch.LOST_RETRIES, slow
        assert statuses.count("lost") == len(statuses) - 1, slow
    else:
        assert statuses == ["lost", "ok"], slow  # retried, and then it worked
    assert not (sims["status"] == "failed").any()
    return slow


def _report(what: str, killed_at: float, lost_at: float, slow: pd.DataFrame) -> None:
    retry = slow.iloc[1]
    print(f"{what}: kill -> lost record {lost_at - killed_at:.1f} s, kill -> retry submitted "
          f"{retry['submit_time'] - killed_at:.1f} s, kill -> retry started "
          f"{retry['start_time'] - killed_at:.1f} s")


def test_worker_killed_while_simulating_is_lost_and_retried_in_seconds(tmp_path):
    proc, out = start_slow_run(tmp_path)
    busy = _pool_children(proc, out)[1][0]  # the one simulating the slow molecule
    killed_at = time.time()
    busy.kill()
    lost_at = _wait_for_lost(out, proc)
    slow = _finish(proc, out, restarts=0)  # Parsl replaced the worker: the pool still works
    assert lost_at - killed_at < NOTICED_WITHIN_S
    assert slow.iloc[0]["error"].startswith("WorkerLost")  # Parsl's own report
    assert slow.iloc[1]["submit_time"] - killed_at < NOTICED_WITHIN_S
    _report("busy worker", killed_at, lost_at, slow)


@pytest.mark.parametrize("victim", ["idle worker", "pool's multiprocessing manager"])
def test_idle_worker_killed_does_not_stall_the_run(tmp_path, victim):
    """An idle worker dies holding its pool's task queue (or the pool's multiprocessing
    manager dies): Parsl reports nothing and the pool never runs another task. The campaign
    notices the death, replaces the pool, and runs what it held again (here the slow
    molecule, running on the other worker of that pool). Not every such kill stops the pool
    (seen in CI: the run went on and the slow molecule finished); then the run must end
    without a stall and without a lost or failed simulation."""
    proc, out = start_slow_run(tmp_path)
    manager, workers = _pool_children(proc, out)
    killed_at = time.time()
    (workers[-1] if victim == "idle worker" else manager).kill()
    lost_at = _wait_for_lost(out, proc, required=False)
    if lost_at is None:  # the pool kept working (the process held no lock when it died)
        ended_at = time.time()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
        sims = rec.read_simulations(out)
        assert sims.loc[sims["smiles"] == SLOW, "status"].tolist() == ["ok"]
        assert not sims["status"].isin(["failed", "lost"]).any()
        assert ended_at - killed_at < STALL_FREE_S  # no walltime stall (it used to be 330 s)
        return
    slow = _finish(proc, out, restarts=1)
    assert lost_at - killed_at < NOTICED_WITHIN_S
    assert "its pool stopped taking tasks" in slow.iloc[0]["error"]
    _report(victim, killed_at, lost_at, slow)


def test_worker_pool_killed_is_noticed_before_parsl_s_heartbeat_threshold(tmp_path):
    """The whole pool (Parsl's manager) killed: Parsl itself would fail its tasks with
    ManagerLost only after heartbeat_threshold (30 s here)."""
    from process_tools import run_processes

    proc, out = start_slow_run(tmp_path)
    pools = [psutil.Process(pid) for pid in run_processes(proc.pid)
             if any("process_worker_pool" in part for part in psutil.Process(pid).cmdline()[:3])]
    assert len(pools) == 1
    killed_at = time.time()
    pools[0].kill()
    lost_at = _wait_for_lost(out, proc)
    slow = _finish(proc, out, restarts=None)  # Parsl may replace that block first
    assert lost_at - killed_at < NOTICED_WITHIN_S
    _report("worker pool", killed_at, lost_at, slow)
