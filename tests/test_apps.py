"""Parsl apps on a real local HighThroughputExecutor: results, typed failures, timeouts, chaining."""

from __future__ import annotations

import pandas as pd
import pytest
from parsl.app.errors import AppTimeout

from course_utils.apps import chunked, combine_app, score_app, simulate_app, train_app
from course_utils.chemistry import EmbeddingError, InvalidSmilesError


def test_simulation_app_returns_the_ionization_energy(parsl_local):
    future = simulate_app("O")
    assert future.result(timeout=120) == pytest.approx(18.293, abs=0.01)
    assert future.done() and future.exception() is None


def test_typed_errors_travel_through_the_future(parsl_local):
    bad, unembeddable = simulate_app("C1CC"), simulate_app("C1#CC1")
    assert isinstance(bad.exception(timeout=120), InvalidSmilesError)
    assert isinstance(unembeddable.exception(timeout=120), EmbeddingError)
    assert unembeddable.exception().smiles == "C1#CC1"


def test_hung_simulation_is_stopped_by_its_walltime(parsl_local):
    future = simulate_app("CCCCCCCCCCCCCCCCCCCC", walltime=0.01)
    assert isinstance(future.exception(timeout=120), AppTimeout)


def test_train_score_reduce_chain_without_explicit_waits(parsl_local):
    train = pd.DataFrame({"smiles": ["O", "OC", "CC", "CCO", "c1ccccc1"],
                          "ie": [18.29, 15.46, 14.0, 14.5, 14.22]})
    model = train_app(train)
    space = ["CCC", "CCCO", "O", "c1ccncc1", "CC=O", "CCN", "OCCO"]
    chunks = [score_app(model, chunk) for chunk in chunked(space, 3)]
    ranked = combine_app(*chunks).result(timeout=120)
    assert sorted(ranked["smiles"]) == sorted(space)
    assert ranked["ie"].is_monotonic_decreasing
    # "O" is in the training set: distance 0, so its prediction is its own value.
    assert ranked.set_index("smiles").loc["O", "ie"] == pytest.approx(18.29)


def test_chunked_covers_everything_once():
    items = [str(i) for i in range(10)]
    parts = chunked(items, 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert sum(parts, []) == items
    assert chunked(items[:2], 5) == [["0"], ["1"]]
    with pytest.raises(ValueError):
        chunked(items, 0)


def test_record_function_passes_the_fidelity_through():
    """The plain function behind simulate_record_app: full by default, cheap when asked."""
    from course_utils.apps import _simulate_record
    from course_utils.chemistry import compute_vertical

    full, cheap = _simulate_record("CC"), _simulate_record("CC", fidelity="cheap")
    assert full["ie"] == pytest.approx(compute_vertical("CC"), abs=1e-9)
    assert cheap["ie"] == pytest.approx(compute_vertical("CC", fidelity="cheap"), abs=1e-9)
    assert cheap["status"] == "ok" and cheap["ie"] != pytest.approx(full["ie"], abs=1e-4)
    with pytest.raises(ValueError, match="Unknown fidelity"):
        _simulate_record("CC", fidelity="medium")
