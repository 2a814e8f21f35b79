"""Nearest neighbours: sklearn's distances, ties to the earlier molecule, incremental updates."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances

from course_utils.ml import neighbours as nb


def _sparse_fps(n: int, words: int, bits: int, seed: int) -> np.ndarray:
    """Packed fingerprints with few set bits, so many distances tie (as in QM9)."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((n, words * 64), dtype=bool)
    for row in dense:
        row[rng.choice(12, size=bits, replace=False)] = True  # bits from a small pool
    return np.packbits(dense, axis=1, bitorder="little").view("<u8")


def _reference(query: np.ndarray, train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """scipy's distances, then a stable sort: ties go to the earlier training row."""
    unpack = lambda fp: np.unpackbits(fp.view(np.uint8), axis=1, bitorder="little").astype(bool)  # noqa: E731
    dist = pairwise_distances(unpack(query), unpack(train), metric="jaccard")
    ind = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, ind, 1), ind


def test_nearest_is_a_stable_sort_of_scipy_distances():
    query, train = _sparse_fps(300, 4, 3, seed=1), _sparse_fps(60, 4, 3, seed=2)
    dist, ind = nb.nearest(query, train, 4)
    ref_dist, ref_ind = _reference(query, train, 4)
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_array_equal(dist, ref_dist)  # bit for bit
    ordered = np.sort(nb.tanimoto_distances(query, train), axis=1)
    assert (ordered[:, 3] == ordered[:, 4]).mean() > 0.5  # the data really is full of ties


def test_chunking_does_not_change_the_answer(monkeypatch):
    query, train = _sparse_fps(200, 2, 3, seed=3), _sparse_fps(40, 2, 3, seed=4)
    whole = nb.nearest(query, train, 5)
    monkeypatch.setattr(nb, "MAX_BLOCK_ELEMENTS", 50)
    for got, expected in zip(nb.nearest(query, train, 5), whole, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_keys_tell_the_closest_distinct_distances_apart_at_2048_bits():
    # 1/2047 and 1/2048 are the closest pair of distances with unions of at most 2048 bits.
    dist = np.array([[1 / 2047, 1 / 2048, 0.5, 1024 / 2048, 1.0, 0.0]])
    keys = nb._order_keys(dist, np.arange(6), 32)
    distance_part = keys >> nb._key_bits(32)[1]
    assert distance_part[0, 0] > distance_part[0, 1]
    assert distance_part[0, 2] == distance_part[0, 3]  # equal ratios, equal distances
    assert keys[0, 2] < keys[0, 3]  # then the earlier row first
    assert distance_part[0, 4] > distance_part[0, 0] > distance_part[0, 5] == 0
    assert (keys >= 0).all()  # a distance of 1.0 does not overflow into the sign bit


def test_incremental_updates_equal_a_fresh_search():
    query = _sparse_fps(500, 4, 3, seed=5)
    train = _sparse_fps(80, 4, 3, seed=6)
    inc = nb.IncrementalNeighbours(query, 4)
    searched = 0
    for size in (4, 10, 11, 30, 80):
        got = inc.update(train[:size])
        for a, b in zip(got, nb.nearest(query, train[:size], 4), strict=True):
            np.testing.assert_array_equal(a, b)
        assert inc.rows_searched == size  # only the appended rows were searched
        searched = inc.rows_searched
    inc.update(train)  # the same data again: nothing to search
    assert inc.rows_searched == searched


def test_rows_inserted_between_earlier_ones_are_the_only_ones_searched():
    """A campaign's training set is sorted by SMILES: new molecules land anywhere in it."""
    query = _sparse_fps(400, 4, 3, seed=11)
    pool = _sparse_fps(60, 4, 3, seed=12)
    names = [f"m{i:02d}" for i in np.random.default_rng(13).permutation(60)]
    inc = nb.IncrementalNeighbours(query, 4)
    for size in (8, 20, 45, 60):
        order = sorted(range(size), key=lambda i: names[i])  # earlier rows keep their order
        train, ids = pool[order], [names[i] for i in order]
        got = inc.update(train, ids)
        for a, b in zip(got, nb.nearest(query, train, 4), strict=True):
            np.testing.assert_array_equal(a, b)
        assert inc.rows_searched == size
    reordered = list(reversed(range(60)))  # the same rows in another order: search again
    got = inc.update(pool[reordered], [names[i] for i in reordered])
    np.testing.assert_array_equal(got[1], nb.nearest(query, pool[reordered], 4)[1])
    assert inc.rows_searched == 120
    with pytest.raises(ValueError, match="3 ids for 60"):
        inc.update(pool, ["a", "b", "c"])


def test_changed_training_data_starts_the_search_over():
    query = _sparse_fps(200, 4, 3, seed=7)
    train = _sparse_fps(30, 4, 3, seed=8)
    inc = nb.IncrementalNeighbours(query, 4)
    inc.update(train[:20])
    changed = train.copy()
    changed[[3, 5]] = changed[[5, 3]]  # same molecules, another order: positions differ
    for a, b in zip(inc.update(changed), nb.nearest(query, changed, 4), strict=True):
        np.testing.assert_array_equal(a, b)
    assert inc.rows_searched == 20 + 30
    shorter = inc.update(changed[:10])  # fewer rows: also a fresh search
    np.testing.assert_array_equal(shorter[1], nb.nearest(query, changed[:10], 4)[1])


def test_bad_inputs_are_refused_with_a_reason():
    query, train = _sparse_fps(5, 4, 3, seed=9), _sparse_fps(3, 4, 3, seed=10)
    with pytest.raises(ValueError, match="between 1 and 3"):
        nb.nearest(query, train, 4)
    with pytest.raises(ValueError, match="lengths differ"):
        nb.nearest(query, train[:, :2].copy(), 2)
    with pytest.raises(ValueError, match="at least 4 training rows, got 3"):
        nb.IncrementalNeighbours(query, 4).update(train)
    with pytest.raises(ValueError, match="uint64"):
        nb.nearest(query.astype(np.int64), train, 1)


def test_changed_marks_exactly_the_queries_whose_neighbours_changed():
    query = _sparse_fps(400, 4, 3, seed=14)
    pool = _sparse_fps(50, 4, 3, seed=15)
    names = [f"m{i:02d}" for i in np.random.default_rng(16).permutation(50)]
    values = np.arange(50.0)
    inc = nb.IncrementalNeighbours(query, 4)

    def update(size):
        order = sorted(range(size), key=lambda i: names[i])
        _, ind = inc.update(pool[order], [names[i] for i in order], values[order])
        return [[names[order[j]] for j in row] for row in ind]  # neighbours by name

    before = update(30)
    assert inc.changed.all()  # a first search changes everything
    after = update(50)
    moved = [a != b for a, b in zip(after, before, strict=True)]
    assert np.array_equal(inc.changed, moved) and 0 < sum(moved) < len(moved)
    values[names.index(after[0][0])] += 1.0  # a neighbour's value changed: start over
    searched = inc.rows_searched
    update(50)
    assert inc.changed.all() and inc.rows_searched == searched + 50


def test_an_update_that_fails_halfway_leaves_the_next_one_correct(monkeypatch):
    query, train = _sparse_fps(300, 4, 3, seed=17), _sparse_fps(40, 4, 3, seed=18)
    inc = nb.IncrementalNeighbours(query, 4)
    inc.update(train[:20])

    def interrupted(self, *args):
        raise KeyboardInterrupt("stop button")

    with monkeypatch.context() as patch:
        patch.setattr(nb.IncrementalNeighbours, "_merge", interrupted)
        with pytest.raises(KeyboardInterrupt):
            inc.update(train[:40])
    for a, b in zip(inc.update(train[:40]), nb.nearest(query, train[:40], 4), strict=True):
        np.testing.assert_array_equal(a, b)
    assert inc.changed.all()


def test_empty_and_disjoint_fingerprints_merge_as_a_fresh_search_ranks_them():
    """Two empty fingerprints are identical (distance 0); no bits in common is distance 1."""
    query, train = _sparse_fps(300, 4, 3, seed=19), _sparse_fps(50, 4, 3, seed=20)
    query[:20] = 0
    train[[3, 17, 31]] = 0  # empty training rows: neighbours at distance 0 of the empty queries
    train[40:, 0], train[40:, 1] = 0, 1  # one bit no query has: disjoint from every query
    inc = nb.IncrementalNeighbours(query, 4)
    for size in (4, 10, 27, 50):
        got = inc.update(train[:size])
        for a, b in zip(got, nb.nearest(query, train[:size], 4), strict=True):
            np.testing.assert_array_equal(a, b)
    assert (got[0][:20, :3] == 0).all() and (got[0][:20, 3] == 1.0).all()
