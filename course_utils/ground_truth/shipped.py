"""The shipped ground-truth table of a search space, and the coverage every number from it states.

A coverage is counted against the size of the space, and a ``truth:qm9:N`` run is measured
against its N molecules only: both need the search space, which is why these live here and not
in :mod:`course_utils.ground_truth.table` (which ``search_space`` reads for its ``truth:`` spaces).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from course_utils.ground_truth.table import Coverage, shipped_table
from course_utils.search_space import QM9_SIZE, load_search_space

if TYPE_CHECKING:
    import pandas as pd


def load_ground_truth(space: str = "qm9") -> pd.DataFrame:
    """The shipped table of ``space``: ``smiles``, ``ie`` (eV, NaN where the simulation failed),
    ``status``, ``error``, ``seconds``, ``engine``; one row per molecule simulated so far.

    ``df.attrs["coverage"]`` is a :class:`Coverage`: while the table is being built it covers
    only part of the space, and every number derived from it must say so.
    """
    df = shipped_table(space)
    df.attrs["coverage"] = Coverage(len(df), space_size(space), space)
    return df


def space_size(space: str) -> int:
    """How many molecules a coverage of ``space`` is counted against."""
    return QM9_SIZE if space == "qm9" else len(load_search_space(space))


def truth_of_space(table: pd.DataFrame, search_space: str) -> pd.DataFrame:
    """The part of a shipped table that a run on ``search_space`` is measured against: for
    ``truth:qm9:N`` its N molecules (which the table covers completely), else the table."""
    if str(search_space).count(":") != 2:
        return table
    space = load_search_space(str(search_space))["smiles"]
    subset = table[table["smiles"].isin(set(space))].reset_index(drop=True)
    subset.attrs["coverage"] = Coverage(len(subset), len(space), str(search_space))
    return subset
