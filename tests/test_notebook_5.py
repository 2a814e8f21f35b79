"""Notebook 5 (comparing strategies) executed through papermill with small parameters."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
from jupyter_client import kernelspec

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAME = "5_comparing_strategies.ipynb"
KERNEL = "ml-in-the-loop" if "ml-in-the-loop" in kernelspec.find_kernel_specs() else None
SMALL = {"n_seeds": 3, "budget": 60, "initial": 10, "batch_size": 10, "processes": 2}


def _tree(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def test_notebook5_small_grid_writes_only_into_output_dir(tmp_path):
    out = tmp_path / "out"
    executed = tmp_path / NAME
    before = _tree(NOTEBOOKS)
    pm.execute_notebook(NOTEBOOKS / NAME, executed, parameters={**SMALL, "output_dir": str(out)},
                        kernel_name=KERNEL, cwd=str(NOTEBOOKS), progress_bar=False)
    nb = nbformat.read(executed, as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]

    assert _tree(NOTEBOOKS) == before, "the notebook wrote outside its output_dir"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([NAME, "out"])
    assert sorted(p.name for p in out.iterdir()) == ["comparison.png", "curves.csv", "runs",
                                                     "runs.csv", "strategies.csv"]
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"

    curves = pd.read_csv(out / "curves.csv")
    strategies = curves["strategy"].unique().tolist()
    assert len(strategies) == 5 and sorted(curves["seed"].unique()) == [0, 1, 2]
    assert len(curves) == len(strategies) * SMALL["n_seeds"] * SMALL["budget"]
    table = pd.read_csv(out / "strategies.csv", index_col="strategy")
    assert table.index.tolist() == strategies and (table["runs"] == SMALL["n_seeds"]).all()
    assert len(pd.read_csv(out / "runs.csv")) == len(strategies) * SMALL["n_seeds"]

    text = "".join(str(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    assert "ground truth covers" in text  # the coverage is stated, not assumed
