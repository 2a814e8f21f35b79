"""The acquisition part: which untried molecules the campaign simulates next.

Each strategy keeps the :class:`~course_utils.campaign.parts.Acquisition` contract and is
registered by name in :data:`ACQUISITION_REGISTRY` (``greedy``, ``ucb``, ``ei``, ``pi``,
``thompson``, ``epsilon-greedy``, ``random``; ``ucb:kappa=2``, ``ei:xi=0.1``,
``epsilon-greedy:epsilon=0.2``).

Ties are broken by a random order, never by the search space's order: QM9 is listed smallest
molecules first, and small molecules have the highest IEs, so a ranking that kept file order
among equal scores (a forest's one-tree draw predicts one value for thousands of molecules)
would walk down the file and find good molecules for a reason that has nothing to do with the
model. The tie order is the first draw of the batch's generator (seeded by the run's seed and
the batch number), so the same seed gives the same picks and a resumed batch picks the same.

``ei``, ``pi`` and ``thompson`` use the model's uncertainty in the way Bayesian optimization
does; what they need beyond the predictions (the best simulated IE, the fitted model, the
batch size) reaches them as a :class:`~course_utils.campaign.parts.RankingContext`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.special import ndtr

from course_utils.campaign.parts import RankingContext
from course_utils.registry import Registry


class AcquisitionError(ValueError):
    """An acquisition strategy that cannot be read; one line naming the bad part."""


ACQUISITION_REGISTRY: Registry = Registry(
    "acquisition", error=AcquisitionError,
    unknown="acquisition {text!r} is unknown; choose one of {choices}")


def tie_order(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random key per candidate that decides among equal scores (see the module's note).

    Every ranking draws it first from the batch's generator, so what it draws next (posterior
    samples, epsilon's coin) is the same whatever the scores are.
    """
    return rng.random(n)


def best_first(score: np.ndarray, ties: np.ndarray, head: int = 256) -> Iterator[int]:
    """Indices by descending score, equal scores in ascending ``ties`` order, sorted only as
    far as the caller reads (a batch reads a few dozen of 130,831).

    The first ``head`` (plus any tied with the last of them) are sorted alone; the rest only
    if asked for. NaN scores come last.
    """
    negated = -np.asarray(score, dtype=float)
    ties = np.asarray(ties, dtype=float)
    if len(negated) <= head:
        yield from np.lexsort((ties, negated)).tolist()
        return
    cut = np.partition(negated, head - 1)[head - 1]
    first = np.flatnonzero(negated <= cut)
    yield from first[np.lexsort((ties[first], negated[first]))].tolist()
    rest = np.flatnonzero(~(negated <= cut))
    yield from rest[np.lexsort((ties[rest], negated[rest]))].tolist()


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
             positions: Mapping[str, int] | None = None,
             context: RankingContext | None = None) -> Iterator[str]:
        smiles, keep = _kept(predictions, exclude, positions)
        ties = tie_order(rng, len(smiles))
        for i in best_first(self.score(predictions, keep, context or RankingContext()), ties):
            yield smiles[i]

    def score(self, predictions: pd.DataFrame, keep: np.ndarray,
              context: RankingContext) -> np.ndarray:
        return predictions["ie"].to_numpy(dtype=float)[keep]


@ACQUISITION_REGISTRY.register("ucb", options={"kappa": _positive})
@dataclass(frozen=True)
class UpperConfidenceBound(Greedy):
    """Predicted IE plus ``kappa`` times the model's std: optimism where the model is unsure."""

    kappa: float = 1.0
    name: ClassVar[str] = "ucb"

    def score(self, predictions: pd.DataFrame, keep: np.ndarray,
              context: RankingContext) -> np.ndarray:
        return (predictions["ie"].to_numpy(dtype=float)[keep]
                + self.kappa * predictions["ie_spread"].to_numpy(dtype=float)[keep])


def _improvement(predictions: pd.DataFrame, keep: np.ndarray, best: float, xi: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean - best - xi, std, z = that / std) of the kept rows; z is ±inf where std is 0."""
    mean = predictions["ie"].to_numpy(dtype=float)[keep]
    std = np.clip(predictions["ie_spread"].to_numpy(dtype=float)[keep], 0.0, None)
    gain = mean - best - xi
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, gain / np.where(std > 0, std, 1.0), np.where(gain > 0, np.inf, -np.inf))
    return gain, std, z


@dataclass(frozen=True)
class ImprovementOverBest(Greedy):
    """A score of the chance to beat the best simulated IE by ``xi`` (eV); before any success
    (no best yet) it ranks as greedy does."""

    xi: float = 0.0

    def score(self, predictions: pd.DataFrame, keep: np.ndarray,
              context: RankingContext) -> np.ndarray:
        if not np.isfinite(context.best_ie):
            return super().score(predictions, keep, context)
        return self.of_gain(*_improvement(predictions, keep, context.best_ie, self.xi))

    def of_gain(self, gain: np.ndarray, std: np.ndarray, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@ACQUISITION_REGISTRY.register("ei", options={"xi": _positive})
@dataclass(frozen=True)
class ExpectedImprovement(ImprovementOverBest):
    """Expected improvement ``E[max(IE - best - xi, 0)]`` under the model's normal prediction:
    ``gain·Φ(z) + std·φ(z)``; where std is 0, ``max(gain, 0)``."""

    name: ClassVar[str] = "ei"

    def of_gain(self, gain: np.ndarray, std: np.ndarray, z: np.ndarray) -> np.ndarray:
        density = np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
        return np.where(std > 0, gain * ndtr(z) + std * density, np.maximum(gain, 0.0))


@ACQUISITION_REGISTRY.register("pi", options={"xi": _positive})
@dataclass(frozen=True)
class ProbabilityOfImprovement(ImprovementOverBest):
    """Probability of improvement ``Φ(z)``; where std is 0, 1 or 0."""

    name: ClassVar[str] = "pi"

    def of_gain(self, gain: np.ndarray, std: np.ndarray, z: np.ndarray) -> np.ndarray:
        return ndtr(z)


@ACQUISITION_REGISTRY.register("thompson", options={})
@dataclass(frozen=True)
class ThompsonSampling:
    """Batch Thompson sampling: pick ``k`` of a batch is the best not yet taken under posterior
    draw ``k`` (``k`` beyond the batch size reuses the draws in turn).

    The draws come from the model's ``sample`` (the forest: randomly drawn trees), all of a
    batch in one call over the predictions' molecules; a model whose samples are Gaussian
    marginals of its predictions (``marginal_samples``: the GP) or that has no ``sample`` (the
    KNN) is drawn from as ``N(mean, std)`` of the predictions table, with no second scoring.
    The draws use the batch's generator (seeded by the seed and the batch number), so a resumed
    batch draws the same.
    """

    name: ClassVar[str] = "thompson"
    needs_model: ClassVar[bool] = True

    def rank(self, predictions: pd.DataFrame, exclude: set[str], rng: np.random.Generator,
             positions: Mapping[str, int] | None = None,
             context: RankingContext | None = None) -> Iterator[str]:
        context = context or RankingContext()
        smiles, keep = _kept(predictions, exclude, positions)
        if not len(smiles):
            return
        ties = tie_order(rng, len(smiles))
        draws = posterior_draws(predictions, max(int(context.draws), 1), rng, context.model)[:, keep]
        taken = np.zeros(len(smiles), dtype=bool)
        for pick in range(len(smiles)):
            score = np.where(taken, -np.inf, draws[pick % len(draws)])
            best = np.flatnonzero(score == score.max())  # a one-tree draw ties thousands
            i = int(best[np.argmin(ties[best])]) if len(best) else int(np.argmax(score))  # NaN
            taken[i] = True
            yield smiles[i]


def posterior_draws(predictions: pd.DataFrame, n: int, rng: np.random.Generator,
                    model: object | None = None) -> np.ndarray:
    """``n`` posterior draws of every row of ``predictions``, shape ``(n, rows)``: the model's
    own ``sample`` when it has one beyond Gaussian marginals, else ``N(mean, std)``."""
    if (model is not None and callable(getattr(model, "sample", None))
            and not getattr(model, "marginal_samples", False)):
        draws = np.asarray(model.sample(predictions["smiles"].tolist(), n, rng), dtype=float)
        if draws.shape == (n, len(predictions)):
            return draws
        raise ValueError(f"{getattr(model, 'name', 'model')}.sample gave shape {draws.shape}, "
                         f"expected {(n, len(predictions))}")
    mean = predictions["ie"].to_numpy(dtype=float)
    std = np.clip(predictions["ie_spread"].to_numpy(dtype=float), 0.0, None)
    return mean + std * rng.standard_normal((n, len(mean)))


@ACQUISITION_REGISTRY.register("epsilon-greedy", options={"epsilon": _positive})
@dataclass(frozen=True)
class EpsilonGreedy:
    """Greedy, but each pick is a random one with probability ``epsilon``."""

    epsilon: float = 0.1
    name: ClassVar[str] = "epsilon-greedy"
    needs_model: ClassVar[bool] = True

    def rank(self, predictions: pd.DataFrame, exclude: set[str], rng: np.random.Generator,
             positions: Mapping[str, int] | None = None,
             context: RankingContext | None = None) -> Iterator[str]:
        smiles, keep = _kept(predictions, exclude, positions)
        ties = tie_order(rng, len(smiles))
        score = predictions["ie"].to_numpy(dtype=float)[keep]
        greedy = smiles[np.lexsort((ties, -score))]
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
             positions: Mapping[str, int] | None = None,
             context: RankingContext | None = None) -> Iterator[str]:
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
    context: RankingContext | None = None,
) -> Iterator[str]:
    """Yield never-tried SMILES in the order the acquisition strategy prefers them.

    ``predictions`` has ``smiles``, ``ie`` (predicted, eV) and ``ie_spread``; see
    :func:`make_acquisition` for the strategy, :func:`_kept` for ``positions`` and
    :class:`RankingContext` for ``context`` (the best IE so far, the model, the batch size).
    """
    part = make_acquisition(acquisition, ucb_kappa=ucb_kappa, epsilon=epsilon)
    return part.rank(predictions, exclude, rng or np.random.default_rng(), positions, context)
