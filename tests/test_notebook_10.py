"""Notebook 10 (models that learn) executed through papermill with small parameters.

With parameters other than the shipped study's, the notebook replays the study it is asked for
(here a small one) instead of reading the records; the stored outputs, which read the records,
are checked by nbval and below.
"""

from __future__ import annotations

import nbformat
import pandas as pd
from notebook_tools import NOTEBOOKS, printed_text, run_notebook, shown_text

NAME = "10_models_that_learn.ipynb"
SMALL = {"curve_models": ["mean", "knn"], "train_sizes": [25, 50], "curve_seeds": 1,
         "n_test": 200, "calibration_size": 50, "models": ["knn", "rf"],
         "acquisitions": ["greedy", "thompson"], "n_seeds": 2, "budget": 40, "initial": 10,
         "batch_size": 10, "check_seeds": [1], "processes": 2}


def test_notebook10_small_study_is_replayed_and_drawn(tmp_path):
    out = tmp_path / "out"
    nb = run_notebook(NAME, tmp_path, {**SMALL, "output_dir": str(out)})
    assert {p.name for p in out.iterdir()} == {
        "learning_curves.csv", "learning_curves.png", "calibration.csv", "calibration.png",
        "curves.csv", "comparison.png", "recall.png", "runs", "check", "runs.csv",
        "strategies.csv"}
    table = pd.read_csv(out / "strategies.csv", index_col="strategy")
    assert table.index.tolist() == ["knn greedy", "knn thompson", "rf greedy", "rf thompson",
                                    "random"]
    assert (table["runs"] == 2).all()
    assert (table["reached_top10"] + table["never_reached_top10"] == table["runs"]).all()
    text = printed_text(nb)
    assert "not the shipped study: 5 strategies x 2 seeds replayed here" in text
    assert "replayed here: 5 runs (every strategy with seeds [1])" in text
    assert "every run picked the same molecules, in the same order, as the records" in text


def test_the_stored_notebook_shows_the_whole_study():
    """The stored outputs read the 20-seed records and replayed seed 0 of every strategy live
    with the same picks."""
    nb = nbformat.read(NOTEBOOKS / NAME, as_version=4)
    text = shown_text(nb)
    assert "17 strategies x 20 seeds, replayed by `python scripts/build_model_study.py`" in text
    assert "replayed here: 17 runs (every strategy with seeds [0])" in text
    assert "every run picked the same molecules, in the same order, as the records" in text
    assert "17.622944" not in text  # tables are rounded
