"""The ground truth: GFN2-xTB IEs of the whole QM9 search space, and what is measured with it.

``table``: the shipped table, its ``truth:`` search spaces and coverage. ``build`` computes
rows (``python -m course_utils truth build``); ``pack`` turns a build into the shipped table.
``evaluation``: how good a run is (regret, rank, top-k recall), with the one ranking rule.
"""

from course_utils import lazy_exports

__all__ = ["GroundTruthError", "build_ground_truth", "evaluate_folder", "evaluate_run",
           "load_ground_truth", "pack_ground_truth"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "GroundTruthError": "table", "load_ground_truth": "table",
    "build_ground_truth": "build", "pack_ground_truth": "pack",
    "evaluate_run": "evaluation", "evaluate_folder": "evaluation",
})
