"""Every figure of a run, drawn from its records in one style (``style``).

``campaign``: the campaign figure, utilization, model error, IE distribution; ``models``: the
models' learning curves and calibration; ``command``: ``make_figures`` (``python -m course_utils
figures``), which regenerates them and the grader's leaderboard from run folders.
"""

from course_utils import lazy_exports

__all__ = ["make_figures", "plot_campaign", "plot_utilization"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "make_figures": "command", "plot_campaign": "campaign", "plot_utilization": "campaign",
})
