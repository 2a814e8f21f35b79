"""The models a campaign can use, by name: ``knn`` (the tutorial's), ``gp`` and ``rf``.

``parse_model("knn:k=4,radius=4,length=256")`` is what ``--model`` and
``CampaignParameters(model=...)`` go through; ``make_model("knn", k=4)`` is the same from
Python. An unknown name or option is a one-line :class:`ModelError` listing what is known.
"""

from __future__ import annotations

from typing import Any

from course_utils.ml.contract import Model
from course_utils.ml.forest import DEFAULTS as FOREST_DEFAULTS
from course_utils.ml.forest import ForestModel
from course_utils.ml.gp import TanimotoGP
from course_utils.ml.knn import KNN, KNNModel
from course_utils.registry import Registry

__all__ = ["MODELS", "MODEL_CHOICES", "MODEL_REGISTRY", "ModelError", "as_model", "make_model", "parse_model"]


class ModelError(ValueError):
    """A model name or option that cannot make a model; one line naming the bad part."""


MODEL_REGISTRY: Registry[Model] = Registry(
    "model", error=ModelError, unknown="model {text!r} is unknown; choose one of {choices}")


def _whole(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("must be a whole number") from None


@MODEL_REGISTRY.register("knn", spelling="knn[:k=K,radius=R,length=L]",
                         options={"k": _whole, "n_neighbors": _whole, "radius": _whole,
                                  "length": _whole})
def _knn(k: int | None = None, n_neighbors: int = 4, radius: int = 4, length: int = 256) -> KNN:
    return KNN(n_neighbors=n_neighbors if k is None else k, radius=radius, length=length)


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("must be a number") from None


@MODEL_REGISTRY.register(
    "gp", spelling="gp[:radius=R,length=L,noise=EV,mean=fitted|training,kernel=tanimoto|minmax]",
    options={"radius": _whole, "length": _whole, "noise": _number, "mean": str, "kernel": str})
def _gp(radius: int = 2, length: int = 2048, noise: float | None = None,
        mean: str = "fitted", kernel: str = "tanimoto") -> TanimotoGP:
    return TanimotoGP(radius=radius, length=length, noise=noise, mean=mean, kernel=kernel)


@MODEL_REGISTRY.register("rf", spelling="rf[:n_trees=N,max_features=F,min_samples_leaf=M,...]",
                         options={"n_trees": _whole, "max_features": _number,
                                  "min_samples_leaf": _whole, "radius": _whole,
                                  "length": _whole, "random_state": _whole, "n_jobs": _whole})
def _rf(**options: Any) -> ForestModel:
    return ForestModel(**{**FOREST_DEFAULTS, **options})


#: The registered model names.
MODELS = MODEL_REGISTRY.names

#: The spellings notebook 4's panel offers: each model, and the GP whose constant mean is the
#: training average (the one that explores under greedy; notebook 10 shows why).
MODEL_CHOICES = ("knn", "gp", "gp:mean=training", "rf")


def parse_model(text: str) -> Model:
    """The (unfitted) model ``text`` spells: ``knn`` or ``knn:k=4,radius=4,length=256``.

    The name is taken exactly as listed (``KNN`` is refused with the list, as acquisitions
    are): a run's parameters, its resume check and the leaderboard then compare one spelling.
    """
    if not isinstance(text, str) or not text.strip():
        raise ModelError(f"model must be one of {', '.join(MODEL_REGISTRY.spellings)}, "
                         f"got {text!r}")
    head, colon, options = text.strip().partition(":")
    if head.strip() not in MODEL_REGISTRY.names:
        raise ModelError(f"model {text.strip()!r} is unknown; choose one of "
                         f"{', '.join(MODEL_REGISTRY.spellings)} (names are lower case)")
    if colon and not options.strip():
        raise ModelError(f"model {text.strip()!r}: nothing after ':'; write {head.strip()} "
                         f"alone or {MODEL_REGISTRY.spelling(head.strip())}")
    return _checked(lambda: MODEL_REGISTRY.make(text), f"model {text.strip()!r}")


def make_model(name: str, **options: Any) -> Model:
    """The (unfitted) model ``name`` with keyword ``options``, e.g. ``make_model("knn", k=6)``."""
    if name not in MODEL_REGISTRY:
        MODEL_REGISTRY.make(str(name))  # raises the one-line error listing the names
    return _checked(lambda: MODEL_REGISTRY.build(name.strip().lower(), **options),
                    f"model {name!r}")


def _checked(make, where: str) -> Model:
    """A model's own check of its options (a ValueError) as one ModelError line."""
    try:
        return make()
    except ModelError:
        raise
    except ValueError as err:
        raise ModelError(f"{where}: {err}") from None


def as_model(saved: Any) -> Model:
    """A loaded model version as a model part (versions saved before parts were bare KNNs)."""
    return KNN.from_fitted(saved) if isinstance(saved, KNNModel) else saved
