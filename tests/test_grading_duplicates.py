"""Copies among submissions: grouped by what their records share."""

from __future__ import annotations

import pandas as pd

from course_utils.grading_duplicates import (
    NEAR_IDENTICAL,
    duplicates_frame,
    find_duplicates,
    molecules,
    signatures,
)


def _sims(smiles: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"smiles": smiles, "status": ["ok"] * len(smiles)})


def test_groups_by_shared_records_and_says_what_is_shared(tmp_path):
    base = [f"C{'C' * i}O" for i in range(40)]
    runs = {"a": base, "b": base[::-1], "c": base[:-1] + ["N"], "d": [f"N{'C' * i}" for i in range(40)]}
    frames = {k: _sims(v) for k, v in runs.items()}
    signed = {k: signatures(tmp_path / k, f) for k, f in frames.items()}
    groups = find_duplicates(signed, {k: molecules(f) for k, f in frames.items()})

    (group,) = groups
    assert group.runs == ("a", "b", "c")  # "c" differs by one molecule of 40: near-identical
    assert "the same molecules simulated" in group.shared
    assert any(s.endswith("of their molecules in common") for s in group.shared)
    assert 39 / 41 >= NEAR_IDENTICAL
    frame = duplicates_frame(groups)
    assert frame["run"].tolist() == ["a", "b", "c"] and set(frame["group"]) == {1}
    assert group.line().startswith("a, b, c: ")


def test_copied_model_files_are_evidence_on_their_own(tmp_path):
    for name, content in (("x", b"model-bytes"), ("y", b"model-bytes"), ("z", b"other")):
        (tmp_path / name / "models").mkdir(parents=True)
        (tmp_path / name / "models" / "v0001.joblib").write_bytes(content)
    signed = {n: signatures(tmp_path / n, _sims([f"{n}C", f"{n}O"])) for n in "xyz"}
    (group,) = find_duplicates(signed)
    assert group.runs == ("x", "y")
    assert group.shared == ("the same bytes in model file(s) v0001.joblib",)


def test_different_runs_are_not_grouped(tmp_path):
    signed = {n: signatures(tmp_path / n, _sims([f"{n}C", "O", "CO"])) for n in "pq"}
    assert find_duplicates(signed, {n: molecules(_sims([f"{n}C", "O", "CO"])) for n in "pq"}) == []
