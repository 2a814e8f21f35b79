"""The random forest: contract, the trees' spread as std, tree samples, pickling, options."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from course_utils.ml.fingerprints import count_fingerprints, dense_counts
from course_utils.ml.forest import ForestModel
from tests.model_data import split


@pytest.fixture(scope="module")
def data():
    return split(200, 100)


@pytest.fixture(scope="module")
def fitted(data):
    train, _ = data
    return ForestModel(n_trees=20).fit(train["smiles"], train["ie"].to_numpy())


def _sklearn_twin(train):
    """The same forest fitted by scikit-learn directly, to compare the compiled walk with."""
    features = dense_counts(count_fingerprints(train["smiles"]), 2048)
    return RandomForestRegressor(n_estimators=20, max_features=0.33, min_samples_leaf=3,
                                 random_state=0, n_jobs=1).fit(features, train["ie"])


def test_predict_shapes_dtypes_and_learning(fitted, data):
    train, test = data
    mean, std = fitted.predict(test["smiles"])
    assert mean.shape == std.shape == (len(test),)
    assert mean.dtype == std.dtype == np.float64
    baseline = np.abs(train["ie"].mean() - test["ie"]).mean()
    assert np.abs(mean - test["ie"]).mean() < baseline


def test_mean_and_std_are_the_trees_average_and_spread(fitted, data):
    train, test = data
    twin = _sklearn_twin(train)
    features = dense_counts(count_fingerprints(test["smiles"]), 2048)
    per_tree = np.stack([tree.predict(features) for tree in twin.estimators_])
    mean, std = fitted.predict(test["smiles"])
    np.testing.assert_allclose(mean, twin.predict(features), rtol=1e-12)
    np.testing.assert_allclose(std, per_tree.std(axis=0), atol=1e-9)
    assert std.max() > 0


def test_sample_returns_individual_trees(fitted, data):
    train, test = data
    features = dense_counts(count_fingerprints(test["smiles"]), 2048)
    per_tree = np.stack([tree.predict(features) for tree in _sklearn_twin(train).estimators_])
    draws = fitted.sample(test["smiles"], 5, np.random.default_rng(1))
    assert draws.shape == (5, len(test))
    for row in draws:
        assert np.any(np.all(np.abs(per_tree - row) < 1e-12, axis=1))  # each is one tree
    assert fitted.sample(test["smiles"], 30, np.random.default_rng(1)).shape == (30, len(test))


def test_describe_json_safe_and_pickle_round_trip(fitted, data):
    _, test = data
    description = fitted.describe()
    json.dumps(description, allow_nan=False)
    assert description["name"] == "rf" and description["options"]["n_trees"] == 20
    assert description["fitted"]["n_train"] == 200
    again = pickle.loads(pickle.dumps(fitted))
    for a, b in zip(fitted.predict(test["smiles"]), again.predict(test["smiles"]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_random_state_makes_it_reproducible_and_changes_it(data):
    train, test = data
    fit = lambda state: ForestModel(n_trees=5, random_state=state).fit(  # noqa: E731
        train["smiles"], train["ie"].to_numpy()).predict(test["smiles"])[0]
    np.testing.assert_array_equal(fit(3), fit(3))
    assert not np.array_equal(fit(3), fit(4))


@pytest.mark.parametrize("options, message", [
    ({"n_trees": 0}, "rf option n_trees must be an integer >= 1, got 0"),
    ({"max_features": 1.5}, "rf option max_features must be in (0, 1], got 1.5"),
    ({"min_samples_leaf": "2"}, "rf option min_samples_leaf must be an integer >= 1, got '2'"),
    ({"length": 0}, "rf option length must be a positive multiple of 64, got 0"),
])
def test_invalid_options_one_line(options, message):
    with pytest.raises(ValueError) as info:
        ForestModel(**options)
    assert str(info.value) == message
