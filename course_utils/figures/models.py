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
        colors = model_colors(curves["model"])
        for model, rows in curves.groupby("model", sort=False):
            by_size = rows.groupby("size")["mae"]
            sizes = np.array(sorted(rows["size"].unique()), dtype=float)
            style = {"linestyle": "--"} if model == "mean" else {}
            line, = ax.plot(sizes, by_size.mean().to_numpy(), marker="o", label=str(model),
                            color=colors[model], **style)
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


def model_colors(models: pd.Series) -> dict[str, str]:
    """The kit's colour of each model (:data:`~course_utils.figures.style.MODEL_COLORS`), the
    same in every figure; a model it does not know gets a free one."""
    names = [str(m) for m in dict.fromkeys(models)]
    return figure_style.colors(names, fixed={m: c for m, c in figure_style.MODEL_COLORS.items()
                                             if m in names})


#: Two calibration curves closer than this at every z are drawn as one on top of the other.
COINCIDE = 0.02
_MARKERS = ("o", "s", "^", "D", "v")


def _coincide(a: pd.Series, b: pd.Series) -> bool:
    return len(a) == len(b) and bool(np.all(np.abs(a.to_numpy() - b.to_numpy()) < COINCIDE))


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
        colors = model_colors(coverage["model"])
        curves = {str(model): rows.groupby("z", sort=True)["share"].mean()
                  for model, rows in coverage.groupby("model", sort=False)}
        for i, (model, share) in enumerate(curves.items()):
            earlier = [m for m in list(curves)[:i] if _coincide(curves[m], share)]
            later = [m for m in list(curves)[i + 1:] if _coincide(curves[m], share)]
            if earlier:  # thin and dashed, on top of the wide curve it coincides with
                style = {"lw": 1.8, "linestyle": "--", "marker": _MARKERS[i % len(_MARKERS)],
                         "markersize": 5, "zorder": 3}
                label = f"{model} (on {earlier[0]}'s curve)"
            elif later:  # wide and pale, so that the curve drawn on it stays visible
                style = {"lw": 7.0, "alpha": 0.45, "solid_capstyle": "butt", "zorder": 2}
                label = model
            else:
                style = {"lw": 2.0, "marker": _MARKERS[i % len(_MARKERS)], "markersize": 4}
                label = model
            ax.plot(share.index, share.to_numpy(), label=label, color=colors[model],
                    markevery=max(len(share) // 10, 1), **style)
        z = np.linspace(0, float(coverage["z"].max()), 61)
        ax.plot(z, gaussian_coverage(z), linestyle=":", lw=2, color="black",
                label="honest Gaussian error bar")
        ax.set_xlabel("z (predicted standard deviations)")
        ax.set_ylabel("share of held-out molecules with |error| <= z std")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, float(coverage["z"].max()))
        size = int(coverage["size"].iloc[0]) if len(coverage) else 0
        ax.set_title(f"Calibration of the predicted std ({size} training molecules)",
                     fontsize=10)
        ax.legend(loc="lower right", fontsize=9)
        ax.grid(alpha=0.3)
        return figure_style.save(fig, path, metadata={
            "Title": "calibration", "Description": "share within z std against z"})
