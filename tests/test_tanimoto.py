"""The compiled Tanimoto kernel equals the plain NumPy ratio of popcounts; MinMax equals
Σ min / Σ max of the counts."""

from __future__ import annotations

import numpy as np
import pytest

from course_utils.ml.fingerprints import count_fingerprints
from course_utils.ml.tanimoto import (
    expand_counts,
    fill_tanimoto,
    minmax_encoding,
    minmax_kernel,
    tanimoto_kernel,
)


def _random_fps(n: int, words: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fps = rng.integers(0, 2**64, size=(n, words), dtype=np.uint64, endpoint=False)
    fps &= rng.integers(0, 2**64, size=(n, words), dtype=np.uint64)  # sparser, like molecules
    fps[0] = 0  # an empty fingerprint
    return fps


def _reference(query: np.ndarray, train: np.ndarray) -> np.ndarray:
    inter = np.bitwise_count(query[:, None, :] & train[None, :, :]).sum(axis=2).astype(float)
    union = (np.bitwise_count(query).sum(1)[:, None] + np.bitwise_count(train).sum(1)[None, :]
             - inter)
    return np.divide(inter, union, out=np.ones_like(inter), where=union != 0)


def test_kernel_equals_numpy_reference():
    query, train = _random_fps(37, 5, seed=1), _random_fps(23, 5, seed=2)  # 37: a partial tile
    np.testing.assert_allclose(tanimoto_kernel(query, train), _reference(query, train),
                               rtol=0, atol=1e-15)
    assert tanimoto_kernel(query, train)[0, 0] == 1.0  # two empty fingerprints are identical


def test_float32_block_and_weighted_sums():
    query, train = _random_fps(10, 3, seed=3), _random_fps(7, 3, seed=4)
    weights = np.linspace(-1, 2, 7)
    out, dots = np.empty((10, 7), dtype=np.float32), np.empty(10)
    fill_tanimoto(query, np.ascontiguousarray(train.T), np.bitwise_count(query).sum(1),
                  np.bitwise_count(train).sum(1), weights, out, dots)
    reference = _reference(query, train)
    np.testing.assert_allclose(out, reference, rtol=1e-6)
    np.testing.assert_allclose(dots, reference @ weights, rtol=1e-12)


# ------------------------------------------------------------------------------- MinMax


def _random_counts(n: int, length: int, seed: int, high: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, high, size=(n, length)) * (rng.random((n, length)) < 0.3)
    counts[0] = 0  # an all-zero fingerprint
    return counts


def _entries(counts: np.ndarray) -> np.ndarray:
    """The count_fingerprints form of a dense count matrix: ``bit << 8 | count``, sorted."""
    rows = [[(bit << 8) | int(c) for bit, c in enumerate(row) if c] for row in counts]
    out = np.zeros((len(rows), max(1, max(map(len, rows)))), dtype=np.uint32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _minmax_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    low = np.minimum(a[:, None, :], b[None, :, :]).sum(axis=2).astype(float)
    high = np.maximum(a[:, None, :], b[None, :, :]).sum(axis=2).astype(float)
    return np.divide(low, high, out=np.ones_like(low), where=high != 0)


def test_minmax_equals_sum_of_min_over_sum_of_max():
    query, train = _random_counts(37, 90, seed=5), _random_counts(23, 90, seed=6, high=9)
    query[1, :5], train[1, :5] = 200, 3  # counts far above any training level
    kernel = minmax_kernel(_entries(query), _entries(train), 90)
    np.testing.assert_allclose(kernel, _minmax_reference(query, train), rtol=0, atol=1e-15)
    assert kernel[0, 0] == 1.0  # two all-zero fingerprints are identical
    assert (kernel[0, 1:] == 0).all() and (kernel[1:, 0] == 0).all()  # zero against anything


def test_minmax_is_symmetric_with_unit_diagonal_and_differs_from_bits():
    counts = _random_counts(30, 70, seed=7)
    kernel = minmax_kernel(_entries(counts), _entries(counts), 70)
    np.testing.assert_array_equal(kernel, kernel.T)
    np.testing.assert_array_equal(np.diag(kernel), 1.0)
    # cyclohexane and cycloheptane: the same Morgan bits at radius 2 (3 bits, counted 6 and 7
    # times), so Tanimoto 1, MinMax 18/21
    entries = count_fingerprints(["C1CCCCC1", "C1CCCCCC1"], radius=2, length=2048)
    assert minmax_kernel(entries, entries, 2048)[0, 1] == pytest.approx(6 / 7)


def test_levels_cover_only_what_training_has():
    train = _entries(np.array([[0, 2, 0, 1], [0, 3, 0, 0]]))
    encoding = minmax_encoding(train, 4)
    np.testing.assert_array_equal(encoding.caps, [0, 3, 0, 1])
    np.testing.assert_array_equal(encoding.offsets, [-1, 0, -1, 3])
    levels, totals = expand_counts(_entries(np.array([[5, 9, 7, 1]])), encoding)
    assert levels.tolist() == [[0b1111]] and totals.tolist() == [22]  # bit 1 capped at 3 levels


def test_minmax_refuses_bad_entries():
    with pytest.raises(ValueError, match="uint32 array of count entries"):
        minmax_kernel(np.ones((2, 2)), np.ones((2, 2)), 64)
    with pytest.raises(ValueError, match="beyond length 4"):
        minmax_kernel(_entries(np.ones((1, 8), int)), _entries(np.ones((1, 3), int)), 4)
