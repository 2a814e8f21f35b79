"""The campaign engine: validation, acquisition, real local runs, failures, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from course_utils import records as rec
from course_utils.campaign.acquisition import best_first, rank_candidates
from course_utils.campaign.runner import (
    Campaign,
    CampaignInterrupted,
    CampaignParameterError,
    CampaignParameters,
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


def greedy(seed: int, tried: set[str] | None = None) -> list[str]:
    return list(rank_candidates(PRED, tried or set(), rng=np.random.default_rng(seed)))


def test_greedy_takes_highest_predictions_ties_by_seed_and_skips_tried():
    orders = {tuple(greedy(seed, {"f"})) for seed in range(20)}
    # b and d tie at 5.0: either comes first, as the seed decides; the rest by score
    assert orders == {("b", "d", "c", "e", "a"), ("d", "b", "c", "e", "a")}
    assert greedy(7, {"f"}) == greedy(7, {"f"})


def test_ucb_rewards_uncertain_molecules():
    order = list(rank_candidates(PRED, set(), acquisition="ucb", ucb_kappa=2.0))
    assert order[0] == "a"  # 1 + 2*3 = 7 beats 5


def test_epsilon_greedy_is_seeded_and_reduces_to_greedy():
    def run(eps, seed):
        return list(rank_candidates(PRED, set(), acquisition="epsilon-greedy", epsilon=eps,
                                    rng=np.random.default_rng(seed)))

    assert run(0.0, 1) == greedy(1)
    assert run(0.5, 3) == run(0.5, 3)
    assert sorted(run(1.0, 4)) == sorted(PRED["smiles"])
    assert any(run(1.0, s) != greedy(s) for s in range(5))


def test_best_first_sorts_by_score_then_tie_key_read_lazily():
    rng = np.random.default_rng(0)
    for n, head in ((1000, 10), (3000, 256), (300, 256), (2000, 3)):
        score = rng.integers(0, 20, n).astype(float)  # many ties, across the head's edge
        score[rng.choice(n, 5, replace=False)] = np.nan
        ties = rng.random(n)
        assert list(best_first(score, ties, head)) == np.lexsort((ties, -score)).tolist()


def test_positions_give_the_same_ranking_as_hashing_the_space():
    rng = np.random.default_rng(1)
    pred = pd.DataFrame({"smiles": [f"m{i}" for i in range(500)],
                         "ie": rng.integers(0, 9, 500).astype(float),
                         "ie_spread": rng.random(500)})
    positions = {s: i for i, s in enumerate(pred["smiles"])}
    tried = {"m3", "m77", "m499", "not-in-space"}
    for acquisition in ("greedy", "ucb", "epsilon-greedy", "random"):
        plain = list(rank_candidates(pred, tried, acquisition=acquisition,
                                     rng=np.random.default_rng(5)))
        fast = list(rank_candidates(pred, tried, acquisition=acquisition,
                                    rng=np.random.default_rng(5), positions=positions))
        assert fast == plain and len(plain) == 497 and not tried & set(plain)


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
    # Every molecule was tried: the message names that, not the failures (there were not too many).
    assert results["status"] == "stopped" and "no untried molecule" in results["message"]
    assert len(results["failures"]) == len(UNEMBEDDABLE)
    assert (result.iterations["n_new"] == 0).any()  # a batch in which everything failed


def test_max_failures_is_not_overshot_by_simulations_in_flight(parsl_local, tmp_path):
    space = tmp_path / "space.csv"
    pd.DataFrame({"smiles": ["O", "OC", "CC", "c1ccccc1"] + UNEMBEDDABLE}).to_csv(space, index=False)
    params = {"initial_training_count": 4, "max_training_count": 6, "batch_size": 4, "seed": 0,
              "search_space": str(space), "workers": 2, "max_failures": 2}
    result = run_campaign(params, tmp_path / "out", progress=False)
    failed = result.simulations[result.simulations["status"] == "failed"]
    assert len(failed) == 3  # the first failure beyond max_failures stops the run, no more
    assert result.results["status"] == "stopped"
    assert "more than max_failures=2" in result.results["message"]


def _kill_busy_workers(pid: int) -> int:
    """SIGKILL the run's worker processes that are computing (not those idle in the queue)."""
    import psutil
    from process_tools import worker_processes

    workers = worker_processes(pid)
    for proc in workers:
        try:
            proc.cpu_percent(None)
        except psutil.Error:
            continue
    time.sleep(0.5)
    killed = 0
    for proc in workers:
        try:
            if proc.cpu_percent(None) > 20:
                proc.kill()
                killed += 1
        except psutil.Error:
            continue
    return killed


def test_worker_killed_mid_simulation_is_retried_not_failed(tmp_path):
    from process_tools import SLOW, start_slow_run

    proc, out = start_slow_run(tmp_path)  # the slow molecule is the one still running
    time.sleep(2.0)
    assert SLOW not in set(rec.read_simulations(out)["smiles"])
    assert _kill_busy_workers(proc.pid) >= 1
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    sims = rec.read_simulations(out)
    slow = sims[sims["smiles"] == SLOW]
    assert slow["status"].tolist() == ["lost", "ok"], slow  # retried, and then it worked
    assert not (sims["status"] == "failed").any()
    results = json.loads((out / rec.RESULTS_FILE).read_text())
    assert results["status"] == "complete" and results["totals"]["lost_and_retried"] == 1
    assert results["totals"]["failed"] == 0


def test_worker_killed_mid_scoring_is_retried(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "COURSE_UTILS_CACHE_DIR": str(tmp_path / "cold-cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "course_utils", "run", "--initial-training-count", "4",
         "--max-training-count", "6", "--batch-size", "2", "--workers", "2", "--quiet",
         "--seed", "2", "--model", "gp", "--out", str(out)],  # all of QM9, a GP: a cold
        # scoring round takes the workers seconds (the GP's kernels compile on first use)
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    cache = tmp_path / "cold-cache"
    while time.time() < deadline:
        # The space's fingerprints and one cache file per scoring block (3 files) are written
        # just before the scoring round goes to the workers.
        if len(list(cache.glob("fp-*.npy"))) >= 3:
            break
        time.sleep(0.05)
    assert _kill_busy_workers(proc.pid) >= 1
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "scoring attempt 1 of 3 failed" in err
    assert "Traceback" not in err
    results = json.loads((out / rec.RESULTS_FILE).read_text())
    assert results["status"] == "complete"


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


def test_cli_ctrl_c_inside_a_batch_then_resumed_makes_the_same_picks(small_space, tmp_path):
    """Real xTB through Parsl: Ctrl-C (SIGINT to the run's process group) while batch 1 runs,
    then the same command again, simulates what a run that was never stopped simulates."""
    def cmd(out: Path) -> list[str]:
        return [sys.executable, "-m", "course_utils", "run", "--initial-training-count", "4",
                "--max-training-count", "12", "--batch-size", "8", "--seed", "3", "--workers",
                "2", "--search-space", str(small_space), "--out", str(out), "--quiet"]

    def picks(out: Path) -> list[tuple[int, str]]:
        sims = rec.read_simulations(out)
        return sorted(zip(sims["batch"].astype(int), sims["smiles"], strict=True))

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full = subprocess.run(cmd(tmp_path / "full"), cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert full.returncode == 0, full.stderr

    out = tmp_path / "stopped"
    proc = subprocess.Popen(cmd(out), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        sims = rec.read_simulations(out) if (out / rec.SIMULATIONS_FILE).exists() else None
        if sims is not None and (sims["batch"] == 1).any():
            break  # batch 1 has started: its first result is in, 7 more still to come
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # the whole group, as Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    stopped = rec.read_simulations(out)
    assert 1 <= (stopped["batch"] == 1).sum() < 8, "the stop must come inside batch 1"
    assert 1 not in rec.read_iterations(out)["iteration"].tolist()

    again = subprocess.run(cmd(out), cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert picks(out) == picks(tmp_path / "full")  # same molecules, same batches
    assert rec.read_simulations(out)["smiles"].is_unique



def _model_of_each_version(out: Path) -> list[dict]:
    return [json.loads(p.read_text())["model"] for p in sorted((out / "models").glob("v*.json"))]


def test_cli_gp_batch_run_stopped_with_ctrl_c_then_resumed(small_space, tmp_path):
    """Real xTB through Parsl with the Gaussian process: fit and scoring run as apps, as the
    KNN's do; a Ctrl-C after the first batch began, then the same command, completes the run."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "course_utils", "run", "--model", "gp", "--initial-training-count",
           "4", "--max-training-count", "8", "--batch-size", "2", "--seed", "6", "--workers", "2",
           "--search-space", str(small_space), "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        sims = rec.read_simulations(out) if (out / rec.SIMULATIONS_FILE).exists() else None
        if sims is not None and (sims["batch"] >= 1).any():
            break  # the gp's first batch has a result: the model was trained and scored
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # the whole group, as Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    before = rec.read_simulations(out)
    assert (before["status"] == "ok").sum() < 8

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=180)
    assert again.returncode == 0, again.stderr
    after = rec.read_simulations(out)
    assert after.iloc[: len(before)]["smiles"].tolist() == before["smiles"].tolist()
    assert after["smiles"].is_unique  # nothing simulated before the stop is simulated again
    results = _check_outputs(out, 8)
    assert results["parameters"]["model"] == "gp" and not math.isnan(results["best"]["ie"])
    assert {p.name for p in out.iterdir()} >= {"results.json", "simulations.csv",
                                               "ml_in_the_loop.png"}
    described = _model_of_each_version(out)
    assert len(described) >= 2 and all(d["name"] == "gp" for d in described)
    for fitted in (d["fitted"] for d in described):  # fitted by marginal likelihood, each time
        assert {"signal_std_ev", "noise_std_ev", "constant_mean_ev"} <= set(fitted)
        assert fitted["signal_std_ev"] > 0 and math.isfinite(fitted["constant_mean_ev"])
    assert [d["fitted"]["n_train"] for d in described] == sorted(d["fitted"]["n_train"]
                                                                  for d in described)
    its = rec.read_iterations(out)
    assert its["mae_ev"].notna().all() and its["within_2sd"].between(0, 1).all()


def test_rf_streaming_run_completes_with_real_simulations(parsl_local, small_space, tmp_path):
    params = {"initial_training_count": 4, "max_training_count": 10, "batch_size": 2, "seed": 4,
              "search_space": str(small_space), "workers": 2, "mode": "streaming",
              "retrain_after": 2, "model": "rf"}
    result = run_campaign(params, tmp_path, progress=False)
    _check_outputs(tmp_path, 10)
    described = _model_of_each_version(tmp_path)
    assert len(described) >= 2 and all(d["name"] == "rf" for d in described)
    assert described[0]["options"]["n_trees"] > 0 and described[-1]["fitted"]
    assert result.iterations["training_size"].is_monotonic_increasing
    assert result.iterations["within_2sd"].dropna().between(0, 1).all()

# --- validation (reliability issue) ---
@pytest.mark.parametrize(
    ("changes", "name", "words"),
    [
        ({"seed": -1}, "seed", "non-negative integer"),
        ({"seed": np.int64(-3)}, "seed", "non-negative integer"),
        ({"simulation_walltime": math.nan}, "simulation_walltime", "finite number"),
        ({"simulation_walltime": math.inf}, "simulation_walltime", "finite number"),
        ({"ucb_kappa": math.nan}, "ucb_kappa", "finite number"),
        ({"ucb_kappa": math.inf}, "ucb_kappa", "finite number"),
        ({"epsilon": math.nan}, "epsilon", "finite number"),
        ({"epsilon": "0.1"}, "epsilon", "finite number"),
        ({"max_failures": 2.5}, "max_failures", "must be an integer"),
        ({"retrain_after": True}, "retrain_after", "must be an integer"),
        ({"score_chunks": 2.0}, "score_chunks", "must be an integer"),
        ({"workers": True}, "workers", "must be an integer"),
        ({"workers": 2.0}, "workers", "must be an integer"),
    ],
)
def test_non_finite_negative_and_non_integer_values_are_named(changes, name, words):
    with pytest.raises(CampaignParameterError) as info:
        CampaignParameters(**changes).validate(1000)
    message = str(info.value)
    assert "\n" not in message
    assert name in message and words in message


def test_invalid_campaign_creates_no_folder(small_space, tmp_path):
    params = CampaignParameters(initial_training_count=4, max_training_count=6, seed=-1,
                                search_space=str(small_space))
    with pytest.raises(CampaignParameterError, match="seed"):
        Campaign(params, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_cli_negative_seed_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "course_utils", "run", "--seed", "-1",
                           "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "seed" in lines[0]
    assert not out.exists() or not any(out.iterdir())
    assert not (out / rec.RESULTS_FILE).exists()


def test_a_walltime_cut_inside_an_import_counts_as_a_timeout():
    from parsl.app.errors import AppTimeout

    from course_utils.resilience import is_timeout

    try:  # what an import interrupted by the walltime looks like after a library re-raised it
        try:
            raise AppTimeout("walltime exceeded")
        except AppTimeout as inner:
            raise ImportError("cannot import name 'XTB'") from inner
    except ImportError as err:
        wrapped = err
    assert is_timeout(wrapped)
    assert is_timeout(RuntimeError("EngineError: xtb failed: AppTimeout: "))
    assert not is_timeout(RuntimeError("WorkerLost: worker 1 died"))


def test_a_step_called_on_its_own_stops_in_one_line_and_resumes(tmp_path):
    """Notebook 3 calls the steps itself: a stop in one must take run_campaign's path."""
    from course_utils.resilience import request_stop, withdraw_stop

    params = CampaignParameters(initial_training_count=10, max_training_count=20, batch_size=4,
                                seed=2, search_space="truth:qm9:4000", simulator="replay",
                                workers=2)
    stops = []

    def stop_once(info):
        if info["event"] == "simulation" and info["n_ok"] == 5 and not stops:
            stops.append(info)
            raise KeyboardInterrupt  # what the stop button raises in a cell

    campaign = Campaign(params, tmp_path, progress=False, on_update=stop_once)
    with pytest.raises(CampaignInterrupted) as stopped:
        campaign.initial_batch()
    assert stopped.value._render_traceback_() == [str(stopped.value)]
    results = json.loads((tmp_path / rec.RESULTS_FILE).read_text())
    assert results["status"] == "interrupted" and "resume" in results["message"]
    kept = rec.read_simulations(tmp_path)["smiles"].tolist()
    campaign.initial_batch()  # the same cell again resumes
    sims = rec.read_simulations(tmp_path)
    assert sims["smiles"].tolist()[: len(kept)] == kept and sims["smiles"].is_unique
    assert campaign.n_ok == 10

    never = Future()  # scores that take long: waiting for them must honour a stop too
    campaign.simulator.score = lambda *args: never
    scores = campaign.score_search_space()
    threading.Timer(1.0, request_stop, (threading.main_thread(), "stopped by test")).start()
    try:
        with pytest.raises(CampaignInterrupted, match="stopped by test"):
            campaign.wait_for(scores)
    finally:
        withdraw_stop(threading.main_thread())
    assert json.loads((tmp_path / rec.RESULTS_FILE).read_text())["status"] == "interrupted"
