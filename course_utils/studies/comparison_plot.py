"""The comparison figure: small multiples of the replayed curves, mean and spread over seeds.

One figure answers "which strategy finds the best molecules?" for the curves of
:func:`~course_utils.studies.replays.replay_grid`: each strategy (or each series of a panel)
against the reference, random search, with the table's global best and top-10 threshold. Every
figure says that the runs are replayed and how much of the space the table covers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils.figures import style as figure_style
from course_utils.studies.marks import REACH_K, RECALL_K, Yardsticks, marks_for
from course_utils.studies.summaries import band

__all__ = ["REFERENCE", "panels_by_model", "plot_comparison"]

#: The columns a comparison figure can draw, with their axis labels.
_METRICS = {"best_ie": "best IE found so far (eV)",
            "top100_recall_so_far": f"top-{RECALL_K} recall (share of the best found)"}
#: Default reference strategy: drawn in grey in every panel, the baseline to beat.
REFERENCE = "random"


def panels_by_model(strategies: Sequence[str], models: Sequence[str]
                    ) -> dict[str, tuple[str, str]]:
    """``{strategy: (model, acquisition)}`` for names written ``"<model> <acquisition>"`` (as
    notebook 10 names them): one panel per model, one colour per acquisition."""
    out = {}
    for name in strategies:
        model, _, acquisition = name.partition(" ")
        if model in models and acquisition:
            out[name] = (model, acquisition)
    return out


def plot_comparison(
    curves: pd.DataFrame,
    path: str | os.PathLike,
    *,
    marks: Yardsticks | None = None,
    low: float = 0.1,
    high: float = 0.9,
    column: str = "best_ie",
    panels: Mapping[str, tuple[str, str]] | None = None,
    reference: str | None = REFERENCE,
    ncols: int = 2,
) -> Path:
    """Small multiples of ``column`` (``best_ie`` or ``top100_recall_so_far``) against
    successful simulations, saved as PNG at ``path``.

    ``panels`` maps a strategy to ``(panel title, series)``: one panel per title, one colour per
    series (the same colour in every panel). By default each strategy has its own panel. The
    ``reference`` strategy (random search), when the curves hold it, is drawn in grey in every
    panel: what each strategy must beat. Each line is the mean over seeds; a panel with one
    strategy shades its ``low``-``high`` quantile band over seeds, a panel with several shows
    that spread as a bar per strategy at the end of the budget, so that bands never pile up.
    The global best and the top-10 threshold are lines; the legend sits below the panels; the
    title states that the runs are replayed and the table's coverage.
    """
    if column not in _METRICS:
        raise ValueError(f"column must be one of {', '.join(_METRICS)}, not {column!r}")
    marks = marks_for(curves, marks)
    strategies = list(dict.fromkeys(curves["strategy"]))
    reference = reference if reference in strategies else None
    if panels is None:
        panels = {name: (name, name) for name in strategies if name != reference}
    unknown = sorted(set(panels) - set(strategies))
    if unknown:
        raise ValueError(f"panels name strategies the curves do not hold: {unknown}")
    if not panels:
        raise ValueError("nothing to draw: no strategy besides the reference")
    plt = figure_style.pyplot()
    with figure_style.style():
        return _draw_comparison(plt, curves, Path(path), marks, low, high, column, dict(panels),
                                reference, max(1, int(ncols)))


def _draw_comparison(plt: Any, curves: pd.DataFrame, path: Path, marks: Yardsticks, low: float,
                     high: float, column: str, panels: dict[str, tuple[str, str]],
                     reference: str | None, ncols: int) -> Path:
    titles = list(dict.fromkeys(title for title, _ in panels.values()))
    series = list(dict.fromkeys(label for _, label in panels.values()))
    colors = figure_style.colors(series)
    ncols = min(ncols, len(titles))
    nrows = math.ceil(len(titles) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 3.6 * nrows + 1.3),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    bands = {name: band(curves[curves["strategy"] == name], column, low, high)
             for name in [*panels, *([reference] if reference else [])]}
    seeds = {name: int(curves.loc[curves["strategy"] == name, "seed"].nunique()) for name in bands}
    budget = float(curves["n"].max())
    handles: dict[str, Any] = {}
    for ax, title in zip(axes.flat, titles, strict=False):
        mine = [(name, label) for name, (t, label) in panels.items() if t == title]
        if reference:
            b = bands[reference]
            ax.fill_between(b["n"], b["low"], b["high"], color=figure_style.REFERENCE_COLOR,
                            alpha=0.2, lw=0)
            handles["ref"], = ax.plot(b["n"], b["mean"], color=figure_style.REFERENCE_COLOR,
                                      lw=1.6, ls="--",
                                      label=f"{reference} (mean and band, {seeds[reference]} seeds)")
        step = 0.014 * budget  # the end bars, side by side right of the curves
        for k, (name, label) in enumerate(mine):
            b, color = bands[name], colors[label]
            line, = ax.plot(b["n"], b["mean"], color=color, lw=2.2, label=label)
            handles.setdefault(label, line)
            if len(mine) == 1:
                ax.fill_between(b["n"], b["low"], b["high"], color=color, alpha=0.22, lw=0)
            else:
                last = b.iloc[-1]
                x = budget + (k + 1) * step
                ax.plot([x, x], [last["low"], last["high"]], color=color, lw=2.5,
                        solid_capstyle="butt")
                ax.plot([x], [last["mean"]], marker="o", ms=3.5, color=color)
        runs = sorted({seeds[name] for name, _ in mine})
        ax.set_title(f"{title} ({'/'.join(map(str, runs))} seeds)", fontsize=11)
        ax.grid(alpha=0.3)
    widest = max(sum(t == title for t, _ in panels.values()) for title in titles)
    axes[0, 0].set_xlim(0, budget + (widest + 1.5) * 0.014 * budget if widest > 1 else budget)
    for ax in axes.flat[len(titles):]:
        ax.set_visible(False)
    lines = _yardstick_lines(axes.flat[:len(titles)], marks, column, bands)
    handles.update(lines)
    for ax in axes[-1, :]:
        ax.set_xlabel("successful simulations")
    for ax in axes[:, 0]:
        ax.set_ylabel(_metric_label(column, marks))
    ordered = [handles[label] for label in series if label in handles]
    ordered += [handles[k] for k in ("ref", *lines) if k in handles]
    ordered.append(_spread_handle(widest > 1, low, high))
    fig.legend(handles=ordered, loc="outside lower center", ncol=min(len(ordered), 4),
               fontsize=9, frameon=False)
    space = curves.attrs.get("search_space", marks.search_space)
    what = "Best IE found so far" if column == "best_ie" else f"Top-{RECALL_K} recall"
    fig.suptitle(f"{what}: lines are the mean over seeds\nREPLAY of {space!r} (retrospective, "
                 f"simulated clock, never graded); {marks.coverage}", fontsize=11)
    metadata = {"Title": f"{what}: {', '.join(titles)}"}
    if marks.global_best_ie is not None:
        metadata["Description"] = (f"search space {space}; {marks.coverage}; global best "
                                   f"{marks.global_best_ie:.3f} eV ({marks.global_best_smiles})")
    return figure_style.save(fig, path, metadata=metadata)


def _spread_handle(bars: bool, low: float, high: float) -> Any:
    """The legend entry that says what the shaded band or the end bar shows."""
    from matplotlib.lines import Line2D  # deferred: matplotlib only when drawing
    from matplotlib.patches import Patch  # deferred: as above

    text = f"{100 * low:.0f}-{100 * high:.0f} % of seeds"
    if bars:
        return Line2D([], [], color="0.3", marker="|", ls="none", ms=12, mew=2.5,
                      label=f"bar: {text} at the budget")
    return Patch(color="0.3", alpha=0.25, lw=0, label=f"band: {text}")


def _metric_label(column: str, marks: Yardsticks) -> str:
    if column == "best_ie":
        return _METRICS[column]
    return f"top-{RECALL_K} recall (share of the {len(marks.top_k[RECALL_K])} best found)"


def _yardstick_lines(axes: Any, marks: Yardsticks, column: str,
                     bands: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """The global best and the top-10 threshold on a best-IE axis, fitted to the data: the
    y range spans the curves and bands and the lines; returns the lines' legend handles."""
    values = np.concatenate([b[["low", "high", "mean"]].to_numpy(dtype=float).ravel()
                             for b in bands.values()])
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    handles: dict[str, Any] = {}
    if column == "best_ie":
        threshold = marks.threshold(REACH_K)
        for ax in axes:
            if marks.global_best_ie is not None:
                handles["best"] = ax.axhline(
                    marks.global_best_ie, color="black", ls=":", lw=1.4,
                    label=f"global best {marks.global_best_ie:.2f} eV ({marks.global_best_smiles})")
            if threshold is not None:
                handles["top10"] = ax.axhline(threshold, color="black", ls="--", lw=0.9,
                                              alpha=0.7,
                                              label=f"top-{REACH_K} threshold {threshold:.2f} eV")
        lines = [v for v in (marks.global_best_ie, threshold) if v is not None]
        lo, hi = min([lo, *lines]), max([hi, *lines])
        pad = 0.04 * max(hi - lo, 0.5)
        axes[0].set_ylim(lo - pad, hi + pad)
    else:
        axes[0].set_ylim(0, max(hi, 0.01) * 1.05)
    return handles
