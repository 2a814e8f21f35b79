"""The arrival part: waves of the search space that unlock as successful simulations come in."""

from __future__ import annotations

import numpy as np
import pytest

from course_utils.campaign.arrival import ArrivalError, parse_arrival
from course_utils.campaign.runner import run_campaign


def test_all_is_one_wave():
    arrival = parse_arrival("all")
    assert arrival.unlocked(0) == arrival.unlocked(10_000) == 1
    assert (arrival.wave_of(["a", "b"], seed=0) == 0).all()


def test_waves_are_seeded_balanced_and_unlock_every_k():
    arrival = parse_arrival("waves:3,every:5")
    space = [f"m{i}" for i in range(100)]
    waves = arrival.wave_of(space, seed=1)
    assert np.bincount(waves).tolist() == [34, 33, 33]
    assert (waves == arrival.wave_of(space, seed=1)).all()
    assert not (waves == arrival.wave_of(space, seed=2)).all()
    assert [arrival.unlocked(n) for n in (0, 4, 5, 9, 10, 99)] == [1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("text, words", [
    ("waves:3", "every:8"), ("waves:0,every:2", "W must be"), ("waves:2,every:0", "K must be"),
    ("waves:2,often:3", "unknown part"), ("tides:2", "unknown"), ("", "must be one of")])
def test_bad_arrival_says_what_is_wrong(text, words):
    with pytest.raises(ArrivalError, match=words):
        parse_arrival(text)


def test_campaign_picks_only_from_unlocked_waves_and_records_the_wave(tmp_path):
    result = run_campaign({"initial_training_count": 8, "max_training_count": 32,
                           "batch_size": 4, "seed": 3, "search_space": "truth:qm9:4000",
                           "simulator": "replay", "workers": 2, "arrival": "waves:4,every:8"},
                          tmp_path, progress=False, plot=False)
    sims = result.simulations
    arrival = parse_arrival("waves:4,every:8")
    n_ok_before = (sims["status"] == "ok").cumsum().shift(fill_value=0)
    # a molecule is only ever submitted once its wave was unlocked (checked at pick time, so
    # against the successes before the batch it belongs to)
    batch_start = sims.groupby("batch").apply(lambda g: n_ok_before.loc[g.index].min(),
                                              include_groups=False)
    unlocked = sims["batch"].map(batch_start).map(arrival.unlocked)
    assert (sims["wave"] < unlocked).all()
    assert sims.loc[sims["batch"] == 0, "wave"].eq(0).all()
    assert sims["wave"].max() >= 2  # later waves did arrive and got picked
