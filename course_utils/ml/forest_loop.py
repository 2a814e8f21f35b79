"""The compiled tree walk of :class:`course_utils.ml.forest.ForestModel`.

scikit-learn's ``predict`` needs a dense float32 matrix (1 GB for QM9 at 2,048 count bits) and
returns only the forest's mean; the std over trees would need one more pass per tree. Here each
molecule's few count entries are scattered into a small per-thread buffer and every tree is
walked once, summing the leaf values and their squares: mean and spread in one pass, the
search space in its compact form (:func:`course_utils.ml.fingerprints.count_fingerprints`).

Imported only by the forest: numba's import and compilation are not paid by other models.
Compiled code is not cached on disk (unsafe with several writers).
"""

from __future__ import annotations

import numpy as np

from course_utils.ml.compiled import njit, prange

__all__ = ["forest_moments", "forest_samples"]

#: Molecules per parallel task: one feature buffer per task.
_CHUNK = 512


@njit(cache=False)
def _walk(buffer, root, left, right, feature, threshold, value):  # pragma: no cover - compiled
    node = root
    while left[node] >= 0:
        node = left[node] if buffer[feature[node]] <= threshold[node] else right[node]
    return value[node]


@njit(cache=False)
def _scatter(buffer, entries, row, fill):  # pragma: no cover - compiled
    for c in range(entries.shape[1]):
        entry = entries[row, c]
        if entry == 0:
            break
        buffer[entry >> 8] = (entry & 0xFF) if fill else 0.0


@njit(parallel=True, cache=False)
def forest_moments(entries, length, roots, left, right, feature, threshold, value, mean,
                   std):  # pragma: no cover - compiled
    """Mean and population std over the trees (``roots``) of each molecule's prediction."""
    n = entries.shape[0]
    n_trees = roots.shape[0]
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        buffer = np.zeros(length, np.float32)
        for row in range(chunk * _CHUNK, min((chunk + 1) * _CHUNK, n)):
            _scatter(buffer, entries, row, True)
            total = 0.0
            squares = 0.0
            for t in range(n_trees):
                v = _walk(buffer, roots[t], left, right, feature, threshold, value)
                total += v
                squares += v * v
            _scatter(buffer, entries, row, False)
            m = total / n_trees
            mean[row] = m
            std[row] = np.sqrt(max(squares / n_trees - m * m, 0.0))


@njit(parallel=True, cache=False)
def forest_samples(entries, length, roots, left, right, feature, threshold, value,
                   out):  # pragma: no cover - compiled
    """``out[t, row]``: the prediction of tree ``roots[t]`` for molecule ``row``."""
    n = entries.shape[0]
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        buffer = np.zeros(length, np.float32)
        for row in range(chunk * _CHUNK, min((chunk + 1) * _CHUNK, n)):
            _scatter(buffer, entries, row, True)
            for t in range(roots.shape[0]):
                out[t, row] = _walk(buffer, roots[t], left, right, feature, threshold, value)
            _scatter(buffer, entries, row, False)
