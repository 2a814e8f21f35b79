"""The stop-rule part: rules on synthetic curves, then wired into replayed campaigns and grading."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from course_utils import records as rec
from course_utils.campaign.parameters import RESUME_KEYS, CampaignParameterError, CampaignParameters
from course_utils.campaign.runner import run_campaign
from course_utils.campaign.stopping import (
    BudgetRule,
    ConvergedRule,
    PredictedRule,
    StopHistory,
    StopRuleError,
    fit_saturating,
    history_from_records,
    is_finished_status,
    parse_stop_rule,
)
from course_utils.grading import BrokenSubmission, check_records, grade
from course_utils.ground_truth.build import build_ground_truth

REPO = Path(__file__).resolve().parents[1]


# --- synthetic curves ------------------------------------------------------------------------
def _history(ies, per_iteration=4, initial=8, budget=200) -> StopHistory:
    """Successes in arrival order, ``per_iteration`` of them per iteration after ``initial``."""
    n_iter = (len(ies) - initial) // per_iteration
    return StopHistory.per_iteration(ies, [per_iteration] * n_iter, initial, budget)


def _saturated(n=60, seed=0) -> np.ndarray:
    """IEs whose best-so-far levels off near 20 eV within the first few dozen."""
    rng = np.random.default_rng(seed)
    return 20 - 5 * np.exp(-np.arange(1, n + 1) / 8) + rng.normal(0, 0.05, n)


def _rising(n=60) -> np.ndarray:
    """Each new simulation beats the last by 0.05 eV: far from done."""
    return 10 + 0.05 * np.arange(n)


def test_budget_rule_never_fires():
    assert BudgetRule().check(_history(np.full(60, 15.0))) is None
    assert parse_stop_rule("budget") == BudgetRule() and parse_stop_rule(None) == BudgetRule()


def test_converged_fires_on_a_plateau_and_says_when():
    ies = [*np.linspace(12, 16, 8), *[17, 18, 19, 20], *[14.0] * 12]  # best 20 from iteration 1
    history = _history(ies)
    assert history.best == [16, 20, 20, 20, 20]
    decision = ConvergedRule(window=3, delta=0.01).check(history)
    assert decision is not None
    assert (decision.rule, decision.iteration, decision.simulations) == ("converged", 4, 24)
    assert "rose by 0.000 eV over the last 3 iterations" in decision.reason
    assert decision.curve is None and decision.predicted_final_ev is None


def test_converged_does_not_fire_while_improving_or_too_early():
    rising = _history(_rising())
    assert ConvergedRule(window=3, delta=0.5).check(rising) is None  # 0.6 eV per 3 iterations
    assert ConvergedRule(window=3, delta=0.7).check(rising) is not None
    flat = _history(np.full(16, 15.0))  # initial batch + 2 iterations: 3 points
    assert ConvergedRule(window=3, delta=1.0).check(flat) is None
    assert ConvergedRule(window=2, delta=1.0).check(flat) is not None


def test_converged_top_k_watches_the_mean_of_the_best():
    # The best (20 eV) came first; the next best keep arriving, so the top-3 mean still rises.
    ies = [20.0, *[12.0] * 7, *[15, 12, 12, 12], *[16, 12, 12, 12], *[17, 12, 12, 12]]
    history = _history(ies)
    assert ConvergedRule(window=2, delta=0.1).check(history) is not None  # best: flat
    top = ConvergedRule(window=2, delta=0.1, top=3)
    assert top.check(history) is None
    assert history.top_mean(3)[-1] == pytest.approx((20 + 17 + 16) / 3)
    plateau = _history([*ies, *[12.0] * 8])
    decision = top.check(plateau)
    assert decision is not None and "mean of the top 3" in decision.reason


def test_predicted_fires_on_a_saturated_curve_with_the_fitted_curve():
    history = _history(_saturated(), budget=200)
    decision = PredictedRule(delta=0.05, min_points=20).check(history)
    assert decision is not None and decision.rule == "predicted"
    curve = decision.curve
    assert curve["model"] in ("a - b*exp(-n/c)", "a - b/(n+c)")
    assert {"a", "b", "c", "rmse_ev", "points", "budget", "predicted_gain_ev",
            "predicted_final_ev"} <= set(curve)
    assert curve["points"] == 60 and curve["budget"] == 200
    assert 0 <= curve["predicted_gain_ev"] < 0.05
    assert curve["a"] == pytest.approx(20, abs=0.2)
    assert decision.predicted_final_ev == pytest.approx(max(history.curve) +
                                                        curve["predicted_gain_ev"])


def test_predicted_does_not_fire_while_climbing_or_without_enough_points():
    assert PredictedRule(delta=0.05, min_points=20).check(_history(_rising())) is None
    saturated = _history(_saturated(), budget=200)
    assert PredictedRule(delta=0.05, min_points=61).check(saturated) is None
    # No budget left to save: the budget ends the run anyway.
    assert PredictedRule(delta=0.05).check(_history(_saturated(), budget=60)) is None


def test_fit_is_flat_on_a_flat_curve_and_rises_on_a_rising_one():
    flat = fit_saturating(np.full(30, 15.0))
    assert flat(1000) - flat(30) == pytest.approx(0, abs=1e-6)
    climbing = fit_saturating(np.maximum.accumulate(_rising()))
    assert climbing(200) - climbing(60) > 1.0


def test_history_from_records_splits_successes_at_each_iteration():
    sims = [{"smiles": s, "status": st, "ie": ie, "elapsed_s": t} for s, st, ie, t in [
        ("A", "ok", 12.0, 1.0), ("B", "failed", math.nan, 1.5), ("C", "ok", 13.0, 2.0),
        ("D", "ok", 11.0, 3.0), ("E", "lost", math.nan, 3.5), ("F", "ok", 15.0, 5.0),
        ("G", "ok", 14.0, 6.0)]]
    its = [{"iteration": 1, "training_size": 2, "elapsed_s": 3.0},
           {"iteration": 2, "training_size": 3, "elapsed_s": 6.0}]
    history = history_from_records(sims, its, budget=10)
    assert history.ies == (12.0, 13.0, 11.0, 15.0, 14.0)
    assert history.ends == (2, 3, 5) and history.iterations == (0, 1, 2)
    assert history.best == [13.0, 13.0, 15.0] and history.simulations == 5
    assert history_from_records(sims, [], budget=10).points == 0


@pytest.mark.parametrize("text", [
    "budget", "converged:window=3,delta=0.05", "converged:window=2,delta=0.1,top=5",
    "predicted:delta=0.02,min_points=12"])
def test_spellings_read_back(text):
    rule = parse_stop_rule(text)
    assert parse_stop_rule(rule.text) == rule
    assert parse_stop_rule(f"  {text.upper()[:1]}{text[1:]} ".replace(",", " , ")) == rule


@pytest.mark.parametrize("text, part", [
    ("", "unknown rule ''"),
    ("convergd:window=3,delta=0.1", "unknown rule 'convergd'"),
    ("converged", "needs window=..., delta=..."),
    ("converged:window=3", "needs delta=..."),
    ("converged:windw=3,delta=0.1", "unknown option 'windw'"),
    ("converged:window=0,delta=0.1", "window=0 must be an integer >= 1"),
    ("converged:window=2.5,delta=0.1", "window=2.5 must be an integer"),
    ("converged:window=3,delta=-1", "delta=-1 must be a positive number"),
    ("converged:window=3,delta=nan", "delta=nan must be a positive number"),
    ("converged:window=3,delta=0.1,top=0", "top=0 must be an integer >= 1"),
    ("predicted:delta", "'delta' is not key=value"),
    ("predicted:delta=0.1,delta=0.2", "delta is given twice"),
    ("predicted:delta=0.1,min_points=3", "min_points=3 must be an integer >= 4"),
    ("budget:window=3", "unknown option 'window' for budget (takes no options)"),
])
def test_parse_errors_are_one_line_naming_the_bad_part(text, part):
    with pytest.raises(StopRuleError) as err:
        parse_stop_rule(text)
    message = str(err.value)
    assert part in message and "\n" not in message
    assert message.startswith(f"stop {text.strip()!r}")


def test_parameters_validate_the_rule_and_do_not_make_it_a_resume_key():
    assert CampaignParameters().stop == "budget" and "stop" not in RESUME_KEYS
    CampaignParameters(stop="converged:window=3,delta=0.05").validate()
    with pytest.raises(CampaignParameterError, match="^stop 'predicted:min_points=9'.*needs delta"):
        CampaignParameters(stop="predicted:min_points=9").validate()
    with pytest.raises(CampaignParameterError, match="^stop must be a string"):
        CampaignParameters(stop=ConvergedRule(3, 0.1)).validate()


def test_finished_statuses():
    assert is_finished_status("complete") and is_finished_status("stopped early (converged)")
    assert not any(map(is_finished_status, ("stopped", "running", "interrupted", None)))


# --- in the engine: replayed campaigns ---------------------------------------------------------
@pytest.fixture(scope="module")
def truth(parsl_local, small_space, tmp_path_factory):
    """A real ground-truth table (xTB) for 40 molecules of the small test space."""
    folder = tmp_path_factory.mktemp("stop_truth")
    space = folder / "space.csv"
    pd.DataFrame({"smiles": pd.read_csv(small_space)["smiles"].head(40)}).to_csv(space,
                                                                                 index=False)
    table = folder / "truth.csv"
    build_ground_truth(str(space), out=table, workers=2, progress=False)
    return space, table


def _params(truth, **extra) -> dict:
    space, table = truth
    return {"initial_training_count": 6, "max_training_count": 24, "batch_size": 2, "seed": 2,
            "search_space": str(space), "workers": 2, "simulator": "replay",
            "ground_truth": str(table), **extra}


def _run(truth, out, **extra):
    return run_campaign(_params(truth, **extra), out, progress=False, plot=False)


def _done(sims: pd.DataFrame) -> pd.DataFrame:
    return sims[sims["status"] != rec.STATUS_LOST]


@pytest.fixture(scope="module")
def stopped(truth, tmp_path_factory) -> Path:
    """A batch campaign the converged rule ends after its second iteration."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    _run(truth, out, stop="converged:window=2,delta=10")
    return out


def test_converged_stops_a_replayed_batch_campaign_early(stopped):
    results = json.loads((stopped / rec.RESULTS_FILE).read_text())
    sims = rec.read_simulations(stopped)
    n_ok = int((sims["status"] == "ok").sum())
    assert results["status"] == "stopped early (converged)"
    assert n_ok == 6 + 2 * 2 < 24  # initial batch + two iterations of 2
    assert len(rec.read_iterations(stopped)) == 2
    block = results["stopping"]
    assert block["rule"] == "converged:window=2,delta=10" and block["fired"] is True
    assert (block["at_iteration"], block["at_simulations"]) == (2, n_ok)
    assert block["on_resume"] is False and block["predicted"] is None
    assert block["elapsed_s"] == pytest.approx(results["totals"]["wall_time_s"])
    assert "less than delta=10 eV" in block["reason"]
    saved = block["saved"]
    assert saved["simulations"] == 24 - n_ok and saved["workers"] == 2
    ok = sims[sims["status"] == "ok"]
    per_sim = float((ok["end_time"] - ok["start_time"]).mean())
    assert saved["seconds_per_simulation"] == pytest.approx(per_sim)
    assert saved["seconds"] == pytest.approx(saved["simulations"] * per_sim / 2)
    assert results["message"].startswith(
        "stopped early by the rule converged:window=2,delta=10 at iteration 2 with 10 of 24")
    assert "\n" not in results["message"]


def test_budget_rule_runs_to_the_budget_and_records_that_it_did_not_fire(truth, tmp_path):
    result = _run(truth, tmp_path / "run")
    assert result.results["status"] == "complete"
    assert int((result.simulations["status"] == "ok").sum()) == 24
    block = result.results["stopping"]
    assert block["rule"] == "budget" and block["fired"] is False
    assert block["at_iteration"] is None and block["saved"] is None


def test_converged_stops_a_streaming_campaign_and_keeps_the_running_results(truth, tmp_path):
    result = _run(truth, tmp_path / "run", mode="streaming", retrain_after=2,
                  stop="converged:window=2,delta=10")
    assert result.results["status"] == "stopped early (converged)"
    n_ok = int((result.simulations["status"] == "ok").sum())
    block = result.results["stopping"]
    assert block["at_simulations"] <= n_ok < 24
    assert block["saved"]["simulations"] == 24 - n_ok
    assert _done(result.simulations)["smiles"].is_unique


def test_predicted_stops_early_and_records_its_curve(truth, tmp_path):
    result = _run(truth, tmp_path / "run", stop="predicted:delta=10,min_points=8")
    assert result.results["status"] == "stopped early (predicted)"
    block = result.results["stopping"]
    assert block["rule"] == "predicted:delta=10,min_points=8"
    assert block["at_iteration"] == 1 and block["at_simulations"] == 8
    curve = block["predicted"]
    assert curve["points"] == 8 and curve["budget"] == 24
    assert curve["predicted_final_ev"] >= result.results["best"]["ie"] - 1e-9
    assert set("abc") <= set(curve)


def test_resume_with_a_larger_budget_and_the_budget_rule_goes_on(stopped, truth, tmp_path):
    """Through the CLI: --stop budget and a larger budget continue, nothing is simulated twice."""
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    before = _done(rec.read_simulations(out))
    space, table = truth
    proc = subprocess.run(
        [sys.executable, "-m", "course_utils", "run", "--initial-training-count", "6",
         "--max-training-count", "28", "--batch-size", "2", "--seed", "2", "--workers", "2",
         "--search-space", str(space), "--simulator", "replay", "--ground-truth", str(table),
         "--stop", "budget", "--out", str(out), "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / rec.RESULTS_FILE).read_text())
    assert results["status"] == "complete" and results["stopping"]["fired"] is False
    sims = _done(rec.read_simulations(out))
    assert int((sims["status"] == "ok").sum()) == 28
    assert sims["smiles"].is_unique
    assert sims["smiles"].head(len(before)).tolist() == before["smiles"].tolist()
    assert results["resumed_from_simulations"] == len(rec.read_simulations(stopped))


def test_resume_with_another_rule_is_evaluated_on_the_whole_history(stopped, truth, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    result = _run(truth, out, stop="converged:window=4,delta=10")
    assert result.results["status"] == "stopped early (converged)"
    block = result.results["stopping"]
    assert block["at_iteration"] == 4 and block["on_resume"] is False
    assert int((result.simulations["status"] == "ok").sum()) == 6 + 4 * 2
    assert _done(result.simulations)["smiles"].is_unique


def test_resume_with_the_rule_that_fired_stops_at_once_and_says_so(stopped, truth, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    result = _run(truth, out, max_training_count=30, stop="converged:window=2,delta=10")
    assert result.results["status"] == "stopped early (converged)"
    assert len(result.simulations) == len(rec.read_simulations(stopped))  # nothing new
    block = result.results["stopping"]
    assert block["on_resume"] is True and block["at_iteration"] == 2
    assert block["saved"]["simulations"] == 30 - 10
    assert "stopped at once" in result.results["message"]


def test_cli_bad_stop_spelling_exits_2_with_one_line(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "course_utils", "run", "--stop",
                           "converged:windw=3,delta=0.1", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: stop 'converged:windw=3,delta=0.1': unknown option 'windw' for converged "
        "(takes window, delta, top)"]
    assert not out.exists()


# --- grading ---------------------------------------------------------------------------------
def _stopped_run(out: Path, status="stopped early (converged)", fired=True) -> Path:
    """A real-looking run's records, ended by a rule with 3 of a budget of 6 (not simulated)."""
    params = {"initial_training_count": 2, "max_training_count": 6, "batch_size": 1, "seed": 0,
              "acquisition": "greedy", "mode": "batch", "workers": 1,
              "stop": "converged:window=1,delta=0.5"}
    recorder = rec.CampaignRecorder.open(out)
    recorder.check_parameters(params, ())
    for i, (smiles, ie) in enumerate([("O", 18.293), ("OC", 15.459), ("c1ccccc1", 14.215)]):
        recorder.add_simulation({"smiles": smiles, "ie": ie, "status": "ok", "error": "",
                                 "batch": 0, "elapsed_s": float(i + 1)})
    results = rec.summarize(recorder, params, status=status, environment={}, wall_time_s=4.0)
    results["stopping"] = {"rule": params["stop"], "fired": fired, "at_iteration": 1,
                           "at_simulations": 3}
    rec.atomic_write_json(out / rec.RESULTS_FILE, results)
    return out


def test_grader_ranks_a_run_stopped_early_by_a_rule(tmp_path):
    run = _stopped_run(tmp_path / "class" / "dora")
    results = json.loads((run / rec.RESULTS_FILE).read_text())
    row = check_records(results, rec.read_simulations(run))
    assert row["successful"] == 3 and row["best_ie_ev"] == pytest.approx(18.293)
    report = grade([tmp_path / "class"], tmp_path / "grading", verify=False)
    assert [Path(r).name for r in report.board["run"]] == ["dora"]
    assert report.not_ranked.empty


def test_grader_still_refuses_unfinished_and_unbacked_stops(tmp_path):
    run = _stopped_run(tmp_path / "a", fired=False)
    results = json.loads((run / rec.RESULTS_FILE).read_text())
    with pytest.raises(BrokenSubmission, match="stopping block does not record a rule"):
        check_records(results, rec.read_simulations(run))
    run = _stopped_run(tmp_path / "b", status="stopped")
    results = json.loads((run / rec.RESULTS_FILE).read_text())
    with pytest.raises(BrokenSubmission, match="unfinished run"):
        check_records(results, rec.read_simulations(run))
