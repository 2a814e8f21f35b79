"""Surrogate models and the fingerprints they read.

``contract``: what every model keeps (``fit``, ``predict`` -> mean and spread). ``registry``: the
models by name (``make_model("knn")``, ``parse_model("gp:length=...")``, ``MODELS``); a model
knows nothing of the campaign. ``calibration``: how honest a model's spread is.
``fingerprints``: Morgan fingerprints, bit-packed or as counts, each kind computed once per
search space (computed in ``morgan``: the kinds and the RDKit pass, over forked processes; kept
in ``fingerprint_cache``: in memory and on disk). ``knn``: the tutorial's
distance-weighted Jaccard KNN. ``gp``: a Tanimoto-kernel Gaussian process (kernel compiled in
``tanimoto``). ``forest``: a random forest on count fingerprints (tree walk compiled in
``forest_loop``). ``learning_curves``: error against training-set size on the ground truth.
``neighbours`` (and its compiled loop ``neighbour_loop``): the packed Tanimoto neighbour
search, incremental for replays.
"""

from course_utils import lazy_exports

__all__ = ["MODELS", "MODEL_CHOICES", "MODEL_REGISTRY", "Calibration", "FingerprintError",
           "ForestModel", "InvalidSmilesError", "KNNModel", "Model", "ModelError", "TanimotoGP",
           "as_model", "count_fingerprints", "default_cache_dir", "factories", "learning_curve",
           "make_model", "parse_model", "prediction_table", "run_model", "train_model"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "MODELS": "registry", "MODEL_CHOICES": "registry", "MODEL_REGISTRY": "registry",
    "ModelError": "registry", "as_model": "registry", "make_model": "registry",
    "parse_model": "registry",
    "Model": "contract", "prediction_table": "contract",
    "Calibration": "calibration",  # the function shares its module's name: import it from there
    "FingerprintError": "morgan", "InvalidSmilesError": "morgan",
    "count_fingerprints": "fingerprints", "default_cache_dir": "fingerprints",
    "KNNModel": "knn", "run_model": "knn", "train_model": "knn",
    "TanimotoGP": "gp", "ForestModel": "forest",
    "learning_curve": "learning_curves", "factories": "learning_curves",
})
