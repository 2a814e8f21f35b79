"""Dispatch: simulations in flight become records whatever happens to them (timeouts, lost
workers, vanished tasks), on a real Parsl executor and real xTB."""

from __future__ import annotations

import time
from concurrent.futures import Future

from course_utils import records as rec
from course_utils.campaign.dispatch import Pending
from course_utils.campaign.runner import Campaign, CampaignParameters


def _pend(campaign, smiles, err=None, age=0.0):
    future: Future = Future()
    if err is not None:
        future.set_exception(err)
    campaign.dispatch.pending[future] = Pending(smiles, 1, time.time() - age)
    return future


def test_timeouts_are_failures_and_lost_tasks_are_retried(parsl_local, tmp_path, small_space):
    from parsl.app.errors import AppTimeout

    campaign = Campaign(CampaignParameters(search_space=str(small_space)), tmp_path,
                        progress=False)
    campaign.dispatch._record(_pend(campaign, "CC", AppTimeout("walltime exceeded")))
    campaign.dispatch._record(_pend(campaign, "CO", RuntimeError("manager lost")))
    sims = rec.read_simulations(tmp_path)
    assert sims["status"].tolist() == ["timeout", "lost"]
    assert "manager lost" in sims["error"].iloc[1]
    # The lost molecule was submitted again, for real, and its result arrives.
    assert [p.smiles for p in campaign.dispatch.pending.values()] == ["CO"]
    while campaign.dispatch.pending:
        campaign.dispatch.collect()
    sims = rec.read_simulations(tmp_path)
    assert sims["status"].tolist() == ["timeout", "lost", "ok"]
    assert "CO" in campaign.recorder.attempted and campaign.history.n_failed == 1
    campaign.release_lock()


def test_a_molecule_that_keeps_losing_its_worker_ends_as_failed(tmp_path, small_space):
    campaign = Campaign(CampaignParameters(search_space=str(small_space)), tmp_path,
                        progress=False)
    campaign.dispatch.LOST_RETRIES = 0
    row = campaign.dispatch._record(_pend(campaign, "CO", RuntimeError("WorkerLost")))
    assert row["status"] == "failed" and row["error"].startswith("WorkerLost: the worker died 1")
    assert not campaign.dispatch.pending
    campaign.release_lock()


def test_a_vanished_task_is_detected_and_resubmitted(parsl_local, tmp_path, small_space, capsys):
    # A walltime long enough that the replacement block (slow to start on a busy machine) is
    # not itself taken for a stall.
    params = CampaignParameters(search_space=str(small_space), simulation_walltime=60.0)
    campaign = Campaign(params, tmp_path, progress=False)
    _pend(campaign, "CC", age=200.0)  # a future nobody will ever complete
    campaign.dispatch._last_progress = time.monotonic() - 200.0
    rows = campaign.dispatch.collect()
    assert [r["status"] for r in rows] == ["lost"] and rows[0]["error"].startswith("TaskLost")
    # The worker block was replaced (a stalled pool may never run anything again), and the
    # resubmitted simulation runs on the new one.
    deadline = time.time() + 180
    while campaign.dispatch.pending and time.time() < deadline:
        campaign.dispatch.collect()
    assert rec.read_simulations(tmp_path)["status"].tolist() == ["lost", "ok"]
    assert "restarted 1 worker block" in capsys.readouterr().err
    campaign.release_lock()
