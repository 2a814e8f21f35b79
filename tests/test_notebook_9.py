"""Notebook 9 (sweeps and figures) executed through papermill with small parameters."""

from __future__ import annotations

import json

import pandas as pd
from notebook_tools import run_notebook, shown_text

NAME = "9_sweeps_and_figures.ipynb"
SMALL = {"sweep_budget": 40, "rungs": [20]}


def test_notebook9_small_parameters_write_only_into_output_dir(tmp_path):
    out = tmp_path / "out"
    nb = run_notebook(NAME, tmp_path, {**SMALL, "output_dir": str(out)})
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([NAME, "out"])
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "figures_again", "figures_cli", "sweep", "sweep.png", "sweep_configs.txt",
        "sweep_full_budget"])

    text = shown_text(nb)
    # Part 1: the sweep's bookkeeping, and the CLI going on with the finished sweep.
    sweep = pd.read_csv(out / "sweep" / "sweep.csv")
    assert len(sweep) == 9 and sorted(set(sweep["status"])) == ["kept", "stopped"]
    assert json.loads((out / "sweep" / "sweep.json").read_text())["settings"]["rungs"] == [20, 40]
    assert "sweep complete" in text
    # Part 2: figures regenerated twice, byte for byte.
    assert "byte-identical True" in text and "byte-identical False" not in text
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
