"""A random forest on Morgan count fingerprints; its uncertainty is the spread of its trees.

scikit-learn's ``RandomForestRegressor`` fits the trees; scoring walks them in a compiled loop
(:mod:`course_utils.ml.forest_loop`) on the search space's compact count entries, so the whole
of QM9 is never a dense matrix and the std over trees comes with the mean in one pass.
The defaults were chosen by measurement (``benchmarks/bench_models.py``): see
:data:`DEFAULTS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from course_utils.ml.fingerprints import count_fingerprints
from course_utils.ml.model_options import (
    check_fingerprint_options,
    check_int,
    check_positive,
    check_training_data,
)
from course_utils.ml.morgan import FingerprintKind, as_smiles_list, dense_counts

__all__ = ["DEFAULTS", "ForestModel"]

#: Default options, measured at 400 training molecules (MAE on 3,000 random QM9 molecules;
#: the 2-core machine shared with other work, so times are upper bounds): 300 trees, all bits
#: per split, leaves of 1: 0.278 eV, fit 6.9 s, whole-QM9 scoring 10 s; 50 trees, 1/3 of the
#: bits, leaves of >= 3: 0.276 eV (5 seeds), fit 0.4-0.75 s, scoring 0.55 s of CPU; 30 trees,
#: the same: 0.278 eV, ~0.33 s of CPU (~0.17 s on two free cores), the share of molecules
#: within 1 std 0.62 instead of 0.63. Larger leaves mean shallower walks, fewer bits per split
#: faster fits; 30 trees still give Thompson sampling a batch of distinct trees.
DEFAULTS: dict[str, Any] = {"n_trees": 30, "max_features": 0.33, "min_samples_leaf": 3,
                            "radius": 2, "length": 2048, "random_state": 0, "n_jobs": 1}


class ForestModel:
    """Random forest regressor on count Morgan fingerprints; std = spread of the trees.

    Options: ``n_trees``; ``max_features`` (share of the bits tried per split, in (0, 1]);
    ``min_samples_leaf``; ``radius`` and ``length`` of the fingerprint; ``random_state``
    (the forest is reproducible); ``n_jobs`` for fitting (1: Parsl workers already run in
    parallel).
    """

    name = "rf"
    min_training = 2  # a mean and a spread need two molecules

    def __init__(self, n_trees: int = DEFAULTS["n_trees"],
                 max_features: float = DEFAULTS["max_features"],
                 min_samples_leaf: int = DEFAULTS["min_samples_leaf"],
                 radius: int = DEFAULTS["radius"], length: int = DEFAULTS["length"],
                 random_state: int = DEFAULTS["random_state"],
                 n_jobs: int = DEFAULTS["n_jobs"]) -> None:
        self.n_trees = check_int(self.name, "n_trees", n_trees, 1)
        self.max_features = check_positive(self.name, "max_features", max_features)
        if self.max_features > 1:
            raise ValueError(f"rf option max_features must be in (0, 1], got {max_features!r}")
        self.min_samples_leaf = check_int(self.name, "min_samples_leaf", min_samples_leaf, 1)
        self.radius, self.length = check_fingerprint_options(self.name, radius, length)
        self.random_state = check_int(self.name, "random_state", random_state, 0)
        self.n_jobs = check_int(self.name, "n_jobs", n_jobs, 1)
        self.fitted: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        return {"n_trees": self.n_trees, "max_features": self.max_features,
                "min_samples_leaf": self.min_samples_leaf, "radius": self.radius,
                "length": self.length, "random_state": self.random_state, "n_jobs": self.n_jobs}

    def fingerprint_kinds(self) -> list[FingerprintKind]:
        """The fingerprints it reads of every molecule it scores (prepared once per space)."""
        return [FingerprintKind("counts", self.radius, self.length)]

    def fit(self, smiles: Sequence[str], ie: np.ndarray) -> Self:
        """Fit the forest, then keep only its flattened trees (small, fast to pickle)."""
        smiles = as_smiles_list(smiles)
        y = check_training_data(self.name, smiles, ie, self.min_training)
        features = dense_counts(count_fingerprints(smiles, radius=self.radius,
                                                   length=self.length), self.length)
        forest = RandomForestRegressor(
            n_estimators=self.n_trees, max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf, random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(features, y)
        self.trees = _flatten([estimator.tree_ for estimator in forest.estimators_])
        self.fitted = {"n_train": len(y), "n_nodes": int(len(self.trees["value"])),
                       "train_mean_ev": float(y.mean())}
        return self

    def _entries(self, smiles: Sequence[str]) -> np.ndarray:
        if not self.fitted:
            raise ValueError("rf: fit the model before predicting")
        return count_fingerprints(as_smiles_list(smiles), radius=self.radius, length=self.length)

    def predict(self, smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean of the trees and their population standard deviation, in eV, input order."""
        # deferred: numba compiles the tree walk on first use; importing forest stays cheap
        from course_utils.ml.forest_loop import forest_moments

        entries = self._entries(smiles)
        mean, std = np.empty(len(entries)), np.empty(len(entries))
        forest_moments(entries, self.length, *self._tree_arrays(self.trees["roots"]), mean, std)
        return mean, std

    def sample(self, smiles: Sequence[str], n: int, rng: np.random.Generator) -> np.ndarray:
        """Predictions of ``n`` trees drawn at random, shape ``(n, len(smiles))``: posterior
        samples for Thompson sampling (without replacement while ``n <= n_trees``)."""
        # deferred: numba compiles the tree walk on first use; importing forest stays cheap
        from course_utils.ml.forest_loop import forest_samples

        entries = self._entries(smiles)
        roots = self.trees["roots"]
        chosen = rng.choice(len(roots), size=n, replace=n > len(roots))
        out = np.empty((n, len(entries)))
        forest_samples(entries, self.length, *self._tree_arrays(roots[chosen]), out)
        return out

    def _tree_arrays(self, roots: np.ndarray) -> tuple[np.ndarray, ...]:
        t = self.trees
        return roots, t["left"], t["right"], t["feature"], t["threshold"], t["value"]

    def describe(self) -> dict[str, Any]:
        """Name, options and what was fitted, JSON-safe for the lineage records."""
        return {"name": self.name, "options": self.options(), "fitted": dict(self.fitted)}


def _flatten(trees: list[Any]) -> dict[str, np.ndarray]:
    """All trees' nodes in shared arrays; children indices global, -1 at leaves."""
    roots, left, right, feature, threshold, value = [], [], [], [], [], []
    offset = 0
    for tree in trees:
        roots.append(offset)
        is_leaf = tree.children_left < 0
        left.append(np.where(is_leaf, -1, tree.children_left + offset))
        right.append(np.where(is_leaf, -1, tree.children_right + offset))
        feature.append(np.where(is_leaf, 0, tree.feature))
        threshold.append(tree.threshold)
        value.append(tree.value[:, 0, 0])
        offset += tree.node_count
    # int32 / float32 nodes: half the cache lines per walk; counts are integers, so the
    # thresholds (midpoints like 1.5) are exact in float32 and every comparison is unchanged.
    return {"roots": np.asarray(roots, dtype=np.int32),
            "left": np.concatenate(left).astype(np.int32),
            "right": np.concatenate(right).astype(np.int32),
            "feature": np.concatenate(feature).astype(np.int32),
            "threshold": np.concatenate(threshold).astype(np.float32),
            "value": np.concatenate(value).astype(np.float64)}
