"""Notebook 3's closing comparison: the run over the bands of its replays (issue 29)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from course_utils.studies.headline import (
    DEFAULT_CAMPAIGN,
    RANDOM,
    SEEDS,
    beats_random,
    grid_settings,
    plot_run_over_bands,
    replay_bands,
    shipped_replays,
    strategy_name,
)

NOTEBOOK3 = Path(__file__).resolve().parents[1] / "notebooks" / "3_ml_in_the_loop.ipynb"


def test_notebook3_defaults_are_the_campaign_the_replays_ship_for():
    nb = nbformat.read(NOTEBOOK3, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    values = {node.targets[0].id: ast.literal_eval(node.value)
              for node in ast.parse(cell.source).body}
    assert {k: values[k] for k in DEFAULT_CAMPAIGN} == DEFAULT_CAMPAIGN
    assert values["seed"] in SEEDS and values["replay_seeds"] == len(SEEDS)
    assert shipped_replays(grid_settings(DEFAULT_CAMPAIGN, SEEDS)) is not None


def test_shipped_replays_are_what_the_engine_replays_now(tmp_path):
    """Two of the 20 seeds replayed again: same molecules, same IEs, same order."""
    shipped = replay_bands(DEFAULT_CAMPAIGN, tmp_path / "unused")
    assert set(shipped["strategy"]) == {"gp:mean=training + ei", RANDOM, "knn + greedy"}
    assert sorted(shipped["seed"].unique()) == list(SEEDS)
    live = replay_bands(DEFAULT_CAMPAIGN, tmp_path / "live", seeds=[0, 7], shipped=False)
    columns = ["strategy", "seed", "n", "smiles", "ie", "best_ie", "top100_recall_so_far"]
    mine = shipped[shipped["seed"].isin([0, 7])][columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, live[columns].reset_index(drop=True), atol=1e-6,
                                  check_dtype=False)


def test_other_parameters_are_replayed_not_taken_from_the_shipped_file():
    other = {**DEFAULT_CAMPAIGN, "batch_size": 8}
    assert shipped_replays(grid_settings(other, SEEDS)) is None
    assert shipped_replays(grid_settings(DEFAULT_CAMPAIGN, [0, 1])) is None
    # spelled out as the campaign writes its parameters, the default is still the default
    spelled = {**DEFAULT_CAMPAIGN, "ucb_kappa": 1.0, "epsilon": 0.1, "retrain": "every-batch"}
    assert grid_settings(spelled, SEEDS) == grid_settings(DEFAULT_CAMPAIGN, SEEDS)


def test_beats_random_counts_runs_against_randoms_median():
    rows = []
    for strategy, bests in (("gp + ei", [15.0, 18.0, 14.0, 20.0]),
                            (RANDOM, [14.0, 14.5, 15.0, 13.0])):
        for seed, best in enumerate(bests):
            rows += [{"strategy": strategy, "seed": seed, "n": 1, "best_ie": 13.0},
                     {"strategy": strategy, "seed": seed, "n": 2, "best_ie": best}]
    curves = pd.DataFrame(rows)
    curves.attrs = {"search_space": "qm9"}
    table = beats_random(curves)
    assert table.loc["gp + ei", "beat_random_median"] == 3  # median of random: 14.25
    assert table.loc[RANDOM, "beat_random_median"] == 2
    assert table.loc["gp + ei", "reached_top10"] == 2  # QM9's 10th best is 17.08 eV
    assert table.loc["gp + ei", "median_best_ie"] == pytest.approx(16.5)


def test_the_figure_names_the_strategy_and_fits_its_axis_to_the_data(tmp_path):
    curves = replay_bands(DEFAULT_CAMPAIGN, tmp_path / "unused")
    run = tmp_path / "run"
    (run).mkdir()
    # a run of knn + greedy that never got far: the axis must not stretch to QM9's 20.23 eV
    own = curves[(curves["strategy"] == "knn + greedy") & (curves["seed"] == 3)]
    pd.DataFrame({"smiles": own["smiles"], "ie": own["ie"], "status": "ok", "error": "",
                  "batch": 0, "elapsed_s": np.arange(len(own), dtype=float)}).to_csv(
        run / "simulations.csv", index=False)
    (run / "parameters.json").write_text(json.dumps({**DEFAULT_CAMPAIGN, "model": "knn",
                                                     "acquisition": "greedy", "seed": 3}))
    random_only = curves[curves["strategy"] == RANDOM]
    random_only.attrs = curves.attrs
    path = plot_run_over_bands(run, random_only)
    image = Image.open(path)
    assert image.format == "PNG" and "knn + greedy" in image.text["Description"]
    assert strategy_name({"model": "rf", "acquisition": "thompson"}) == "rf + thompson"
