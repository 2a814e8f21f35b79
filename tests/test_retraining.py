"""The retrain-policy part: parsing, when a model is due, the stable validation split, and the
policies wired into replayed campaigns in both modes (on the part of QM9 the table covers)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from course_utils.campaign.lineage import read_lineage
from course_utils.campaign.parameters import CampaignParameterError, CampaignParameters
from course_utils.campaign.retraining import (
    RetrainPolicyError,
    ValidationSplit,
    parse_retrain_policy,
    validation_metrics,
)
from course_utils.campaign.runner import run_campaign


# --- parsing and the trigger -------------------------------------------------------------------
@pytest.mark.parametrize("text, kind, count, growth", [
    ("every-batch", "every-batch", 4, 0.0), ("count:6", "count", 6, 0.0),
    ("growth:0.25", "growth", 0, 0.25), (" growth:1 ", "growth", 0, 1.0)])
def test_policies_parse(text, kind, count, growth):
    policy = parse_retrain_policy(text, batch_size=4)
    assert (policy.kind, policy.count, policy.growth) == (kind, count, growth)


@pytest.mark.parametrize("text, words", [
    ("count:0", "N >= 1"), ("count:2.5", "whole number"), ("growth:0", "F > 0"),
    ("growth:x", "F > 0"), ("sometimes", "unknown"), ("", "must be one of"),
    ("every-batch:2", "unknown")])
def test_bad_policies_say_what_is_wrong(text, words):
    with pytest.raises(RetrainPolicyError, match=words):
        parse_retrain_policy(text)


def test_retrain_after_is_count_in_streaming_mode_only():
    streaming = CampaignParameters(mode="streaming", retrain_after=3).retrain_policy()
    assert (streaming.kind, streaming.count) == ("count", 3)
    batch = CampaignParameters(mode="batch", retrain_after=3).retrain_policy()
    assert batch.kind == "every-batch"
    with pytest.raises(CampaignParameterError, match="both say when to retrain"):
        CampaignParameters(retrain="growth:0.5", retrain_after=3).validate()


def test_growth_triggers_once_the_data_grew_by_the_fraction():
    policy = parse_retrain_policy("growth:0.5")
    assert policy.due(8, None) == "first model of this session"
    assert policy.due(11, 8) is None
    assert policy.due(12, 8).startswith("growth:0.5: successful data grew 8 -> 12")
    assert policy.next_size(12) == 18
    tiny = parse_retrain_policy("growth:0.01")
    assert tiny.due(9, 8) is not None  # at least one new result, however small F is
    assert tiny.due(8, 8) is None


def test_count_and_every_batch_triggers():
    count = parse_retrain_policy("count:5")
    assert count.due(12, 8) is None and count.due(13, 8) == "count:5: 5 new results"
    every = parse_retrain_policy("every-batch", batch_size=4)
    assert every.due(10, 8) is None  # streaming: a batch's worth of results
    assert every.due(10, 8, batch_mode=True) is not None  # batch mode: after every batch
    assert every.due(8, 8, batch_mode=True) is None


def test_validation_split_is_stable_and_seeded():
    smiles = [f"C{'C' * i}O" for i in range(400)]
    split = ValidationSplit(0.25, seed=3)
    sides = [split.is_validation(s) for s in smiles]
    assert 0.15 < sum(sides) / len(sides) < 0.35
    assert sides == [ValidationSplit(0.25, seed=3).is_validation(s) for s in reversed(smiles)][::-1]
    assert sides != [ValidationSplit(0.25, seed=4).is_validation(s) for s in smiles]
    # a larger share only adds molecules: none of the old validation set moves to training
    larger = ValidationSplit(0.4, seed=3)
    assert all(larger.is_validation(s) for s, v in zip(smiles, sides, strict=True) if v)
    assert not any(ValidationSplit(0.0, seed=3).is_validation(s) for s in smiles)


def test_validation_metrics():
    rows = [{"smiles": "a", "ie": 10.0}, {"smiles": "b", "ie": 12.0}, {"smiles": "c", "ie": 11.0}]
    mae, r2, n = validation_metrics({"a": 10.5, "b": 11.5, "c": 11.0}, rows)
    assert n == 3 and mae == pytest.approx(1 / 3)
    assert r2 == pytest.approx(1 - 0.5 / 2.0)
    assert math.isnan(validation_metrics({}, rows)[0])
    assert math.isnan(validation_metrics({"a": 10.0}, rows[:1])[1])  # R² needs two values


# --- in the engine -----------------------------------------------------------------------------
def _replay(out, **extra):
    values = {"initial_training_count": 8, "max_training_count": 40, "batch_size": 4, "seed": 5,
              "search_space": "truth:qm9:4000", "simulator": "replay", "workers": 2, **extra}
    return run_campaign(values, out, progress=False, plot=False)


def _sizes(lineage: pd.DataFrame) -> list[int]:
    """Successful simulations each version saw (its training plus validation molecules)."""
    return (lineage["train_size"] + lineage["valid_size"]).astype(int).tolist()


@pytest.mark.parametrize("mode", ["batch", "streaming"])
@pytest.mark.parametrize("policy", ["every-batch", "count:6", "growth:0.5"])
def test_each_policy_triggers_as_it_says_in_both_modes(tmp_path, mode, policy):
    result = _replay(tmp_path, mode=mode, retrain=policy)
    lineage = read_lineage(tmp_path)
    sizes = _sizes(lineage)
    assert lineage["version"].tolist() == list(range(1, len(lineage) + 1))
    assert lineage["trigger"].iloc[0] == "first model of this session"
    assert all(t.startswith(policy) for t in lineage["trigger"].iloc[1:])
    assert len(lineage) >= 2
    steps = [b - a for a, b in zip(sizes, sizes[1:], strict=False)]
    if policy == "count:6":
        assert all(step >= 6 for step in steps)
    elif policy == "growth:0.5":
        assert all(b >= 1.5 * a for a, b in zip(sizes, sizes[1:], strict=False))
    elif mode == "batch":
        assert len(lineage) == len(result.iterations)  # one model per batch
    else:
        assert all(step >= 4 for step in steps)
    assert result.results["models"]["versions"] == len(lineage)
    assert result.results["models"]["retrain"] == policy
    iterations = result.iterations
    assert set(iterations["model_version"].dropna().astype(int)) <= set(lineage["version"])


def test_growth_trains_fewer_models_than_every_batch(tmp_path):
    every = _replay(tmp_path / "every", max_training_count=60)
    growth = _replay(tmp_path / "growth", max_training_count=60, retrain="growth:0.5")
    assert growth.results["models"]["versions"] < every.results["models"]["versions"] / 2


def test_validation_molecules_never_train_and_are_scored(tmp_path):
    result = _replay(tmp_path, valid_fraction=0.3)
    split = ValidationSplit(0.3, seed=5)
    ok = result.simulations[result.simulations["status"] == "ok"]
    held_out = [s for s in ok["smiles"] if split.is_validation(s)]
    assert held_out, "a 30 % share of 40 successes holds something out"
    lineage = read_lineage(tmp_path)
    last = lineage.iloc[-1]
    from course_utils.campaign.lineage import load_model_version

    model, info = load_model_version(tmp_path / "models" / f"v{int(last['version']):04d}")
    trained_on = model.fitted.train_smiles  # the KNN part's fitted KNNModel
    assert not set(held_out) & set(trained_on)
    assert not any(split.is_validation(s) for s in trained_on)
    seen = result.simulations.iloc[:info["data_version"]]
    seen = seen[seen["status"] == "ok"]["smiles"]
    assert info["valid_size"] == sum(split.is_validation(s) for s in seen)
    assert info["train_size"] == len(trained_on) == len(seen) - info["valid_size"]
    assert len(trained_on) >= 4
    assert lineage["valid_mae_ev"].notna().all() and (lineage["valid_mae_ev"] > 0).all()
    assert result.iterations["valid_mae_ev"].notna().all()
