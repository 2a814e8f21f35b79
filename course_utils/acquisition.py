"""The acquisition part: which untried molecules the campaign simulates next."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd


def rank_candidates(
    predictions: pd.DataFrame,
    exclude: set[str],
    *,
    acquisition: str = "greedy",
    rng: np.random.Generator | None = None,
    ucb_kappa: float = 1.0,
    epsilon: float = 0.1,
) -> Iterator[str]:
    """Yield never-tried SMILES in the order the acquisition strategy prefers them.

    ``predictions`` has ``smiles``, ``ie`` (predicted, eV) and ``ie_spread``. Ties keep the
    search-space order, so the same inputs always give the same picks.
    """
    fresh = predictions[~predictions["smiles"].isin(exclude)]
    if acquisition == "random":
        order = (rng or np.random.default_rng()).permutation(len(fresh))
        yield from fresh["smiles"].to_numpy()[order]
        return
    score = fresh["ie"].to_numpy(dtype=float)
    if acquisition == "ucb":
        score = score + ucb_kappa * fresh["ie_spread"].to_numpy(dtype=float)
    greedy = fresh["smiles"].to_numpy()[np.argsort(-score, kind="stable")]
    if acquisition != "epsilon-greedy":
        yield from greedy
        return
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
