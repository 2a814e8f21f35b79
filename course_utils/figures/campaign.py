"""Every figure of the kit, regenerated from a run folder's records alone.

``python -m course_utils figures RUN... --out DIR`` writes, for each run folder,
``DIR/<run-label>/`` ``campaign.png``, ``model_error.png``, ``utilization.png`` and
``ie_distribution.png``, and for the set of runs ``DIR/leaderboard.png``. A figure that the
records cannot support (no model error recorded, no ground-truth table, no ranked run) is
skipped with a one-line note instead of being drawn empty. The command, which also draws the
grader's leaderboard, is :mod:`course_utils.figures.command`.

The same records give byte-identical PNGs (:mod:`course_utils.figures.style`: the Agg backend,
a fixed font and dpi, no ``Software`` or date text chunk) and titles hold no timestamps or
absolute paths. The campaign figure is drawn by one function, :func:`plot_campaign`, at the end
of a run (``ml_in_the_loop.png``) and here (``campaign.png``): the two files are the same bytes.
(A ground-truth table that grows between two calls is a different record: the IE distribution
and the leaderboard's best line then change with it.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.figures import style as figure_style
from course_utils.ground_truth.shipped import load_ground_truth
from course_utils.ground_truth.table import GroundTruthError, read_table

CAMPAIGN_PNG = "campaign.png"
MODEL_ERROR_PNG = "model_error.png"
UTILIZATION_PNG = "utilization.png"
IE_DISTRIBUTION_PNG = "ie_distribution.png"
LEADERBOARD_PNG = "leaderboard.png"
STATUS_COLORS = {rec.STATUS_OK: "tab:green", rec.STATUS_FAILED: "tab:red",
                 rec.STATUS_TIMEOUT: "tab:orange", rec.STATUS_LOST: "tab:gray"}


class FiguresError(ValueError):
    """A path given to ``figures`` is not a run folder (one line)."""


@dataclass
class FiguresReport:
    """What was written (by run label) and what was skipped, with the reason."""

    out_dir: Path
    written: dict[str, list[Path]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = []
        for label, paths in self.written.items():
            names = ", ".join(p.name for p in paths) or "nothing"
            lines.append(f"{label}: {names}")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"figures written to {self.out_dir}/")
        return "\n".join(lines)


# --- helpers -----------------------------------------------------------------------------
def _results(run_dir: Path) -> dict[str, Any]:
    return rec.read_json_object(run_dir / rec.RESULTS_FILE) or {}


def _parameters(run_dir: Path) -> dict[str, Any]:
    return rec.run_parameters(run_dir) or {}


def _replayed(run_dir: Path) -> bool:
    return bool(_results(run_dir).get("replayed")
                or _parameters(run_dir).get("simulator") == "replay")


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """One label per run folder: its name, with ``-2``, ``-3``... where names repeat."""
    labels: list[str] = []
    for path in run_dirs:
        base = Path(os.path.abspath(path)).name or "run"
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base}-{n}"
        labels.append(label)
    return labels


# --- utilization -------------------------------------------------------------------------
def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) or "-"


def utilization_intervals(simulations: pd.DataFrame) -> pd.DataFrame:
    """One row per simulation with a start and an end: ``worker_key``, ``start``, ``end``
    (seconds after the run's first start) and ``status``; workers sorted by key."""
    sims = simulations.copy()
    for column in ("start_time", "end_time"):
        sims[column] = pd.to_numeric(sims.get(column), errors="coerce")
    sims = sims[np.isfinite(sims["start_time"]) & np.isfinite(sims["end_time"])]
    if sims.empty:
        return pd.DataFrame(columns=["worker_key", "start", "end", "status"])
    keys = [" / ".join(_text(v) for v in row) for row in
            zip(*(sims[c] if c in sims else [""] * len(sims) for c in ("host", "manager", "worker")),
                strict=True)]
    t0 = float(sims["start_time"].min())
    out = pd.DataFrame({"worker_key": keys, "start": sims["start_time"].to_numpy() - t0,
                        "end": sims["end_time"].to_numpy() - t0,
                        "status": sims["status"].astype(str).to_numpy()})
    out["end"] = np.maximum(out["end"], out["start"])
    return out.sort_values(["worker_key", "start", "end"], kind="stable").reset_index(drop=True)


def _busy_seconds(intervals: pd.DataFrame) -> float:
    """Time some simulation ran, summed over workers (overlaps on one worker counted once)."""
    busy = 0.0
    for _, group in intervals.groupby("worker_key", sort=True):
        cur_start = cur_end = None
        for start, end in sorted(zip(group["start"], group["end"], strict=True)):
            if cur_end is None or start > cur_end:
                if cur_end is not None:
                    busy += cur_end - cur_start
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        if cur_end is not None:
            busy += cur_end - cur_start
    return float(busy)


def utilization(simulations: pd.DataFrame) -> tuple[int, float, float]:
    """``(workers, span_s, mean utilization)``: busy time / (workers seen x span), span from the
    first start to the last end. Workers that never ran a simulation are not in the records."""
    intervals = utilization_intervals(simulations)
    if intervals.empty:
        return 0, 0.0, float("nan")
    workers = int(intervals["worker_key"].nunique())
    span = float(intervals["end"].max())
    if span <= 0:
        return workers, span, float("nan")
    return workers, span, _busy_seconds(intervals) / (workers * span)


def plot_utilization(run_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Worker-utilization timeline: one row per (host, manager, worker), a bar per simulation
    from its start to its end (relative to the run's first start), colored by status."""
    run_dir, path = Path(run_dir), Path(path)
    sims = rec.read_simulations(run_dir)
    intervals = utilization_intervals(sims)
    workers, span, mean = utilization(sims)
    replayed = _replayed(run_dir)
    with figure_style.style():
        keys = sorted(intervals["worker_key"].unique()) if len(intervals) else []
        height = min(max(2.4, 0.28 * len(keys) + 1.6), 30.0)
        label_size = 7 if len(keys) <= 40 else 4
        labels = [k if len(k) <= 40 else k[:37] + "..." for k in keys]
        # margins in inches: the widest worker label (~0.6 em a character) and the axis label
        left = 0.45 + 0.6 * label_size / 72 * max((len(k) for k in labels), default=1)
        fig, ax = figure_style.subplots(figsize=(11, height), margins={
            "left": left / 11, "right": 0.99, "bottom": 0.5 / height, "top": 1 - 0.3 / height})
        for row, key in enumerate(keys):
            mine = intervals[intervals["worker_key"] == key]
            for status, group in mine.groupby("status", sort=True):
                ax.broken_barh(list(zip(group["start"], group["end"] - group["start"],
                                        strict=True)),
                               (row - 0.4, 0.8), facecolors=STATUS_COLORS.get(status, "tab:purple"),
                               edgecolor="none")
        seen = sorted(set(intervals["status"])) if len(intervals) else []
        from matplotlib.patches import Patch  # deferred: matplotlib only when drawing

        handles = [Patch(color=STATUS_COLORS.get(s, "tab:purple"), label=s) for s in seen]
        if handles:
            ax.legend(handles=handles, loc="upper right", fontsize=7, ncol=len(handles))
        ax.set_yticks(range(len(keys)))
        ax.set_yticklabels(labels, fontsize=label_size)
        ax.set_ylim(-0.6, max(len(keys), 1) - 0.4 + (0.6 if handles else 0))
        ax.set_xlim(0, span if span > 0 else 1)
        ax.set_ylabel("worker")
        ax.set_xlabel("simulated seconds since the first start (replay)" if replayed
                      else "seconds since the first simulation started")
        if np.isfinite(mean):
            title = (f"Worker utilization: mean {100 * mean:.1f}% = busy time / "
                     f"({workers} workers x {span:.1f} s)")
        else:
            title = "Worker utilization: no simulation with a start and an end time"
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        return figure_style.save(fig, path)


def write_run_utilization(run_dir: str | os.PathLike) -> Path | None:
    """``utilization.png`` in the run's own folder; never raises (a run must not fail on it)."""
    try:
        return plot_utilization(run_dir, Path(run_dir) / UTILIZATION_PNG)
    except Exception:  # noqa: BLE001  a figure is a convenience, not part of the run
        return None


# --- model error -------------------------------------------------------------------------
def plot_model_error(run_dir: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """MAE (eV) of the model's predictions for each iteration's new simulations; None if the
    run recorded none (random acquisition, or no iteration yet)."""
    iterations = rec.read_iterations(run_dir)
    if iterations.empty or "mae_ev" not in iterations:
        return None
    data = pd.DataFrame({"iteration": pd.to_numeric(iterations["iteration"], errors="coerce"),
                         "mae": pd.to_numeric(iterations["mae_ev"], errors="coerce")}).dropna()
    if data.empty:
        return None
    with figure_style.style():
        fig, ax = figure_style.subplots(figsize=(7, 4), margins={
            "left": 0.11, "right": 0.98, "bottom": 0.12, "top": 0.92})
        ax.plot(data["iteration"], data["mae"], marker="o", lw=1.5)
        ax.set_xlabel("iteration")
        ax.set_ylabel("model error: MAE on the new simulations (eV)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        parameters = _parameters(Path(run_dir))
        named = f", {strategy_name(parameters)}" if parameters else ""
        ax.set_title(f"Model error per iteration{named} (last {data['mae'].iloc[-1]:.3f} eV, "
                     f"mean {data['mae'].mean():.3f} eV)", fontsize=10)
        return figure_style.save(fig, path)


# --- IE distribution ---------------------------------------------------------------------
def load_truth(source: str | os.PathLike | pd.DataFrame | None = "qm9") -> pd.DataFrame | None:
    """A ground-truth table: a frame, a table file, a shipped space's name; None if absent."""
    if source is None or isinstance(source, pd.DataFrame):
        return source
    try:
        if Path(source).suffix in (".csv", ".gz", ".tsv") or Path(source).is_file():
            return read_table(source) if Path(source).exists() else None
        return load_ground_truth(str(source))
    except GroundTruthError:
        return None


def _coverage_text(truth: pd.DataFrame) -> str:
    coverage = truth.attrs.get("coverage")
    if coverage is not None:
        return str(coverage)
    return f"table of {len(truth):,} molecules"


def plot_ie_distribution(run_dir: str | os.PathLike, path: str | os.PathLike,
                         truth: pd.DataFrame | None) -> Path | None:
    """Histogram of the run's simulated IEs against the whole table's; None without a table."""
    if truth is None:
        return None
    ok_truth = pd.to_numeric(truth.loc[truth["status"] == rec.STATUS_OK, "ie"],
                             errors="coerce").dropna().to_numpy(dtype=float)
    if len(ok_truth) == 0:
        return None
    sims = rec.read_simulations(run_dir)
    mine = pd.to_numeric(sims.loc[sims["status"] == rec.STATUS_OK, "ie"],
                         errors="coerce").dropna().to_numpy(dtype=float)
    values = np.concatenate([ok_truth, mine])
    bins = np.linspace(np.floor(values.min() * 2) / 2, np.ceil(values.max() * 2) / 2 + 1e-9, 41)
    with figure_style.style():
        fig, ax = figure_style.subplots(figsize=(8, 4.2), margins={
            "left": 0.08, "right": 0.98, "bottom": 0.12, "top": 0.93})
        # One filled outline per histogram (stairs), not a patch per bar: 40 bars were a
        # quarter of this figure's cost.
        ax.stairs(np.histogram(ok_truth, bins=bins, density=True)[0], bins, fill=True,
                  facecolor="lightgray", edgecolor="gray", lw=1,
                  label=f"whole space, ground truth ({len(ok_truth):,} molecules)")
        if len(mine):
            ax.stairs(np.histogram(mine, bins=bins, density=True)[0], bins, lw=2,
                      color="tab:blue", label=f"this run's simulations ({len(mine):,})")
        ax.axvline(float(ok_truth.max()), color="black", ls=":", lw=1,
                   label=f"table's best {ok_truth.max():.2f} eV")
        ax.set_xlabel("ionization energy (eV)")
        ax.set_ylabel("density")
        ax.legend(loc="upper left", fontsize=7)
        ax.set_title(f"IE distribution: simulated vs the whole space ({_coverage_text(truth)})",
                     fontsize=9)
        return figure_style.save(fig, path)


# --- the campaign figure: drawn at the end of a run and regenerated, by the same code ---------
IE_LABEL = figure_style.IE_LABEL


@cache
def random_reference_energies() -> np.ndarray:
    """GFN2-xTB IEs (eV) of a seeded random QM9 sample (scripts/build_random_reference.py)."""
    path = resources.files("course_utils") / "data" / "qm9_random_ie.csv"
    with resources.as_file(path) as file:
        return np.sort(pd.read_csv(file)["ie"].to_numpy(dtype=float))


def expected_random_best(n_values: np.ndarray | list[int]) -> np.ndarray:
    """Expected best IE after n random picks, from the empirical QM9 distribution (eV)."""
    energies = random_reference_energies()
    quantiles = np.arange(len(energies) + 1) / len(energies)
    out = []
    for n in np.asarray(n_values, dtype=float):
        cdf_pow = quantiles**n  # P(max of n draws <= i-th smallest value)
        out.append(float(np.sum(energies * np.diff(cdf_pow))))
    return np.array(out)


def _mean_simulation_seconds(simulations: pd.DataFrame) -> float:
    ok = simulations[simulations["status"] == rec.STATUS_OK]
    durations = (ok["end_time"].astype(float) - ok["start_time"].astype(float)).dropna()
    return float(durations.mean()) if len(durations) else float("nan")


def run_workers(run_dir: str | os.PathLike) -> int:
    """Workers the run had: its ``workers`` parameter, else the CPUs of the machine it ran on
    (results.json), so that a figure regenerated elsewhere states the same number."""
    run_dir = Path(run_dir)
    workers = _parameters(run_dir).get("workers")
    if not workers:
        environment = _results(run_dir).get("environment") or {}
        workers = environment.get("cpu_count") if isinstance(environment, dict) else None
    try:
        return max(int(workers or 1), 1)
    except (TypeError, ValueError):
        return 1


def plot_campaign(
    out_dir: str | os.PathLike,
    *,
    workers: int | None = None,
    filename: str | os.PathLike = rec.PLOT_FILE,
    title: str | None = None,
) -> Path:
    """Best simulated IE against simulations and against wall time, with the expected best of
    random search and the global best; saved as PNG at ``out_dir/filename`` (``filename`` may be
    a path elsewhere). ``workers``: default from the records (:func:`run_workers`).

    The PNG's ``Title`` and ``Description`` text state the title and what the figure was
    measured against (search space, coverage, global best), so that a stored figure can be
    checked against the shipped table (tests/test_stored_outputs.py).
    """
    out = Path(out_dir)
    sims = rec.read_simulations(out)
    curve = rec.best_so_far(sims)
    parameters = _parameters(out)
    workers = run_workers(out) if workers is None else max(int(workers), 1)
    if title is None:
        title = _campaign_title(parameters)
    n_max = max(int(curve["n_simulations"].max()) if len(curve) else 0, 1)
    n_ref = np.arange(1, n_max + 1)
    ref = expected_random_best(n_ref)

    with figure_style.style():
        fig, (ax_n, ax_t) = figure_style.subplots(2, figsize=(11, 4.2), margins={
            "left": 0.06, "right": 0.99, "bottom": 0.12, "top": 0.9, "wspace": 0.18})
        ax_n.step(curve["n_simulations"], curve["best_ie"], where="post", lw=2,
                  label="this campaign (simulated)")
        ax_n.scatter(curve["n_simulations"], curve["ie"], s=12, alpha=0.5, color="grey",
                     label="each simulation")
        ax_n.plot(n_ref, ref, ls="--", color="tab:red", label="random search (expected)")
        ax_n.set_xlabel("successful simulations")
        ax_n.set_ylabel(IE_LABEL)

        ax_t.step(curve["elapsed_s"], curve["best_ie"], where="post", lw=2,
                  label="this campaign (simulated)")
        per_sim = _mean_simulation_seconds(sims)
        if np.isfinite(per_sim):
            ax_t.plot(n_ref * per_sim / workers, ref, ls="--", color="tab:red",
                      label=f"random search (expected, {per_sim:.2f} s/sim on {workers} workers)")
        replayed = parameters.get("simulator") == "replay"  # a custom title may not say so
        ax_t.set_xlabel("simulated wall time (s), from the table's recorded seconds" if replayed
                        else "wall time (s)")
        ax_t.set_ylabel(IE_LABEL)
        measured_against = _global_best_line(out, parameters, (ax_n, ax_t))
        for ax in (ax_n, ax_t):
            ax.legend(loc="upper left", fontsize=7 if measured_against else 8)
        fig.suptitle(title, fontsize=10)
        metadata = {"Title": title}
        if measured_against:
            metadata["Description"] = measured_against
        return figure_style.save(fig, out / filename, metadata=metadata)


def _global_best_line(out: Path, parameters: dict[str, Any], axes: Sequence[Any]) -> str | None:
    """The true optimum, from the run's evaluation against the ground truth, with the coverage
    it rests on; returns what it drew as one sentence (None when the run has no evaluation)."""
    evaluation = _results(out).get("evaluation")
    best = (evaluation or {}).get("global_best")
    if not best:
        return None
    coverage = evaluation["coverage"]
    label = f"global best {best['ie']:.2f} eV ({best['smiles']})"
    if evaluation.get("regret_ev") is not None:
        label += f"; regret {evaluation['regret_ev']:.2f} eV"
    if not coverage["complete"]:
        label += f"\n{coverage['text']}"
    for ax in axes:
        ax.axhline(best["ie"], color="black", lw=1, ls=":", label=label)
    space = parameters.get("search_space", "")
    return (f"search space {space}; {coverage['text']}; "
            f"global best {best['ie']:.3f} eV ({best['smiles']})")


def _campaign_title(p: dict[str, Any]) -> str:
    if not p:
        return "ML-in-the-loop campaign"
    replay = ("REPLAY from the ground-truth table (simulated clock), "
              if p.get("simulator") == "replay" else "")
    return (f"{replay}{strategy_name(p)} ({p.get('mode')}): initial "
            f"{p.get('initial_training_count')}, max {p.get('max_training_count')}, "
            f"batch {p.get('batch_size')}, seed {p.get('seed')}")


def strategy_name(p: dict[str, Any]) -> str:
    """``"<model> + <acquisition>"`` (``"knn + greedy"``), as every campaign figure's title
    names it; random search names no model, since none picks."""
    acquisition = p.get("acquisition") or "greedy"
    if acquisition == "random":
        return "random search"
    return f"{p.get('model') or 'knn'} + {acquisition}"


def plot_campaign_copy(run_dir: Path, path: Path) -> Path | None:
    """:func:`plot_campaign` of the run into ``path``; None without a successful simulation."""
    sims = rec.read_simulations(run_dir)
    if not (sims["status"] == rec.STATUS_OK).any():
        return None
    return plot_campaign(run_dir, filename=Path(path).resolve())
