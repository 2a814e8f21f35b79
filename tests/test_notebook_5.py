"""Notebook 5 (comparing strategies) executed through papermill with small parameters."""

from __future__ import annotations

import nbformat
import pandas as pd
from notebook_tools import NOTEBOOKS, printed_text, run_notebook

NAME = "5_comparing_strategies.ipynb"
SMALL = {"n_seeds": 3, "budget": 60, "initial": 10, "batch_size": 10, "processes": 2}


def test_notebook5_small_grid_writes_only_into_output_dir(tmp_path):
    out = tmp_path / "out"
    nb = run_notebook(NAME, tmp_path, {**SMALL, "output_dir": str(out)})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([NAME, "out"])
    assert sorted(p.name for p in out.iterdir()) == ["comparison.png", "curves.csv", "recall.png",
                                                     "runs", "runs.csv", "strategies.csv"]
    for figure in ("comparison.png", "recall.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"

    curves = pd.read_csv(out / "curves.csv")
    strategies = curves["strategy"].unique().tolist()
    assert len(strategies) == 5 and sorted(curves["seed"].unique()) == [0, 1, 2]
    assert len(curves) == len(strategies) * SMALL["n_seeds"] * SMALL["budget"]
    table = pd.read_csv(out / "strategies.csv", index_col="strategy")
    assert table.index.tolist() == strategies and (table["runs"] == SMALL["n_seeds"]).all()
    assert len(pd.read_csv(out / "runs.csv")) == len(strategies) * SMALL["n_seeds"]

    text = printed_text(nb)
    assert "ground truth covers" in text  # the coverage is stated, not assumed


def test_the_stored_notebook_shows_twenty_seeds():
    nb = nbformat.read(NOTEBOOKS / NAME, as_version=4)
    text = printed_text(nb)
    assert "5 strategies x 20 seeds = 100 replayed campaigns on 'qm9'" in text
    assert "100 campaigns, 20,000 simulations replayed" in text
