"""Grading a class's homework: a leaderboard of runs ranked on what they really simulated.

Every graded number comes from a submission's own simulation records. A submission that is
missing files, whose notebook stopped with an error, that did not finish, or whose results file
claims something its records do not back (a tampered file) is listed with the reason and never
ranked. Nothing a student hands in can make the command crash.

Ranking: best simulated IE (eV, higher first), then the wall time until it was found.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils import records as rec
from course_utils.campaign.stopping import is_finished_status
from course_utils.chemistry import ChemistryError, EngineUnavailableError, compute_vertical
from course_utils.figures import style as figure_style
from course_utils.ground_truth.evaluation import evaluate_run
from course_utils.ground_truth.shipped import load_ground_truth, truth_of_space
from course_utils.ground_truth.table import GroundTruthError, table_name
from course_utils.resilience import one_line

LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_PNG = "leaderboard.png"
NOT_RANKED_CSV = "not_ranked.csv"
#: Two IEs closer than this (eV) are the same number written twice (CSV and JSON round trips).
SAME_VALUE_EV = 1e-6
#: A recomputed IE must agree with the recorded one this well (eV): engines agree to 1e-3.
REPRODUCE_TOLERANCE_EV = 0.01
#: How notebook 4 names the run folder to hand in, one line the grader reads back from an
#: executed notebook (:func:`notebook_hand_in`); the panel's runs live in folders of their own.
HAND_IN_LABEL = "Hand in this folder:"
PARAMETER_COLUMNS = ("initial_training_count", "max_training_count", "batch_size", "model",
                     "acquisition", "mode", "seed", "workers")
#: What a parameter was in runs of kits that did not record it (the KNN was the only model).
OLDER_RUN_PARAMETERS = {"model": "knn"}


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


class BrokenSubmission(Exception):
    """Why a submission cannot be ranked, in one line."""


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


def _read_results(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    results_path, sims_path = run_dir / rec.RESULTS_FILE, run_dir / rec.SIMULATIONS_FILE
    missing = [p.name for p in (results_path, sims_path) if not p.exists()]
    if missing:
        raise BrokenSubmission(f"missing {' and '.join(missing)} in {_label(run_dir)}")
    try:
        results = rec.load_json_object(results_path)
    except ValueError as err:
        raise BrokenSubmission(f"results.json is not valid JSON ({err})") from None
    try:
        columns = set(pd.read_csv(sims_path, nrows=0).columns)
        needed = {"smiles", "ie", "status", "error", "elapsed_s"}
        if not needed <= columns:
            raise BrokenSubmission(f"simulations.csv lacks columns {sorted(needed - columns)}")
        sims = rec.read_simulations(run_dir)
    except (ValueError, pd.errors.ParserError) as err:
        raise BrokenSubmission(f"simulations.csv cannot be read ({err})") from None
    _refuse_rejected_rows(run_dir, sims)
    return results, sims


def _refuse_rejected_rows(run_dir: Path, sims: pd.DataFrame) -> None:
    """A run whose records held rows that do not parse is not ranked until someone decides
    what they were: counting or dropping them silently would both grade a guess."""
    bad = sims.attrs.get("rejected") or []
    if bad:
        line, reason = bad[0]
        raise BrokenSubmission(
            f"simulations.csv holds {len(bad)} row(s) that do not parse (line {line}: {reason}); "
            "fix or delete them (a resume moves them to simulations.rejected.csv), then grade "
            "again")
    aside = [p.name for p in rec.rejected_files(run_dir)]
    if aside:
        raise BrokenSubmission(
            f"{', '.join(aside)} holds rows set aside because they do not parse; fix and append "
            f"them back to their file, or delete {', '.join(aside)}, then grade again")


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_records(results: dict[str, Any], sims: pd.DataFrame) -> dict[str, Any]:
    """The graded numbers, derived from the simulation records and checked against results.json.

    Raises :class:`BrokenSubmission` for unfinished runs and for claims the records do not back.
    """
    status = results.get("status")
    totals = results.get("totals") or {}
    params = results.get("parameters") or {}
    best = results.get("best") or {}
    ok = sims[sims["status"] == rec.STATUS_OK].copy()
    ok["ie"] = pd.to_numeric(ok["ie"], errors="coerce")
    ok["elapsed_s"] = pd.to_numeric(ok["elapsed_s"], errors="coerce")
    budget = params.get("max_training_count")
    if results.get("replayed") or params.get("simulator") == "replay":
        raise BrokenSubmission("replayed run: its simulations were answered from the ground-truth "
                               "table, not computed; hand in a real run")
    stopped_early = is_finished_status(status) and status != "complete"
    if not is_finished_status(status):
        raise BrokenSubmission(f"unfinished run (status {status!r}): {len(ok)} of {budget} "
                               "successful simulations")
    if stopped_early and not (results.get("stopping") or {}).get("fired"):
        raise BrokenSubmission(f"results.json says {status!r}, but its stopping block does not "
                               "record a rule that fired")
    if ok.empty or not best:
        raise BrokenSubmission("no successful simulation recorded")
    if ok["ie"].isna().any() or ok["elapsed_s"].isna().any():
        raise BrokenSubmission("simulations.csv has successful rows without an IE or a time")
    if isinstance(budget, int) and len(ok) < budget and not stopped_early:
        raise BrokenSubmission(f"results.json says complete, but simulations.csv holds {len(ok)} "
                               f"of {budget} successful simulations")
    if _number(totals.get("successful")) != len(ok):
        raise BrokenSubmission(f"results.json claims {totals.get('successful')} successful "
                               f"simulations; simulations.csv holds {len(ok)}")
    repeated = ok["smiles"][ok["smiles"].duplicated()].unique().tolist()
    if repeated:
        raise BrokenSubmission(f"simulations.csv repeats molecules: {', '.join(repeated[:3])}")
    ok = ok.sort_values("elapsed_s", kind="stable").reset_index(drop=True)
    top = ok.loc[ok["ie"].idxmax()]
    claimed = _number(best.get("ie"))
    if not abs(claimed - float(top["ie"])) <= SAME_VALUE_EV:
        raise BrokenSubmission(f"best IE {claimed:.3f} eV in results.json is not backed by "
                               f"simulations.csv (highest simulated: {float(top['ie']):.3f} eV)")
    backing = ok[(ok["smiles"] == best.get("smiles"))
                 & ((ok["ie"] - claimed).abs() <= SAME_VALUE_EV)]
    if backing.empty:
        raise BrokenSubmission(f"best molecule {best.get('smiles')!r} has no successful row with "
                               f"IE {claimed:.3f} eV in simulations.csv")
    time_to_best = float(backing["elapsed_s"].iloc[0])
    claimed_time = _number(best.get("time_to_best_s"))
    if not abs(claimed_time - time_to_best) <= 1e-3:
        raise BrokenSubmission(f"time to best {claimed_time:.1f} s in results.json does not match "
                               f"its simulation record ({time_to_best:.1f} s)")
    total_time = _number(totals.get("wall_time_s"))
    if not total_time >= time_to_best - 1e-3:
        raise BrokenSubmission(f"total time {total_time:.1f} s is shorter than the time to best")
    return {
        "best_ie_ev": float(top["ie"]),
        "best_smiles": str(top["smiles"]),
        "time_to_best_s": time_to_best,
        "simulations_to_best": int(backing.index[0]) + 1,
        "successful": len(ok),
        "failed": int((~sims["status"].isin([rec.STATUS_OK, rec.STATUS_LOST])).sum()),
        "simulations": int((sims["status"] != rec.STATUS_LOST).sum()),
        "total_time_s": total_time,
        **{name: params.get(name, OLDER_RUN_PARAMETERS.get(name)) for name in PARAMETER_COLUMNS},
    }


def _verify_best(row: dict[str, Any], engine: str | None) -> str:
    """Recompute the best molecule's IE; returns how it went, raises if it does not reproduce."""
    try:
        value = compute_vertical(row["best_smiles"], engine=engine)
    except EngineUnavailableError:
        return "not checked (no xTB engine)"
    except ChemistryError as err:
        raise BrokenSubmission(f"best molecule {row['best_smiles']!r} cannot be simulated "
                               f"({type(err).__name__})") from None
    if abs(value - row["best_ie_ev"]) > REPRODUCE_TOLERANCE_EV:
        raise BrokenSubmission(f"best IE {row['best_ie_ev']:.3f} eV of {row['best_smiles']} does "
                               f"not reproduce (recomputed: {value:.3f} eV)")
    return "reproduced"


YARDSTICK_COLUMNS = ("regret_ev", "best_rank", "best_percentile", "top1_recall", "top10_recall",
                     "top100_recall", "simulations_to_top10")


def _ground_truth_columns(results: dict[str, Any], sims: pd.DataFrame,
                truth: pd.DataFrame | None) -> dict[str, Any]:
    """The run against the ground truth, computed here from its records (never taken from its
    results.json); empty where no table covers its search space."""

    space = (results.get("parameters") or {}).get("search_space")
    if truth is None or space is None or table_name(space) != "qm9":
        return {}
    ev = evaluate_run(sims, truth_of_space(truth, space))
    recall, reach = ev["top_k_recall"], ev["simulations_to_top_k"]
    return {"regret_ev": ev["regret_ev"], "best_rank": ev["best_rank"],
            "best_percentile": ev["best_percentile"], "top1_recall": recall.get("1"),
            "top10_recall": recall.get("10"), "top100_recall": recall.get("100"),
            "simulations_to_top10": reach.get("10")}


def _grading_truth() -> pd.DataFrame | None:
    try:
        return load_ground_truth("qm9")
    except GroundTruthError:
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
        results, sims = _read_results(sub.run_dir)
        row = check_records(results, sims)
        row["verified"] = _verify_best(row, engine) if verify else "not checked"
        row.update(_ground_truth_columns(results, sims, truth))
    except BrokenSubmission as err:
        sub.problem = str(err)
        return
    except Exception as err:  # noqa: BLE001  anything odd in a hand-in is a reason, not a crash
        sub.problem = f"unreadable submission ({one_line(err, 276)})"
        return
    sub.row = {"run": sub.label, **row}
    sub.curve = rec.best_so_far(sims)


# --- the leaderboard ---------------------------------------------------------------------
def leaderboard(submissions: Sequence[Submission]) -> pd.DataFrame:
    """Ranked runs: best simulated IE (high first), then time to reach it (short first)."""
    rows = [s.row for s in submissions if s.ranked]
    columns = ["rank", "run", "best_ie_ev", "best_smiles", "time_to_best_s", "simulations_to_best",
               "successful", "failed", "simulations", "total_time_s", *PARAMETER_COLUMNS,
               "verified", *YARDSTICK_COLUMNS]
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


@dataclass
class GradingReport:
    board: pd.DataFrame
    not_ranked: pd.DataFrame
    csv_path: Path
    figure_path: Path
    not_ranked_path: Path


def grade(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike = "grading", *,
          verify: bool = True, engine: str | None = None) -> GradingReport:
    """Rank the submissions under ``paths``; write the leaderboard CSV, figure and rejects."""
    submissions = find_submissions(paths)
    truth = _grading_truth()
    for sub in submissions:
        check_submission(sub, verify=verify, engine=engine, truth=truth)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    board = leaderboard(submissions)
    rejects = pd.DataFrame([{"run": s.label, "reason": s.problem}
                            for s in submissions if not s.ranked], columns=["run", "reason"])
    csv_path, rejects_path = out / LEADERBOARD_CSV, out / NOT_RANKED_CSV
    board.to_csv(csv_path, index=False)
    rejects.to_csv(rejects_path, index=False)
    figure = plot_leaderboard(submissions, board, out / LEADERBOARD_PNG, truth=truth)
    return GradingReport(board, rejects, csv_path, figure, rejects_path)


def format_report(report: GradingReport) -> str:
    """The leaderboard as a terminal table, then the runs that were not ranked and why."""
    lines = []
    if len(report.board):
        shown = report.board.rename(columns={
            "best_ie_ev": "best IE (eV)", "best_smiles": "best molecule",
            "time_to_best_s": "time to best (s)", "simulations_to_best": "sims to best",
            "simulations": "sims used", "total_time_s": "total time (s)",
            "initial_training_count": "initial", "max_training_count": "max",
            "batch_size": "batch"})
        shown = shown.drop(columns=["successful", "failed", "workers"])
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    else:
        lines.append("No run could be ranked.")
    if len(report.not_ranked):
        lines.append("")
        lines.append(f"Not ranked ({len(report.not_ranked)}):")
        lines += [f"  {r.run}: {r.reason}" for r in report.not_ranked.itertuples()]
    lines.append("")
    lines.append(f"Wrote {report.csv_path}, {report.figure_path} and {report.not_ranked_path}")
    return "\n".join(lines)


def grade_main(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
               verify: bool = True, engine: str | None = None) -> int:
    """CLI entry: print the report; exit 0 if at least one run was ranked, else 1."""
    report = grade(paths, out_dir, verify=verify, engine=engine)
    print(format_report(report))
    return 0 if len(report.board) else 1
