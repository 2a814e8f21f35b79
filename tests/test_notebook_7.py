"""Notebook 7 (trust, but verify) executed through papermill with small parameters: real MPI
tasks through Parsl's MPI mode and real GFN2-xTB simulations."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from notebook_tools import printed_text, run_notebook

NAME = "7_trust_but_verify.ipynb"
SMALL = {"initial_training_count": 6, "max_training_count": 12, "batch_size": 3,
         "trust_tol": 0.3, "trust_streak": 2, "seed": 1}


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="no mpiexec: MPICH is not installed")
def test_notebook7_small_loop_with_mpi_checks(tmp_path):
    out = tmp_path / "out"
    nb = run_notebook(NAME, tmp_path, {**SMALL, "output_dir": str(out)})
    names = sorted(p.name for p in out.iterdir())
    assert {"loop", "step1_cheap.csv", "step2_cheap.csv", "trust_checks.png"} <= set(names)
    step1 = pd.read_csv(out / "step1_cheap.csv")
    assert sorted(step1["rank"].unique()) == [0, 1]  # two ranks shared the list
    assert step1["status"].tolist().count("failed") == 1  # the invalid SMILES, the rest done
    results = json.loads((out / "loop" / "results.json").read_text())
    trust = results["trust"]
    assert trust["picks_checked"] == trust["trusted"] + trust["untrusted"] > 0
    checks = pd.read_csv(out / "loop" / "checks.csv")
    assert len(checks) == trust["picks_checked"]
    assert len(list((out / "loop" / "checks").glob("iteration-*.csv"))) == trust["batches_checked"]
    text = printed_text(nb)
    assert "Parsl loaded with 'local-mpi'" in text and "Parsl shut down" in text
    assert "picks checked in" in text
