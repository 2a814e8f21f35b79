"""The tutorial's surrogate: a distance-weighted Jaccard KNN over packed Morgan fingerprints.

The original tutorial fitted ``Pipeline([MorganFingerprintTransformer(256, 4),
KNeighborsRegressor(4, weights="distance", metric="jaccard")])``. This is the same model on
fingerprints computed once and cached (:mod:`course_utils.ml.fingerprints`), with the
neighbour search on packed words (:mod:`course_utils.ml.neighbours`): the same Jaccard
distances bit for bit and the same ``weights="distance"`` rule (exact-match queries included,
as in ``sklearn.neighbors._base._get_weights``). Among equidistant neighbours the earlier
training molecule wins, the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from course_utils.ml.fingerprints import fingerprints
from course_utils.ml.morgan import FingerprintKind, as_smiles_list, validate_fingerprint_params
from course_utils.ml.neighbours import IncrementalNeighbours, check_packed, nearest
from course_utils.search_space import position_index

__all__ = ["KNN", "KNNModel", "KNNSpaceScorer", "run_model", "train_model"]

@dataclass(frozen=True, eq=False)
class KNNModel:
    """Distance-weighted Jaccard KNN regressor over packed Morgan fingerprints.

    Plain data (tuple + NumPy arrays) so it pickles cheaply to Parsl workers.
    """

    train_smiles: tuple[str, ...]
    train_fps: np.ndarray
    train_ie: np.ndarray
    n_neighbors: int = 4
    radius: int = 4
    length: int = 256

    def __post_init__(self) -> None:
        validate_fingerprint_params(self.radius, self.length)
        fps = check_packed(self.train_fps, "train_fps")
        ie = np.asarray(self.train_ie, dtype=np.float64)
        smiles = tuple(self.train_smiles)
        n = len(smiles)
        if fps.shape != (n, self.length // 64) or ie.shape != (n,):
            raise ValueError(
                f"inconsistent training data: {n} SMILES, fingerprints {fps.shape}, "
                f"targets {ie.shape} (expected ({n}, {self.length // 64}) and ({n},))"
            )
        if not 1 <= self.n_neighbors <= n:
            raise ValueError(
                f"need at least {self.n_neighbors} training molecules, got {n}"
                if self.n_neighbors >= 1
                else f"n_neighbors must be >= 1, got {self.n_neighbors}"
            )
        object.__setattr__(self, "train_smiles", smiles)
        object.__setattr__(self, "train_fps", fps)
        object.__setattr__(self, "train_ie", ie)

    def _query_fps(self, smiles_or_fps: Sequence[str] | str | np.ndarray) -> np.ndarray:
        if isinstance(smiles_or_fps, np.ndarray) and smiles_or_fps.dtype == np.uint64:
            fps = check_packed(smiles_or_fps, "query fingerprints")
            if fps.shape[1] != self.length // 64:
                raise ValueError(
                    f"query fingerprints have {fps.shape[1]} words, "
                    f"model expects {self.length // 64}"
                )
            return fps
        return fingerprints(as_smiles_list(smiles_or_fps), radius=self.radius, length=self.length)

    def kneighbors(
        self, smiles_or_fps: Sequence[str] | str | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distances and training indices of the k nearest neighbours, nearest first; among
        equidistant neighbours the earlier training molecule wins."""
        return nearest(self._query_fps(smiles_or_fps), self.train_fps, self.n_neighbors)

    def predict_with_spread(
        self, smiles_or_fps: Sequence[str] | str | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictions plus the std of the k neighbours' targets, an uncertainty for UCB."""
        return self.predict_from_neighbours(*self.kneighbors(smiles_or_fps))

    def predict_from_neighbours(
        self, dist: np.ndarray, ind: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and spreads from :meth:`kneighbors`' answer (or an incremental one).

        Weights follow sklearn's ``weights="distance"``: ``1/d``, except that a query with
        any neighbour at distance 0 averages just those exact matches (weight 1, others 0).
        """
        with np.errstate(divide="ignore"):
            weights = 1.0 / dist
        inf_mask = np.isinf(weights)
        inf_row = np.any(inf_mask, axis=1)
        weights[inf_row] = inf_mask[inf_row]
        neighbour_ie = self.train_ie[ind]
        pred = np.sum(neighbour_ie * weights, axis=1) / np.sum(weights, axis=1)
        spread = np.std(neighbour_ie, axis=1)
        return pred, spread

    def predict(self, smiles_or_fps: Sequence[str] | str | np.ndarray) -> np.ndarray:
        """Predicted ionization energies (eV), same as the sklearn pipeline's ``predict``."""
        return self.predict_with_spread(smiles_or_fps)[0]


def train_model(
    train_data: pd.DataFrame, *, n_neighbors: int = 4, radius: int = 4, length: int = 256,
    fps: np.ndarray | None = None,
) -> KNNModel:
    """Fit the KNN surrogate; "fitting" is just fingerprinting and storing the data.

    ``fps``: the packed fingerprints of ``train_data``'s SMILES, in its order, when they are
    known already (a replay takes them from the search space's cached ones).
    """
    missing = [c for c in ("smiles", "ie") if c not in train_data.columns]
    if missing:
        raise ValueError(
            f"train_data is missing column(s) {missing}; need 'smiles' and 'ie', "
            f"got {list(train_data.columns)}"
        )
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
    if len(train_data) < n_neighbors:
        raise ValueError(f"need at least {n_neighbors} training molecules, got {len(train_data)}")
    try:
        ie = np.asarray(train_data["ie"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"train_data['ie'] must be numeric: {exc}") from exc
    bad = ~np.isfinite(ie)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"train_data['ie'] has {int(bad.sum())} NaN/infinite value(s), first at row "
            f"{first} ({train_data['smiles'].iloc[first]!r}); drop failed calculations first"
        )
    smiles = tuple(train_data["smiles"])
    if fps is None:
        fps = fingerprints(smiles, radius=radius, length=length)
    return KNNModel(
        train_smiles=smiles,
        train_fps=fps,
        train_ie=ie,
        n_neighbors=n_neighbors,
        radius=radius,
        length=length,
    )


def run_model(model: KNNModel, smiles: Sequence[str] | pd.Series) -> pd.DataFrame:
    """Score molecules; search-space fingerprints come from the cache after the first call.

    Returns columns ``smiles``, ``ie`` (predicted, eV) and ``ie_spread`` in input order;
    a Series input keeps its index, as the tutorial's ``pd.DataFrame`` construction did.
    """
    smiles_list = as_smiles_list(smiles)
    fps = fingerprints(smiles_list, radius=model.radius, length=model.length)
    pred, spread = model.predict_with_spread(fps)
    if isinstance(smiles, pd.Series):  # reuse its values and index: no string re-conversion
        frame = smiles.rename("smiles").to_frame()
        frame["ie"] = pred  # positional, so duplicate index labels are fine
        frame["ie_spread"] = spread
        return frame
    return pd.DataFrame({"smiles": smiles_list, "ie": pred, "ie_spread": spread})


class KNN:
    """The KNN as a campaign's model part (:class:`course_utils.ml.contract.Model`): options,
    then the fitted :class:`KNNModel`; its neighbour spread serves as its std."""

    name = "knn"

    def __init__(self, n_neighbors: int = 4, radius: int = 4, length: int = 256):
        if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int) or n_neighbors < 1:
            raise ValueError(f"n_neighbors must be an integer >= 1, got {n_neighbors!r}")
        validate_fingerprint_params(radius, length)
        self.n_neighbors, self.radius, self.length = n_neighbors, radius, length
        self.fitted: KNNModel | None = None

    @property
    def min_training(self) -> int:
        """Its prediction averages ``n_neighbors`` neighbours: it needs that many to learn."""
        return self.n_neighbors

    @classmethod
    def from_fitted(cls, fitted: KNNModel) -> KNN:
        """The part around a bare fitted model (versions saved before model parts existed)."""
        model = cls(fitted.n_neighbors, fitted.radius, fitted.length)
        model.fitted = fitted
        return model

    def fit(self, smiles: Sequence[str], ie: np.ndarray, *, fps: np.ndarray | None = None
            ) -> Self:
        """:func:`train_model` on (smiles, ie); ``fps``: their fingerprints, if known."""
        frame = pd.DataFrame({"smiles": list(smiles), "ie": np.asarray(ie)})
        self.fitted = train_model(frame, n_neighbors=self.n_neighbors, radius=self.radius,
                                  length=self.length, fps=fps)
        return self

    def predict(self, smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self._fitted().predict_with_spread(list(smiles))

    def predict_with_spread(self, smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` under :class:`KNNModel`'s name (notebook 6 reads saved versions so)."""
        return self.predict(smiles)

    def describe(self) -> dict[str, Any]:
        fitted = self.fitted
        return {"name": self.name, "options": self.options(),
                "fitted": {} if fitted is None else {"train_size": len(fitted.train_smiles)}}

    def options(self) -> dict[str, int]:
        return {"n_neighbors": self.n_neighbors, "radius": self.radius, "length": self.length}

    def fingerprint_kinds(self) -> list[FingerprintKind]:
        """The fingerprints it reads of every molecule it scores (prepared once per space)."""
        return [FingerprintKind("bits", self.radius, self.length)]

    def space_scorer(self, space: Sequence[str]) -> KNNSpaceScorer:
        return KNNSpaceScorer(space, self)

    def _fitted(self) -> KNNModel:
        if self.fitted is None:
            raise ValueError("the KNN model is not fitted yet: call fit(smiles, ie) first")
        return self.fitted

    def __repr__(self) -> str:
        state = "fitted" if self.fitted is not None else "not fitted"
        return f"KNN(n_neighbors={self.n_neighbors}, radius={self.radius}, length={self.length}; {state})"


class KNNSpaceScorer:
    """The KNN's scores of one search space, round after round, bit for bit what
    :meth:`KNN.predict` gives, found faster.

    The space's fingerprints are computed once (``__init__``); training data only grows between
    rounds, so only the new molecules are compared with the space, and only molecules whose
    neighbours changed are predicted again.
    """

    def __init__(self, space: Sequence[str], model: KNN):
        self._options = model.options()
        self._space_fps = fingerprints(list(space), radius=model.radius, length=model.length)
        self._position = position_index(list(space))
        self._neighbours = IncrementalNeighbours(self._space_fps, model.n_neighbors)
        self._scores: np.ndarray | None = None  # the last round's (ie, spread) of the space

    @property
    def rows_searched(self) -> int:
        """Training rows compared with the space so far (for tests)."""
        return self._neighbours.rows_searched

    def serves(self, model: Any) -> bool:
        return isinstance(model, KNN) and model.options() == self._options

    def fit_and_score(self, model: KNN, smiles: Sequence[str], ie: np.ndarray) -> np.ndarray:
        rows = [self._position.get(s) for s in smiles]
        known = None if None in rows else self._space_fps[rows]  # all from the space
        fitted = model.fit(smiles, ie, fps=known).fitted
        dist, ind = self._neighbours.update(fitted.train_fps, fitted.train_smiles, fitted.train_ie)
        changed = self._neighbours.changed
        if self._scores is None or changed.all():
            self._scores = np.column_stack(fitted.predict_from_neighbours(dist, ind))
        elif changed.any():
            self._scores = self._scores.copy()  # the previous round's array was handed out
            self._scores[changed] = np.column_stack(
                fitted.predict_from_neighbours(dist[changed], ind[changed]))
        return self._scores
