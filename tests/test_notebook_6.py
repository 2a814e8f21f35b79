"""Notebook 6 (online learning) executed through papermill with small parameters."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
from notebook_tools import printed_text, run_notebook

NAME = "6_online_learning.ipynb"
SMALL = {"initial_training_count": 8, "max_training_count": 48, "batch_size": 4,
         "arrival": "waves:3,every:12", "seed": 1}


def test_notebook6_small_run_writes_lineage_only_into_output_dir(tmp_path):
    out = tmp_path / "out"
    nb = run_notebook(NAME, tmp_path, {**SMALL, "output_dir": str(out)})
    assert sorted(p.name for p in out.iterdir()) == ["every-batch", "growth",
                                                     "retrain_comparison.csv",
                                                     "validation_error.png"]
    assert (out / "validation_error.png").read_bytes()[:4] == b"\x89PNG"

    growth = pd.read_csv(out / "growth" / "lineage.csv")
    every = pd.read_csv(out / "every-batch" / "lineage.csv")
    assert len(growth) < len(every)
    assert len(list((out / "growth" / "models").glob("v*.joblib"))) == len(growth)
    comparison = pd.read_csv(out / "retrain_comparison.csv").set_index("retrain")
    assert comparison.loc["growth:0.25", "models trained"] == len(growth)
    assert comparison.loc["every-batch", "models trained"] == len(every)
    waves = pd.read_csv(out / "growth" / "simulations.csv")["wave"]
    assert waves.max() == 2  # all three waves arrived within 48 successes

    text = printed_text(nb)
    assert "invalid SMILES" in text and "model v0002 (data version" in text


def test_notebooks_use_the_model_contract_on_saved_versions():
    """A loaded version may be any model (knn, gp, rf): notebooks call ``predict`` (mean, std),
    never the KNN-only ``predict_with_spread``."""
    notebooks = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 9
    for path in notebooks:
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                         if c.cell_type == "code")
        assert "predict_with_spread" not in code, path.name
    six = nbformat.read(notebooks[[p.name for p in notebooks].index(NAME)], as_version=4)
    assert any("model.predict(" in c.source and "load_model_version" in c.source
               for c in six.cells)
