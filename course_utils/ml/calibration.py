"""How far a model's predictions and its stated uncertainty can be trusted, measured.

A model's std is only useful if it means something: about 68 % of true values should lie within
one predicted standard deviation of the mean and about 95 % within two, if the errors are
roughly normal. :func:`calibration` measures that (and the MAE and R² beside it) on molecules
whose truth is known: a model version's validation share, or an iteration's simulated picks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Calibration:
    """Errors and coverage on ``n`` molecules (NaN where not computable)."""

    n: int
    mae_ev: float
    r2: float
    #: Fraction of molecules whose true IE is within 1 (2) predicted std of the mean.
    within_1sd: float
    within_2sd: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """The four measures as columns, e.g. ``valid_mae_ev`` with ``prefix="valid_"``."""
        return {f"{prefix}{k}": v for k, v in asdict(self).items() if k != "n"}


def calibration(true: Sequence[float], mean: Sequence[float], std: Sequence[float]
                ) -> Calibration:
    """MAE, R² and 1/2-std coverage of predictions ``mean`` ± ``std`` of ``true`` (eV).

    Molecules without a finite truth or mean are left out; coverage counts only those with a
    finite std too. R² needs two molecules whose true values differ.
    """
    true, mean, std = (np.asarray(v, dtype=float).reshape(-1) for v in (true, mean, std))
    known = np.isfinite(true) & np.isfinite(mean)
    if not known.any():
        return Calibration(0, math.nan, math.nan, math.nan, math.nan)
    error = mean[known] - true[known]
    mae = float(np.mean(np.abs(error)))
    total = float(np.sum((true[known] - true[known].mean()) ** 2))
    r2 = 1.0 - float(np.sum(error ** 2)) / total if known.sum() > 1 and total > 0 else math.nan
    spread = std[known]
    rated = np.isfinite(spread)
    if rated.any():
        off = np.abs(error[rated])
        within_1 = float(np.mean(off <= spread[rated]))
        within_2 = float(np.mean(off <= 2 * spread[rated]))
    else:
        within_1 = within_2 = math.nan
    return Calibration(int(known.sum()), mae, r2, within_1, within_2)
