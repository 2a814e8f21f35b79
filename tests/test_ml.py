"""Tests for course_utils.ml.fingerprints: equivalence with the tutorial's sklearn pipeline, and caching."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import pairwise_distances

from course_utils.ml import fingerprints as ml
from course_utils.ml import knn, morgan, neighbours

# Small QM9-like molecules (C, N, O, F; <= 9 heavy atoms), written for these tests.
# fmt: off
BASE_SMILES = [
    "C", "N", "O", "C#C", "C#N", "C=O", "CC", "CO", "CN", "CF",
    "C=C", "CC#C", "CC#N", "CC=O", "CCO", "CCN", "COC", "CNC", "OCO", "NC=O",
    "CC(C)C", "CC(C)O", "CC(=O)C", "CC(=O)O", "CC(=O)N", "OCC=O", "NCC#N", "C1CC1", "C1CO1",
    "C1CN1", "C1CCC1", "C1COC1", "C1CCCC1", "C1CCOC1", "C1CCNC1", "O=C1CCC1", "C1CCCCC1",
    "c1ccccc1", "c1ccncc1", "c1ccoc1", "c1cc[nH]c1", "c1ncc[nH]1", "c1cnoc1", "Cc1ccccc1",
    "Oc1ccccc1", "Nc1ccccc1", "Fc1ccccc1", "N#Cc1ccccc1", "CC1=CC=CC1", "C1=CCC=C1",
    "CC(C)(C)O", "CCCCO", "CCOC=O", "COCC#N", "CC(O)C#C", "OC1CC1", "NC1CC1C#N",
    "CC12CC1C2", "C1C2CC1C2", "O=C1NC=CC1", "CN(C)C=O", "OCC(O)CO", "FC(F)F", "CC(F)(F)C",
]
# fmt: on
# Combinations give many near-duplicate pairs, hence many tied distances, like QM9.
_HEADS = ["C", "CC", "CCC", "CC(C)", "C=C", "C#C", "C1CC1", "OCC", "NCC", "COC", "CC(=O)"]
_TAILS = ["O", "N", "C#N", "C=O", "F", "OC", "C(N)=O", "CO", "C#C", "C(F)(F)F", "C1CC1"]


def _canonical(smiles: list[str]) -> list[str]:
    from rdkit import Chem

    seen: dict[str, None] = {}
    for smi in smiles:
        seen.setdefault(Chem.MolToSmiles(Chem.MolFromSmiles(smi)), None)
    return list(seen)


MOLECULES = _canonical(BASE_SMILES + [h + t for h in _HEADS for t in _TAILS])


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from original_tutorial import legacy_fingerprint  # noqa: E402  (the tutorial's own code path)
from original_tutorial import original_pipeline as original_model  # noqa: E402


def unpack(fp: np.ndarray, length: int = 256) -> np.ndarray:
    """Documented layout: bit i is bit i % 64 (LSB first) of word i // 64."""
    bits = np.unpackbits(fp.astype("<u8").view(np.uint8), axis=1, bitorder="little")
    return bits[:, :length].astype(bool)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """Per-test cache directory and empty memory cache, so tests cannot see each other."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("COURSE_UTILS_CACHE_DIR", str(directory))
    ml.clear_memory_cache()
    yield directory
    ml.clear_memory_cache()


@pytest.fixture
def split() -> tuple[pd.DataFrame, list[str]]:
    """Seeded train/query split; queries include exact copies of training molecules."""
    rng = np.random.default_rng(7)
    order = rng.permutation(len(MOLECULES))
    train_idx, query_idx = order[:80], order[80:]
    train = pd.DataFrame(
        {
            "smiles": [MOLECULES[i] for i in train_idx],
            "ie": rng.normal(13.5, 1.0, size=len(train_idx)),
        }
    )
    queries = [MOLECULES[i] for i in query_idx] + list(train["smiles"][:5])
    return train, queries


# ------------------------------------------------------------------------ fingerprints


def test_generator_matches_legacy_bits(cache_dir):
    assert len(MOLECULES) >= 150
    packed = ml.fingerprints(MOLECULES)
    assert packed.shape == (len(MOLECULES), 4) and packed.dtype == np.uint64
    legacy = np.vstack([legacy_fingerprint(s) for s in MOLECULES])
    np.testing.assert_array_equal(unpack(packed), legacy)


def test_other_radius_and_length(cache_dir):
    packed = ml.fingerprints(MOLECULES[:30], radius=2, length=128)
    assert packed.shape == (30, 2)
    legacy = np.vstack([legacy_fingerprint(s, 128, 2) for s in MOLECULES[:30]])
    np.testing.assert_array_equal(unpack(packed, 128), legacy)


@pytest.mark.parametrize("length", [0, 100, -64])
def test_bad_length_rejected(length):
    with pytest.raises(ValueError, match="multiple of 64"):
        ml.fingerprints(["C"], length=length)


def test_invalid_smiles_named(cache_dir):
    with pytest.raises(ml.InvalidSmilesError, match=r"position 2: 'C1CC'") as info:
        ml.fingerprints(["CCO", "CC", "C1CC", "CN"])
    assert isinstance(info.value, ml.FingerprintError)
    assert isinstance(info.value, ValueError)
    assert info.value.smiles == "C1CC" and info.value.position == 2
    with pytest.raises(ml.InvalidSmilesError, match="position 1: None .not a string"):
        ml.fingerprints(["CCO", None])  # type: ignore[list-item]


def test_non_string_in_cached_input_named(cache_dir, monkeypatch):
    monkeypatch.setattr(ml, "CACHE_MIN_SIZE", 1)  # the cache key is hashed first
    with pytest.raises(ml.InvalidSmilesError, match="position 3: nan"):
        ml.fingerprints(pd.Series(["C", "CC", "CCC", np.nan, "CO"]))


def test_progress_bar_runs(cache_dir):
    out = ml.fingerprints(MOLECULES[:10], progress=True)
    assert out.shape == (10, 4)


# -------------------------------------------------------------------------- caching


def test_disk_cache_reused_without_recomputing(cache_dir, monkeypatch):
    monkeypatch.setattr(ml, "CACHE_MIN_SIZE", 1)
    first = ml.fingerprints(MOLECULES)
    files = list(cache_dir.glob("fp-*.npy"))
    assert len(files) == 1 and len(files[0].stem) == len("fp-") + 64
    assert not list(cache_dir.glob("*.tmp")), "temporary file left behind"
    assert files[0].stat().st_mode & 0o044 == 0o044  # readable by a shared class cache
    assert ml.fingerprints(MOLECULES) is first  # memory hit
    assert not first.flags.writeable  # cached arrays must not be mutated by callers

    def boom(*args, **kwargs):
        raise AssertionError("fingerprints were recomputed")

    ml.clear_memory_cache()
    monkeypatch.setattr(ml, "compute_kinds", boom)
    second = ml.fingerprints(MOLECULES)
    np.testing.assert_array_equal(second, first)
    # A different parameter set is a different key, so it must compute (and hit boom).
    with pytest.raises(AssertionError, match="recomputed"):
        ml.fingerprints(MOLECULES, radius=3)


def test_cache_dir_read_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setattr(ml, "CACHE_MIN_SIZE", 1)
    monkeypatch.delenv("COURSE_UTILS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ml.default_cache_dir() == tmp_path / "xdg" / "course_utils"
    monkeypatch.setenv("COURSE_UTILS_CACHE_DIR", str(tmp_path / "env"))
    assert ml.default_cache_dir() == tmp_path / "env"
    ml.clear_memory_cache()
    ml.fingerprints(MOLECULES[:20])
    assert len(list((tmp_path / "env").glob("fp-*.npy"))) == 1
    explicit = tmp_path / "explicit"
    ml.clear_memory_cache()
    ml.fingerprints(MOLECULES[:20], cache_dir=explicit)
    assert len(list(explicit.glob("fp-*.npy"))) == 1
    ml.clear_memory_cache()


def test_unwritable_cache_dir_does_not_crash(tmp_path, monkeypatch):
    # A regular file where the directory should be fails even for root.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setattr(ml, "CACHE_MIN_SIZE", 1)
    ml.clear_memory_cache()
    with pytest.warns(RuntimeWarning, match="disk cache disabled"):
        out = ml.fingerprints(MOLECULES[:20], cache_dir=blocker / "sub")
    np.testing.assert_array_equal(out, morgan._compute_fingerprints(MOLECULES[:20], 4, 256, False))
    ml.clear_memory_cache()


def test_corrupt_cache_file_is_recomputed(cache_dir, monkeypatch):
    monkeypatch.setattr(ml, "CACHE_MIN_SIZE", 1)
    good = ml.fingerprints(MOLECULES[:20]).copy()
    (path,) = cache_dir.glob("fp-*.npy")
    path.write_bytes(b"garbage")
    ml.clear_memory_cache()
    np.testing.assert_array_equal(ml.fingerprints(MOLECULES[:20]), good)
    np.testing.assert_array_equal(np.load(path), good)  # repaired on the way


def test_small_inputs_skip_caches(cache_dir):
    ml.fingerprints(MOLECULES[:10])
    assert not cache_dir.exists() or not list(cache_dir.iterdir())


# ------------------------------------------------------------------------ distances


def test_tanimoto_matches_sklearn_jaccard(cache_dir, monkeypatch):
    fps = ml.fingerprints(MOLECULES)
    empty = np.zeros((1, 4), dtype=np.uint64)  # all-false row: 0/0 is defined as 0
    query = np.vstack([fps[:60], empty])
    train = np.vstack([fps[60:], empty])
    expected = pairwise_distances(unpack(query), unpack(train), metric="jaccard")
    got = neighbours.tanimoto_distances(query, train)
    np.testing.assert_array_equal(got, expected)  # bit-identical, not just close
    assert got[-1, -1] == 0.0
    monkeypatch.setattr(neighbours, "MAX_BLOCK_ELEMENTS", 50)  # force many query chunks
    np.testing.assert_array_equal(neighbours.tanimoto_distances(query, train), expected)


def test_tanimoto_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="lengths differ"):
        neighbours.tanimoto_distances(np.zeros((2, 4), np.uint64), np.zeros((2, 2), np.uint64))
    with pytest.raises(ValueError, match="uint64"):
        neighbours.tanimoto_distances(np.zeros((2, 256), bool), np.zeros((2, 4), np.uint64))


# --------------------------------------------------------------------------- model


def _reference_distances(train: pd.DataFrame, queries: list[str]) -> np.ndarray:
    """scipy's Jaccard distances on the tutorial's own fingerprints."""
    featurize = original_model()[0]
    return pairwise_distances(
        featurize.transform(queries), featurize.transform(train["smiles"]), "jaccard"
    )


def _unambiguous(dist: np.ndarray, k: int = 4) -> np.ndarray:
    """Rows whose k nearest are one set: the k-th and (k+1)-th distances differ."""
    ordered = np.sort(dist, axis=1)
    return ordered[:, k - 1] != ordered[:, k]


def test_run_model_matches_original_pipeline_where_neighbours_are_unambiguous(cache_dir, split):
    train, queries = split
    expected = original_model().fit(train["smiles"], train["ie"]).predict(queries)
    model = knn.train_model(train)
    result = knn.run_model(model, queries)
    assert list(result.columns) == ["smiles", "ie", "ie_spread"]
    assert result["smiles"].tolist() == queries

    # The split really exercises exact matches and ties at the k-th neighbour.
    dist = _reference_distances(train, queries)
    clear = _unambiguous(dist)
    assert (np.sort(dist, axis=1)[:, 0] == 0).sum() >= 5
    assert (~clear).sum() >= 5 and clear.sum() >= 40
    got = result["ie"].to_numpy()
    np.testing.assert_allclose(got[clear], expected[clear], rtol=0, atol=1e-12)

    # Exact copies of training molecules predict (the mean of) their own value.
    for smi in train["smiles"][:5]:
        same = unpack(ml.fingerprints([smi]))
        matches = (unpack(model.train_fps) == same).all(axis=1)
        row = result.index[result["smiles"] == smi][0]
        assert result.loc[row, "ie"] == pytest.approx(train["ie"][matches].mean(), abs=1e-12)


def test_neighbours_are_sklearns_with_ties_to_the_earlier_molecule(cache_dir, split):
    train, queries = split
    reference = original_model().fit(train["smiles"], train["ie"])
    ref_dist, ref_ind = reference[1].kneighbors(reference[0].transform(queries))
    model = knn.train_model(train)
    dist, ind = model.kneighbors(queries)
    np.testing.assert_array_equal(dist, ref_dist)  # the same k distances, bit for bit
    clear = _unambiguous(_reference_distances(train, queries))
    np.testing.assert_array_equal(np.sort(ind[clear], axis=1), np.sort(ref_ind[clear], axis=1))
    # Ties: the earlier training molecule wins, which is what a stable sort gives.
    stable = np.argsort(_reference_distances(train, queries), axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(ind, stable)
    # sklearn's choice among equidistant neighbours is argpartition's and is NOT stable, so
    # this test tells the two rules apart.
    assert (np.sort(stable, axis=1) != np.sort(ref_ind, axis=1)).any()
    _, spread = model.predict_with_spread(queries)
    np.testing.assert_allclose(spread, np.std(train["ie"].to_numpy()[stable], axis=1))
    assert (spread >= 0).all()


def test_ties_go_to_the_earlier_training_molecule(cache_dir):
    """Six identical training fingerprints with distinct targets, k=4: which four win."""
    train = pd.DataFrame(
        {
            "smiles": ["CCO"] * 6 + ["CCN", "c1ccccc1", "CC(=O)O", "C1CC1"],
            "ie": [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 9.0, 9.5, 16.0, 8.0],
        }
    )
    model = knn.train_model(train)
    # An exact copy averages its exact matches: the first four copies, not any four.
    assert model.predict(["CCO"])[0] == pytest.approx(11.5, abs=1e-12)
    _, ind = model.kneighbors(["CCCO", "OCCO"])
    assert ind.tolist() == [[0, 1, 2, 3]] * 2  # all six copies tie nearest: the first four


def test_predict_accepts_fingerprints_and_single_smiles(cache_dir, split):
    train, queries = split
    model = knn.train_model(train)
    fps = ml.fingerprints(queries)
    np.testing.assert_array_equal(model.predict(fps), model.predict(queries))
    assert model.predict(queries[0]).shape == (1,)
    with pytest.raises(ValueError, match="words"):
        model.predict(fps[:, :2].copy())


def test_run_model_keeps_series_index(cache_dir, split):
    train, queries = split
    model = knn.train_model(train)
    index = [100, 101, 102, 102, 7, 6, 5, 5, 5, 0]  # unsorted, with duplicate labels
    series = pd.Series(queries[:10], index=index, name="SMILES")
    result = knn.run_model(model, series)
    assert result.index.tolist() == index
    assert list(result.columns) == ["smiles", "ie", "ie_spread"]
    assert result["smiles"].tolist() == queries[:10]
    np.testing.assert_array_equal(result["ie"], knn.run_model(model, queries[:10])["ie"])


def test_train_model_validation():
    few = pd.DataFrame({"smiles": ["C", "CC", "CCC"], "ie": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="need at least 4 training molecules, got 3"):
        knn.train_model(few)
    with pytest.raises(ValueError, match="missing column"):
        knn.train_model(pd.DataFrame({"smiles": ["C"] * 5}))
    nan = pd.DataFrame({"smiles": ["C", "CC", "CCC", "CO"], "ie": [1.0, np.nan, 3.0, 4.0]})
    with pytest.raises(ValueError, match="NaN.*'CC'"):
        knn.train_model(nan)
    with pytest.raises(ml.InvalidSmilesError, match="position 1"):
        knn.train_model(pd.DataFrame({"smiles": ["C", "C1C", "CCC", "CO"], "ie": [1.0] * 4}))


def test_model_pickle_round_trip(cache_dir, split):
    train, queries = split
    model = knn.train_model(train)
    clone = pickle.loads(pickle.dumps(model))
    assert clone.train_smiles == model.train_smiles and clone.n_neighbors == 4
    np.testing.assert_array_equal(clone.predict(queries), model.predict(queries))
    run = pickle.loads(pickle.dumps(knn.run_model))  # sent to Parsl workers by reference
    pd.testing.assert_frame_equal(run(clone, queries), knn.run_model(model, queries))


# ---------------------------------------------------------------------- benchmark


def test_benchmark_smoke(capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ml.py"
    spec = importlib.util.spec_from_file_location("bench_ml", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--n", "300", "--repeats", "1", "--original-repeats", "1"])
    out = capsys.readouterr().out
    assert "ML iteration speed-up (original / ours, warm cache):" in out
    assert results["speedup"] > 0
    assert results["max_abs_diff"] <= 1e-9  # on molecules whose 4 nearest are unambiguous
    assert 0 < results["n_unambiguous"] <= 300


# --- the KNN as a model part (course_utils.ml.contract.Model) ------------------------------------
def test_knn_part_gives_train_model_and_predict_with_spread_bit_for_bit(cache_dir, split):
    from course_utils.ml.contract import Model, prediction_table

    train, queries = split
    for k in (1, 4, 7):
        part = knn.KNN(n_neighbors=k)
        assert isinstance(part, Model)
        assert part.fit(train["smiles"].tolist(), train["ie"].to_numpy()) is part
        mean, std = part.predict(queries)
        ie, spread = knn.train_model(train, n_neighbors=k).predict_with_spread(queries)
        assert mean.dtype == std.dtype == np.float64 and mean.shape == (len(queries),)
        np.testing.assert_array_equal(mean, ie)
        np.testing.assert_array_equal(std, spread)
        table = prediction_table(part, queries)
        assert table["smiles"].tolist() == list(queries)
        np.testing.assert_array_equal(table["ie_spread"].to_numpy(), spread)


def test_knn_part_describes_itself_in_json_and_pickles(cache_dir, split):
    import json

    train, queries = split
    part = knn.KNN(n_neighbors=3, radius=2, length=128)
    assert json.loads(json.dumps(part.describe())) == {
        "name": "knn", "options": {"n_neighbors": 3, "radius": 2, "length": 128}, "fitted": {}}
    with pytest.raises(ValueError, match="not fitted yet"):
        part.predict(queries)
    part.fit(train["smiles"], train["ie"].to_numpy())
    described = json.loads(json.dumps(part.describe()))
    assert described["fitted"] == {"train_size": len(train)}
    again = pickle.loads(pickle.dumps(part))
    np.testing.assert_array_equal(again.predict(queries)[0], part.predict(queries)[0])
    old = knn.KNN.from_fitted(part.fitted)  # a version saved as a bare KNNModel
    assert old.describe() == part.describe()


def test_knn_space_scorer_equals_predict_on_the_whole_space(cache_dir, split):
    train, queries = split
    space = list(queries) + train["smiles"].tolist()
    scorer = knn.KNN().space_scorer(space)
    assert scorer.serves(knn.KNN()) and not scorer.serves(knn.KNN(n_neighbors=5))
    for size in (6, 12, len(train)):
        part = knn.KNN()
        smiles, ie = train["smiles"].tolist()[:size], train["ie"].to_numpy()[:size]
        scores = scorer.fit_and_score(part, smiles, ie)
        np.testing.assert_array_equal(scores, np.column_stack(part.predict(space)))
