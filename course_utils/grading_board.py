"""The leaderboard of a graded class: the ranked table and its figure.

Ranking: best simulated IE (eV, higher first), then the time until it was found, a tie-breaker
measured on each student's own machine (shown with the workers and the machine beside it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from course_utils.figures import style as figure_style

if TYPE_CHECKING:
    from course_utils.grading import Submission

PARAMETER_COLUMNS = ("initial_training_count", "max_training_count", "batch_size", "model",
                     "acquisition", "mode", "seed")
YARDSTICK_COLUMNS = ("regret_ev", "best_rank", "best_percentile", "top1_recall", "top10_recall",
                     "top100_recall", "simulations_to_top10")
#: The leaderboard's columns: time with the workers and the machine it was measured on.
BOARD_COLUMNS = ["rank", "run", "best_ie_ev", "best_smiles", "time_to_best_s", "workers", "machine",
                 "simulations_to_best", "successful", "failed", "simulations", "total_time_s",
                 *PARAMETER_COLUMNS, "verified", "time_check", *YARDSTICK_COLUMNS]


def leaderboard(submissions: Sequence[Submission]) -> pd.DataFrame:
    """Ranked runs: best simulated IE (high first), then time to reach it (short first)."""
    rows = [s.row for s in submissions if s.ranked]
    columns = BOARD_COLUMNS
    if not rows:
        return pd.DataFrame(columns=columns)
    board = pd.DataFrame(rows).sort_values(["best_ie_ev", "time_to_best_s", "run"],
                                           ascending=[False, True, True], kind="stable")
    board.insert(0, "rank", range(1, len(board) + 1))
    return board.reindex(columns=columns).reset_index(drop=True)


def plot_leaderboard(submissions: Sequence[Submission], board: pd.DataFrame, path: Path,
                     truth: pd.DataFrame | None = None) -> Path:
    """Best-so-far curves of every ranked run, against wall time and against simulations;
    with a ground-truth table, QM9's best molecule as a line (with the table's coverage)."""
    plt = figure_style.pyplot()
    with figure_style.style():
        return _draw_leaderboard(plt, submissions, board, path, truth)


def curve_label(entry: Mapping[str, Any]) -> str:
    """A leaderboard row as its figure legend: rank, run, the model and acquisition it used
    (what a class compares), best simulated IE."""
    return (f"{entry['rank']}. {entry['run']} ({entry['model']}, {entry['acquisition']}: "
            f"{entry['best_ie_ev']:.3f} eV)")


def _draw_leaderboard(plt: Any, submissions: Sequence[Submission], board: pd.DataFrame,
                      path: Path, truth: pd.DataFrame | None) -> Path:
    curves = {s.label: s.curve for s in submissions if s.ranked and s.curve is not None}
    fig, (ax_t, ax_n) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    for _, entry in board.iterrows():
        curve = curves[entry["run"]]
        label = curve_label(entry)
        best = curve["best_ie"].tolist()
        # Curves run on to the end of the run: time spent after the best find counts too.
        times = [*curve["elapsed_s"], max(entry["total_time_s"], curve["elapsed_s"].iloc[-1])]
        line, = ax_t.step(times, [*best, best[-1]], where="post", lw=1.8, label=label)
        ax_n.step(curve["n_simulations"], best, where="post", lw=1.8, color=line.get_color())
        ax_t.plot([entry["time_to_best_s"]], [entry["best_ie_ev"]], "o", color=line.get_color())
    ax_t.set_xlabel("wall time (s)")
    ax_n.set_xlabel("successful simulations")
    ok = truth[truth["status"] == "ok"] if truth is not None else None
    if ok is not None and len(ok) and len(board):
        top = ok.loc[ok["ie"].idxmax()]
        label = f"QM9 best: {top['ie']:.2f} eV ({top['smiles']})"
        coverage = truth.attrs.get("coverage")
        if coverage is not None and not coverage.complete:
            label += f"; {coverage}"
        for ax in (ax_t, ax_n):
            ax.axhline(float(top["ie"]), color="black", ls=":", lw=1, label=label)
        ax_n.legend(loc="lower right", fontsize=7)
    for ax in (ax_t, ax_n):
        ax.set_ylabel(figure_style.IE_LABEL)
        ax.grid(alpha=0.3)
    if len(board):
        ax_t.legend(loc="lower right", fontsize=7 if len(board) <= 12 else 5,
                    ncol=1 if len(board) <= 12 else 2)
    fig.suptitle(f"Homework leaderboard: {len(board)} ranked runs (dot: best found)", fontsize=10)
    return figure_style.save(fig, path)
