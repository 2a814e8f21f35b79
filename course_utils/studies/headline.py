"""One real run beside its replays: did the loop beat luck, or was it one lucky seed?

A single campaign says little: its random initial batch alone can land a whole electronvolt
higher or lower. So the run is drawn over two bands, each from 20 replayed campaigns (answered
from the ground-truth table, seconds for all): the *same strategy* with seeds 0-19, and *random
search* with the same seeds and budget. Nothing but the strategy differs between the bands, and
both break ties at random (see :mod:`course_utils.campaign.acquisition`), so where the run and
its band sit above the random band, the model did it.

Replays need the ground-truth table, so this works on QM9 (and its ``truth:`` parts) only.

The replays of notebook 3's default campaign ship with the package (``headline_replays``, made
by ``scripts/build_headline_replays.py``; a test replays two of its seeds again and compares),
so the default figure is instant; any other parameters are replayed on the spot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.figures import style as figure_style
from course_utils.ground_truth.table import package_data_dir
from course_utils.studies.marks import REACH_K, yardsticks
from course_utils.studies.replays import CURVE_COLUMNS, replay_grid
from course_utils.studies.summaries import band

#: The strategy a campaign's parameters describe: what its replays copy (all else is the grid's).
STRATEGY_KEYS = ("model", "acquisition", "ucb_kappa", "epsilon", "mode", "retrain")
RANDOM = "random search"
#: Seeds of each band, and the share of runs the band spans (10 % to 90 %).
SEEDS = tuple(range(20))
LOW, HIGH = 0.1, 0.9
FIGURE_FILE = "run_vs_random.png"
#: Notebook 3's default campaign (its parameters cell; the README's first command). Chosen from
#: replays over 20 seeds (``benchmarks/bench_models.py --headline``): with these it beat random
#: search's median best in 20 of 20 seeds and found one of QM9's 10 highest-IE molecules in 18.
DEFAULT_CAMPAIGN: dict[str, Any] = {
    "model": "gp:mean=training", "acquisition": "ei", "initial_training_count": 16,
    "max_training_count": 80, "batch_size": 8, "search_space": "qm9"}
#: The tutorial's model and acquisition: the closing comparison's third row.
TUTORIAL = {"model": "knn", "acquisition": "greedy"}
#: The shipped replays of the default campaign: curves, and what they were replayed with.
SHIPPED_CURVES = "headline_replays.csv.gz"
SHIPPED_SETTINGS = "headline_replays.json"
#: What must match for the shipped replays to stand for a campaign's.
GRID_KEYS = ("max_training_count", "initial_training_count", "batch_size", "search_space",
             "ground_truth")


def band_strategies(parameters: Mapping[str, Any], tutorial: bool = True
                    ) -> dict[str, dict[str, Any]]:
    """The strategies replayed beside a campaign: its own, random search and (``tutorial``)
    the tutorial's KNN with greedy picks; name -> parameters."""
    own = {k: parameters[k] for k in STRATEGY_KEYS if k in parameters}
    mode = {"mode": own["mode"]} if "mode" in own else {}
    strategies = {strategy_name(own): own, RANDOM: {"acquisition": "random", **mode}}
    if tutorial:
        strategies.setdefault(strategy_name(TUTORIAL), {**TUTORIAL, **mode})
    return strategies


def grid_settings(parameters: Mapping[str, Any], seeds: Sequence[int]) -> dict[str, Any]:
    """What a set of band replays depends on: its strategies, seeds and common parameters,
    each spelled as the campaign's parameters spell it (defaults filled in), so a notebook's
    parameters and :data:`DEFAULT_CAMPAIGN` give the same settings when they mean the same."""
    # deferred: parameters imports Parsl through configs (+0.6 s, measured in comparison)
    from course_utils.campaign.parameters import CampaignParameters

    values = CampaignParameters.from_mapping(dict(parameters)).to_dict()
    return {"strategies": band_strategies(values), "seeds": [int(s) for s in seeds],
            **{k: values.get(k) for k in GRID_KEYS}}


def strategy_name(parameters: Mapping[str, Any]) -> str:
    """``model + acquisition`` as a title says it (random search trains no model)."""
    if parameters.get("acquisition") == "random":
        return RANDOM
    return f"{parameters.get('model', 'knn')} + {parameters.get('acquisition', 'greedy')}"


def replay_bands(parameters: Mapping[str, Any], out_dir: str | os.PathLike, *,
                 seeds: Sequence[int] = SEEDS, processes: int = 2,
                 shipped: bool = True) -> pd.DataFrame:
    """The curves of :func:`band_strategies` replayed over ``seeds`` with the campaign's
    budget (:func:`course_utils.studies.replays.replay_grid`; runs go to
    ``out_dir/<strategy>/seed-NNN``), or the shipped ones where they are the same replays."""
    settings = grid_settings(parameters, seeds)
    parameters = {**parameters, **{k: settings[k] for k in GRID_KEYS}}
    if shipped:
        curves = shipped_replays(settings)
        if curves is not None:
            return curves
    return replay_grid(
        settings["strategies"], settings["seeds"], budget=int(parameters["max_training_count"]),
        initial=int(parameters["initial_training_count"]),
        batch_size=int(parameters["batch_size"]), out_dir=out_dir,
        search_space=str(parameters.get("search_space", "qm9")),
        ground_truth=parameters.get("ground_truth"), processes=processes)


def shipped_replays(settings: Mapping[str, Any]) -> pd.DataFrame | None:
    """The shipped curves if they were replayed with exactly ``settings``; else None."""
    folder = package_data_dir()
    try:
        stored = json.loads((folder / SHIPPED_SETTINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stored.get("settings") != json.loads(json.dumps(dict(settings))):
        return None
    curves = pd.read_csv(folder / SHIPPED_CURVES, keep_default_na=False,
                         na_values={c: [""] for c in CURVE_COLUMNS if c not in ("strategy", "smiles")})
    curves.attrs = dict(stored.get("attrs", {}))
    return curves[CURVE_COLUMNS]


def write_shipped_replays(curves: pd.DataFrame, settings: Mapping[str, Any],
                          folder: str | os.PathLike) -> tuple[Path, Path]:
    """Write curves replayed with ``settings`` where :func:`shipped_replays` looks (``folder``:
    the package's data folder, when ``scripts/build_headline_replays.py`` rebuilds it)."""
    folder = Path(folder)
    curves_path, settings_path = folder / SHIPPED_CURVES, folder / SHIPPED_SETTINGS
    curves[CURVE_COLUMNS].to_csv(curves_path, index=False, float_format="%.6f")
    attrs = {k: v for k, v in curves.attrs.items() if k != "ground_truth" or v is not None}
    settings_path.write_text(json.dumps({"settings": dict(settings), "attrs": attrs,
                                         "made_by": "scripts/build_headline_replays.py"},
                                        indent=1) + "\n", encoding="utf-8")
    return curves_path, settings_path


def beats_random(curves: pd.DataFrame) -> pd.DataFrame:
    """Per strategy over its seeds: runs whose best beat random search's median best, runs
    that reached the table's top 10, and the median best (eV); what the README and docs/models.md quote."""
    marks = yardsticks(curves.attrs.get("search_space", "qm9"), curves.attrs.get("ground_truth"))
    best = curves.groupby(["strategy", "seed"], sort=False)["best_ie"].max()
    random_median = float(best.loc[RANDOM].median()) if RANDOM in best.index else np.nan
    threshold = marks.threshold(REACH_K)
    rows = []
    for strategy, runs in best.groupby(level="strategy", sort=False):
        rows.append({"strategy": strategy, "runs": len(runs),
                     "beat_random_median": int((runs > random_median).sum()),
                     f"reached_top{REACH_K}": int((runs >= threshold).sum()) if threshold else 0,
                     "median_best_ie": round(float(runs.median()), 3),
                     "random_median_best_ie": round(random_median, 3)})
    return pd.DataFrame(rows).set_index("strategy")


def plot_run_over_bands(run_dir: str | os.PathLike, curves: pd.DataFrame,
                        path: str | os.PathLike | None = None) -> Path:
    """The run's best-so-far over the bands of its replays and of random search (10-90 % of
    the seeds, median dashed), the y-axis fitted to what is drawn; saved as PNG (default:
    ``run_dir/run_vs_random.png``)."""
    run_dir = Path(run_dir)
    parameters = rec.load_json_object(run_dir / rec.PARAMETERS_FILE) or {}
    run = rec.best_so_far(rec.read_simulations(run_dir))
    marks = yardsticks(curves.attrs.get("search_space", "qm9"), curves.attrs.get("ground_truth"))
    plt = figure_style.pyplot()
    with figure_style.style():
        fig, ax = plt.subplots(figsize=(9.5, 4.8), constrained_layout=True)
        drawn = [run["best_ie"].to_numpy(dtype=float)]
        colors = {strategy_name(parameters): "#1f77b4", RANDOM: "#7f7f7f"}  # two bands only
        for strategy, color in colors.items():
            if strategy not in set(curves["strategy"]):
                continue
            b = band(curves[curves["strategy"] == strategy], "best_ie", LOW, HIGH)
            median = curves[curves["strategy"] == strategy].groupby("n")["best_ie"].median()
            seeds = curves.loc[curves["strategy"] == strategy, "seed"].nunique()
            ax.fill_between(b["n"], b["low"], b["high"], color=color, alpha=0.22, lw=0,
                            step="post", label=f"{strategy}: {seeds} replayed seeds, 10-90 %")
            ax.step(median.index, median.to_numpy(), where="post", color=color, ls="--", lw=1.3,
                    label=f"{strategy}: median of the replays")
            drawn += [b["low"].to_numpy(), b["high"].to_numpy()]
        ax.step(run["n_simulations"], run["best_ie"], where="post", color="#d62728", lw=2.4,
                label=f"this run (seed {parameters.get('seed', '?')}, real simulations)")
        values = np.concatenate([v[np.isfinite(v)] for v in drawn])
        top, bottom = float(values.max()), float(values.min())
        threshold = marks.threshold(REACH_K)
        if threshold is not None and bottom <= threshold <= top + 0.3:
            ax.axhline(threshold, color="black", ls=":", lw=1,
                       label=f"QM9's top-{REACH_K} threshold ({threshold:.2f} eV)")
            top = max(top, threshold)
        pad = 0.06 * max(top - bottom, 0.5)
        ax.set_ylim(bottom - pad, top + pad)
        ax.set_xlim(0, max(float(curves["n"].max()), float(run["n_simulations"].max())))
        ax.set_xlabel("successful simulations")
        ax.set_ylabel(figure_style.IE_LABEL)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        fig.suptitle(f"{strategy_name(parameters)}: this run against "
                     f"{curves['seed'].nunique()} replays of itself and of random search\n"
                     f"replays answered from the ground-truth table ({marks.coverage})",
                     fontsize=10)
        description = (f"strategy {strategy_name(parameters)}; search space "
                       f"{curves.attrs.get('search_space')}; {marks.coverage}; global best "
                       f"{marks.global_best_ie:.3f} eV ({marks.global_best_smiles})")
        return figure_style.save(fig, path or run_dir / FIGURE_FILE,
                                 metadata={"Title": "run against replays",
                                           "Description": description})
