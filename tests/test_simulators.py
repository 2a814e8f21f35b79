"""The simulator part: replay answers from a ground-truth table exactly as xTB would have."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from course_utils import records as rec
from course_utils.campaign.runner import run_campaign
from course_utils.campaign.simulators import ReplayMissingError, ReplaySimulator
from course_utils.ground_truth.table import read_table


def _picks(sims: pd.DataFrame) -> dict[int, set[str]]:
    done = sims[sims["status"] != "lost"]
    return {int(b): set(g["smiles"]) for b, g in done.groupby("batch")}


def test_replay_makes_the_same_picks_as_the_real_campaign(parsl_local, tiny_truth, tmp_path):
    space, table = tiny_truth
    params = {"initial_training_count": 6, "max_training_count": 14, "batch_size": 4, "seed": 3,
              "search_space": str(space), "workers": 2, "mode": "batch"}
    real = run_campaign(params, tmp_path / "real", progress=False)
    replay = run_campaign({**params, "simulator": "replay", "ground_truth": str(table)},
                          tmp_path / "replay", progress=False)
    assert real.results["status"] == replay.results["status"] == "complete"
    assert _picks(real.simulations) == _picks(replay.simulations)
    assert len(_picks(real.simulations)) >= 3  # the model chose at least two batches
    merged = real.simulations.merge(replay.simulations, on="smiles", suffixes=("_real", "_replay"))
    assert (merged["status_real"] == merged["status_replay"]).all()
    ok = merged[merged["status_real"] == "ok"]
    assert (ok["ie_real"] - ok["ie_replay"]).abs().max() < 0.01
    assert replay.results["replayed"] is True and replay.results["simulator"] == "replay"
    assert real.results["replayed"] is False


def test_replay_charges_recorded_seconds_on_a_simulated_clock(tiny_truth, tmp_path):
    space, table = tiny_truth
    truth = read_table(table)
    started = time.perf_counter()
    result = run_campaign({"initial_training_count": 6, "max_training_count": 10, "batch_size": 2,
                           "seed": 1, "search_space": str(space), "workers": 2,
                           "simulator": "replay", "ground_truth": str(table)},
                          tmp_path, progress=False)
    took = time.perf_counter() - started
    sims = result.simulations
    charged = truth.set_index("smiles").loc[sims["smiles"], "seconds"].sum()
    # Two simulated workers: the clock moved by at least half the recorded compute time...
    assert result.results["totals"]["wall_time_s"] >= charged / 2 - 1e-6
    # ...which a real wait would have cost, while the replay itself took far less.
    assert took < charged / 2 + 5
    assert set(sims["host"]) == {"replay"}
    evaluation = result.results["evaluation"]  # measured against the same table
    assert evaluation["coverage"]["covered"] == evaluation["coverage"]["total"] == 31
    best = truth[truth["status"] == "ok"]["ie"].max()
    found = sims.loc[sims["status"] == "ok", "ie"].max()
    assert evaluation["regret_ev"] == pytest.approx(best - found, abs=1e-5)


def test_failures_replay_as_the_same_failures(tiny_truth):
    space, table = tiny_truth
    truth = read_table(table)
    sim = ReplaySimulator(truth, 2, truth["smiles"].tolist())
    record = sim.submit("C1C#C1").result()
    assert record["status"] == "failed" and record["error"].startswith("EmbeddingError")


def test_a_molecule_missing_from_the_table_stops_replay_naming_it(tiny_truth, tmp_path):
    space, table = tiny_truth
    sim = ReplaySimulator(read_table(table), 1, [])
    with pytest.raises(ReplayMissingError, match="CCCCCCCCCCCCCCCCCC"):
        sim.submit("CCCCCCCCCCCCCCCCCC")
    wider = tmp_path / "wider.csv"
    extra = pd.DataFrame({"smiles": ["CCCCCCCCCCCCCCCCCC"] * 1})
    pd.concat([pd.read_csv(space), extra]).to_csv(wider, index=False)
    proc = subprocess.run(
        [sys.executable, "-m", "course_utils", "run", "--simulator", "replay", "--ground-truth",
         str(table), "--search-space", str(wider), "--initial-training-count", "31",
         "--max-training-count", "32", "--batch-size", "1", "--seed", "0", "--out",
         str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "CCCCCCCCCCCCCCCCCC" in lines[0] and "not in the ground-truth" in lines[0]
    assert json.loads((tmp_path / "out" / rec.RESULTS_FILE).read_text())["status"] == "failed"


def test_grader_refuses_replayed_runs(tiny_truth, tmp_path):
    from course_utils.grading import grade

    space, table = tiny_truth
    run_campaign({"initial_training_count": 6, "max_training_count": 8, "batch_size": 2,
                  "seed": 2, "search_space": str(space), "simulator": "replay",
                  "ground_truth": str(table)}, tmp_path / "replayed", progress=False)
    report = grade([tmp_path / "replayed"], tmp_path / "grading", verify=False)
    assert len(report.board) == 0
    assert "replayed run" in report.not_ranked["reason"].iloc[0]


def test_replay_scores_equal_a_fresh_model_while_searching_only_new_molecules():
    """Between rounds a replay searches only the newly trained molecules for neighbours; its
    scores must still be exactly what the model gives on the whole space."""
    import numpy as np

    from course_utils.ground_truth.shipped import load_ground_truth
    from course_utils.ml.fingerprints import fingerprints
    from course_utils.ml.knn import KNN, train_model

    truth = load_ground_truth("qm9")
    table = truth.head(2000)
    sim = ReplaySimulator(table, 2, table["smiles"].tolist())
    ok = table[table["status"] == "ok"].sample(60, random_state=0)[["smiles", "ie"]]
    space_fps = fingerprints(table["smiles"].tolist())
    for size in (8, 20, 21, 60):
        training = ok.head(size).sort_values("smiles")  # as a campaign trains: new rows between
        scored = sim.score(KNN(), training, []).result()
        model = train_model(training)
        ie, spread = model.predict_with_spread(space_fps)
        np.testing.assert_array_equal(scored, np.column_stack([ie, spread]))
    assert sim.space_scorer.rows_searched == 60


def test_replay_names_a_missing_table_file(tmp_path):
    from course_utils.campaign.simulators import replay_table
    from course_utils.ground_truth.table import GroundTruthError

    missing = tmp_path / "nonexistent.csv"
    with pytest.raises(GroundTruthError, match="not found") as info:
        replay_table("qm9", str(missing), 130831)
    assert str(info.value).startswith(f"ground-truth table {missing} not found; ")
