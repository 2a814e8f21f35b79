"""The ``figures`` command: every figure of a set of runs, leaderboard included, from their records.

An entry point like the grader whose leaderboard it draws (:mod:`course_utils.grading`), so the
figures themselves (:mod:`course_utils.figures.campaign`) depend on nothing above the records.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from course_utils import grading
from course_utils import records as rec
from course_utils.figures.campaign import (
    CAMPAIGN_PNG,
    IE_DISTRIBUTION_PNG,
    LEADERBOARD_PNG,
    MODEL_ERROR_PNG,
    UTILIZATION_PNG,
    FiguresError,
    FiguresReport,
    load_truth,
    plot_campaign_copy,
    plot_ie_distribution,
    plot_model_error,
    plot_utilization,
    run_labels,
)
from course_utils.resilience import fail


# --- the leaderboard ---------------------------------------------------------------------
def plot_leaderboard_of(run_dirs: Sequence[Path], labels: Sequence[str], path: Path,
                        truth: pd.DataFrame | None) -> tuple[Path | None, list[str]]:
    """The grader's leaderboard figure (verify=False) of the runs; None if nothing ranks."""
    subs = [grading.Submission(label=label, run_dir=run_dir)
            for run_dir, label in zip(run_dirs, labels, strict=True)]
    for sub in subs:
        grading.check_submission(sub, verify=False, truth=truth)
    board = grading.leaderboard(subs)
    not_ranked = [f"{s.label} not ranked: {s.problem}" for s in subs if not s.ranked]
    if board.empty:
        return None, not_ranked
    return grading.plot_leaderboard(subs, board, path, truth=truth), not_ranked


# --- everything --------------------------------------------------------------------------
def check_run_dirs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The paths as run folders; :class:`FiguresError` (one line) for the first that is not."""
    run_dirs = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise FiguresError(f"{given}: no such file or folder")
        if not rec.is_run_folder(path):
            raise FiguresError(f"{given}: not a run folder (no {rec.SIMULATIONS_FILE})")
        if not (path / rec.SIMULATIONS_FILE).is_file():
            raise FiguresError(f"{given}: no simulations to draw yet (no {rec.SIMULATIONS_FILE})")
        run_dirs.append(path)
    if not run_dirs:
        raise FiguresError("no run folder given")
    return run_dirs


def make_figures(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *,
                 truth: str | os.PathLike | pd.DataFrame | None = "qm9") -> FiguresReport:
    """Regenerate every figure of the runs in ``paths`` into ``out_dir`` from their records.

    ``truth``: the ground-truth table for the IE distribution and the leaderboard's best line
    (a frame, a table file, or a shipped space's name; None for none).
    Raises :class:`FiguresError` before writing anything if a path is not a run folder.
    """
    run_dirs = check_run_dirs(paths)
    out = Path(out_dir)
    table = load_truth(truth)
    labels = run_labels(run_dirs)
    report = FiguresReport(out)
    if table is None:
        report.notes.append("no ground-truth table: IE distributions skipped")
    for run_dir, label in zip(run_dirs, labels, strict=True):
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        written = report.written.setdefault(label, [])
        drawn = plot_campaign_copy(run_dir, folder / CAMPAIGN_PNG)
        if drawn:
            written.append(drawn)
        else:
            report.notes.append(f"{label}: no successful simulation, campaign plot skipped")
        drawn = plot_model_error(run_dir, folder / MODEL_ERROR_PNG)
        if drawn:
            written.append(drawn)
        else:
            report.notes.append(f"{label}: no model error recorded, model_error.png skipped")
        written.append(plot_utilization(run_dir, folder / UTILIZATION_PNG))
        drawn = plot_ie_distribution(run_dir, folder / IE_DISTRIBUTION_PNG, table)
        if drawn:
            written.append(drawn)
    board, not_ranked = plot_leaderboard_of(run_dirs, labels, out / LEADERBOARD_PNG, table)
    if board:
        report.written["leaderboard"] = [board]
        report.notes += [note[:300] for note in not_ranked]
    else:
        reasons = "; ".join(not_ranked)
        report.notes.append(f"leaderboard skipped: no run ranks ({reasons})"[:400])
    return report


def figures_main(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                 truth: str | os.PathLike | None = "qm9") -> int:
    """CLI entry: write the figures and print where; 2 with one line if a path is not a run."""
    try:
        report = make_figures(paths, out_dir, truth=truth)
    except (FiguresError, ValueError, OSError) as err:
        return fail(err)
    print(report.format())
    return 0
