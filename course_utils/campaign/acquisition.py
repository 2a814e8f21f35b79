"""The acquisition part: which untried molecules the campaign simulates next."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd


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

    ``predictions`` has ``smiles``, ``ie`` (predicted, eV) and ``ie_spread``. Ties keep the
    search-space order, so the same inputs always give the same picks. ``positions`` (each
    SMILES' row in ``predictions``) spares hashing every SMILES of the space once per batch.
    """
    smiles = predictions["smiles"].to_numpy()
    if positions is not None and len(positions) == len(smiles):
        keep = np.ones(len(smiles), dtype=bool)
        keep[[positions[s] for s in exclude if s in positions]] = False
    else:
        keep = ~predictions["smiles"].isin(exclude).to_numpy()
    smiles = smiles[keep]
    if acquisition == "random":
        order = (rng or np.random.default_rng()).permutation(len(smiles))
        for i in order.tolist():  # lazily: a batch reads a few dozen
            yield smiles[i]
        return
    score = predictions["ie"].to_numpy(dtype=float)[keep]
    if acquisition == "ucb":
        score = score + ucb_kappa * predictions["ie_spread"].to_numpy(dtype=float)[keep]
    if acquisition != "epsilon-greedy":
        for i in best_first(score):
            yield smiles[i]
        return
    greedy = smiles[np.argsort(-score, kind="stable")]
    rng = rng or np.random.default_rng()
    taken: set[str] = set()
    g = 0
    while len(taken) < len(greedy):
        if rng.random() < epsilon:
            pick = greedy[rng.integers(len(greedy))]
            if pick in taken:
                continue
        else:
            while greedy[g] in taken:
                g += 1
            pick = greedy[g]
        taken.add(pick)
        yield pick
