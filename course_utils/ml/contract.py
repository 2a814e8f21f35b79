"""The model contract: what the campaign asks of a surrogate model, whatever it is inside.

A model is a plain picklable object (sent to Parsl workers, saved with joblib as a version of a
run's lineage) that keeps :class:`Model`. The KNN of the tutorial keeps it
(:class:`course_utils.ml.knn.KNN`); :func:`course_utils.ml.registry.make_model` makes any
registered one from its name and options. A model that can score a whole search space faster
than ``predict`` (the KNN, incrementally, in a replay) also keeps :class:`ScoresWholeSpace`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from course_utils.ml.morgan import FingerprintKind


@runtime_checkable
class Model(Protocol):
    """A surrogate of the ionization energy (eV) of a molecule given as SMILES."""

    #: Registry name, e.g. ``"knn"``.
    name: str
    #: Fewest training molecules ``fit`` accepts: the campaign's initial batch reaches it.
    min_training: int

    def fit(self, smiles: Sequence[str], ie: np.ndarray) -> Self:
        """Learn from ``smiles`` and their IEs; returns the model itself."""
        ...

    def predict(self, smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) in eV, float64, in input order."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-safe ``{"name": ..., "options": {...}, "fitted": {...}}`` (saved with each
        version in models/vNNNN.json)."""
        ...


@runtime_checkable
class SpaceScorer(Protocol):
    """Fits a model and scores one fixed search space, reusing the previous round's work."""

    def serves(self, model: Model) -> bool:
        """Whether this scorer's cached work is valid for ``model`` (same kind and options)."""
        ...

    def fit_and_score(self, model: Model, smiles: Sequence[str], ie: np.ndarray) -> np.ndarray:
        """Fit ``model`` and return its (n, 2) mean and std of the whole space, exactly what
        ``predict`` gives."""
        ...


@runtime_checkable
class ScoresWholeSpace(Protocol):
    """A model with a faster way to score a whole search space round after round."""

    def space_scorer(self, space: Sequence[str]) -> SpaceScorer: ...


@runtime_checkable
class ReadsFingerprints(Protocol):
    """A model that reads fingerprints of every molecule it scores: the campaign computes
    those of its search space once, before the first round, where everyone can see it."""

    def fingerprint_kinds(self) -> list[FingerprintKind]: ...


def prediction_table(model: Model, smiles: Sequence[str]) -> pd.DataFrame:
    """``smiles``, ``ie``, ``ie_spread`` (the model's mean and std, eV), in input order."""
    smiles = list(smiles)
    mean, std = model.predict(smiles)
    return pd.DataFrame({"smiles": smiles, "ie": mean, "ie_spread": std})
