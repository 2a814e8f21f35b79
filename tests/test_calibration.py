"""Calibration measures: errors and how often the truth lies within the predicted std."""

from __future__ import annotations

import math

import numpy as np
import pytest

from course_utils.ml.calibration import calibration


def test_coverage_counts_truths_within_one_and_two_std():
    true = [10.0, 11.0, 12.0, 13.0]
    mean = [10.5, 11.0, 13.5, 13.0]  # errors 0.5, 0, 1.5, 0
    std = [1.0, 0.1, 1.0, 0.0]
    measured = calibration(true, mean, std)
    assert measured.n == 4
    assert measured.mae_ev == pytest.approx(0.5)
    assert measured.within_1sd == pytest.approx(0.75)  # 1.5 > 1.0
    assert measured.within_2sd == pytest.approx(1.0)
    errors = np.subtract(mean, true)
    expected_r2 = 1 - np.sum(errors ** 2) / np.sum((np.array(true) - 11.5) ** 2)
    assert measured.r2 == pytest.approx(expected_r2)
    assert measured.as_dict("valid_") == {"valid_mae_ev": 0.5, "valid_r2": measured.r2,
                                          "valid_within_1sd": 0.75, "valid_within_2sd": 1.0}


def test_what_cannot_be_computed_is_nan():
    empty = calibration([], [], [])
    assert empty.n == 0 and all(math.isnan(v) for v in empty.as_dict().values())
    one = calibration([10.0], [10.2], [math.nan])
    assert one.mae_ev == pytest.approx(0.2) and math.isnan(one.r2)  # R² needs two molecules
    assert math.isnan(one.within_1sd) and math.isnan(one.within_2sd)  # no std given
    partly = calibration([10.0, math.nan, 12.0], [10.0, 11.0, 12.5], [0.1, 0.1, 0.1])
    assert partly.n == 2 and partly.within_1sd == pytest.approx(0.5)
