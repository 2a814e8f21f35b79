"""Many replayed campaigns side by side: which acquisition strategy finds the best molecules?

One campaign is one draw of luck: a different seed picks a different initial sample and can
end a whole electronvolt higher or lower. Strategies are compared the way active-learning papers
compare them (MolPAL's lookup objective is the standard example): every strategy is *replayed*
from the ground-truth table over many seeds with the same budget, and the curves of the best IE
found so far and of top-k recall are averaged with their spread.

Each (strategy, seed) is an ordinary campaign: ``run_campaign`` with ``simulator="replay"``,
written into ``out_dir/<strategy>/seed-NNN`` like any other run (so ``results.json`` carries
its ``evaluation`` block). This module only runs the grid, in a few processes, and turns the
records into curves; it never estimates a value the table does not hold, and every figure and
table states the table's coverage.

Replay is retrospective: instant, on a simulated clock, and never graded.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.campaign.batch_plan import PLAN_FILE
from course_utils.campaign.lineage import LINEAGE_FILE, MODELS_DIR
from course_utils.campaign.simulators import measured_table
from course_utils.figures import style as figure_style
from course_utils.ground_truth.evaluation import ranked_molecules
from course_utils.ground_truth.table import Coverage, packaged_table_path, table_name
from course_utils.ml.fingerprints import fingerprints
from course_utils.search_space import load_search_space

#: The acquisitions of the kit, as notebook 5 compares them: name -> campaign parameters.
DEFAULT_STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {"acquisition": "greedy"},
    "ucb kappa=0.5": {"acquisition": "ucb", "ucb_kappa": 0.5},
    "ucb kappa=2": {"acquisition": "ucb", "ucb_kappa": 2.0},
    "epsilon-greedy 0.1": {"acquisition": "epsilon-greedy", "epsilon": 0.1},
    "random": {"acquisition": "random"},
}
#: Top-k recall of the curves: the share of the table's k highest IEs found so far.
RECALL_K = 100
#: The top-k threshold that :func:`summarize_runs` reports the simulations to reach.
REACH_K = 10
CURVE_COLUMNS = ["strategy", "seed", "n", "smiles", "ie", "best_ie", "top100_recall_so_far",
                 "elapsed_s"]
#: Parameters a strategy may not set: the grid decides them for every run alike.
_GRID_KEYS = ("initial_training_count", "max_training_count", "batch_size", "seed", "workers",
              "simulator", "search_space", "ground_truth")
#: Files a campaign folder may hold (and their ``.tmp`` versions, left by an interrupted
#: write); only such a folder is replaced by a new grid run.
_RUN_FILES = {rec.RESULTS_FILE, rec.PARAMETERS_FILE, rec.SIMULATIONS_FILE, rec.ITERATIONS_FILE,
              rec.PLOT_FILE, rec.LOCK_FILE, LINEAGE_FILE, MODELS_DIR, PLAN_FILE}


# --------------------------------------------------------------------------- the yardsticks


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
                       _stamp(search_space, ground_truth))


def _stamp(search_space: str, ground_truth: str | os.PathLike | None) -> tuple[int, int] | None:
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


# --------------------------------------------------------------------------- one run


def run_curve(simulations: pd.DataFrame, marks: Yardsticks) -> pd.DataFrame:
    """Per successful simulation n = 1, 2, ... (record order): ``smiles``, ``ie``, ``best_ie``
    (best so far, eV), ``top100_recall_so_far`` and ``elapsed_s`` (the run's clock)."""
    curve = rec.best_so_far(simulations)
    smiles = curve["smiles"].to_numpy()
    top = marks.top_k[RECALL_K]
    first = ~pd.Series(smiles).duplicated().to_numpy()
    hits = np.cumsum(first & np.isin(smiles, list(top)))
    return pd.DataFrame({
        "n": curve["n_simulations"].to_numpy(),
        "smiles": smiles,
        "ie": curve["ie"].to_numpy(),
        "best_ie": curve["best_ie"].to_numpy(),
        "top100_recall_so_far": hits / len(top) if top else np.full(len(curve), np.nan),
        "elapsed_s": curve["elapsed_s"].to_numpy(),
    })


@dataclass(frozen=True)
class _Job:
    strategy: str
    seed: int
    parameters: dict[str, Any]
    out_dir: str


def _replay_one(job: _Job) -> pd.DataFrame:
    """One replayed campaign -> its curve (module level: it runs in worker processes)."""
    # deferred: the runner imports Parsl (+0.7 s on top of this module, measured)
    from course_utils.campaign.runner import run_campaign

    _fresh_folder(Path(job.out_dir))
    result = run_campaign(dict(job.parameters), job.out_dir, progress=False, plot=False)
    marks = yardsticks(job.parameters["search_space"], job.parameters.get("ground_truth"))
    curve = run_curve(result.simulations, marks)
    curve.insert(0, "seed", job.seed)
    curve.insert(0, "strategy", job.strategy)
    return curve


def warm(search_space: str, ground_truth: str | None) -> None:
    """Load the table, the search space and its fingerprints once in a worker process."""

    yardsticks(search_space, ground_truth)
    fingerprints(load_search_space(search_space)["smiles"])


def _fresh_folder(path: Path) -> None:
    """A grid run starts from scratch: an earlier run's folder (a campaign's files only) is
    replaced; anything else in the way is an error, never deleted."""
    if not path.exists():
        return
    names = {p.name.removesuffix(".tmp") for p in path.iterdir()} if path.is_dir() else {""}
    if names - _RUN_FILES:
        raise FileExistsError(f"{path} exists and is not a campaign folder: choose another out_dir")
    shutil.rmtree(path)


def slug(name: str) -> str:
    """A strategy name as a folder name (the grid's and the stopping study's run folders)."""
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-") or "strategy"


# --------------------------------------------------------------------------- the grid


def replay_grid(
    strategies: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    budget: int,
    initial: int,
    batch_size: int,
    out_dir: str | os.PathLike,
    search_space: str = "truth:qm9",
    workers: int = 2,
    processes: int = 2,
    ground_truth: str | os.PathLike | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Replay every strategy with every seed; one row per run and successful simulation.

    ``strategies`` maps a name to campaign parameters (``acquisition``, ``ucb_kappa``,
    ``epsilon``, ``mode``, ...); every run shares ``budget`` (``max_training_count``),
    ``initial`` (``initial_training_count``), ``batch_size``, ``workers`` (simulated, for the
    clock) and ``parameters`` (further common parameters). Run ``(s, seed)`` is written into
    ``out_dir/<s as a folder name>/seed-NNN``, replacing an earlier grid's run there.

    Returns columns strategy, seed, n (successful simulations so far), smiles, ie (eV),
    best_ie (best so far, eV), top100_recall_so_far (share of the table's top 100 found) and
    elapsed_s (simulated clock, s; it includes the real time the model took, so it varies
    slightly between identical runs; everything else is deterministic). ``attrs`` hold the
    grid's settings and the table's coverage. Runs go to ``processes`` worker processes.
    """
    strategies = {str(k): dict(v) for k, v in strategies.items()}
    seeds = [int(s) for s in seeds]
    if not strategies or not seeds:
        raise ValueError("replay_grid needs at least one strategy and one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}")
    folders = {slug(name): name for name in strategies}
    if len(folders) != len(strategies):
        raise ValueError(f"strategy names must differ as folder names: {list(strategies)}")
    for name, values in strategies.items():
        fixed = sorted(set(values) & set(_GRID_KEYS))
        if fixed:
            raise ValueError(f"strategy {name!r} sets {', '.join(fixed)}: the grid sets these "
                             "for every run alike")
    ground_truth = None if ground_truth is None else str(ground_truth)
    common = {**dict(parameters or {}), "initial_training_count": int(initial),
              "max_training_count": int(budget), "batch_size": int(batch_size),
              "workers": int(workers), "simulator": "replay",
              "search_space": str(search_space), "ground_truth": ground_truth}
    out = Path(out_dir)
    jobs = [_Job(name, seed, {**common, **values, "seed": seed},
                 str(out / slug(name) / f"seed-{seed:03d}"))
            for name, values in strategies.items() for seed in seeds]
    for job in jobs[::len(seeds)]:  # one per strategy: only the seed differs within one
        _check_parameters(job.parameters)

    stamp = _stamp(search_space, ground_truth)
    marks = yardsticks(search_space, ground_truth)  # also warms this process (and forks)
    processes = max(1, min(int(processes), len(jobs)))
    if processes == 1:
        curves = [_replay_one(job) for job in jobs]
    else:
        warm(str(search_space), ground_truth)
        with ProcessPoolExecutor(max_workers=processes, initializer=warm,
                                 initargs=(str(search_space), ground_truth)) as pool:
            try:
                curves = list(pool.map(_replay_one, jobs))
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    if _stamp(search_space, ground_truth) != stamp:  # runs would mix two versions of the space
        raise RuntimeError(f"the ground-truth table of {search_space!r} changed while the grid "
                           "ran (a build is writing to it); run the grid again")
    table = pd.concat(curves, ignore_index=True)[CURVE_COLUMNS]
    table.attrs = {"search_space": str(search_space), "ground_truth": ground_truth,
                   "coverage": marks.coverage, "budget": int(budget), "initial": int(initial),
                   "batch_size": int(batch_size), "workers": int(workers),
                   "strategies": list(strategies), "seeds": seeds}
    return table


def _check_parameters(values: Mapping[str, Any]) -> None:
    """Impossible parameters fail here, once, before any process starts."""
    # deferred: parameters imports Parsl through configs (+0.6 s, measured)
    from course_utils.campaign.parameters import CampaignParameters

    CampaignParameters.from_mapping(dict(values)).validate()


# --------------------------------------------------------------------------- summaries


def _marks_for(curves: pd.DataFrame, marks: Yardsticks | None) -> Yardsticks:
    if marks is not None:
        return marks
    return yardsticks(curves.attrs.get("search_space", "truth:qm9"),
                      curves.attrs.get("ground_truth"))


def summarize_runs(curves: pd.DataFrame, marks: Yardsticks | None = None) -> pd.DataFrame:
    """One row per run: ``best_ie`` and ``best_smiles`` (eV), ``regret_ev`` (global best minus
    best found), ``sims_to_top10`` (successful simulations until the first molecule at or above
    the table's top-10 threshold; <NA> if never), ``top100_recall``, ``simulations`` and
    ``wall_time_s`` (simulated clock when the last of them came back)."""
    marks = _marks_for(curves, marks)
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


# --------------------------------------------------------------------------- the figure


def band(curves: pd.DataFrame, column: str, low: float = 0.1, high: float = 0.9) -> pd.DataFrame:
    """Per strategy and n: mean, the ``low`` and ``high`` quantiles of ``column`` over seeds,
    and how many runs got that far."""
    grouped = curves.groupby(["strategy", "n"], sort=False)[column]
    out = pd.DataFrame({"mean": grouped.mean(), "low": grouped.quantile(low),
                        "high": grouped.quantile(high), "runs": grouped.size()})
    return out.reset_index()


#: The columns a comparison figure can draw, with their axis labels.
_METRICS = {"best_ie": "best IE found so far (eV)",
            "top100_recall_so_far": f"top-{RECALL_K} recall (share of the best found)"}
#: Default reference strategy: drawn in grey in every panel, the baseline to beat.
REFERENCE = "random"


def panels_by_model(strategies: Sequence[str], models: Sequence[str]
                    ) -> dict[str, tuple[str, str]]:
    """``{strategy: (model, acquisition)}`` for names written ``"<model> <acquisition>"`` (as
    notebook 10 names them): one panel per model, one colour per acquisition."""
    out = {}
    for name in strategies:
        model, _, acquisition = name.partition(" ")
        if model in models and acquisition:
            out[name] = (model, acquisition)
    return out


def plot_comparison(
    curves: pd.DataFrame,
    path: str | os.PathLike,
    *,
    marks: Yardsticks | None = None,
    low: float = 0.1,
    high: float = 0.9,
    column: str = "best_ie",
    panels: Mapping[str, tuple[str, str]] | None = None,
    reference: str | None = REFERENCE,
    ncols: int = 2,
) -> Path:
    """Small multiples of ``column`` (``best_ie`` or ``top100_recall_so_far``) against
    successful simulations, saved as PNG at ``path``.

    ``panels`` maps a strategy to ``(panel title, series)``: one panel per title, one colour per
    series (the same colour in every panel). By default each strategy has its own panel. The
    ``reference`` strategy (random search), when the curves hold it, is drawn in grey in every
    panel: what each strategy must beat. Each line is the mean over seeds; a panel with one
    strategy shades its ``low``-``high`` quantile band over seeds, a panel with several shows
    that spread as a bar per strategy at the end of the budget, so that bands never pile up.
    The global best and the top-10 threshold are lines; the legend sits below the panels; the
    title states that the runs are replayed and the table's coverage.
    """
    if column not in _METRICS:
        raise ValueError(f"column must be one of {', '.join(_METRICS)}, not {column!r}")
    marks = _marks_for(curves, marks)
    strategies = list(dict.fromkeys(curves["strategy"]))
    reference = reference if reference in strategies else None
    if panels is None:
        panels = {name: (name, name) for name in strategies if name != reference}
    unknown = sorted(set(panels) - set(strategies))
    if unknown:
        raise ValueError(f"panels name strategies the curves do not hold: {unknown}")
    if not panels:
        raise ValueError("nothing to draw: no strategy besides the reference")
    plt = figure_style.pyplot()
    with figure_style.style():
        return _draw_comparison(plt, curves, Path(path), marks, low, high, column, dict(panels),
                                reference, max(1, int(ncols)))


def _draw_comparison(plt: Any, curves: pd.DataFrame, path: Path, marks: Yardsticks, low: float,
                     high: float, column: str, panels: dict[str, tuple[str, str]],
                     reference: str | None, ncols: int) -> Path:
    titles = list(dict.fromkeys(title for title, _ in panels.values()))
    series = list(dict.fromkeys(label for _, label in panels.values()))
    colors = figure_style.colors(series)
    ncols = min(ncols, len(titles))
    nrows = math.ceil(len(titles) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 3.6 * nrows + 1.3),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    bands = {name: band(curves[curves["strategy"] == name], column, low, high)
             for name in [*panels, *([reference] if reference else [])]}
    seeds = {name: int(curves.loc[curves["strategy"] == name, "seed"].nunique()) for name in bands}
    budget = float(curves["n"].max())
    handles: dict[str, Any] = {}
    for ax, title in zip(axes.flat, titles, strict=False):
        mine = [(name, label) for name, (t, label) in panels.items() if t == title]
        if reference:
            b = bands[reference]
            ax.fill_between(b["n"], b["low"], b["high"], color=figure_style.REFERENCE_COLOR,
                            alpha=0.2, lw=0)
            handles["ref"], = ax.plot(b["n"], b["mean"], color=figure_style.REFERENCE_COLOR,
                                      lw=1.6, ls="--",
                                      label=f"{reference} (mean and band, {seeds[reference]} seeds)")
        step = 0.014 * budget  # the end bars, side by side right of the curves
        for k, (name, label) in enumerate(mine):
            b, color = bands[name], colors[label]
            line, = ax.plot(b["n"], b["mean"], color=color, lw=2.2, label=label)
            handles.setdefault(label, line)
            if len(mine) == 1:
                ax.fill_between(b["n"], b["low"], b["high"], color=color, alpha=0.22, lw=0)
            else:
                last = b.iloc[-1]
                x = budget + (k + 1) * step
                ax.plot([x, x], [last["low"], last["high"]], color=color, lw=2.5,
                        solid_capstyle="butt")
                ax.plot([x], [last["mean"]], marker="o", ms=3.5, color=color)
        runs = sorted({seeds[name] for name, _ in mine})
        ax.set_title(f"{title} ({'/'.join(map(str, runs))} seeds)", fontsize=11)
        ax.grid(alpha=0.3)
    widest = max(sum(t == title for t, _ in panels.values()) for title in titles)
    axes[0, 0].set_xlim(0, budget + (widest + 1.5) * 0.014 * budget if widest > 1 else budget)
    for ax in axes.flat[len(titles):]:
        ax.set_visible(False)
    lines = _yardstick_lines(axes.flat[:len(titles)], marks, column, bands)
    handles.update(lines)
    for ax in axes[-1, :]:
        ax.set_xlabel("successful simulations")
    for ax in axes[:, 0]:
        ax.set_ylabel(_metric_label(column, marks))
    ordered = [handles[label] for label in series if label in handles]
    ordered += [handles[k] for k in ("ref", *lines) if k in handles]
    ordered.append(_spread_handle(widest > 1, low, high))
    fig.legend(handles=ordered, loc="outside lower center", ncol=min(len(ordered), 4),
               fontsize=9, frameon=False)
    space = curves.attrs.get("search_space", marks.search_space)
    what = "Best IE found so far" if column == "best_ie" else f"Top-{RECALL_K} recall"
    fig.suptitle(f"{what}: lines are the mean over seeds\nREPLAY of {space!r} (retrospective, "
                 f"simulated clock, never graded); {marks.coverage}", fontsize=11)
    metadata = {"Title": f"{what}: {', '.join(titles)}"}
    if marks.global_best_ie is not None:
        metadata["Description"] = (f"search space {space}; {marks.coverage}; global best "
                                   f"{marks.global_best_ie:.3f} eV ({marks.global_best_smiles})")
    return figure_style.save(fig, path, metadata=metadata)


def _spread_handle(bars: bool, low: float, high: float) -> Any:
    """The legend entry that says what the shaded band or the end bar shows."""
    from matplotlib.lines import Line2D  # deferred: matplotlib only when drawing
    from matplotlib.patches import Patch  # deferred: as above

    text = f"{100 * low:.0f}-{100 * high:.0f} % of seeds"
    if bars:
        return Line2D([], [], color="0.3", marker="|", ls="none", ms=12, mew=2.5,
                      label=f"bar: {text} at the budget")
    return Patch(color="0.3", alpha=0.25, lw=0, label=f"band: {text}")


def _metric_label(column: str, marks: Yardsticks) -> str:
    if column == "best_ie":
        return _METRICS[column]
    return f"top-{RECALL_K} recall (share of the {len(marks.top_k[RECALL_K])} best found)"


def _yardstick_lines(axes: Any, marks: Yardsticks, column: str,
                     bands: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """The global best and the top-10 threshold on a best-IE axis, fitted to the data: the
    y range spans the curves and bands and the lines; returns the lines' legend handles."""
    values = np.concatenate([b[["low", "high", "mean"]].to_numpy(dtype=float).ravel()
                             for b in bands.values()])
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    handles: dict[str, Any] = {}
    if column == "best_ie":
        threshold = marks.threshold(REACH_K)
        for ax in axes:
            if marks.global_best_ie is not None:
                handles["best"] = ax.axhline(
                    marks.global_best_ie, color="black", ls=":", lw=1.4,
                    label=f"global best {marks.global_best_ie:.2f} eV ({marks.global_best_smiles})")
            if threshold is not None:
                handles["top10"] = ax.axhline(threshold, color="black", ls="--", lw=0.9,
                                              alpha=0.7,
                                              label=f"top-{REACH_K} threshold {threshold:.2f} eV")
        lines = [v for v in (marks.global_best_ie, threshold) if v is not None]
        lo, hi = min([lo, *lines]), max([hi, *lines])
        pad = 0.04 * max(hi - lo, 0.5)
        axes[0].set_ylim(lo - pad, hi + pad)
    else:
        axes[0].set_ylim(0, max(hi, 0.01) * 1.05)
    return handles
