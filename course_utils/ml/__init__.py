"""Surrogate models and the fingerprints they read.

``fingerprints``: Morgan fingerprints, bit-packed or as counts, cached. ``knn``: the tutorial's
distance-weighted Jaccard KNN. ``gp``: a Tanimoto-kernel Gaussian process (kernel compiled in
``tanimoto``). ``forest``: a random forest on count fingerprints (tree walk compiled in
``forest_loop``). ``learning_curves``: error against training-set size on the ground truth.
``neighbours`` (and its compiled loop ``neighbour_loop``): the packed Tanimoto neighbour
search, incremental for replays.
"""

from course_utils import lazy_exports

__all__ = ["FingerprintError", "ForestModel", "InvalidSmilesError", "KNNModel", "TanimotoGP",
           "count_fingerprints", "learning_curve", "run_model", "train_model"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "FingerprintError": "fingerprints", "InvalidSmilesError": "fingerprints",
    "count_fingerprints": "fingerprints",
    "KNNModel": "knn", "run_model": "knn", "train_model": "knn",
    "TanimotoGP": "gp", "ForestModel": "forest", "learning_curve": "learning_curves",
})
