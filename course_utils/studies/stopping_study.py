"""Is stopping worth it? What each stop rule saves, and what it costs, over many seeds.

One stopped run says little: the rule may have fired on a lucky plateau. Measured properly, a
rule is judged against the same campaign run to its budget, seed by seed, on the ground-truth
table: how many simulations (and simulated seconds) it saved, and how much lower the best IE it
found is (the loss, in eV; 0 when the rule stopped after the last improvement).

Replay is deterministic, so a stopped run and the run to the budget with the same seed make the
same picks up to the stop. Each seed is therefore replayed once, to the budget, and every rule
is asked after each iteration of that run's records, exactly as the engine asks it
(:func:`stop_point`); tests check the outcome against a real stopped replay. This holds for
``batch`` campaigns, whose records split cleanly at each iteration; ``streaming`` campaigns ask
their rule while simulations are still running, so they are not studied here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.campaign.build import stop_rule_of
from course_utils.campaign.stopping import StopDecision, StopRule, history_from_records
from course_utils.figures import style as figure_style
from course_utils.studies.marks import Yardsticks, yardsticks
from course_utils.studies.replays import replay_grid, run_curve, slug

#: Rules the notebook compares: a name for the legend -> the rule's spelling.
DEFAULT_RULES: dict[str, str] = {
    "converged w=2 d=0.01": "converged:window=2,delta=0.01",
    "converged w=3 d=0.05 top=5": "converged:window=3,delta=0.05,top=5",
    "predicted d=0.05": "predicted:delta=0.05,min_points=40",
}
#: The run every rule is measured against: the campaign run to its budget.
BUDGET_RUN = "budget"
OUTCOME_COLUMNS = [
    "rule", "seed", "fired", "stop_iteration", "simulations", "saved_simulations",
    "elapsed_s", "saved_seconds", "best_ie", "budget_best_ie", "best_loss_ev", "regret_ev",
    "budget_regret_ev", "regret_loss_ev", "top100_recall", "top100_recall_loss", "reason",
]


# --------------------------------------------------------------------------- one run, one rule


def stop_point(simulations: pd.DataFrame, iterations: pd.DataFrame, rule: StopRule | str,
               budget: int) -> StopDecision | None:
    """Where ``rule`` would have stopped this batch campaign (None: it ran to the budget).

    Asks the rule after each iteration with the records the engine held then (the simulations
    of batches up to that iteration), and only while budget was left, as the engine does.
    """
    rule = stop_rule_of(rule)  # a rule given as a rule is used as it is
    if not len(iterations):
        return None
    batches = pd.to_numeric(simulations["batch"], errors="coerce").to_numpy()
    ok = (simulations["status"] == rec.STATUS_OK).to_numpy()
    its = iterations.sort_values("iteration", kind="stable")
    sim_rows = simulations.to_dict("records")
    it_rows = its.to_dict("records")
    for k, row in enumerate(it_rows, start=1):
        held = batches <= int(row["iteration"])
        if int(ok[held].sum()) >= budget:
            return None  # the run is complete: the engine no longer asks
        history = history_from_records([r for r, h in zip(sim_rows, held, strict=True) if h],
                                       it_rows[:k], budget)
        decision = rule.check(history)
        if decision is not None:
            return decision
    return None


def rule_outcome(run_dir: str | os.PathLike, rule: StopRule | str, marks: Yardsticks
                 ) -> dict[str, Any]:
    """One row of the study: ``rule`` applied to the batch run to the budget in ``run_dir``.

    Losses are budget run minus stopped run (>= 0: stopping never finds more); saved seconds
    are on the run's clock (simulated in replay, including the real time the model took).
    """
    run_dir = Path(run_dir)
    results = rec.load_json_object(run_dir / rec.RESULTS_FILE)
    parameters = results.get("parameters", {})
    if parameters.get("mode", "batch") != "batch":
        raise ValueError(f"{run_dir}: only batch campaigns can be studied (mode "
                         f"{parameters.get('mode')!r}): a streaming run asks its rule while "
                         "simulations are still running")
    budget = int(parameters["max_training_count"])
    sims, its = rec.read_simulations(run_dir), rec.read_iterations(run_dir)
    curve = run_curve(sims, marks)
    rule = stop_rule_of(rule)  # once: stop_point uses it as it is
    decision = stop_point(sims, its, rule, budget)
    full_n = len(curve)
    full_s = float(results.get("totals", {}).get("wall_time_s", math.nan))
    if decision is None:
        n, elapsed, iteration = full_n, full_s, None
    else:
        n = decision.simulations
        row = its[its["iteration"] == decision.iteration]
        elapsed, iteration = float(row["elapsed_s"].iloc[-1]), decision.iteration
    best = _at(curve, "best_ie", n)
    full_best = _at(curve, "best_ie", full_n)
    recall, full_recall = _at(curve, "top100_recall_so_far", n), _at(curve, "top100_recall_so_far",
                                                                     full_n)
    top = marks.global_best_ie if marks.global_best_ie is not None else math.nan
    return {
        "rule": rule.text, "seed": int(parameters.get("seed", 0)),
        "fired": decision is not None, "stop_iteration": iteration,
        "simulations": n, "saved_simulations": budget - n if decision is not None else 0,
        "elapsed_s": elapsed, "saved_seconds": full_s - elapsed if decision is not None else 0.0,
        "best_ie": best, "budget_best_ie": full_best, "best_loss_ev": full_best - best,
        "regret_ev": top - best, "budget_regret_ev": top - full_best,
        "regret_loss_ev": (top - best) - (top - full_best),
        "top100_recall": recall, "top100_recall_loss": full_recall - recall,
        "reason": decision.reason if decision is not None else "",
    }


def _at(curve: pd.DataFrame, column: str, n: int) -> float:
    """``column`` after the first ``n`` successful simulations (NaN before any)."""
    return float(curve[column].iloc[n - 1]) if 0 < n <= len(curve) else math.nan


# --------------------------------------------------------------------------- many seeds


def _named_rules(rules: Mapping[str, str] | Sequence[str]) -> dict[str, StopRule]:
    named = dict(rules) if isinstance(rules, Mapping) else {str(r): str(r) for r in rules}
    if not named:
        raise ValueError("the study needs at least one stop rule")
    return {str(name): stop_rule_of(text) for name, text in named.items()}


def stopping_study(
    rules: Mapping[str, str] | Sequence[str],
    seeds: Sequence[int],
    *,
    budget: int,
    initial: int,
    batch_size: int,
    out_dir: str | os.PathLike,
    strategy: Mapping[str, Any] | None = None,
    search_space: str = "truth:qm9",
    workers: int = 2,
    processes: int = 2,
    ground_truth: str | os.PathLike | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replay one batch campaign per seed to its budget, and measure every rule against it.

    ``rules``: names -> spellings (or spellings, named by themselves); ``strategy``: further
    campaign parameters (``acquisition``, ...; default greedy). Runs are written into
    ``out_dir/budget/seed-NNN`` (see :func:`course_utils.studies.replays.replay_grid`).

    Returns ``(outcomes, curves)``: one row per (rule, seed) with the columns of
    :data:`OUTCOME_COLUMNS` (rule: the name given), and the budget runs' curves (best so far
    per successful simulation), for :func:`plot_stopping_study`.
    """
    named = _named_rules(rules)
    strategy = dict(strategy or {"acquisition": "greedy"})
    if strategy.get("mode", "batch") != "batch":
        raise ValueError("the stopping study replays batch campaigns only (mode='batch')")
    curves = replay_grid({BUDGET_RUN: strategy}, seeds, budget=budget, initial=initial,
                         batch_size=batch_size, out_dir=out_dir, search_space=search_space,
                         workers=workers, processes=processes, ground_truth=ground_truth)
    marks = yardsticks(search_space, ground_truth)
    rows = []
    for name, rule in named.items():
        for seed in curves.attrs["seeds"]:
            run_dir = Path(out_dir) / slug(BUDGET_RUN) / f"seed-{seed:03d}"
            rows.append({**rule_outcome(run_dir, rule, marks), "rule": name})
    outcomes = pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
    outcomes.attrs = {**curves.attrs, "rules": {n: r.text for n, r in named.items()}}
    return outcomes, curves


def summarize_stopping(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per rule over its seeds: how often it fired, mean and standard deviation of what it saved
    (simulations, simulated seconds) and lost (best IE found, regret, eV), the worst loss, and
    in how many runs it lost nothing."""
    rows = []
    for rule, runs in outcomes.groupby("rule", sort=False):
        loss = runs["best_loss_ev"].to_numpy(dtype=float)
        row: dict[str, Any] = {"rule": rule, "runs": len(runs), "fired": int(runs["fired"].sum()),
                               "fired_share": float(runs["fired"].mean())}
        for column in ("saved_simulations", "saved_seconds", "best_loss_ev", "regret_loss_ev"):
            values = runs[column].to_numpy(dtype=float)
            row[f"mean_{column}"] = float(np.mean(values))
            row[f"std_{column}"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        row["max_best_loss_ev"] = float(np.max(loss))
        row["runs_without_loss"] = int(np.sum(loss <= 1e-9))
        row["mean_top100_recall_loss"] = float(runs["top100_recall_loss"].mean())
        rows.append(row)
    table = pd.DataFrame(rows).set_index("rule")
    table.attrs = dict(outcomes.attrs)
    return table


# --------------------------------------------------------------------------- the figure


def plot_stopping_study(outcomes: pd.DataFrame, curves: pd.DataFrame,
                        path: str | os.PathLike) -> Path:
    """Left: per run, simulations saved against the best IE lost (eV), one color per rule,
    the rule's mean as a cross. Right: the best-so-far curves of the runs to the budget, with
    the point where each rule stopped each of them. Saved as PNG at ``path``."""
    plt = figure_style.pyplot()
    with figure_style.style():
        fig, (ax_cost, ax_curve) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        budget = curves.attrs.get("budget")
        for seed, run in curves.groupby("seed", sort=True):
            ax_curve.plot(run["n"], run["best_ie"], color="0.75", lw=1,
                          label="run to the budget (one per seed)" if seed == curves["seed"].min()
                          else None)
        for i, (rule, runs) in enumerate(outcomes.groupby("rule", sort=False)):
            color = colors[i % len(colors)]
            fired = runs[runs["fired"]]
            label = f"{rule}: fired in {len(fired)} of {len(runs)}"
            ax_cost.scatter(runs["saved_simulations"], runs["best_loss_ev"], color=color,
                            alpha=0.6, s=24, label=label)
            ax_cost.errorbar(runs["saved_simulations"].mean(), runs["best_loss_ev"].mean(),
                             xerr=runs["saved_simulations"].std(ddof=0),
                             yerr=runs["best_loss_ev"].std(ddof=0), color=color, marker="x",
                             ms=10, mew=2, capsize=3)
            if len(fired):
                ax_curve.scatter(fired["simulations"], fired["best_ie"], color=color, s=28,
                                 zorder=3, label=f"{rule} stopped here")
        ax_cost.axhline(0, color="black", lw=0.8)
        ax_cost.set_xlabel(f"simulations saved (of a budget of {budget})")
        ax_cost.set_ylabel("best IE lost by stopping (eV)\n(run to the budget minus stopped run)")
        ax_cost.set_title("What each rule saved and lost (x: mean ± std over seeds)", fontsize=10)
        ax_cost.legend(loc="upper left", fontsize=7)
        ax_curve.set_xlabel("successful simulations")
        ax_curve.set_ylabel("best IE found so far (eV)")
        ax_curve.set_title("Where each rule stopped each seed's run", fontsize=10)
        ax_curve.legend(loc="lower right", fontsize=7)
        seeds = outcomes["seed"].nunique()
        fig.suptitle(f"Stop rules against running to the budget: {seeds} seeds, REPLAY of "
                     f"{curves.attrs.get('search_space')!r} ({curves.attrs.get('coverage')})",
                     fontsize=10)
        return figure_style.save(fig, path)

