"""Notebook 8 (stopping) executed through papermill with small parameters."""

from __future__ import annotations

import json

import pandas as pd
from notebook_tools import run_notebook, shown_text

NAME = "8_stopping.ipynb"
SMALL = {"n_seeds": 2, "budget": 60, "initial": 10, "batch_size": 10, "processes": 2}


def test_notebook8_small_parameters_write_only_into_output_dir(tmp_path):
    out = tmp_path / "out"
    nb = run_notebook(NAME, tmp_path, {**SMALL, "output_dir": str(out)})
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([NAME, "out"])
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "real_run", "replay_stopped", "replay_to_budget", "runinfo", "stopping_outcomes.csv",
        "stopping_study.png", "stopping_summary.csv", "study"])

    # Part 1: the real run stopped early, and its replay made the same picks.
    real = json.loads((out / "real_run" / "results.json").read_text())
    assert real["status"] == "stopped early (converged)" and real["simulator"] == "xtb"
    assert real["stopping"]["fired"] and real["totals"]["successful"] < 16
    text = shown_text(nb)
    assert "replay picked the same molecules in the same batches: True" in text
    # Part 2: one row per rule and seed.
    outcomes = pd.read_csv(out / "stopping_outcomes.csv")
    assert len(outcomes) == 4 * SMALL["n_seeds"] and (outcomes["best_loss_ev"] >= 0).all()
    assert "ground truth covers" in text
    assert (out / "stopping_study.png").read_bytes()[:4] == b"\x89PNG"
