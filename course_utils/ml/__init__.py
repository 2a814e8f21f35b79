"""Surrogate models and the fingerprints they read.

``fingerprints``: Morgan fingerprints, bit-packed and cached. ``knn``: the tutorial's
distance-weighted Jaccard KNN. ``neighbours`` (and its compiled loop ``neighbour_loop``): the
packed Tanimoto neighbour search, incremental for replays.
"""

from course_utils import lazy_exports

__all__ = ["FingerprintError", "InvalidSmilesError", "KNNModel", "fingerprints", "run_model",
           "train_model"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "FingerprintError": "fingerprints", "InvalidSmilesError": "fingerprints",
    "KNNModel": "knn", "run_model": "knn", "train_model": "knn",
})
