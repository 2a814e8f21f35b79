"""The GP (Tanimoto kernel by default, MinMax as an option): contract, fitted hyperparameters,
interpolation, uncertainty, pickling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from course_utils.ml.fingerprints import count_fingerprints
from course_utils.ml.gp import TanimotoGP
from course_utils.ml.registry import ModelError, parse_model
from tests.model_data import split


@pytest.fixture(scope="module")
def data():
    return split(150, 100)


@pytest.fixture(scope="module")
def fitted(data):
    train, _ = data
    return TanimotoGP().fit(train["smiles"], train["ie"].to_numpy())


def test_predict_shapes_dtypes_and_learning(fitted, data):
    train, test = data
    mean, std = fitted.predict(test["smiles"])
    assert mean.shape == std.shape == (len(test),)
    assert mean.dtype == std.dtype == np.float64
    assert (std > 0).all()
    baseline = np.abs(train["ie"].mean() - test["ie"]).mean()
    assert np.abs(mean - test["ie"]).mean() < baseline  # it learns


def test_interpolates_training_molecules_with_small_noise(data):
    train, _ = data
    model = TanimotoGP(noise=1e-3).fit(train["smiles"], train["ie"].to_numpy())
    mean, std = model.predict(train["smiles"][:20])
    np.testing.assert_allclose(mean, train["ie"][:20], atol=0.02)
    assert std.max() < 0.05


def test_std_larger_far_from_data(fitted, data):
    train, _ = data
    _, at_train = fitted.predict(train["smiles"][:20])
    _, far = fitted.predict(["FC(F)(F)C(F)(F)F", "ClCCl", "S=C=S"])  # atoms QM9 lacks
    assert far.min() > at_train.max()


def test_hyperparameters_are_fitted_and_json_safe(fitted, data):
    _, test = data
    other = TanimotoGP().fit(test["smiles"], test["ie"].to_numpy() * 2.0)
    first, second = fitted.describe(), other.describe()
    json.dumps(first, allow_nan=False)
    assert first["name"] == "gp" and first["options"] == {"radius": 2, "length": 2048, "noise": None,
                                                           "mean": "fitted", "kernel": "tanimoto"}
    for key in ("signal_std_ev", "noise_std_ev", "constant_mean_ev"):
        assert first["fitted"][key] != second["fitted"][key]
    assert second["fitted"]["signal_std_ev"] > first["fitted"]["signal_std_ev"]
    assert TanimotoGP().describe()["fitted"] == {}


def test_training_mean_option_fixes_the_constant_mean(fitted, data):
    """``mean="training"``: the constant is the training average, not the likelihood's estimate,
    and the amplitude and noise are still fitted around it."""
    train, _ = data
    # ten molecules found five more times each with high IEs: a cluster a search would gather
    smiles = train["smiles"].tolist() + train["smiles"].tolist()[:10] * 5
    y = np.concatenate([train["ie"].to_numpy(), np.tile(train["ie"].to_numpy()[:10] + 2.0, 5)])
    fitted_mean = TanimotoGP().fit(smiles, y)
    training = TanimotoGP(mean="training").fit(smiles, y)
    assert training.describe()["options"]["mean"] == "training"
    assert training.fitted["constant_mean_ev"] == pytest.approx(y.mean())
    assert fitted_mean.fitted["constant_mean_ev"] < y.mean() - 0.1  # the cluster is discounted
    assert training.fitted["signal_std_ev"] > 0 and training.fitted["noise_std_ev"] > 0
    far = ["FC(F)(F)C(F)(F)F", "S=C=S"]  # unlike any training molecule: the mean is the prior
    np.testing.assert_allclose(training.predict(far)[0], y.mean(), atol=0.3)


def test_pickle_round_trip_predicts_identically(fitted, data):
    _, test = data
    again = pickle.loads(pickle.dumps(fitted))
    for a, b in zip(fitted.predict(test["smiles"]), again.predict(test["smiles"]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_sample_shape_and_spread(fitted, data):
    _, test = data
    draws = fitted.sample(test["smiles"], 200, np.random.default_rng(0))
    mean, std = fitted.predict(test["smiles"])
    assert draws.shape == (200, len(test))
    np.testing.assert_allclose(draws.std(axis=0), std, rtol=0.3)


@pytest.mark.parametrize("options, message", [
    ({"radius": -1}, "gp option radius must be an integer >= 0, got -1"),
    ({"length": 100}, "gp option length must be a positive multiple of 64, got 100"),
    ({"noise": 0}, "gp option noise must be a number > 0, got 0"),
    ({"radius": 2.5}, "gp option radius must be an integer >= 0, got 2.5"),
    ({"mean": "zero"}, "gp option mean must be one of fitted, training, got 'zero'"),
    ({"kernel": "rbf"}, "gp option kernel must be one of tanimoto, minmax, got 'rbf'"),
])
def test_invalid_options_one_line(options, message):
    with pytest.raises(ValueError) as info:
        TanimotoGP(**options)
    assert str(info.value) == message


def test_predict_before_fit_and_bad_targets():
    with pytest.raises(ValueError, match="fit the model before predicting"):
        TanimotoGP().predict(["C"])
    with pytest.raises(ValueError, match="NaN"):
        TanimotoGP().fit(["C", "CC"], np.array([1.0, np.nan]))


# ------------------------------------------------------------------------- MinMax kernel


@pytest.fixture(scope="module")
def minmax(data):
    train, _ = data
    return TanimotoGP(kernel="minmax").fit(train["smiles"], train["ie"].to_numpy())


def test_minmax_kernel_option_parses_and_is_recorded(minmax):
    model = parse_model("gp:mean=training,kernel=minmax")
    assert (model.kernel, model.mean) == ("minmax", "training")
    assert parse_model("gp").kernel == "tanimoto"  # the default (see gp.KERNELS for why)
    options = minmax.describe()["options"]
    assert options == {"radius": 2, "length": 2048, "noise": None, "mean": "fitted",
                       "kernel": "minmax"}
    json.dumps(minmax.describe(), allow_nan=False)


def test_minmax_kernel_bad_value_is_one_line():
    with pytest.raises(ModelError) as info:
        parse_model("gp:kernel=MinMax")
    assert str(info.value) == ("model 'gp:kernel=MinMax': gp option kernel must be one of "
                               "tanimoto, minmax, got 'MinMax'")


def test_minmax_gp_learns_and_scores_in_blocks(minmax, data, monkeypatch):
    train, test = data
    mean, std = minmax.predict(test["smiles"])
    assert mean.shape == std.shape == (len(test),) and (std > 0).all()
    baseline = np.abs(train["ie"].mean() - test["ie"]).mean()
    assert np.abs(mean - test["ie"]).mean() < baseline
    # blocks of 7 rows (a level buffer reused across blocks) give the same predictions
    monkeypatch.setattr("course_utils.ml.gp.BLOCK_ROWS", 7)
    for a, b in zip(minmax.predict(test["smiles"]), (mean, std), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)  # the std goes through float32 GEMMs
    entries = count_fingerprints(test["smiles"], radius=2, length=2048)
    np.testing.assert_allclose(minmax.predict_fps(entries)[0], mean, rtol=1e-12)
    with pytest.raises(ValueError, match="count fingerprints"):
        minmax.predict_fps(np.zeros((2, 32), dtype=np.uint64))


def test_minmax_tells_apart_what_bits_cannot(data):
    """Cyclohexane and cycloheptane have the same bit fingerprint: the Tanimoto GP must predict
    them alike, the MinMax GP need not."""
    train, _ = data
    smiles = train["smiles"].tolist() + ["C1CCCCC1", "C1CCCCCC1"]
    y = np.concatenate([train["ie"].to_numpy(), [10.0, 12.0]])
    pair = ["C1CCCCC1", "C1CCCCCC1"]
    bits = TanimotoGP(noise=0.05, kernel="tanimoto").fit(smiles, y).predict(pair)[0]
    counts = TanimotoGP(noise=0.05, kernel="minmax").fit(smiles, y).predict(pair)[0]
    assert bits[0] == pytest.approx(bits[1], abs=1e-9)
    assert counts[1] - counts[0] > 1.0


def test_tanimoto_kernel_still_learns_and_old_versions_use_it(data):
    """``kernel=tanimoto`` spelled out learns, and a version pickled before the option existed
    (no ``kernel`` attribute) is scored with it."""
    train, test = data
    tanimoto = TanimotoGP(kernel="tanimoto").fit(train["smiles"], train["ie"].to_numpy())
    mean, std = tanimoto.predict(test["smiles"])
    assert np.abs(mean - test["ie"]).mean() < np.abs(train["ie"].mean() - test["ie"]).mean()
    assert tanimoto.describe()["options"]["kernel"] == "tanimoto"
    with pytest.raises(ValueError, match="packed bit fingerprints"):
        tanimoto.predict_fps(count_fingerprints(test["smiles"], radius=2, length=2048))
    old = pickle.loads(pickle.dumps(tanimoto))
    del old.kernel  # as pickled by the kit before the option existed
    assert old.describe()["options"]["kernel"] == "tanimoto"
    for a, b in zip(old.predict(test["smiles"]), (mean, std), strict=True):
        np.testing.assert_array_equal(a, b)
