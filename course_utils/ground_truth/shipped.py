"""The shipped ground-truth table of a search space, and the coverage every number from it states.

A coverage is counted against the size of the space, and a ``truth:qm9:N`` run is measured
against its N molecules only: both need the search space, which is why these live here and not
in :mod:`course_utils.ground_truth.table`. The ``truth:`` spaces themselves are read here too
(:func:`covered_by_truth`, registered with :func:`course_utils.search_space.register_space_source`
on import), so the search space, on the ground floor, never imports the ground truth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from course_utils.ground_truth.table import Coverage, build_order, shipped_table
from course_utils.search_space import (
    QM9_SIZE,
    SearchSpaceError,
    SearchSpaceReport,
    load_search_space,
    register_space_source,
)

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


def covered_by_truth(spec: str) -> tuple[pd.DataFrame, SearchSpaceReport]:
    """The molecules of a space that the ground-truth table covers, in the space's order:
    a search space that replay can answer completely while the table is being built.

    ``qm9`` grows with the table; ``qm9:N`` is the first N molecules of the table's fixed
    build order, the same set forever once covered, so runs on it stay reproducible.
    """
    space, _, count = spec.partition(":")
    table = shipped_table(space)
    full = load_search_space(space)
    coverage = Coverage(len(table), len(full), space)
    keep = set(table["smiles"])
    if count:
        n = int(count) if count.isdigit() else 0
        if n < 1:
            raise SearchSpaceError(f"'truth:{spec}': N in truth:{space}:N must be a whole "
                                   "number >= 1")
        if n > len(full):
            raise SearchSpaceError(f"'truth:{spec}': {space} has only {len(full):,} molecules; "
                                   f"use N <= {len(full)}")
        first = build_order(full["smiles"].tolist())[:n]
        covered = next((i for i, s in enumerate(first) if s not in keep), len(first))
        if covered < len(first):
            raise SearchSpaceError(
                f"'truth:{spec}': the ground-truth table covers only the first {covered:,} "
                f"molecules of its build order ({coverage}); use N <= {covered}")
        keep = set(first)
    df = full[full["smiles"].isin(keep)].reset_index(drop=True)
    df.attrs.clear()
    label = f"'truth:{spec}' ({coverage})"
    return df, SearchSpaceReport(label, len(df), len(df), validated=False)


register_space_source("truth", covered_by_truth)
