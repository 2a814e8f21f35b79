"""The ground truth: GFN2-xTB IEs of the whole QM9 search space, and what is measured with it.

``table``: reading the table files, their build order and coverage (``search_space`` reads it
for the ``truth:`` spaces); ``shipped``: the shipped table of a search space with its coverage,
and the part a ``truth:qm9:N`` run is measured against. ``build`` computes
rows (``python -m course_utils truth build``); ``pack`` turns a build into the shipped table.
``evaluation``: how good a run is (regret, rank, top-k recall), with the one ranking rule.
"""

from course_utils import lazy_exports

__all__ = ["GroundTruthError", "build_ground_truth", "evaluate_folder", "evaluate_run",
           "load_ground_truth", "pack_ground_truth"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "GroundTruthError": "table", "load_ground_truth": "shipped",
    "build_ground_truth": "build", "pack_ground_truth": "pack",
    "evaluate_run": "evaluation", "evaluate_folder": "evaluation",
})
