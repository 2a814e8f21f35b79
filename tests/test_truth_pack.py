"""Packing build files into the shipped table, and the build's status report.

What it packs is the table every yardstick will trust: every molecule once, in search-space
order, with provenance that gathers every build that contributed.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from truth_tools import SMILES, build, raw_rows, truth_cli

from course_utils.ground_truth.pack import (
    RECENT_ROWS,
    pack_ground_truth,
    seconds_per_molecule,
    truth_status,
)
from course_utils.ground_truth.table import (
    TRUTH_COLUMNS,
    GroundTruthError,
    package_data_dir,
    packaged_provenance_name,
    read_table,
)


def test_status_reports_coverage_failures_and_what_remains(eight_built, eight_space):
    _, path = eight_built
    text = truth_status(str(eight_space), path, workers=2)
    assert text.splitlines()[0] == "ground truth covers 8 of 8 molecules (100.0%)"
    assert "statuses: failed 1, ok 7" in text
    assert "failures by type: EmbeddingError 1" in text
    assert "remaining: 0 molecules" in text


def _timed(seconds: list[float], status: str = "ok") -> pd.DataFrame:
    return pd.DataFrame({"smiles": [f"C{'C' * i}" for i in range(len(seconds))],
                         "ie": 12.0, "status": status, "error": "", "seconds": seconds,
                         "engine": "xtb"})


def test_what_remains_is_timed_by_the_builds_latest_rows_not_older_busier_ones():
    old = _timed([3.0] * 1000)  # a table timed while a test suite ran beside the build
    build = _timed([9.0] * 50 + [1.0] * RECENT_ROWS)  # slow start, then the machine is quiet
    assert seconds_per_molecule(old, build) == (1.0, f"mean of the build's latest {RECENT_ROWS:,}")
    few = _timed([1.0] * (RECENT_ROWS // 10 - 1))  # too few of its own: the table's mean
    assert seconds_per_molecule(old, few) == (3.0, "mean of 1,000 in the table")
    unsettled = _timed([1.0] * RECENT_ROWS, status="running")
    assert seconds_per_molecule(old, unsettled)[0] == 3.0


def test_cli_status(eight_built, eight_space, tmp_path):
    _, path = eight_built
    proc = truth_cli("status", "--search-space", str(eight_space), "--out", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ground truth covers 8 of 8 molecules" in proc.stdout


def test_shards_cover_the_space_exactly_once_and_pack_in_space_order(parsl_after_build, eight_space,
                                                                     tmp_path):
    parts = [tmp_path / "qm9-1.csv", tmp_path / "qm9-2.csv"]
    for i, part in enumerate(parts, 1):
        build(eight_space, part, shard=(i, 2))
    one, two = (set(raw_rows(p)["smiles"]) for p in parts)
    assert one and two and not one & two and one | two == set(SMILES)
    assert len(raw_rows(parts[0])) + len(raw_rows(parts[1])) == 8

    dest = tmp_path / "package"
    dest.mkdir()
    table = pack_ground_truth(str(eight_space), parts, dest_dir=dest)
    assert table.parent == dest  # a path-named space still packs into dest_dir
    assert table.read_bytes()[:2] == b"\x1f\x8b"
    packed = read_table(table)
    assert packed["smiles"].tolist() == SMILES  # search-space order, not build order
    with gzip.open(table, "rt") as fh:
        assert fh.readline().strip() == ",".join(TRUTH_COLUMNS)
    provenance = json.loads((dest / packaged_provenance_name(str(eight_space))).read_text())
    assert (provenance["covered"], provenance["molecules"], provenance["complete"]) == (8, 8, True)
    assert provenance["statuses"] == {"ok": 7, "failed": 1}
    assert provenance["failures_by_error"] == {"EmbeddingError": 1}
    assert len(provenance["builds"]) == 2 and {b["shard"] for b in provenance["builds"]} == {"1/2", "2/2"}

    before = table.read_bytes()
    pack_ground_truth(str(eight_space), parts, dest_dir=dest)  # packing twice changes nothing
    assert table.read_bytes() == before
    again = json.loads((dest / packaged_provenance_name(str(eight_space))).read_text())
    assert len(again["builds"]) == 2


def _package_files() -> dict[str, tuple[bytes, int]]:
    """Every file of the installed package's data folder: its bytes and mtime."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(package_data_dir().iterdir()) if p.is_file()}


@pytest.mark.parametrize("files", [["/nonexistent.csv"], []], ids=["named", "default"])
def test_pack_with_a_missing_file_is_one_line_and_leaves_the_package_alone(tmp_path, files):
    """`truth pack /nonexistent.csv` once exited 0 and rewrote the package's provenance file."""
    before = _package_files()
    proc = truth_cli("pack", *files, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: build file ") and "not found" in lines[0]
    assert _package_files() == before
    assert not (tmp_path / "outputs").exists()


def test_pack_writes_only_into_the_folder_given_and_never_into_the_package(eight_built,
                                                                           eight_space, tmp_path):
    _, path = eight_built
    before = _package_files()
    proc = truth_cli("pack", "--search-space", str(eight_space), "--out", str(tmp_path / "packed"),
                     str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "packed").iterdir()) == [
        f"{eight_space.name}_ground_truth.csv.gz", f"{eight_space.name}_ground_truth.provenance.json"]
    assert _package_files() == before
    with pytest.raises(GroundTruthError, match="inside the installed package"):
        pack_ground_truth(str(eight_space), [path], dest_dir=package_data_dir())
    assert _package_files() == before


def test_the_default_build_file_of_a_path_named_space_is_not_that_space(tmp_path):
    from course_utils.ground_truth.table import default_build_file

    space = tmp_path / "mine.csv"
    assert default_build_file(str(space)) == Path("outputs/ground_truth/mine.csv")
    assert default_build_file("qm9") == Path("outputs/ground_truth/qm9.csv")


def test_status_of_a_named_build_file_that_is_not_there_is_an_error(tmp_path):
    with pytest.raises(GroundTruthError, match="nonexistent.csv not found"):
        truth_status("qm9", tmp_path / "nonexistent.csv")
