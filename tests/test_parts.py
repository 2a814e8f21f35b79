"""The parts' registries: a user's string becomes a part, or one line listing what is known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from course_utils.campaign.acquisition import ACQUISITION_REGISTRY, make_acquisition
from course_utils.campaign.arrival import ARRIVAL_REGISTRY, Arrival, ArrivalError
from course_utils.campaign.parameters import CampaignParameters
from course_utils.campaign.parts import (
    Acquisition,
    Registry,
    RetrainPolicy,
    Simulator,
    StopRule,
    TrustCheck,
)
from course_utils.campaign.parts import Arrival as ArrivalContract
from course_utils.campaign.retraining import RETRAIN_REGISTRY, RetrainPolicyError
from course_utils.campaign.runner import Campaign
from course_utils.campaign.simulators import SIMULATOR_REGISTRY, make_simulator
from course_utils.campaign.stopping import STOP_RULE_REGISTRY, ConvergedRule, StopRuleError
from course_utils.campaign.trust import TrustLedger
from course_utils.ml.contract import Model
from course_utils.ml.registry import MODEL_REGISTRY, MODELS, ModelError, make_model, parse_model

REGISTRIES = [ACQUISITION_REGISTRY, ARRIVAL_REGISTRY, RETRAIN_REGISTRY, STOP_RULE_REGISTRY,
              MODEL_REGISTRY]


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_an_unknown_name_is_one_line_listing_the_known_ones(registry):
    with pytest.raises(ValueError) as err:
        registry.make("no-such-part:x=1")
    message = str(err.value)
    assert "\n" not in message and "no-such-part" in message
    assert all(spelling in message for spelling in registry.spellings)
    assert isinstance(err.value, registry.error)


def test_the_unknown_simulator_message_is_kept():
    with pytest.raises(ValueError, match="^unknown simulator 'mopac'; choose one of xtb, replay$"):
        make_simulator("mopac", engine=None, walltime=1.0, workers=1, space=[], space_name="qm9")
    assert SIMULATOR_REGISTRY.names == ("xtb", "replay")


@pytest.mark.parametrize("text, expected", [
    ("greedy", "greedy"), ("ucb", "ucb"), ("epsilon-greedy", "epsilon-greedy"),
    ("random", "random"), (" UCB ", "ucb")])
def test_each_acquisition_round_trips(text, expected):
    part = ACQUISITION_REGISTRY.make(text)
    assert part.name == expected and isinstance(part, Acquisition)
    assert ACQUISITION_REGISTRY.make(part.name) == part


def test_options_are_parsed_and_typed():
    assert ACQUISITION_REGISTRY.make("ucb:kappa=2.5").kappa == 2.5
    assert make_acquisition("ucb", ucb_kappa=3.0).kappa == 3.0  # the campaign's knob
    assert make_acquisition("epsilon-greedy:epsilon=0.3", epsilon=0.9).epsilon == 0.3
    rule = STOP_RULE_REGISTRY.make("converged:window=8,delta=0.01")
    assert rule == ConvergedRule(window=8, delta=0.01)
    assert RETRAIN_REGISTRY.make("growth:0.25").growth == 0.25
    assert ARRIVAL_REGISTRY.make("waves:4,every:8") == Arrival("waves:4,every:8", 4, 8)
    knn = parse_model("knn:k=6,radius=2,length=128")
    assert (knn.n_neighbors, knn.radius, knn.length) == (6, 2, 128)
    assert make_model("knn", n_neighbors=5).n_neighbors == 5


@pytest.mark.parametrize("registry, text, error, words", [
    (STOP_RULE_REGISTRY, "converged:window=x,delta=0.1", StopRuleError, "window=x must be"),
    (STOP_RULE_REGISTRY, "converged:delta=0.1", StopRuleError, "needs window=..."),
    (STOP_RULE_REGISTRY, "budget:delta=1", StopRuleError, "takes no options"),
    (RETRAIN_REGISTRY, "every-batch:3", RetrainPolicyError, "is unknown"),
    (ARRIVAL_REGISTRY, "all:3", ArrivalError, "is unknown"),
    (MODEL_REGISTRY, "knn:k=2,k=3", ModelError, "k is given twice"),
    (MODEL_REGISTRY, "knn:depth=3", ModelError, "unknown option 'depth' for knn"),
    (MODEL_REGISTRY, "knn:k", ModelError, "'k' is not key=value")])
def test_bad_options_say_which_in_one_line(registry, text, error, words):
    with pytest.raises(error, match=words) as err:
        registry.make(text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("registry", [RETRAIN_REGISTRY, STOP_RULE_REGISTRY, ARRIVAL_REGISTRY],
                         ids=lambda r: r.kind)
def test_each_registered_spelling_round_trips(registry):
    examples = {"count": "count:5", "growth": "growth:0.25", "converged":
                "converged:window=3,delta=0.02,top=2", "predicted":
                "predicted:delta=0.05,min_points=10", "waves": "waves:3,every:8"}
    for name in registry.names:
        part = registry.make(examples.get(name, name))
        assert registry.make(part.text) == part
        assert isinstance(part, RetrainPolicy | StopRule | ArrivalContract)


def test_every_model_name_round_trips_and_keeps_the_contract():
    assert "knn" in MODELS
    for name in MODELS:
        model = make_model(name)
        assert isinstance(model, Model) and model.name == name
        described = model.describe()
        assert described["name"] == name and parse_model(name).describe() == described
        assert make_model(name, **described["options"]).describe() == described
        json.dumps(described)


def test_model_errors_are_one_line_value_errors():
    for text in ("gp:x=1", "", "knn:k=0", "knn:length=100"):
        with pytest.raises(ModelError) as err:
            parse_model(text)
        assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
    with pytest.raises(ModelError, match="^model 'svm' is unknown; choose one of knn"):
        make_model("svm")


def test_a_registry_keeps_its_factories_and_messages():
    shapes: Registry[str] = Registry("shape")

    @shapes.register("square", options={"side": float}, required=("side",))
    def square(side: float) -> str:
        return f"square {side}"

    assert shapes.make("Square:side=2") == "square 2.0" and "square" in shapes
    with pytest.raises(ValueError, match=r"^shape 'square': square needs side=\.\.\. \(square\)$"):
        shapes.make("square")
    with pytest.raises(ValueError, match="side=big could not convert"):
        shapes.make("square:side=big")


def test_the_campaign_is_one_class_holding_its_parts(tmp_path):
    assert Campaign.__bases__ == (object,)
    params = CampaignParameters(initial_training_count=6, max_training_count=8, batch_size=2,
                                search_space="truth:qm9:4000", simulator="replay",
                                trust_tol=0.5, model="knn:k=4")
    campaign = Campaign(params, tmp_path, progress=False)
    try:
        assert isinstance(campaign.simulator, Simulator)
        assert isinstance(campaign.model, Model) and campaign.model.name == "knn"
        assert isinstance(campaign.acquisition, Acquisition)
        assert isinstance(campaign.retrain_policy, RetrainPolicy)
        assert isinstance(campaign.stop_rule, StopRule)
        assert isinstance(campaign.arrival, ArrivalContract)
        assert isinstance(campaign.trust, TrustLedger) and isinstance(campaign.trust, TrustCheck)
    finally:
        campaign.release_lock()


def test_random_search_needs_no_model_and_ranks_reproducibly():
    predictions = pd.DataFrame({"smiles": list("abcde"), "ie": 0.0, "ie_spread": 0.0})
    part = ACQUISITION_REGISTRY.make("random")
    assert not part.needs_model and ACQUISITION_REGISTRY.make("greedy").needs_model
    first = list(part.rank(predictions, {"c"}, np.random.default_rng(1)))
    assert sorted(first) == list("abde")
    assert first == list(part.rank(predictions, {"c"}, np.random.default_rng(1)))
