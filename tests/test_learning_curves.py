"""Learning curves and the models benchmark's smoke run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from course_utils.ml.gp import TanimotoGP
from course_utils.ml.learning_curves import KNNBaseline, MeanBaseline, learning_curve

ROOT = Path(__file__).resolve().parents[1]


def test_learning_curve_rows_and_values():
    curves = learning_curve({"mean": MeanBaseline, "knn": KNNBaseline, "gp": TanimotoGP},
                            sizes=[20, 60], seeds=[0, 1], n_test=200)
    assert len(curves) == 3 * 2 * 2
    assert set(curves.columns) >= {"model", "size", "seed", "mae", "within_1_std", "fit_seconds"}
    assert curves["mae"].between(0.05, 1.5).all()
    gp = curves[(curves["model"] == "gp") & (curves["size"] == 60)]["mae"]
    mean = curves[(curves["model"] == "mean") & (curves["size"] == 60)]["mae"]
    assert np.mean(gp) < np.mean(mean)


def test_benchmark_quick_prints_measured_beside_target():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_models.py"), "--quick"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "target <= 1.0 s" in result.stdout and "learning curves" in result.stdout
    assert "GP greedy campaign, budget 200" in result.stdout and "gp:mean=training ei" in result.stdout
