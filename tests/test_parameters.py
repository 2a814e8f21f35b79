"""Parameters that run, but not as their numbers suggest, are noted once; missing files named."""

from __future__ import annotations

import warnings

import pytest

from course_utils.campaign.parameters import CampaignNote, CampaignParameterError, CampaignParameters


def _notes(params: CampaignParameters, times: int = 1) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(times):
            params.validate(1000)
    return [str(w.message) for w in caught if issubclass(w.category, CampaignNote)]


def test_a_batch_beyond_the_budget_is_noted_once_per_parameters():
    params = CampaignParameters(batch_size=100, max_training_count=24)
    assert _notes(params, times=3) == [  # the CLI and notebooks validate again before running
        "batch_size 100 is more than the 16 simulations left after the initial 8; the one "
        "batch will have 16 (more only to replace failures)"]
    assert "_notes_given" not in params.to_dict()  # not a parameter: records stay as they were
    assert params == CampaignParameters(batch_size=100, max_training_count=24)


def test_streaming_notes_that_the_first_model_stays_the_only_one():
    assert _notes(CampaignParameters(batch_size=20, mode="streaming")) == [
        "batch_size 20 is more than the 16 simulations left after the initial 8; streaming "
        "retrains every 20 results, so the first model will be the only one"]
    # with its own retrain policy, streaming does not use batch_size at all
    assert _notes(CampaignParameters(batch_size=20, mode="streaming", retrain="count:4")) == []


@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_a_batch_within_the_budget_is_not_noted(batch_size):
    assert _notes(CampaignParameters(batch_size=batch_size)) == []


def test_a_missing_ground_truth_file_is_named(tmp_path):
    missing = tmp_path / "nonexistent.csv"
    with pytest.raises(CampaignParameterError, match="^ground-truth table .* not found; ") as info:
        CampaignParameters(simulator="replay", ground_truth=str(missing)).validate(1000)
    assert str(missing) in str(info.value)
    with pytest.raises(CampaignParameterError, match="is a folder, not a file"):
        CampaignParameters(simulator="replay", ground_truth=str(tmp_path)).validate(1000)


@pytest.mark.parametrize("space", ["qm9", "truth:qm9", "truth:qm9:200"])
def test_named_search_spaces_are_not_files(space):
    CampaignParameters(search_space=space).validate()


def test_a_missing_search_space_file_is_named(tmp_path):
    missing = tmp_path / "space.csv"
    with pytest.raises(CampaignParameterError, match="^search-space file .* not found; "):
        CampaignParameters(search_space=str(missing)).validate()
    missing.write_text("smiles\nC\n")
    CampaignParameters(search_space=str(missing)).validate()  # once it exists it is fine


@pytest.mark.parametrize(("values", "words"), [
    ({"seed": 2**70}, "seed (1180591620717411303424) must be a non-negative integer up to 4294967295"),
    ({"seed": -1}, "must be a non-negative integer up to"),
    ({"trust_streak": 0}, "trust_streak (0) must be at least 1"),
    ({"trust_ranks": 0}, "trust_ranks (0) must be at least 1"),
    ({"engine": "foo"}, "engine 'foo' is unknown; choose one of xtb, tblite"),
    ({"model": "KNN"}, "model 'KNN' is unknown; choose one of knn"),
    ({"model": "knn:"}, "model 'knn:': nothing after ':'"),
    ({"acquisition": "Greedy"}, "acquisition 'Greedy' is unknown; choose one of greedy"),
])
def test_values_no_campaign_can_use_are_one_line(values, words):
    with pytest.raises(CampaignParameterError) as err:
        CampaignParameters(**values).validate()
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("values", [{"seed": 2**32 - 1}, {"engine": "tblite"},
                                    {"engine": "auto"}, {"model": "gp:mean=training"}])
def test_the_edges_of_what_is_allowed_still_validate(values):
    CampaignParameters(**values).validate()


@pytest.mark.parametrize(("model", "least"), [("knn", 4), ("knn:k=6", 6), ("gp", 2), ("rf", 2)])
def test_the_initial_batch_must_reach_what_the_model_needs(model, least):
    """The model says its own minimum (``min_training``); the campaign knows nothing of KNN."""
    CampaignParameters(model=model, initial_training_count=least, max_training_count=20).validate()
    with pytest.raises(CampaignParameterError, match=f"must be at least {least}: the model"):
        CampaignParameters(model=model, initial_training_count=least - 1,
                           max_training_count=20).validate()
