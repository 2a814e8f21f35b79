"""Work over many runs: strategy comparison by replay, the stopping study, and sweeps.

``comparison``: strategies compared by replay, in four parts: the yardsticks of the table
(``marks``), the grid of replayed seeds (``replays``), the tables per run and per strategy
(``summaries``) and the figure (``comparison_plot``). ``stopping_study``: what a stop rule saves
and costs. ``sweep`` runs a sweep (successive halving included) from a sweep file
(``sweep_file``: its format; ``sweep_plan``: its checks and rung budgets).
"""

from course_utils import lazy_exports

__all__ = ["plot_comparison", "plot_stopping_study", "plot_sweep", "read_configs",
           "replay_grid", "run_sweep", "strategy_table", "summarize_runs",
           "summarize_stopping", "yardsticks"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "replay_grid": "replays", "summarize_runs": "summaries",
    "strategy_table": "summaries", "plot_comparison": "comparison_plot",
    "yardsticks": "marks",
    "summarize_stopping": "stopping_study",
    "plot_stopping_study": "stopping_study",
    "read_configs": "sweep_plan", "run_sweep": "sweep", "plot_sweep": "sweep",
})
