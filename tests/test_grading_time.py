"""The grader's time check: claimed times against the compute they needed and the run's clocks."""

from __future__ import annotations

import pandas as pd
import pytest

from course_utils.grading_time import (
    MAX_SPEEDUP,
    ImplausibleTime,
    check_submissions_after_models,
    check_time,
    machine_text,
)

T0 = 1_796_000_000.0


def _records(rate: float = 1.0, pause_after: int | None = None) -> pd.DataFrame:
    """Six simulations of 4 s on 2 workers, three batches; the run's clock (elapsed_s) runs at
    ``rate`` of the workers' timestamps; ``pause_after``: a stopped-and-resumed run, 100 s idle
    after that row (its clock skips the pause, as a resumed run's does)."""
    rows, clock_zero = [], T0 - 1.0
    for i in range(6):
        gap = 100.0 if pause_after is not None and i > pause_after else 0.0
        batch = i // 2
        start = T0 + batch * 5.0 + (i % 2) * 2.0 + gap
        end = start + 4.0
        elapsed = (end + 0.01 - clock_zero - gap) * rate
        rows.append({"smiles": f"M{i}", "ie": 12.0 + i, "status": "ok", "error": "",
                     "batch": batch, "submit_time": start - 0.01, "start_time": start,
                     "end_time": end, "elapsed_s": elapsed, "manager": "m", "worker": i % 2})
    return pd.DataFrame(rows)


def _check(sims: pd.DataFrame, seconds=None, **results):
    last = sims.index[-1]
    return check_time({"workers": 2, **results}, sims, int(last), float(sims["elapsed_s"].iloc[-1]),
                      float(sims["elapsed_s"].iloc[-1]) + 0.1, seconds)


@pytest.mark.parametrize("pause_after", [None, 2], ids=["one-session", "resumed"])
def test_an_honest_runs_times_are_plausible(pause_after):
    sims = _records(pause_after=pause_after)
    check = _check(sims, seconds={f"M{i}": 2.0 for i in range(6)}, machine="laptop")
    assert check.workers == 2 and check.machine == "laptop"
    assert check.table_floor_s == pytest.approx(6 * 2.0 / (2 * MAX_SPEEDUP))
    assert check.records_floor_s == pytest.approx(12.0)
    assert check.describe(17.0).startswith("plausible: time to best 17.0 s on 2 worker(s), at "
                                           "least 2.0 s by the table's seconds and 12.0 s by its own")


def test_a_clock_slower_than_the_workers_timestamps_was_edited():
    with pytest.raises(ImplausibleTime, match=r"elapsed_s clock advanced 6\.0 s where their "
                                              r"start/end times advanced 12\.0 s \(0\.50x\)"):
        # the records' floor (24 s of simulation on 2 workers) is met: only the rate tells
        _check(_records(rate=0.5).assign(elapsed_s=lambda d: d["elapsed_s"] + 6.0))


def test_a_claim_below_the_workers_own_durations_is_implausible():
    sims = _records()
    with pytest.raises(ImplausibleTime, match=r"own start/end times add up to 24\.0 s"):
        check_time({"workers": 2}, sims, 5, 2.0, 2.5, None)


def test_a_claim_below_the_tables_seconds_is_implausible_and_names_the_numbers():
    sims = _records()
    with pytest.raises(ImplausibleTime) as err:
        _check(sims, seconds={f"M{i}": 30.0 for i in range(6)})
    assert str(err.value).startswith("implausible time to best: 17.0 s claimed on 2 worker(s), "
                                     "machine: not recorded, but its 6 simulations took 180.0 s")


def test_workers_and_machine_recorded_by_the_run_are_used_and_their_absence_said():
    sims = _records()
    assert _check(sims, machine={"cpu": "M3", "cores": 8}).machine == "cpu M3, cores 8"
    old = check_time({"parameters": {}, "environment": {"hostname": "pc", "cpu_count": 4}},
                     sims, 5, 17.0, 17.1, None)
    assert old.workers == 2 and old.machine == "pc, 4 cores (environment)"
    assert "workers not recorded (older run): 2 worker slot(s) in its records" in old.note
    assert machine_text({}) == "not recorded"


def _lineage(saved_at: float) -> pd.DataFrame:
    stamp = pd.Timestamp(saved_at, unit="s", tz="UTC").isoformat(timespec="seconds")
    return pd.DataFrame({"version": [1], "time": [stamp]})


def test_molecules_are_submitted_after_the_model_that_picked_them():
    sims = _records()
    plan = pd.DataFrame({"smiles": ["M2", "M3"], "model_version": [1, 1]})
    check_submissions_after_models(sims, plan, _lineage(T0 + 4.2))  # saved, then submitted
    with pytest.raises(ImplausibleTime, match=r"M2 was submitted at .*, 5\.0 s before model "
                                              r"version 1 that picked it was saved"):
        check_submissions_after_models(sims, plan, _lineage(T0 + 10.0))


def test_a_model_version_that_lineage_does_not_date_is_a_disagreement():
    """Deleting lineage.csv (or its rows) does not switch the comparison off."""
    plan = pd.DataFrame({"smiles": ["M2"], "model_version": [2]})
    with pytest.raises(ImplausibleTime, match="batches.csv names model version 2, which "
                                              "lineage.csv does not date"):
        check_submissions_after_models(_records(), plan, pd.DataFrame(columns=["version", "time"]))
    with pytest.raises(ImplausibleTime, match="model version 2"):
        check_submissions_after_models(_records(), plan, pd.DataFrame())
    initial = pd.DataFrame({"smiles": ["M0"], "model_version": [None]})  # random picks: no model
    check_submissions_after_models(_records(), initial, pd.DataFrame())
