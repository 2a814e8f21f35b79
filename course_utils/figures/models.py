"""Figures of the models themselves: learning curves and calibration (notebook 10).

Both are drawn from tables (:func:`course_utils.ml.learning_curves.learning_curve` and
:func:`course_utils.ml.learning_curves.coverage`), never from models held in memory, so a saved
table draws the same figure again.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import erf

from course_utils.figures import style as figure_style

__all__ = ["plot_calibration", "plot_learning_curves"]


def plot_learning_curves(curves: pd.DataFrame, path: str | os.PathLike, *,
                         low: float = 0.1, high: float = 0.9) -> Path:
    """MAE (eV) on held-out molecules against training-set size, one line per model (the mean
    over seeds) with its ``low``-``high`` quantile band over seeds; log-scaled sizes."""
    with figure_style.style():
        fig, ax = figure_style.subplots(figsize=(6.4, 4.2),
                                        margins={"left": 0.12, "right": 0.97, "bottom": 0.13,
                                                 "top": 0.9})
        for model, rows in curves.groupby("model", sort=False):
            by_size = rows.groupby("size")["mae"]
            sizes = np.array(sorted(rows["size"].unique()), dtype=float)
            style = {"linestyle": "--", "color": "0.4"} if model == "mean" else {}
            line, = ax.plot(sizes, by_size.mean().to_numpy(), marker="o", label=str(model),
                            **style)
            ax.fill_between(sizes, by_size.quantile(low).to_numpy(),
                            by_size.quantile(high).to_numpy(), color=line.get_color(), alpha=0.15)
        ax.set_xscale("log")
        sizes = sorted(curves["size"].unique())
        ax.set_xticks(sizes, [f"{int(s):,}" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("training molecules")
        ax.set_ylabel("mean absolute error on held-out molecules (eV)")
        seeds = curves["seed"].nunique()
        ax.set_title(f"Learning curves ({seeds} seeds; band: {low:.0%}-{high:.0%} of seeds)")
        ax.legend(title="model")
        ax.grid(alpha=0.3)
        return figure_style.save(fig, path, metadata={
            "Title": "learning curves", "Description": "MAE (eV) against training size"})


def gaussian_coverage(z: np.ndarray) -> np.ndarray:
    """Share of a Gaussian within ``z`` standard deviations of its mean."""
    return erf(np.asarray(z, dtype=float) / np.sqrt(2.0))


def plot_calibration(coverage: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Observed share of molecules within z predicted standard deviations against z, per model,
    beside the share an honest Gaussian error bar gives (dashed)."""
    with figure_style.style():
        fig, ax = figure_style.subplots(figsize=(6.4, 4.2),
                                        margins={"left": 0.12, "right": 0.97, "bottom": 0.13,
                                                 "top": 0.9})
        for model, rows in coverage.groupby("model", sort=False):
            ax.plot(rows["z"], rows["share"], label=str(model))
        z = np.linspace(0, float(coverage["z"].max()), 61)
        ax.plot(z, gaussian_coverage(z), linestyle="--", color="0.3", label="honest Gaussian")
        ax.set_xlabel("z (predicted standard deviations)")
        ax.set_ylabel("share of held-out molecules with |error| <= z std")
        ax.set_ylim(0, 1.02)
        size = int(coverage["size"].iloc[0]) if len(coverage) else 0
        ax.set_title(f"Calibration of the predicted std ({size} training molecules)")
        ax.legend()
        ax.grid(alpha=0.3)
        return figure_style.save(fig, path, metadata={
            "Title": "calibration", "Description": "share within z std against z"})
