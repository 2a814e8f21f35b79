"""Is stopping worth it (course_utils.studies.stopping_study): bookkeeping on a made-up run, then the
claim the study rests on (a rule's outcome read from the run to the budget is the stopped run)
checked against real stopped replays on the part of QM9 the shipped table covers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from course_utils import records as rec
from course_utils.campaign.runner import run_campaign
from course_utils.studies.comparison import Yardsticks
from course_utils.studies.stopping_study import (
    OUTCOME_COLUMNS,
    plot_stopping_study,
    rule_outcome,
    stop_point,
    stopping_study,
    summarize_stopping,
)

# --- a made-up batch run: 4 initial, then 4 iterations of 2; budget 12 ------------------------
IES = [10.0, 11.0, 12.0, 10.5,   # initial batch (batch 0)
       12.5, 11.0,               # iteration 1: best 12.5
       12.0, 11.5,               # iteration 2: no gain
       11.9, 12.1,               # iteration 3: no gain
       13.0, 12.2]               # iteration 4: best 13.0 (reached the budget)
BATCHES = [0] * 4 + [1, 1, 2, 2, 3, 3, 4, 4]
SMILES = [f"C{'C' * i}" for i in range(len(IES))]
MARKS = Yardsticks(search_space="made-up", coverage="made up", complete=True, ranked=100,
                   global_best_smiles="X", global_best_ie=14.0,
                   thresholds={1: 14.0, 10: 13.0, 100: 10.0},
                   top_k={1: frozenset(["X"]), 10: frozenset([SMILES[10]]),
                          100: frozenset(SMILES[:4] + [SMILES[10]])})


@pytest.fixture
def made_up_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    sims = pd.DataFrame({"smiles": SMILES, "ie": IES, "status": "ok", "error": "",
                         "batch": BATCHES, "elapsed_s": np.arange(1, 13) * 10.0 + 0.5})
    sims.to_csv(out / rec.SIMULATIONS_FILE, index=False)
    its = pd.DataFrame({"iteration": [1, 2, 3, 4], "training_size": [4, 6, 8, 10],
                        "n_new": 2, "elapsed_s": [61.0, 81.0, 101.0, 121.0]})
    its.to_csv(out / rec.ITERATIONS_FILE, index=False)
    results = {"parameters": {"max_training_count": 12, "seed": 7, "mode": "batch"},
               "totals": {"wall_time_s": 125.0}}
    (out / rec.RESULTS_FILE).write_text(json.dumps(results))
    return out


def test_saved_is_the_budget_minus_the_stop_point_and_losses_are_budget_minus_stopped(
        made_up_run):
    row = rule_outcome(made_up_run, "converged:window=2,delta=0.1", MARKS)
    # Asked after iterations 1, 2, 3: flat for two iterations after iteration 3 (8 + 2 = 10).
    assert (row["fired"], row["stop_iteration"], row["simulations"]) == (True, 3, 10)
    assert row["saved_simulations"] == 12 - 10
    assert row["elapsed_s"] == 101.0 and row["saved_seconds"] == pytest.approx(125.0 - 101.0)
    assert (row["best_ie"], row["budget_best_ie"]) == (12.5, 13.0)
    assert row["best_loss_ev"] == pytest.approx(0.5)
    assert (row["regret_ev"], row["budget_regret_ev"]) == (pytest.approx(1.5), pytest.approx(1.0))
    assert row["regret_loss_ev"] == pytest.approx(0.5)
    # Top-100 recall: 4 of 5 before the stop, 5 of 5 at the budget.
    assert row["top100_recall"] == pytest.approx(0.8)
    assert row["top100_recall_loss"] == pytest.approx(0.2)
    assert row["seed"] == 7 and "less than delta=0.1 eV" in row["reason"]


@pytest.mark.parametrize("rule", ["budget", "converged:window=3,delta=0.1"])
def test_a_rule_that_never_fires_saves_nothing_and_loses_nothing(made_up_run, rule):
    # window=3 would first look back from iteration 4, but the run is complete by then.
    row = rule_outcome(made_up_run, rule, MARKS)
    assert row["fired"] is False and row["stop_iteration"] is None
    assert (row["simulations"], row["saved_simulations"], row["saved_seconds"]) == (12, 0, 0.0)
    assert row["best_loss_ev"] == row["regret_loss_ev"] == row["top100_recall_loss"] == 0.0
    assert row["best_ie"] == 13.0 and row["reason"] == ""


def test_the_rule_is_only_asked_with_the_records_of_each_iteration(made_up_run):
    sims, its = rec.read_simulations(made_up_run), rec.read_iterations(made_up_run)
    decision = stop_point(sims, its, "converged:window=1,delta=0.1", 12)
    assert (decision.iteration, decision.simulations) == (2, 8)  # iteration 2 added nothing


def test_summary_counts_fired_runs_and_averages_savings_and_losses():
    outcomes = pd.DataFrame([
        {"rule": "r", "seed": 0, "fired": True, "saved_simulations": 10, "saved_seconds": 5.0,
         "best_loss_ev": 0.0, "regret_loss_ev": 0.0, "top100_recall_loss": 0.0},
        {"rule": "r", "seed": 1, "fired": True, "saved_simulations": 30, "saved_seconds": 15.0,
         "best_loss_ev": 1.0, "regret_loss_ev": 1.0, "top100_recall_loss": 0.1},
        {"rule": "r", "seed": 2, "fired": False, "saved_simulations": 0, "saved_seconds": 0.0,
         "best_loss_ev": 0.0, "regret_loss_ev": 0.0, "top100_recall_loss": 0.0},
    ])
    row = summarize_stopping(outcomes).loc["r"]
    assert (row["runs"], row["fired"]) == (3, 2) and row["fired_share"] == pytest.approx(2 / 3)
    assert row["mean_saved_simulations"] == pytest.approx(40 / 3)
    assert row["std_saved_simulations"] == pytest.approx(np.std([10, 30, 0], ddof=1))
    assert row["mean_best_loss_ev"] == pytest.approx(1 / 3) and row["max_best_loss_ev"] == 1.0
    assert row["runs_without_loss"] == 2


# --- real replays --------------------------------------------------------------------------------
RULES = {"flat 2": "converged:window=2,delta=0.05", "never": "budget",
         "curve": "predicted:delta=0.2,min_points=12"}
SEEDS = [1, 4]
SETTINGS = {"budget": 40, "initial": 8, "batch_size": 4, "workers": 2,
            "search_space": "truth:qm9:4000"}  # a fixed set: truth:qm9 grows with the table


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    outcomes, curves = stopping_study(RULES, SEEDS, out_dir=out, processes=1, **SETTINGS)
    return outcomes, curves, out


def test_one_row_per_rule_and_seed(study):
    outcomes, curves, _ = study
    assert list(outcomes.columns) == OUTCOME_COLUMNS
    assert list(outcomes["rule"]) == [r for r in RULES for _ in SEEDS]
    assert list(outcomes["seed"]) == SEEDS * len(RULES)
    assert outcomes.attrs["rules"] == RULES and "ground truth covers" in outcomes.attrs["coverage"]
    never = outcomes[outcomes["rule"] == "never"]
    assert not never["fired"].any() and (never["saved_simulations"] == 0).all()
    assert (outcomes["best_loss_ev"] >= 0).all()
    assert outcomes["fired"].sum() >= 2, "the test needs rules that fire"
    assert len(curves) == len(SEEDS) * SETTINGS["budget"]


def test_each_outcome_is_the_real_stopped_replay_with_that_seed(study, tmp_path):
    """The claim the study rests on: replay is deterministic, so the stopped run is the run to
    the budget cut where the rule fired."""
    outcomes, _, _ = study
    for row in outcomes[outcomes["fired"]].itertuples():
        result = run_campaign({"initial_training_count": SETTINGS["initial"],
                               "max_training_count": SETTINGS["budget"],
                               "batch_size": SETTINGS["batch_size"], "seed": row.seed,
                               "workers": 2, "simulator": "replay", "search_space": SETTINGS["search_space"],
                               "stop": RULES[row.rule]},
                              tmp_path / f"{row.rule}-{row.seed}".replace(" ", "-"),
                              progress=False, plot=False)
        block = result.results["stopping"]
        assert result.results["status"].startswith("stopped early"), row
        assert block["at_iteration"] == row.stop_iteration
        assert block["at_simulations"] == row.simulations
        assert block["saved"]["simulations"] == row.saved_simulations
        assert result.results["best"]["ie"] == pytest.approx(row.best_ie)
        assert result.results["evaluation"]["regret_ev"] == pytest.approx(row.regret_ev)
        # The clock includes the real time the model took, so it agrees only roughly.
        assert result.results["totals"]["wall_time_s"] == pytest.approx(row.elapsed_s, abs=3.0)


def test_the_figure_is_written(study, tmp_path):
    outcomes, curves, _ = study
    path = plot_stopping_study(outcomes, curves, tmp_path / "stopping.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_streaming_campaigns_are_refused(tmp_path):
    with pytest.raises(ValueError, match="batch"):
        stopping_study(["budget"], [0], out_dir=tmp_path, strategy={"mode": "streaming"},
                       **SETTINGS)
