"""The ground-truth builder: real xTB through a real local Parsl executor on eight small molecules.

What matters is that a build can be stopped, torn, resumed and refused (a second builder of the
same file) without a molecule lost or counted twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from truth_tools import REPO, SMILES, UNEMBEDDABLE, build, raw_rows, truth_cli

from course_utils.ground_truth.pack import truth_status
from course_utils.ground_truth.table import TRUTH_COLUMNS, build_order, read_table


def test_every_molecule_gets_one_row_and_failures_are_named(eight_built):
    report, path = eight_built
    raw = raw_rows(path)
    assert list(raw.columns) == TRUTH_COLUMNS
    assert sorted(raw["smiles"]) == sorted(SMILES) and raw["smiles"].is_unique
    assert report.todo == report.computed == 8 and dict(report.statuses) == {"ok": 7, "failed": 1}
    row = raw.set_index("smiles").loc[UNEMBEDDABLE]
    assert row["status"] == "failed" and row["error"].startswith("EmbeddingError: ")
    assert np.isnan(row["ie"])
    ok = raw[raw["status"] == "ok"]
    assert ok["ie"].notna().all() and (ok["seconds"] > 0).all() and (ok["engine"] != "").all()
    assert raw.set_index("smiles").loc["O", "ie"] == pytest.approx(18.293, abs=0.01)
    assert raw.set_index("smiles").loc["OC", "ie"] == pytest.approx(15.459, abs=0.01)
    log = [json.loads(line) for line in Path(f"{path}.builds.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["computed"] == 8 and log[0]["statuses"] == {"ok": 7, "failed": 1}


def test_a_second_build_computes_nothing_and_changes_nothing(eight_built, eight_space):
    _, path = eight_built
    before = path.read_bytes()
    report = build(eight_space, path)
    assert (report.todo, report.computed) == (0, 0)
    assert path.read_bytes() == before


def test_a_limited_build_then_a_resume_completes_without_duplicates(parsl_after_build, eight_space, tmp_path):
    out = tmp_path / "t.csv"
    first = build(eight_space, out, limit=3)
    assert first.computed == 3
    assert len(raw_rows(out)) == 3
    assert set(raw_rows(out)["smiles"]) == set(build_order(SMILES)[:3])  # the seeded order
    assert "covers 3 of 8 molecules" in truth_status(str(eight_space), out)
    second = build(eight_space, out)
    assert (second.todo, second.computed) == (5, 5)
    raw = raw_rows(out)
    assert len(raw) == 8 and raw["smiles"].is_unique and set(raw["smiles"]) == set(SMILES)


@pytest.mark.parametrize("molecule, cut", [
    ("OC", 1),            # killed while writing the engine: the torn row even reads "ok"
    (UNEMBEDDABLE, 30),   # killed inside the quoted error message: the torn row cannot parse
])
def test_a_torn_last_line_is_dropped_and_its_molecule_recomputed(
        parsl_after_build, eight_built, eight_space, tmp_path, capfd, molecule, cut):
    _, path = eight_built
    lines = path.read_text().splitlines(keepends=True)
    (torn,) = [line for line in lines if line.startswith(f"{molecule},")]
    out = tmp_path / "t.csv"
    out.write_text("".join(line for line in lines if line is not torn) + torn.rstrip("\n")[:-cut])
    written = out.read_bytes()
    # Readers (status, pack, a build deciding what is done) skip the torn row, file untouched:
    assert molecule not in set(read_table(out)["smiles"]) and len(read_table(out)) == 7
    assert "covers 7 of 8" in truth_status(str(eight_space), out) and out.read_bytes() == written
    report = build(eight_space, out)
    assert (report.todo, report.computed) == (1, 1)
    raw = raw_rows(out)
    assert len(raw) == 8 and raw["smiles"].is_unique and set(raw["smiles"]) == set(SMILES)
    redone = raw.set_index("smiles").loc[molecule]
    assert redone["engine"] == raw_rows(path).set_index("smiles").loc[molecule, "engine"]
    assert "dropped a torn last line" in capfd.readouterr().err


def test_garbage_rows_of_a_build_file_are_skipped_then_set_aside_and_recomputed(
        parsl_after_build, eight_built, eight_space, tmp_path, capfd):
    """``OC,1e300,ok`` once replaced methanol's real row (later rows win) for every reader."""
    _, path = eight_built
    out = tmp_path / "t.csv"
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("N,")]  # N is to be recomputed
    out.write_text("".join(kept) + "OC,1e300,ok,,0.5,xtb\nN,12.0,okay,,0.5,xtb\ngarbage\n")
    written = out.read_bytes()
    capfd.readouterr()
    table = read_table(out)  # readers skip them, file untouched, one note naming file and line
    assert table.set_index("smiles").loc["OC", "ie"] == pytest.approx(15.459, abs=0.01)
    assert "N" not in set(table["smiles"]) and out.read_bytes() == written
    assert [line for line, _ in table.attrs["rejected"]] == [9, 10, 11]
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{out}: skipped 3 rows" in err[0] and "line 9: ie 1e+300" in err[0]
    report = build(eight_space, out)  # the next build sets them aside and recomputes N
    assert (report.todo, report.computed) == (1, 1)
    raw = raw_rows(out)
    assert len(raw) == 8 and raw["smiles"].is_unique and (raw["ie"].dropna() < 40).all()
    aside = (tmp_path / "t.rejected.csv").read_text()
    assert "1e300" in aside and "okay" in aside and "garbage" in aside
    assert "moved 3 rows" in capfd.readouterr().err


def test_a_niced_build_lowers_its_process_and_its_session_group():
    code = ("import os; from course_utils.ground_truth.build import lower_priority; lower_priority(); "
            "print(os.nice(0)); g = '/proc/self/autogroup'; "
            "print(open(g).read().strip() if os.path.exists(g) else 'no autogroup')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          start_new_session=True, timeout=120)  # its own session, as with setsid
    assert proc.returncode == 0, proc.stderr
    nice, group = proc.stdout.splitlines()
    assert nice == "19"
    assert group == "no autogroup" or group.endswith("nice 19")


def test_a_loaded_dataflow_kernel_is_reused_and_left_running(parsl_after_build, eight_space, tmp_path):
    import parsl

    tasks = parsl_after_build.task_count
    report = build(eight_space, tmp_path / "t.csv", limit=2)
    assert report.computed == 2 and len(raw_rows(tmp_path / "t.csv")) == 2
    assert parsl_after_build.task_count == tasks + 2  # ran on the loaded kernel, not a new one
    assert parsl.dfk() is parsl_after_build


def test_a_second_build_of_the_same_file_is_refused_while_one_runs(eight_space, tmp_path):
    out = tmp_path / "t.csv"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from course_utils.records import "
         "acquire_run_lock as a; a(sys.argv[1], lock_name='.t.csv.lock'); print('held', "
         "flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = truth_cli("build", "--search-space", str(eight_space), "--out", str(out), "--quiet",
                    cwd=tmp_path)
        assert proc.returncode == 2
        assert "is in use by another run" in proc.stderr and f"PID {holder.pid}" in proc.stderr
        assert not out.exists()  # nothing simulated, nothing written
    finally:
        holder.kill()
        holder.wait()


def test_a_build_started_in_the_background_stops_on_sigint_and_keeps_its_rows(small_space,
                                                                               tmp_path):
    """Non-interactive shells start background jobs with SIGINT ignored; the build must still
    stop on it (and on SIGTERM) after writing what finished."""
    import signal
    import time

    out = tmp_path / "t.csv"
    build = subprocess.Popen(
        [sys.executable, "-m", "course_utils", "truth", "build", "--search-space",
         str(small_space), "--out", str(out), "--workers", "1", "--limit", "40", "--quiet"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 90
        def finished() -> int:
            return len(raw_rows(out)) if out.exists() and out.stat().st_size > 0 else 0

        while time.monotonic() < deadline and finished() < 1:
            assert build.poll() is None, build.communicate()
            time.sleep(0.5)
        assert finished() >= 1, "no molecule finished in 90 s"
        build.send_signal(signal.SIGINT)
        build.wait(timeout=60)
    finally:
        if build.poll() is None:
            build.kill()
    assert build.returncode == 130, build.communicate()  # like any interrupted command
    log = [json.loads(line) for line in (tmp_path / "t.csv.builds.jsonl").read_text().splitlines()]
    rows = raw_rows(out)
    assert 1 <= len(rows) == rows["smiles"].nunique() < 40
    assert log[-1]["interrupted"] is True and log[-1]["computed"] == len(rows)


def test_cli_refuses_a_bad_shard_before_writing_anything(eight_space, tmp_path):
    proc = truth_cli("build", "--search-space", str(eight_space), "--out", str(tmp_path / "x.csv"),
                     "--shard", "3/2", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: shard must be i/n with 1 <= i <= n, got 3/2"
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "outputs").exists()
