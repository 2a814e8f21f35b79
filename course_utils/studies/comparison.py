"""Many replayed campaigns side by side: which acquisition strategy finds the best molecules?

One campaign is one draw of luck: a different seed picks a different initial sample and can
end a whole electronvolt higher or lower. Strategies are compared the way active-learning papers
compare them (MolPAL's lookup objective is the standard example): every strategy is *replayed*
from the ground-truth table over many seeds with the same budget, and the curves of the best IE
found so far and of top-k recall are averaged with their spread. Replay is retrospective:
instant, on a simulated clock, and never graded.

The comparison has four parts, each a module: the yardsticks a run is measured against
(:mod:`course_utils.studies.marks`), running the grid of strategies and seeds
(:mod:`course_utils.studies.replays`), the tables per run and per strategy
(:mod:`course_utils.studies.summaries`) and the figure
(:mod:`course_utils.studies.comparison_plot`). This module is where notebooks, tests,
benchmarks and sweeps import them from, in one line; the other modules of the package import each
name from its home.
"""

from __future__ import annotations

from course_utils.studies.comparison_plot import REFERENCE, panels_by_model, plot_comparison
from course_utils.studies.marks import REACH_K, RECALL_K, Yardsticks, yardsticks
from course_utils.studies.replays import (
    CURVE_COLUMNS,
    DEFAULT_STRATEGIES,
    replay_grid,
    run_curve,
    slug,
    warm,
)
from course_utils.studies.summaries import band, strategy_table, summarize_runs

__all__ = [
    "CURVE_COLUMNS",
    "DEFAULT_STRATEGIES",
    "REACH_K",
    "RECALL_K",
    "REFERENCE",
    "Yardsticks",
    "band",
    "panels_by_model",
    "plot_comparison",
    "replay_grid",
    "run_curve",
    "slug",
    "strategy_table",
    "summarize_runs",
    "warm",
    "yardsticks",
]
