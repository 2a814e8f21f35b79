"""The retrain-policy part: when the campaign trains a new model, and on which data.

A policy is spelled the same in :class:`~course_utils.campaign.parameters.CampaignParameters`
(``retrain``), on the command line (``--retrain``) and in the notebooks:

``every-batch``
    the default: a new model for every batch (batch mode), or after every ``batch_size`` new
    results (streaming mode), as the original tutorial does.
``count:N``
    a new model once N new successful simulations arrived since the last one.
``growth:F``
    a new model once the successful data grew by the fraction F since the last one
    (``growth:0.25``: 40 results -> retrain at 50), the MLOps trigger for data that
    arrives over time. Models get rarer as the data grows, and cheaper in total.

A validation share (``valid_fraction``) is held out of training by :class:`ValidationSplit`:
a molecule's side depends only on the seed and its SMILES, so it never changes sides, whatever
order results arrive in and however often the run is resumed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

from course_utils.ml.calibration import calibration
from course_utils.registry import Registry


class RetrainPolicyError(ValueError):
    """A policy that cannot be read; the message is one line naming the bad part."""


@dataclass(frozen=True)
class RetrainPolicy:
    """Decides, from success counts, whether a new model is due and says why."""

    text: str
    kind: str
    #: ``count``: new successes needed; ``every-batch``: the batch size; ``growth``: unused.
    count: int = 0
    growth: float = 0.0

    def due(self, n_ok: int, n_ok_at_last_model: int | None, batch_mode: bool = False
            ) -> str | None:
        """Why a new model is due now (the trigger recorded with it), or None if not yet.

        ``every-batch`` in batch mode retrains after each batch, however many of it succeeded.
        """
        if n_ok_at_last_model is None:
            return "first model of this session"
        new = n_ok - n_ok_at_last_model
        if new <= 0:
            return None
        if self.kind == "every-batch" and batch_mode:
            return f"{self.text}: {new} new results"
        if n_ok < self.next_size(n_ok_at_last_model):
            return None
        if self.kind == "growth":
            grown = new / max(n_ok_at_last_model, 1)
            return (f"{self.text}: successful data grew {n_ok_at_last_model} -> {n_ok} "
                    f"(+{grown:.0%})")
        return f"{self.text}: {new} new results"

    def next_size(self, n_ok_at_last_model: int) -> int:
        """Successful simulations at which the next model is due (at least one more)."""
        if self.kind == "growth":
            return max(math.ceil(n_ok_at_last_model * (1.0 + self.growth) - 1e-9),
                       n_ok_at_last_model + 1)
        return n_ok_at_last_model + self.count


RETRAIN_REGISTRY: Registry[RetrainPolicy] = Registry(
    "retrain", error=RetrainPolicyError, unknown="retrain {text!r} is unknown; choose one of {choices}")


@RETRAIN_REGISTRY.register("every-batch", bare=True)
def _every_batch(arguments: str, text: str) -> RetrainPolicy:
    return RetrainPolicy("every-batch", "every-batch", count=1)  # the batch size, see below


@RETRAIN_REGISTRY.register("count", spelling="count:N")
def _count(arguments: str, text: str) -> RetrainPolicy:
    try:
        count = int(arguments)
    except ValueError:
        count = 0
    if count < 1 or str(count) != arguments:
        raise RetrainPolicyError(f"retrain {text!r}: count:N needs a whole number N >= 1")
    return RetrainPolicy(text, "count", count=count)


@RETRAIN_REGISTRY.register("growth", spelling="growth:F")
def _growth(arguments: str, text: str) -> RetrainPolicy:
    try:
        growth = float(arguments)
    except ValueError:
        growth = math.nan
    if not (math.isfinite(growth) and growth > 0):
        raise RetrainPolicyError(f"retrain {text!r}: growth:F needs a fraction F > 0, "
                                 "e.g. growth:0.25 for 25 % more data")
    return RetrainPolicy(text, "growth", growth=growth)


POLICIES = RETRAIN_REGISTRY.names
SPELLINGS = RETRAIN_REGISTRY.spellings


def parse_retrain_policy(text: str, batch_size: int = 1,
                         retrain_after: int | None = None) -> RetrainPolicy:
    """Read a policy string; ``retrain_after`` (the older parameter) means ``count:N``."""
    if not isinstance(text, str) or not text.strip():
        raise RetrainPolicyError(f"retrain must be one of {', '.join(SPELLINGS)}, got {text!r}")
    policy = RETRAIN_REGISTRY.make(text)
    if policy.kind != "every-batch":
        return policy
    if retrain_after is not None:
        return RetrainPolicy(f"count:{retrain_after}", "count", count=retrain_after)
    return replace(policy, count=max(int(batch_size), 1))


@dataclass(frozen=True)
class ValidationSplit:
    """A stable, seeded hold-out: ``is_validation`` depends only on (seed, SMILES)."""

    fraction: float = 0.0
    seed: int = 0

    def is_validation(self, smiles: str) -> bool:
        if self.fraction <= 0:
            return False
        digest = hashlib.sha256(f"{self.seed}\n{smiles}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.fraction


def validation_metrics(predicted: dict[str, float], rows: list[dict]
                       ) -> tuple[float, float, int]:
    """MAE and R² (eV) of a model's predictions on held-out successful simulations, and how
    many it predicted (:func:`~course_utils.ml.calibration.calibration` measures them)."""
    pairs = [(float(r["ie"]), predicted[r["smiles"]]) for r in rows if r["smiles"] in predicted]
    measured = calibration([t for t, _ in pairs], [p for _, p in pairs], [math.nan] * len(pairs))
    return measured.mae_ev, measured.r2, measured.n
