"""Learning curves on the ground-truth table: how fast each model's error falls with data.

Used by ``benchmarks/bench_models.py`` and notebook 10. Each seed draws one test set of random
QM9 molecules (truth known, status ``ok``) and, per size, a random training set from the rest;
every model sees the same molecules, so differences between models are not sampling noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import numpy as np
import pandas as pd

from course_utils.ground_truth.shipped import load_ground_truth
from course_utils.ml.calibration import calibration
from course_utils.ml.knn import run_model, train_model
from course_utils.ml.registry import parse_model

__all__ = ["KNNBaseline", "MeanBaseline", "coverage", "factories", "learning_curve"]


class MeanBaseline:
    """Predicts the training mean everywhere (std: the training spread): the bar to beat."""

    name = "mean"

    def fit(self, smiles: Sequence[str], ie: np.ndarray) -> MeanBaseline:
        self.mean, self.std = float(np.mean(ie)), float(np.std(ie))
        return self

    def predict(self, smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(smiles), self.mean), np.full(len(smiles), self.std)


class KNNBaseline:
    """The tutorial's KNN (:func:`course_utils.ml.knn.train_model` / ``run_model``)."""

    name = "knn"

    def fit(self, smiles: Sequence[str], ie: np.ndarray) -> KNNBaseline:
        self.model = train_model(pd.DataFrame({"smiles": list(smiles), "ie": ie}))
        return self

    def predict(self, smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        scored = run_model(self.model, list(smiles))
        return scored["ie"].to_numpy(), scored["ie_spread"].to_numpy()


def known_molecules(table: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SMILES and IEs (eV) of the table's successful rows (default: the complete QM9 table)."""
    if table is None:
        table = load_ground_truth("qm9")
    ok = table[table["status"] == "ok"]
    return ok["smiles"].to_numpy(), ok["ie"].to_numpy(dtype=np.float64)


def learning_curve(
    models: Mapping[str, Callable[[], object]], sizes: Sequence[int], seeds: Sequence[int],
    n_test: int = 3000, table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """MAE of each model on ``n_test`` random molecules, per training size and seed.

    ``models`` maps a label to a factory of unfitted models (``fit``/``predict`` as in the model
    contract). Returns one row per (model, size, seed): ``mae``, ``within_1_std`` and
    ``within_2_std`` (calibration), ``fit_seconds``, ``predict_seconds``. ``table``: the
    ground truth (default: the complete QM9 table).
    """
    smiles, ie = known_molecules(table)
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(smiles))
        test, pool = order[:n_test], order[n_test:]
        for size in sizes:
            train = rng.choice(pool, size=size, replace=False)
            for label, factory in models.items():
                start = time.perf_counter()
                model = factory().fit(smiles[train].tolist(), ie[train])
                fitted = time.perf_counter()
                mean, std = model.predict(smiles[test].tolist())
                done = time.perf_counter()
                measured = calibration(ie[test], mean, std)
                rows.append({"model": label, "size": size, "seed": seed,
                             "mae": measured.mae_ev,
                             "within_1_std": measured.within_1sd,
                             "within_2_std": measured.within_2sd,
                             "fit_seconds": fitted - start, "predict_seconds": done - fitted})
    return pd.DataFrame(rows)


def coverage(models: Mapping[str, Callable[[], object]], size: int, seeds: Sequence[int],
             n_test: int = 3000, z: Sequence[float] = tuple(np.linspace(0, 3, 31)),
             table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Calibration: per model and ``z``, the share of ``n_test`` held-out molecules whose
    absolute error is at most ``z`` predicted standard deviations (pooled over ``seeds``;
    training sets of ``size`` random molecules). An honest Gaussian std gives erf(z/√2)."""
    smiles, ie = known_molecules(table)
    ratios: dict[str, list[np.ndarray]] = {label: [] for label in models}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(smiles))
        test, train = order[:n_test], order[n_test:n_test + size]
        for label, factory in models.items():
            mean, std = factory().fit(smiles[train].tolist(), ie[train]).predict(
                smiles[test].tolist())
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios[label].append(np.abs(mean - ie[test]) / std)
    zs = np.asarray(z, dtype=float)
    rows = [{"model": label, "size": size, "z": float(level),
             "share": float(np.mean(np.concatenate(parts) <= level))}
            for label, parts in ratios.items() for level in zs]
    return pd.DataFrame(rows)


def factories(names: Sequence[str]) -> dict[str, Callable[[], object]]:
    """Unfitted-model factories by name: ``"mean"`` (the baseline) or any model spelling the
    registry knows (``"gp"``, ``"rf:n_trees=50"``), for :func:`learning_curve` and
    :func:`coverage`. Every spelling is checked here, before any model is trained."""
    for name in names:
        if name != "mean":
            parse_model(name)
    return {name: MeanBaseline if name == "mean" else partial(parse_model, name)
            for name in names}
