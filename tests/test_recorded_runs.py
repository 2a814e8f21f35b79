"""Replayed campaigns decide exactly what they decided when ``tests/data/recorded_runs.json``
was recorded (``python scripts/record_runs.py --out tests/data/recorded_runs.json --real``).

A refactoring must not change which molecules a campaign picks, what it gets, or how it ends;
a change that means to (a new default, a new tie rule) records the file again and says why.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "tests" / "data" / "recorded_runs.json"


def _script():
    spec = importlib.util.spec_from_file_location("record_runs", REPO / "scripts" / "record_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replayed_campaigns_decide_as_recorded():
    script = _script()
    recorded = json.loads(RECORD.read_text())
    assert set(script.REPLAYS) <= set(recorded), "record the file again: campaigns were added"
    now = script.record_all(real=False)
    assert script.differences({k: recorded[k] for k in script.REPLAYS}, now) == []


def test_a_changed_pick_is_reported():
    """The comparison itself: one molecule swapped is named, with where it happened."""
    script = _script()
    recorded = json.loads(RECORD.read_text())
    name = next(iter(script.REPLAYS))
    changed = json.loads(json.dumps(recorded[name]))
    changed["simulations"][5][0] = "C"
    diff = script.differences({name: recorded[name]}, {name: changed})
    assert len(diff) == 1 and diff[0].startswith(f"{name}: simulations differ (first at 5")
