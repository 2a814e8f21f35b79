"""What the replayed runs say, per run and per strategy: the tables of a comparison.

Strategies are compared the way active-learning papers compare them (MolPAL's lookup objective
is the standard example): every strategy is replayed from the ground-truth table over many seeds
with the same budget (:mod:`course_utils.studies.replays`), and what each run found is measured
against the table's yardsticks (:mod:`course_utils.studies.marks`). This module turns those
curves into tables: one row per run, one per strategy over its seeds, and the spread of a curve
over seeds (:func:`band`, what :mod:`course_utils.studies.comparison_plot` draws). It never
estimates a value the table does not hold.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from course_utils.studies.marks import REACH_K, Yardsticks, marks_for

__all__ = ["band", "strategy_table", "summarize_runs"]


def summarize_runs(curves: pd.DataFrame, marks: Yardsticks | None = None) -> pd.DataFrame:
    """One row per run: ``best_ie`` and ``best_smiles`` (eV), ``regret_ev`` (global best minus
    best found), ``sims_to_top10`` (successful simulations until the first molecule at or above
    the table's top-10 threshold; <NA> if never), ``top100_recall``, ``simulations`` and
    ``wall_time_s`` (simulated clock when the last of them came back)."""
    marks = marks_for(curves, marks)
    threshold = marks.threshold(REACH_K)
    rows = []
    for (strategy, seed), run in curves.groupby(["strategy", "seed"], sort=False):
        run = run.sort_values("n")
        best = int(np.nanargmax(run["ie"].to_numpy())) if run["ie"].notna().any() else None
        reached = run.loc[run["ie"] >= threshold, "n"] if threshold is not None else run["n"][:0]
        best_ie = float(run["ie"].iloc[best]) if best is not None else math.nan
        rows.append({
            "strategy": strategy, "seed": int(seed),
            "best_ie": best_ie,
            "best_smiles": run["smiles"].iloc[best] if best is not None else None,
            "regret_ev": (round(marks.global_best_ie - best_ie, 6) + 0.0
                          if marks.global_best_ie is not None and best is not None else math.nan),
            "sims_to_top10": int(reached.iloc[0]) if len(reached) else pd.NA,
            "top100_recall": float(run["top100_recall_so_far"].iloc[-1]) if len(run) else math.nan,
            "simulations": int(run["n"].max()) if len(run) else 0,
            "wall_time_s": float(run["elapsed_s"].iloc[-1]) if len(run) else math.nan,
        })
    summary = pd.DataFrame(rows)
    summary["sims_to_top10"] = summary["sims_to_top10"].astype("Int64")
    summary.attrs = dict(curves.attrs)
    return summary


def strategy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per strategy over its seeds: how many runs never reached the top-10 threshold, and the
    median successful simulations to reach it, counting those runs as later than anything
    (<NA> when at least half of the runs never reached it); medians of best IE and regret, mean
    top-100 recall and simulated wall time."""
    rows = []
    for strategy, runs in summary.groupby("strategy", sort=False):
        reach = runs["sims_to_top10"]
        never = int(reach.isna().sum())
        ordered = np.sort(reach.dropna().to_numpy(dtype=float))
        values = np.concatenate([ordered, np.full(never, np.inf)])
        median = float(np.median(values)) if len(values) else math.inf
        rows.append({
            "strategy": strategy,
            "runs": len(runs),
            "never_reached_top10": never,
            "median_sims_to_top10": median if math.isfinite(median) else pd.NA,
            "median_best_ie": float(runs["best_ie"].median()),
            "median_regret_ev": float(runs["regret_ev"].median()),
            "mean_top100_recall": float(runs["top100_recall"].mean()),
            "mean_wall_time_s": float(runs["wall_time_s"].mean()),
        })
    table = pd.DataFrame(rows).set_index("strategy")
    table["median_sims_to_top10"] = table["median_sims_to_top10"].astype("Float64")
    return table


def band(curves: pd.DataFrame, column: str, low: float = 0.1, high: float = 0.9) -> pd.DataFrame:
    """Per strategy and n: mean, the ``low`` and ``high`` quantiles of ``column`` over seeds,
    and how many runs got that far."""
    grouped = curves.groupby(["strategy", "n"], sort=False)[column]
    out = pd.DataFrame({"mean": grouped.mean(), "low": grouped.quantile(low),
                        "high": grouped.quantile(high), "runs": grouped.size()})
    return out.reset_index()
