"""Work over many runs: strategy comparison by replay, the stopping study, and sweeps.

``comparison``: replay grids of strategies and their summaries. ``stopping_study``: what a stop
rule saves and costs. ``sweep`` runs a sweep (successive halving included) from a sweep file
(``sweep_file``: its format; ``sweep_plan``: its checks and rung budgets).
"""

from course_utils import lazy_exports

__all__ = ["plot_comparison", "plot_stopping_study", "plot_sweep", "read_configs",
           "replay_grid", "run_sweep", "strategy_table", "summarize_runs",
           "summarize_stopping", "yardsticks"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "replay_grid": "comparison", "summarize_runs": "comparison",
    "strategy_table": "comparison", "plot_comparison": "comparison",
    "yardsticks": "comparison",
    "summarize_stopping": "stopping_study",
    "plot_stopping_study": "stopping_study",
    "read_configs": "sweep_plan", "run_sweep": "sweep", "plot_sweep": "sweep",
})
