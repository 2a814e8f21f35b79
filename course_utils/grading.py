"""Grading a class's homework: a leaderboard of runs ranked on what they really simulated.

Every graded number comes from a submission's own simulation records, and is checked against
something the student cannot edit (:mod:`course_utils.grading_checks`: the shipped ground-truth
table, xTB; :mod:`course_utils.grading_time`: the compute its time needed). A submission that is
missing files, whose notebook stopped with an error, that did not finish, whose files disagree
with each other or whose claims its records or the table do not back (a tampered file) is listed
with the reason and never ranked; runs that are copies of each other
(:mod:`course_utils.grading_duplicates`) are grouped and held until the instructor decides.
Nothing a student hands in can make the command crash.

Ranking (:mod:`course_utils.grading_board`): best simulated IE (eV, higher first), then the
time until it was found, measured on the student's machine.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils import records as rec
from course_utils.grading_board import (
    PARAMETER_COLUMNS,
    YARDSTICK_COLUMNS,
    curve_label,
    leaderboard,
    plot_leaderboard,
)
from course_utils.grading_checks import (
    BrokenSubmission,
    check_best,
    check_records,
    grading_truth,
    ground_truth_columns,
    read_results,
    time_columns,
)
from course_utils.grading_duplicates import (
    DUPLICATES_CSV,
    DuplicateGroup,
    duplicates_frame,
    find_duplicates,
    molecules,
    signatures,
)
from course_utils.grading_time import ImplausibleTime
from course_utils.resilience import one_line

__all__ = ["PARAMETER_COLUMNS", "YARDSTICK_COLUMNS", "BrokenSubmission", "GradingReport",
           "Submission", "check_records", "check_submission", "curve_label", "find_submissions",
           "format_report", "grade", "grade_main", "leaderboard", "notebook_error",
           "plot_leaderboard"]

LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_PNG = "leaderboard.png"
NOT_RANKED_CSV = "not_ranked.csv"
#: How notebook 4 names the run folder to hand in, one line the grader reads back from an
#: executed notebook (:func:`notebook_hand_in`); the panel's runs live in folders of their own.
HAND_IN_LABEL = "Hand in this folder:"


@dataclass
class Submission:
    """One run handed in: its output folder and/or executed notebooks, and what is wrong with it."""

    label: str
    run_dir: Path | None = None
    notebooks: list[Path] = field(default_factory=list)
    problem: str = ""
    row: dict[str, Any] = field(default_factory=dict)
    curve: pd.DataFrame | None = None

    @property
    def ranked(self) -> bool:
        return not self.problem


# --- finding submissions -----------------------------------------------------------------
def _label(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11)
        return str(path)


def _resolved(path: Path) -> Path:
    """``path.resolve()``, or the absolute path if it is a symlink loop (a key, never followed)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _path_problem(path: Path, err: Exception) -> str:
    """One line for a path the OS refuses to follow (a symlink loop, no permission, ...)."""
    if isinstance(err, RuntimeError) or getattr(err, "errno", None) == errno.ELOOP:
        return f"symlink loop: {path} never reaches a file or folder"
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return f"cannot read {path}: {reason}"


def notebook_hand_in(notebook: Path) -> list[Path]:
    """Folders an executed notebook names as its run, most certain first: the last
    ``Hand in this folder:`` line its cells printed (notebook 4 prints one for a headless run
    and for the panel's last run), then, for a notebook whose last cell was not run after a
    panel run, the one run folder under the ``output_dir`` of its parameters cell.

    A path written on the student's machine is tried as written, then by its trailing parts
    under the notebook's folder (a hand-in copies the notebook and its folder elsewhere).
    """
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
        texts = [_output_text(o) for c in cells if isinstance(c, dict)
                 for o in c.get("outputs", []) or [] if isinstance(o, dict)]
        sources = [_output_text({"text": c.get("source", "")}) for c in cells
                   if isinstance(c, dict) and "parameters" in (c.get("metadata") or {}).get("tags", [])]
    except (OSError, ValueError, AttributeError, TypeError):
        return []
    named = [line.split(HAND_IN_LABEL, 1)[1].strip() for text in texts
             for line in text.splitlines() if line.startswith(HAND_IN_LABEL)]
    found: list[Path] = []
    if named and named[-1]:
        given = Path(named[-1])
        found.append(given if given.is_absolute() else notebook.parent / given)
        found += [notebook.parent / Path(*given.parts[i:]) for i in range(1, len(given.parts))]
    for source in sources:
        match = re.search(r"^output_dir\s*=\s*[\"'](.+?)[\"']", source, re.MULTILINE)
        root = notebook.parent / match.group(1) if match else None
        try:
            if root is not None and root.is_dir() and not rec.is_run_folder(root):
                runs = [d for d in root.iterdir() if d.is_dir() and rec.is_run_folder(d)]
                found += runs if len(runs) == 1 else []
        except OSError:  # an unreadable folder names nothing; the grader says what is missing
            pass
    return found


def _output_text(output: dict) -> str:
    """The text of a notebook output (a stream's, or a display's plain text)."""
    text = output.get("text") or (output.get("data") or {}).get("text/plain") or ""
    return "".join(text) if isinstance(text, list) else str(text)


def _notebook_run_dir(notebook: Path) -> Path | None:
    """Where an executed notebook wrote its outputs: the folder it names to hand in, its
    ``output_dir`` parameter, or beside it."""
    candidates: list[Path] = notebook_hand_in(notebook)
    try:
        meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
        output_dir = (meta.get("papermill") or {}).get("parameters", {}).get("output_dir")
    except (OSError, ValueError, AttributeError):
        output_dir = None
    if output_dir:
        given = Path(str(output_dir))
        candidates += [given if given.is_absolute() else notebook.parent / given,
                       notebook.parent / given.name]
    candidates.append(notebook.parent)
    for candidate in candidates:
        if candidate.is_dir() and rec.is_run_folder(candidate):
            return candidate
    return None


def _is_dir_or_unreadable(path: Path) -> bool:
    """Worth visiting inside a walked folder: a folder, or a link the OS refuses to follow.

    ``Path.is_dir`` answers False for a symlink loop, which would hide it from the report.
    """
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except FileNotFoundError:  # a dangling link: nothing was handed in there
        return False
    except OSError:
        return True


def find_submissions(paths: Iterable[str | os.PathLike]) -> list[Submission]:
    """Submissions under the given paths: run folders, executed notebooks, or folders of them.

    A notebook and the output folder it wrote count as one submission. A path the OS cannot
    follow (a symlink loop, a link back into a folder being walked, no permission) is listed
    with the reason; it never stops the others from being graded.
    """
    found: dict[Path, Submission] = {}

    def add_run(run_dir: Path, label: str) -> Submission:
        key = run_dir.resolve()
        if key not in found:
            found[key] = Submission(label=label, run_dir=run_dir)
            found[key].notebooks += sorted(run_dir.glob("*.ipynb"))
        return found[key]

    def visit(path: Path, walking: frozenset[Path] = frozenset()) -> None:
        try:
            visit_path(path, walking)
        except (OSError, RuntimeError) as err:  # RuntimeError: resolve() on a loop in 3.11
            found[path.absolute()] = Submission(label=_label(path), problem=_path_problem(path, err))

    def visit_path(path: Path, walking: frozenset[Path]) -> None:
        try:
            is_dir = stat.S_ISDIR(path.stat().st_mode)  # raises on a loop; exists() would not
        except FileNotFoundError:
            found[path.absolute()] = Submission(label=_label(path), problem=f"not found: {path}")
            return
        if is_dir and path.resolve() in walking:
            found[path.absolute()] = Submission(
                label=_label(path), problem=f"symlink loop: {path} leads back to a folder "
                                            "that contains it")
        elif is_dir and rec.is_run_folder(path):
            add_run(path, _label(path))
        elif is_dir:
            children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            if not children:
                found[path.resolve()] = Submission(label=_label(path),
                                                   problem="empty folder: no results.json, "
                                                           "simulations.csv or notebook")
            inside = walking | {path.resolve()}
            for child in children:
                if child.suffix == ".ipynb" or _is_dir_or_unreadable(child):
                    visit(child, inside)
        elif path.suffix == ".ipynb":
            run_dir = _notebook_run_dir(path)
            if run_dir is None:
                found[path.resolve()] = Submission(label=_label(path), notebooks=[path])
            else:
                sub = add_run(run_dir, _label(path))
                if path.resolve() not in {_resolved(n) for n in sub.notebooks}:
                    sub.notebooks.append(path)
        else:
            found[path.resolve()] = Submission(
                label=_label(path), problem="not a notebook (.ipynb) or an output folder")

    for p in paths:
        visit(Path(p))
    return list(found.values())


# --- checking one submission -------------------------------------------------------------
def notebook_error(notebook: Path) -> str | None:
    """A one-line description of why an executed notebook is not a finished run, or None."""
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{notebook.name} is not a readable notebook ({type(err).__name__})"
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []) or []:
            if output.get("output_type") == "error":
                return (f"{notebook.name} stopped with an error in cell {index + 1}: "
                        f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"[:300])
    papermill = nb.get("metadata", {}).get("papermill") or {}
    if papermill.get("exception"):
        return f"{notebook.name}: papermill recorded an exception"
    code = [c for c in cells if c.get("cell_type") == "code" and c.get("source")]
    if code and not any(c.get("execution_count") for c in code):
        return f"{notebook.name} was never executed"
    return None


def check_submission(sub: Submission, *, verify: bool = True, engine: str | None = None,
                     truth: pd.DataFrame | None = None) -> None:
    """Fill ``sub.row`` and ``sub.curve``, or ``sub.problem`` with the reason it is not ranked."""
    if sub.problem:
        return
    try:
        for notebook in sub.notebooks:
            error = notebook_error(notebook)
            if error:
                raise BrokenSubmission(error)
        if sub.run_dir is None:
            raise BrokenSubmission("no output folder (results.json, simulations.csv) found "
                                   "beside the notebook or at its output_dir")
        results, sims = read_results(sub.run_dir, _label(sub.run_dir))
        row = check_records(results, sims)
        row["verified"] = check_best(row, truth, verify, engine)
        row.update(time_columns(sub.run_dir, results, sims, row, truth))
        row.update(ground_truth_columns(results, sims, truth))
    except (BrokenSubmission, ImplausibleTime) as err:
        sub.problem = str(err)
        return
    except Exception as err:  # noqa: BLE001  anything odd in a hand-in is a reason, not a crash
        sub.problem = f"unreadable submission ({one_line(err, 276)})"
        return
    sub.row = {"run": sub.label, **row}
    sub.curve = rec.best_so_far(sims)


@dataclass
class GradingReport:
    board: pd.DataFrame
    not_ranked: pd.DataFrame
    csv_path: Path
    figure_path: Path
    not_ranked_path: Path
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    duplicates_path: Path | None = None
    duplicates_ranked: bool = False


def _signed(submissions: Sequence[Submission]) -> tuple[dict, dict]:
    """Each readable submission's record signatures and molecules, by label."""
    signed, simulated = {}, {}
    for sub in submissions:
        if sub.run_dir is None or not (sub.run_dir / rec.SIMULATIONS_FILE).is_file():
            continue
        try:
            sims = rec.read_simulations(sub.run_dir)
            signed[sub.label] = signatures(sub.run_dir, sims)
            simulated[sub.label] = molecules(sims)
        except Exception:  # noqa: BLE001, S112  an unreadable hand-in has its own reason already
            continue
    return signed, simulated


def _hold_duplicates(submissions: Sequence[Submission], groups: Sequence[DuplicateGroup]) -> None:
    """Runs of a duplicate group are not ranked until the instructor decides."""
    by_label = {s.label: s for s in submissions}
    for group in groups:
        for run in group.runs:
            sub = by_label[run]
            if sub.ranked:
                others = ", ".join(r for r in group.runs if r != run)
                sub.problem = (f"copy: shares its records with {others} (duplicates.csv); not "
                               "ranked until the instructor decides (grade --rank-duplicates)")


def grade(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike = "grading", *,
          verify: bool = True, engine: str | None = None,
          rank_duplicates: bool = False) -> GradingReport:
    """Rank the submissions under ``paths``; write the leaderboard CSV and figure, the runs not
    ranked with their reasons, and the groups of runs that are copies of each other."""
    submissions = find_submissions(paths)
    truth = grading_truth()
    for sub in submissions:
        check_submission(sub, verify=verify, engine=engine, truth=truth)
    groups = find_duplicates(*_signed(submissions))
    if not rank_duplicates:
        _hold_duplicates(submissions, groups)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    board = leaderboard(submissions)
    rejects = pd.DataFrame([{"run": s.label, "reason": s.problem}
                            for s in submissions if not s.ranked], columns=["run", "reason"])
    csv_path, rejects_path = out / LEADERBOARD_CSV, out / NOT_RANKED_CSV
    duplicates_path = out / DUPLICATES_CSV
    board.to_csv(csv_path, index=False)
    rejects.to_csv(rejects_path, index=False)
    duplicates_frame(groups).to_csv(duplicates_path, index=False)
    figure = plot_leaderboard(submissions, board, out / LEADERBOARD_PNG, truth=truth)
    return GradingReport(board, rejects, csv_path, figure, rejects_path, groups, duplicates_path,
                         rank_duplicates)


def format_report(report: GradingReport) -> str:
    """The leaderboard as a terminal table, the duplicate groups, then the runs that were not
    ranked and why."""
    lines = []
    if len(report.board):
        shown = report.board.rename(columns={
            "best_ie_ev": "best IE (eV)", "best_smiles": "best molecule",
            "time_to_best_s": "time to best (s)", "simulations_to_best": "sims to best",
            "simulations": "sims used", "total_time_s": "total time (s)",
            "initial_training_count": "initial", "max_training_count": "max",
            "batch_size": "batch"})
        shown["machine"] = shown["machine"].astype(str).str.slice(0, 28)
        shown = shown.drop(columns=["successful", "failed", "time_check"])
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        lines.append("Time breaks ties only: measured on each student's machine (workers and "
                     "machine beside it), checked for plausibility, not verified "
                     "(time_check in the CSV).")
    else:
        lines.append("No run could be ranked.")
    if report.duplicates:
        lines.append("")
        held = "ranked anyway (--rank-duplicates)" if report.duplicates_ranked else "not ranked"
        lines.append(f"Copies of each other ({len(report.duplicates)} group(s), {held}):")
        lines += [f"  {group.line()}" for group in report.duplicates]
    if len(report.not_ranked):
        lines.append("")
        lines.append(f"Not ranked ({len(report.not_ranked)}):")
        lines += [f"  {r.run}: {r.reason}" for r in report.not_ranked.itertuples()]
    lines.append("")
    written = [report.csv_path, report.figure_path, report.not_ranked_path]
    if report.duplicates_path is not None:
        written.append(report.duplicates_path)
    lines.append(f"Wrote {', '.join(map(str, written[:-1]))} and {written[-1]}")
    return "\n".join(lines)


def grade_main(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
               verify: bool = True, engine: str | None = None,
               rank_duplicates: bool = False) -> int:
    """CLI entry: print the report; exit 0 if at least one run was ranked, else 1."""
    report = grade(paths, out_dir, verify=verify, engine=engine, rank_duplicates=rank_duplicates)
    print(format_report(report))
    return 0 if len(report.board) else 1
