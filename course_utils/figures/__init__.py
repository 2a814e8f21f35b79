"""Every figure of a run, drawn from its records in one style (``style``).

``campaign``: the campaign figure, utilization, model error, IE distribution, the leaderboard,
and ``make_figures`` (``python -m course_utils figures``) to regenerate them from run folders.
"""

from course_utils import lazy_exports

__all__ = ["make_figures", "plot_campaign", "plot_utilization"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "make_figures": "campaign", "plot_campaign": "campaign", "plot_utilization": "campaign",
})
