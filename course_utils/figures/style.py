"""How every figure of the kit is drawn and saved: one backend, one style, one PNG writer.

Every module that draws (figures, sweep, stopping_study, comparison, grading) goes through
here, so that the same records give the same bytes wherever a figure is drawn: the Agg backend
(no display needed, same pixels on every machine), a fixed font (DejaVu Sans, shipped with
matplotlib) and dpi, and PNG text chunks that hold only what the caller states (no
``Software`` version, no date). matplotlib is imported on first use: importing a module that
can draw must not cost matplotlib's import time when nothing is drawn.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

DPI = 120
#: at most this many intervals between major ticks of a run figure's axes: each tick is five
#: artists and a text to lay out, the largest share of drawing a small figure.
TICK_BINS = 5
#: zlib level of the PNGs: 1 encodes several times faster than PIL's 6 for files ~1.3x larger.
PNG_COMPRESS_LEVEL = 1
FONT = "DejaVu Sans"
#: the y label of every best-so-far curve (campaign figure, leaderboard)
IE_LABEL = "best simulated IE so far (eV)"
RC: dict[str, Any] = {"font.family": FONT, "font.sans-serif": [FONT],
                      "svg.hashsalt": "course_utils", "path.simplify": True,
                      "figure.dpi": DPI, "savefig.dpi": DPI}
#: Colours that stay apart for colour-blind readers too (Okabe & Ito), in the order series get
#: them; ten matplotlib defaults were not enough for 16 strategies, and repeats confused them.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000",
           "#F0E442")
#: The baseline every strategy must beat is drawn in grey, the same in every figure.
REFERENCE_COLOR = "0.45"
#: One colour per model in every figure of the models (learning curves, calibration).
MODEL_COLORS = {"mean": REFERENCE_COLOR, "knn": "#0072B2", "gp": "#E69F00",
                "gp:mean=training": "#CC79A7", "rf": "#009E73"}


def colors(names: list[str], *, fixed: Mapping[str, str] | None = None) -> dict[str, str]:
    """A colour per name: ``fixed`` ones first, the others from :data:`PALETTE` in order (colours
    repeat only past its eight)."""
    fixed = dict(fixed or {})
    free = [c for c in PALETTE if c not in fixed.values()] or list(PALETTE)
    out, i = {}, 0
    for name in names:
        if name in fixed:
            out[name] = fixed[name]
        else:
            out[name] = free[i % len(free)]
            i += 1
    return out


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (a notebook's own backend is kept if set)."""
    import matplotlib  # deferred: matplotlib costs ~0.3 s to import; only drawing needs it

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # deferred: as above

    return plt


@contextmanager
def style() -> Iterator[None]:
    """The kit's rc settings (:data:`RC`) while a figure is drawn and saved."""
    import matplotlib  # deferred: matplotlib costs ~0.3 s to import; only drawing needs it

    with matplotlib.rc_context(RC):
        yield


_RENDERERS = threading.local()  # per thread: two threads never draw into one buffer


@cache
def _canvas_class() -> type:
    """An Agg canvas that reuses this thread's renderer of the same size (cleared before each
    draw): matplotlib caches text metrics per renderer, so a new renderer per figure measures
    every tick label and legend text again (~15% of a run figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg  # deferred: as above

    class ReusingCanvas(FigureCanvasAgg):
        def get_renderer(self) -> Any:
            w, h = self.get_width_height(physical=True)
            key = (w, h, self.figure.dpi)
            cache = _RENDERERS.__dict__.setdefault("by_size", {})
            if key not in cache:
                while len(cache) >= 4:  # a few sizes: the run figures and an odd height
                    cache.pop(next(iter(cache)))
                cache[key] = RendererAgg(w, h, self.figure.dpi)
            self.renderer, self._lastKey = cache[key], key
            return self.renderer

    return ReusingCanvas


def subplots(ncols: int = 1, *, figsize: tuple[float, float],
             margins: Mapping[str, float] | None = None) -> tuple[Any, Any]:
    """A figure on its own Agg canvas (pyplot's list of figures is left alone) with ``ncols``
    axes; ``margins``: fixed :meth:`~matplotlib.figure.Figure.subplots_adjust` fractions.

    Fixed margins instead of ``constrained_layout``: the layout engine measures every text of
    the figure once more before it is drawn, a third of a small figure's cost.
    """
    from matplotlib.figure import Figure  # deferred: as above

    fig = Figure(figsize=figsize, dpi=DPI)
    _canvas_class()(fig)
    axes = fig.subplots(1, ncols, squeeze=True)
    for ax in fig.axes:
        ax.locator_params(nbins=TICK_BINS)
    if margins:
        fig.subplots_adjust(**margins)
    return fig, axes


def save(fig: Any, path: str | os.PathLike, *,
         metadata: Mapping[str, str | None] | None = None) -> Path:
    """Write ``fig`` as PNG at ``path`` (parents created) and close it.

    The PNG's text chunks are exactly ``metadata`` (e.g. ``Title``, ``Description``): no
    ``Software`` chunk with matplotlib's version and no date, so equal records give equal bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None, **(metadata or {})},
                pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    if getattr(fig.canvas, "manager", None) is not None:  # drawn through pyplot
        pyplot().close(fig)
    return path
