"""A few hundred QM9 molecules with known IEs, the same for every model test."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from course_utils.ground_truth import load_ground_truth


@functools.cache
def qm9_sample(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """``n`` random molecules whose xTB calculation succeeded (columns smiles, ie)."""
    table = load_ground_truth("qm9")
    ok = table[table["status"] == "ok"]
    rows = np.random.default_rng(seed).choice(len(ok), size=n, replace=False)
    return ok.iloc[rows][["smiles", "ie"]].reset_index(drop=True)


def split(n_train: int, n_test: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = qm9_sample(n_train + n_test, seed)
    return data.iloc[:n_train], data.iloc[n_train:]
