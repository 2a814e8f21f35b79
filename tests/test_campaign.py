"""The campaign engine: validation, acquisition, real local runs, failures, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from course_utils import records as rec
from course_utils.campaign import (
    Campaign,
    CampaignParameterError,
    CampaignParameters,
    rank_candidates,
    run_campaign,
)
from course_utils.search_space import sample_smiles

REPO = Path(__file__).resolve().parents[1]
UNEMBEDDABLE = [f"{r}C1C#C1" for r in ("", "O", "N", "F", "C", "OC", "CC", "N#C", "C=", "CO", "CN",
                                       "OCC", "CCC", "NCC", "FC", "CCO", "COC", "CNC", "OCCC")]


# --- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"initial_training_count": 24, "max_training_count": 24},
         ["initial_training_count", "max_training_count"]),
        ({"initial_training_count": 3}, ["initial_training_count"]),
        ({"batch_size": 0}, ["batch_size"]),
        ({"acquisition": "best"}, ["acquisition"]),
        ({"mode": "eager"}, ["mode"]),
        ({"config": "aurora"}, ["config"]),
        ({"epsilon": 1.5}, ["epsilon"]),
        ({"workers": 0}, ["workers"]),
    ],
)
def test_bad_parameters_are_named_in_one_line(changes, names):
    with pytest.raises(CampaignParameterError) as info:
        CampaignParameters(**changes).validate(1000)
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_budget_larger_than_the_search_space_is_rejected():
    with pytest.raises(CampaignParameterError, match="larger than the search space"):
        CampaignParameters(initial_training_count=4, max_training_count=20).validate(10)


def test_unknown_parameter_names_are_rejected():
    with pytest.raises(CampaignParameterError, match="bacth_size"):
        CampaignParameters.from_mapping({"bacth_size": 3})


# --- acquisition -----------------------------------------------------------------------------
PRED = pd.DataFrame({"smiles": list("abcdef"), "ie": [1.0, 5.0, 3.0, 5.0, 2.0, 4.0],
                     "ie_spread": [3.0, 0.0, 0.1, 0.0, 0.0, 0.0]})


def test_greedy_takes_highest_predictions_with_stable_ties_and_skips_tried():
    assert list(rank_candidates(PRED, {"f"})) == ["b", "d", "c", "e", "a"]


def test_ucb_rewards_uncertain_molecules():
    order = list(rank_candidates(PRED, set(), acquisition="ucb", ucb_kappa=2.0))
    assert order[0] == "a"  # 1 + 2*3 = 7 beats 5


def test_epsilon_greedy_is_seeded_and_reduces_to_greedy():
    def run(eps, seed):
        return list(rank_candidates(PRED, set(), acquisition="epsilon-greedy", epsilon=eps,
                                    rng=np.random.default_rng(seed)))

    assert run(0.0, 1) == list(rank_candidates(PRED, set()))
    assert run(0.5, 3) == run(0.5, 3)
    assert sorted(run(1.0, 4)) == sorted(PRED["smiles"])
    assert any(run(1.0, s) != list(rank_candidates(PRED, set())) for s in range(5))


def test_random_search_ignores_predictions_and_never_repeats():
    order = list(rank_candidates(PRED, {"b"}, acquisition="random", rng=np.random.default_rng(0)))
    assert sorted(order) == ["a", "c", "d", "e", "f"]


# --- real campaigns on a small search space ------------------------------------------------------
def _check_outputs(out: Path, expected_ok: int) -> dict:
    results = json.loads((out / rec.RESULTS_FILE).read_text())
    sims = rec.read_simulations(out)
    ok = sims[sims["status"] == rec.STATUS_OK]
    assert len(ok) == expected_ok == results["totals"]["successful"]
    assert ok["smiles"].is_unique and sims["smiles"].is_unique
    assert results["status"] == "complete"
    assert results["best"]["ie"] == pytest.approx(ok["ie"].max(), abs=1e-9)
    assert results["best"]["smiles"] == ok.loc[ok["ie"].idxmax(), "smiles"]
    assert (sims["end_time"] >= sims["start_time"]).all()
    assert (out / rec.PLOT_FILE).stat().st_size > 10_000
    return results


def test_greedy_batch_campaign(parsl_local, small_space, tmp_path):
    params = {"initial_training_count": 4, "max_training_count": 10, "batch_size": 3, "seed": 5,
              "search_space": str(small_space), "workers": 2}
    result = run_campaign(params, tmp_path, progress=False)
    _check_outputs(tmp_path, 10)
    its = result.iterations
    assert its["training_size"].tolist() == [4, 7]  # 4 initial, then 3 + 3
    assert its["mae_ev"].notna().all() and (its["mape_pct"] < 50).all()
    # The model-chosen molecules are the best *predicted* ones among the untried.
    sims = result.simulations
    assert set(sims.loc[sims["batch"] == 0, "smiles"]) >= set(
        sample_smiles(pd.read_csv(small_space), 4, seed=5)) - set(
        sims.loc[sims["status"] != "ok", "smiles"])


def test_same_seed_same_molecules(parsl_local, small_space, tmp_path):
    params = {"initial_training_count": 4, "max_training_count": 8, "batch_size": 2, "seed": 9,
              "search_space": str(small_space), "workers": 2}
    first = run_campaign(params, tmp_path / "a", progress=False).simulations
    second = run_campaign(params, tmp_path / "b", progress=False).simulations
    assert set(first["smiles"]) == set(second["smiles"])


@pytest.mark.parametrize("acquisition", ["ucb", "epsilon-greedy", "random"])
def test_each_acquisition_strategy_completes(parsl_local, small_space, tmp_path, acquisition):
    params = {"initial_training_count": 4, "max_training_count": 8, "batch_size": 2, "seed": 2,
              "search_space": str(small_space), "workers": 2, "acquisition": acquisition,
              "epsilon": 0.5}
    result = run_campaign(params, tmp_path, progress=False)
    results = _check_outputs(tmp_path, 8)
    assert results["parameters"]["acquisition"] == acquisition
    if acquisition == "random":
        assert result.iterations["mae_ev"].isna().all()  # no model, no model error
    else:
        assert result.iterations["mae_ev"].notna().all()


def test_streaming_mode_keeps_retraining(parsl_local, small_space, tmp_path):
    params = {"initial_training_count": 4, "max_training_count": 12, "batch_size": 2, "seed": 4,
              "search_space": str(small_space), "workers": 2, "mode": "streaming",
              "retrain_after": 2}
    result = run_campaign(params, tmp_path, progress=False)
    _check_outputs(tmp_path, 12)
    sims = result.simulations
    # Several model generations picked molecules, and each later one trained on more data.
    assert sims.loc[sims["batch"] > 0, "batch"].nunique() >= 2
    assert result.iterations["training_size"].is_monotonic_increasing


def test_failures_are_recorded_replaced_and_never_crash(parsl_local, tmp_path):
    good = ["O", "OC", "CC", "c1ccccc1"]
    space = tmp_path / "space.csv"
    pd.DataFrame({"smiles": good + UNEMBEDDABLE}).to_csv(space, index=False)
    params = {"initial_training_count": 4, "max_training_count": 6, "batch_size": 2, "seed": 0,
              "search_space": str(space), "workers": 2, "max_failures": len(UNEMBEDDABLE)}
    result = run_campaign(params, tmp_path / "out", progress=False)
    sims, results = result.simulations, result.results
    assert set(sims.loc[sims["status"] == "ok", "smiles"]) == set(good)
    failed = sims[sims["status"] == "failed"]
    assert len(failed) == len(UNEMBEDDABLE)  # every bad molecule tried once, none twice
    assert failed["error"].str.startswith("EmbeddingError").all()
    assert results["status"] == "stopped" and "failures" in results["message"]
    assert len(results["failures"]) == len(UNEMBEDDABLE)
    assert (result.iterations["n_new"] == 0).any()  # a batch in which everything failed


def test_lost_and_timed_out_tasks_become_records(tmp_path, small_space):
    from parsl.app.errors import AppTimeout

    campaign = Campaign(CampaignParameters(search_space=str(small_space)), tmp_path,
                        progress=False)
    for smiles, err in (("CC", AppTimeout("walltime exceeded")),
                        ("CO", RuntimeError("manager lost"))):
        future: Future = Future()
        future.set_exception(err)
        from course_utils.campaign import _Pending

        campaign._pending[future] = _Pending(smiles, 1, time.time())
        campaign._collect(future)
    sims = rec.read_simulations(tmp_path)
    assert sims["status"].tolist() == ["timeout", "lost"]
    assert "manager lost" in sims["error"].iloc[1]


def test_resume_refuses_a_folder_of_another_campaign(parsl_local, small_space, tmp_path):
    params = {"initial_training_count": 4, "max_training_count": 5, "batch_size": 1, "seed": 1,
              "search_space": str(small_space), "workers": 2}
    run_campaign(params, tmp_path, progress=False)
    with pytest.raises(rec.ResumeMismatchError, match="seed"):
        run_campaign({**params, "seed": 2}, tmp_path, progress=False)


def test_interrupted_run_resumes_without_recomputing(parsl_local, small_space, tmp_path):
    params = {"initial_training_count": 4, "max_training_count": 10, "batch_size": 3, "seed": 8,
              "search_space": str(small_space), "workers": 2}

    def interrupt(update):
        if update["event"] == "simulation" and update["n_ok"] >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_campaign(params, tmp_path, progress=False, on_update=interrupt)
    before = rec.read_simulations(tmp_path)
    assert json.loads((tmp_path / rec.RESULTS_FILE).read_text())["status"] == "interrupted"
    assert 6 <= (before["status"] == "ok").sum() < 10

    result = run_campaign(params, tmp_path, progress=False)
    after = result.simulations
    assert after.iloc[: len(before)]["smiles"].tolist() == before["smiles"].tolist()
    assert after["smiles"].is_unique  # nothing finished before was computed again
    _check_outputs(tmp_path, 10)
    assert result.results["resumed_from_simulations"] == len(before)


def test_cli_bad_parameters_exit_nonzero_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "course_utils", "run", "--initial-training-count", "24",
         "--max-training-count", "24", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "initial_training_count" in lines[0] and "max_training_count" in lines[0]


def test_cli_interrupted_with_ctrl_c_then_resumed(small_space, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "course_utils", "run", "--initial-training-count", "4",
           "--max-training-count", "10", "--batch-size", "2", "--seed", "3", "--workers", "2",
           "--search-space", str(small_space), "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        sims = rec.read_simulations(out) if (out / rec.SIMULATIONS_FILE).exists() else None
        if sims is not None and (sims["status"] == "ok").sum() >= 5:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    before = rec.read_simulations(out)
    assert proc.returncode != 0, err
    assert 5 <= (before["status"] == "ok").sum() < 10

    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = rec.read_simulations(out)
    assert after.iloc[: len(before)]["smiles"].tolist() == before["smiles"].tolist()
    assert after["smiles"].is_unique
    results = _check_outputs(out, 10)
    assert not math.isnan(results["best"]["ie"])
    assert {p.name for p in out.iterdir()} >= {"results.json", "simulations.csv",
                                               "ml_in_the_loop.png"}
