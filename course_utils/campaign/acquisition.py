"""The acquisition part: which untried molecules the campaign simulates next.

Each strategy keeps the :class:`~course_utils.campaign.parts.Acquisition` contract and is
registered by name in :data:`ACQUISITION_REGISTRY` (``greedy``, ``ucb``, ``epsilon-greedy``,
``random``; ``ucb:kappa=2``, ``epsilon-greedy:epsilon=0.2``). Ties keep the search-space order,
so the same inputs always give the same picks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from course_utils.campaign.parts import Registry


class AcquisitionError(ValueError):
    """An acquisition strategy that cannot be read; one line naming the bad part."""


ACQUISITION_REGISTRY: Registry = Registry(
    "acquisition", error=AcquisitionError,
    unknown="acquisition {text!r} is unknown; choose one of {choices}")


def best_first(score: np.ndarray, head: int = 256) -> Iterator[int]:
    """Indices by descending score, ties in index order: ``np.argsort(-score, kind="stable")``,
    but sorted only as far as the caller reads (a batch reads a few dozen of 130,831).

    The first ``head`` (plus any tied with the last of them) are sorted alone; the rest only
    if asked for. NaN scores come last, as argsort puts them.
    """
    negated = -np.asarray(score, dtype=float)
    if len(negated) <= head:
        yield from np.argsort(negated, kind="stable").tolist()
        return
    cut = np.partition(negated, head - 1)[head - 1]
    first = np.flatnonzero(negated <= cut)  # in index order, so a stable sort keeps ties so
    yield from first[np.argsort(negated[first], kind="stable")].tolist()
    rest = np.flatnonzero(~(negated <= cut))
    yield from rest[np.argsort(negated[rest], kind="stable")].tolist()


def _kept(predictions: pd.DataFrame, exclude: set[str], positions: Mapping[str, int] | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """The SMILES never tried and their rows' mask. ``positions`` (each SMILES' row in
    ``predictions``) spares hashing every SMILES of the space once per batch."""
    smiles = predictions["smiles"].to_numpy()
    if positions is not None and len(positions) == len(smiles):
        keep = np.ones(len(smiles), dtype=bool)
        keep[[positions[s] for s in exclude if s in positions]] = False
    else:
        keep = ~predictions["smiles"].isin(exclude).to_numpy()
    return smiles[keep], keep


def _positive(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError("must be a number >= 0")
    return number


@ACQUISITION_REGISTRY.register("greedy", options={})
@dataclass(frozen=True)
class Greedy:
    """Highest predicted IE first."""

    name: ClassVar[str] = "greedy"
    #: Ranks by a model's predictions (random search does not: the campaign trains none).
    needs_model: ClassVar[bool] = True

    def rank(self, predictions: pd.DataFrame, exclude: set[str], rng: np.random.Generator,
             positions: Mapping[str, int] | None = None) -> Iterator[str]:
        smiles, keep = _kept(predictions, exclude, positions)
        for i in best_first(self.score(predictions, keep)):
            yield smiles[i]

    def score(self, predictions: pd.DataFrame, keep: np.ndarray) -> np.ndarray:
        return predictions["ie"].to_numpy(dtype=float)[keep]


@ACQUISITION_REGISTRY.register("ucb", options={"kappa": _positive})
@dataclass(frozen=True)
class UpperConfidenceBound(Greedy):
    """Predicted IE plus ``kappa`` times the model's std: optimism where the model is unsure."""

    kappa: float = 1.0
    name: ClassVar[str] = "ucb"

    def score(self, predictions: pd.DataFrame, keep: np.ndarray) -> np.ndarray:
        return (predictions["ie"].to_numpy(dtype=float)[keep]
                + self.kappa * predictions["ie_spread"].to_numpy(dtype=float)[keep])


@ACQUISITION_REGISTRY.register("epsilon-greedy", options={"epsilon": _positive})
@dataclass(frozen=True)
class EpsilonGreedy:
    """Greedy, but each pick is a random one with probability ``epsilon``."""

    epsilon: float = 0.1
    name: ClassVar[str] = "epsilon-greedy"
    needs_model: ClassVar[bool] = True

    def rank(self, predictions: pd.DataFrame, exclude: set[str], rng: np.random.Generator,
             positions: Mapping[str, int] | None = None) -> Iterator[str]:
        smiles, keep = _kept(predictions, exclude, positions)
        score = predictions["ie"].to_numpy(dtype=float)[keep]
        greedy = smiles[np.argsort(-score, kind="stable")]
        taken: set[str] = set()
        g = 0
        while len(taken) < len(greedy):
            if rng.random() < self.epsilon:
                pick = greedy[rng.integers(len(greedy))]
                if pick in taken:
                    continue
            else:
                while greedy[g] in taken:
                    g += 1
                pick = greedy[g]
            taken.add(pick)
            yield pick


@ACQUISITION_REGISTRY.register("random", options={})
@dataclass(frozen=True)
class RandomSearch:
    """A seeded random order: needs no model (the baseline every strategy must beat)."""

    name: ClassVar[str] = "random"
    needs_model: ClassVar[bool] = False

    def rank(self, predictions: pd.DataFrame, exclude: set[str], rng: np.random.Generator,
             positions: Mapping[str, int] | None = None) -> Iterator[str]:
        smiles, _ = _kept(predictions, exclude, positions)
        for i in rng.permutation(len(smiles)).tolist():  # lazily: a batch reads a few dozen
            yield smiles[i]


def make_acquisition(name: str, *, ucb_kappa: float = 1.0, epsilon: float = 0.1):
    """The strategy ``name`` with the campaign's knobs (``ucb_kappa``, ``epsilon``) where it
    takes them; options spelled in ``name`` (``ucb:kappa=2``) replace the knobs."""
    if ":" in name or name.strip().lower() not in ACQUISITION_REGISTRY:
        return ACQUISITION_REGISTRY.make(name)
    key = name.strip().lower()
    knobs = {"ucb": {"kappa": ucb_kappa}, "epsilon-greedy": {"epsilon": epsilon}}
    return ACQUISITION_REGISTRY.build(key, **knobs.get(key, {}))


def rank_candidates(
    predictions: pd.DataFrame,
    exclude: set[str],
    *,
    acquisition: str = "greedy",
    rng: np.random.Generator | None = None,
    ucb_kappa: float = 1.0,
    epsilon: float = 0.1,
    positions: Mapping[str, int] | None = None,
) -> Iterator[str]:
    """Yield never-tried SMILES in the order the acquisition strategy prefers them.

    ``predictions`` has ``smiles``, ``ie`` (predicted, eV) and ``ie_spread``; see
    :func:`make_acquisition` for the strategy and :func:`_kept` for ``positions``.
    """
    part = make_acquisition(acquisition, ucb_kappa=ucb_kappa, epsilon=epsilon)
    return part.rank(predictions, exclude, rng or np.random.default_rng(), positions)
