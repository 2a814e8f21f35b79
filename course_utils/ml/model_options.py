"""Checks of the options users give models (``gp:radius=2,length=2048``): one-line errors.

Each error names the model, the option and what is allowed, because the message reaches a
student through ``--model`` or a notebook parameter, far from the code that raised it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["check_fingerprint_options", "check_int", "check_positive", "check_training_data"]


def check_int(model: str, option: str, value: Any, minimum: int) -> int:
    """``value`` as an int of at least ``minimum`` (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{model} option {option} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(model: str, option: str, value: Any) -> float:
    """``value`` as a finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{model} option {option} must be a number > 0, got {value!r}")
    return float(value)


def check_fingerprint_options(model: str, radius: Any, length: Any) -> tuple[int, int]:
    """Morgan radius (>= 0) and length (a positive multiple of 64, the packed word size)."""
    radius = check_int(model, "radius", radius, 0)
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length <= 0 \
            or length % 64:
        raise ValueError(f"{model} option length must be a positive multiple of 64, got {length!r}")
    return radius, int(length)


def check_training_data(model: str, smiles: Sequence[str], ie: Any, minimum: int) -> np.ndarray:
    """The targets as finite float64, as many as the SMILES and at least ``minimum``."""
    y = np.asarray(ie, dtype=np.float64)
    if y.ndim != 1 or len(y) != len(smiles):
        raise ValueError(f"{model}: {len(smiles)} SMILES but ie has shape {y.shape}")
    if len(y) < minimum:
        raise ValueError(f"{model} needs at least {minimum} training molecules, got {len(y)}")
    if not np.isfinite(y).all():
        raise ValueError(f"{model}: ie has NaN/infinite values; drop failed calculations first")
    return y
