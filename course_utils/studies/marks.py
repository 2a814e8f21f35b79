"""What a replayed run is measured against: the yardsticks of its search space's table.

A comparison of strategies (:mod:`course_utils.studies.replays`, :mod:`.summaries`,
:mod:`.comparison_plot`) and the stopping study measure every run against the same marks: the
table's global best, its top-k molecules and their thresholds, and its coverage. They are read
once per process and table file (a table that grows is read again).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils.campaign.simulators import measured_table
from course_utils.ground_truth.evaluation import ranked_molecules
from course_utils.ground_truth.table import Coverage, packaged_table_path, table_name
from course_utils.search_space import load_search_space

__all__ = ["REACH_K", "RECALL_K", "Yardsticks", "marks_for", "table_stamp", "yardsticks"]

#: Top-k recall of the curves: the share of the table's k highest IEs found so far.
RECALL_K = 100
#: The top-k threshold that :func:`~course_utils.studies.summaries.summarize_runs` reports the
#: simulations to reach.
REACH_K = 10


@dataclass(frozen=True)
class Yardsticks:
    """What a run is measured against, from the ground-truth table of its search space.

    Ranked by :func:`course_utils.ground_truth.evaluation.ranked_molecules` (the rule
    ``evaluate_run`` uses); the top-k threshold is the IE of the k-th of them.
    """

    search_space: str
    coverage: str  # "ground truth covers N of M molecules"
    complete: bool
    ranked: int  # molecules of the table with an IE
    global_best_smiles: str | None
    global_best_ie: float | None  # eV
    thresholds: Mapping[int, float]  # k -> IE of the table's k-th best molecule (eV)
    top_k: Mapping[int, frozenset[str]]  # k -> the table's k best molecules

    def threshold(self, k: int) -> float | None:
        return self.thresholds.get(k)


def yardsticks(search_space: str = "truth:qm9", ground_truth: str | os.PathLike | None = None
               ) -> Yardsticks:
    """The yardsticks of ``search_space`` (the table is read once per process and table file).

    ``ground_truth`` is the table a replay answers from (a ``truth build`` file); by default the
    one shipped for the space (``qm9``, or ``truth:qm9``, the part of QM9 it covers).
    """
    return _yardsticks(str(search_space), None if ground_truth is None else str(ground_truth),
                       table_stamp(search_space, ground_truth))


def table_stamp(search_space: str, ground_truth: str | os.PathLike | None) -> tuple[int, int] | None:
    """Identifies the table file's version: a table that grows is read again."""
    try:
        stat = _table_path(search_space, ground_truth).stat()
    except OSError:
        return None  # the loader raises its own clear error
    return stat.st_mtime_ns, stat.st_size


def _table_path(search_space: str, ground_truth: str | os.PathLike | None) -> Path:
    if ground_truth is not None:
        return Path(ground_truth)
    return packaged_table_path(table_name(search_space))


@lru_cache(maxsize=8)
def _yardsticks(search_space: str, ground_truth: str | None, _stamp: Any) -> Yardsticks:

    size = 0
    if ground_truth is not None:
        size = len(load_search_space(search_space))
    table, coverage_text = measured_table(search_space, ground_truth, size)
    coverage = table.attrs.get("coverage")
    complete = coverage.complete if isinstance(coverage, Coverage) else (
        size > 0 and len(table) >= size)
    ranked = ranked_molecules(table)
    smiles, ies = ranked["smiles"].tolist(), ranked["ie"].astype(float).tolist()
    ks = sorted({1, REACH_K, RECALL_K})
    return Yardsticks(
        search_space=search_space, coverage=coverage_text, complete=bool(complete),
        ranked=len(smiles),
        global_best_smiles=smiles[0] if smiles else None,
        global_best_ie=float(ies[0]) if ies else None,
        thresholds={k: float(ies[min(k, len(ies)) - 1]) for k in ks if ies},
        top_k={k: frozenset(smiles[:k]) for k in ks},
    )


def marks_for(curves: pd.DataFrame, marks: Yardsticks | None) -> Yardsticks:
    """``marks`` if given, else the yardsticks of the space the ``curves`` were replayed on."""
    if marks is not None:
        return marks
    return yardsticks(curves.attrs.get("search_space", "truth:qm9"),
                      curves.attrs.get("ground_truth"))
