"""The compiled Tanimoto kernel equals the plain NumPy ratio of popcounts."""

from __future__ import annotations

import numpy as np

from course_utils.ml.tanimoto import fill_tanimoto, tanimoto_kernel


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
