"""Crash-safe records: torn CSV lines and JSON files, and one writer per output folder."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from course_utils import records as rec
from course_utils.records import (
    CampaignRecorder,
    FolderInUseError,
    ResumeMismatchError,
    acquire_run_lock,
)
from course_utils.records import lock as run_lock

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"seed": 1, "batch_size": 2, "max_training_count": 8}
KEYS = ("seed", "batch_size")


def _sim(smiles: str, ie: float, elapsed: float) -> dict:
    return {"smiles": smiles, "ie": ie, "status": "ok", "error": "", "batch": 0,
            "elapsed_s": elapsed}


def _recorder_with_two(tmp_path: Path) -> CampaignRecorder:
    recorder = CampaignRecorder.open(tmp_path)
    recorder.check_parameters(PARAMS, KEYS)
    recorder.add_simulation(_sim("O", 18.293, 1.0))
    recorder.add_simulation(_sim("OC", 15.459, 2.0))
    recorder.add_iteration({"iteration": 1, "training_size": 2, "elapsed_s": 2.5})
    return recorder


# --- torn CSV lines ------------------------------------------------------------------------
def test_torn_simulation_row_is_dropped_on_open_and_named(tmp_path, capsys):
    _recorder_with_two(tmp_path)
    with (tmp_path / rec.SIMULATIONS_FILE).open("a") as fh:
        fh.write("c1ccccc1,14.2,o")  # killed mid-row: no newline
    capsys.readouterr()

    recorder = CampaignRecorder.open(tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and rec.SIMULATIONS_FILE in err[0]
    assert [r["smiles"] for r in recorder.simulations] == ["O", "OC"]

    recorder.add_simulation(_sim("N", 16.0, 3.0))
    sims = rec.read_simulations(tmp_path)
    assert sims["smiles"].tolist() == ["O", "OC", "N"]
    assert sims["status"].tolist() == ["ok"] * 3

    intact = (tmp_path / rec.SIMULATIONS_FILE).read_bytes()
    CampaignRecorder.open(tmp_path)  # an intact file is left alone, silently
    assert capsys.readouterr().err == ""
    assert (tmp_path / rec.SIMULATIONS_FILE).read_bytes() == intact


def test_iterations_cut_inside_the_header_get_it_back(tmp_path, capsys):
    (tmp_path / rec.ITERATIONS_FILE).write_text("iteration,training_si")
    recorder = CampaignRecorder.open(tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and rec.ITERATIONS_FILE in err[0]
    recorder.add_iteration({"iteration": 1, "training_size": 8, "elapsed_s": 4.0})
    its = rec.read_iterations(tmp_path)
    assert its.columns.tolist() == rec.ITERATION_FIELDS
    assert its["training_size"].tolist() == [8]


def test_ground_truth_uses_the_same_repair():
    from course_utils.ground_truth import build as truth_build

    assert truth_build.repair_tail is rec.repair_tail


@pytest.mark.parametrize(("name", "read"), [(rec.SIMULATIONS_FILE, rec.read_simulations),
                                            (rec.ITERATIONS_FILE, rec.read_iterations)])
def test_unparseable_csv_error_names_the_file(tmp_path, name, read):
    # Not a record file at all (its header is not this record's): one line naming it.
    (tmp_path / name).write_bytes(b"\xff\xfe\x00junk\nO,1,ok,\n")
    with pytest.raises(ValueError) as info:
        read(tmp_path)
    message = str(info.value)
    assert str(tmp_path / name) in message
    assert "\n" not in message


# --- rows that do not parse ------------------------------------------------------------------
def _sim_line(**values) -> str:
    row = {**dict.fromkeys(rec.SIMULATION_FIELDS, ""), "batch": "1", "elapsed_s": "5.0",
           **values}
    return ",".join(row[k] for k in rec.SIMULATION_FIELDS) + "\n"


GARBAGE = {
    "abc,12\n": "2 fields, the header has 14",
    _sim_line(smiles="CCO", ie="12.5", status="okay"): "status 'okay' is not one of",
    _sim_line(smiles="C1CC", ie="12.5", status="ok"): "smiles 'C1CC' is not a molecule",
    _sim_line(smiles="CCN", ie="twelve", status="ok"): "ie 'twelve' is not a number",
    _sim_line(smiles="CCC", ie="", status="ok"): "status ok without a finite ie",
    _sim_line(smiles="CCCO", ie="1e300", status="ok"): "not a possible ionization energy",
    _sim_line(smiles="CCCN", ie="-3.5", status="ok"): "(outside 0-40 eV)",
    _sim_line(smiles="CCCC", ie="11.0", status="ok", batch="x"): "batch 'x' is not a number",
    _sim_line(smiles="CC", ie="11.0", status="ok", error="x" * 200_000): "field larger than",
    _sim_line(smiles="CO\udcff", ie="11.0", status="ok"): "not UTF-8 text",
}


def test_rows_that_do_not_parse_are_set_aside_and_never_counted(tmp_path, capsys):
    _recorder_with_two(tmp_path)
    with (tmp_path / rec.SIMULATIONS_FILE).open("a", errors="surrogateescape") as fh:
        fh.write("".join(GARBAGE))  # the last one with a byte that is not UTF-8
    capsys.readouterr()

    recorder = CampaignRecorder.open(tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("note: ") and f"moved {len(GARBAGE)} rows" in err[0]
    assert "simulations.rejected.csv" in err[0] and "delete" in err[0]
    assert [r["smiles"] for r in recorder.simulations] == ["O", "OC"]
    totals = rec.summarize(recorder, PARAMS, status="complete", environment={},
                           wall_time_s=3.0)["totals"]
    assert totals["simulations"] == 2 and totals["by_status"] == {"ok": 2}
    aside = rec.read_simulations(tmp_path).attrs["rejected"]
    assert aside == []  # simulations.csv holds only the rows that parse now
    kept = pd.read_csv(tmp_path / "simulations.rejected.csv", keep_default_na=False,
                       encoding_errors="surrogateescape")
    assert kept["line"].tolist() == list(range(4, 4 + len(GARBAGE)))
    for reason, expected in zip(kept["reason"], GARBAGE.values(), strict=True):
        assert expected in reason
    assert kept["row"].iloc[0] == "abc,12"  # the row as it was written, to fix by hand
    assert rec.rejected_files(tmp_path) == [tmp_path / "simulations.rejected.csv"]

    CampaignRecorder.open(tmp_path)  # the second resume has nothing left to say
    assert capsys.readouterr().err == ""


def test_an_impossible_ie_is_never_the_best_result(tmp_path, capsys):
    """1e300 eV once passed for a run's best molecule (with numpy overflow warnings)."""
    _recorder_with_two(tmp_path)
    with (tmp_path / rec.SIMULATIONS_FILE).open("a") as fh:
        fh.write(_sim_line(smiles="CC", ie="1e300", status="ok"))
    capsys.readouterr()
    recorder = CampaignRecorder.open(tmp_path)
    err = capsys.readouterr().err
    assert "simulations.csv" in err and "line 4" in err and "1e+300 eV" in err
    assert recorder.best()["smiles"] == "O" and len(recorder.simulations) == 2
    kept = pd.read_csv(tmp_path / "simulations.rejected.csv")
    assert kept["line"].tolist() == [4] and "1e300" in kept["row"].iloc[0]


def test_a_simulation_returning_an_impossible_ie_is_recorded_as_a_failure(tmp_path, capsys):
    recorder = _recorder_with_two(tmp_path)
    row = recorder.add_simulation(_sim("CC", 55.0, 3.0))
    assert row["status"] == "failed" and row["ie"] is None
    assert row["error"].startswith("ImpossibleIE: 55 eV is not a possible ionization energy")
    assert recorder.best()["smiles"] == "O"
    capsys.readouterr()
    again = CampaignRecorder.open(tmp_path)  # the row it wrote parses: nothing set aside
    assert capsys.readouterr().err == "" and len(again.simulations) == 3


@pytest.mark.parametrize("ie, problem", [("18.293", None), ("40", None), ("nan", None),
                                         ("0", "outside"), ("40.5", "outside"),
                                         ("inf", "outside"), ("-1e300", "outside")])
def test_the_physical_range_of_an_ie_is_stated_once(ie, problem):
    got = rec.row_problem(rec.SIMULATIONS_FILE, {"smiles": "C", "ie": ie, "status": "failed"})
    assert (got is None) if problem is None else (problem in got and got.startswith("ie "))
    assert rec.IE_RANGE_EV == (0.0, 40.0)


def test_readers_skip_rows_that_do_not_parse_and_list_them(tmp_path):
    _recorder_with_two(tmp_path)
    with (tmp_path / rec.SIMULATIONS_FILE).open("a") as fh:
        fh.write("abc,12\n")
    with (tmp_path / rec.ITERATIONS_FILE).open("a") as fh:
        fh.write("two,8" + "," * (len(rec.ITERATION_FIELDS) - 2) + "\n")
    before = (tmp_path / rec.SIMULATIONS_FILE).read_bytes()

    sims = rec.read_simulations(tmp_path)
    assert sims["smiles"].tolist() == ["O", "OC"] and sims["ie"].dtype == float
    assert sims.attrs["rejected"] == [(4, "2 fields, the header has 14")]
    its = rec.read_iterations(tmp_path)
    assert its["iteration"].tolist() == [1]
    assert its.attrs["rejected"] == [(3, "iteration 'two' is not a number")]
    assert (tmp_path / rec.SIMULATIONS_FILE).read_bytes() == before  # reading changes nothing


# --- one append-only ledger for every record file of a run -----------------------------------
def _fsynced(monkeypatch) -> list[str]:
    """The names of the files fsynced from now on."""
    names: list[str] = []
    real = os.fsync

    def spy(fd):
        names.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return names


def _write_one_row_each(tmp_path: Path, ledger: rec.Ledger, n: int) -> None:
    from course_utils.campaign.batch_plan import BatchPlan
    from course_utils.campaign.lineage import ModelLineage
    from course_utils.campaign.trust import TrustLedger

    plan, models = BatchPlan.open(tmp_path, ledger), ModelLineage.open(tmp_path, ledger)
    checks = TrustLedger.open(tmp_path, 0.2, 2, 2, ledger)
    assert plan.ledger is models.ledger is checks.ledger is ledger
    smiles = ["O", "N", "C"][n]
    plan.add(1, [smiles])
    models.save({"a stand-in model": n}, {"data_version": n})
    checks.record([{"iteration": n, "smiles": smiles, "cheap_status": "ok", "trusted": False}], [])


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds through /proc")
def test_one_ledger_and_one_durable_flag_for_every_record_file(tmp_path, monkeypatch):
    recorder = CampaignRecorder.open(tmp_path)
    fsynced = _fsynced(monkeypatch)
    recorder.ledger.durable = False  # a replay: recomputed in milliseconds
    _write_one_row_each(tmp_path, recorder.ledger, 0)
    recorder.add_simulation(_sim("O", 18.293, 1.0))
    assert fsynced == []
    recorder.ledger.durable = True  # a real run: each row on disk before the run goes on
    _write_one_row_each(tmp_path, recorder.ledger, 1)
    recorder.add_simulation(_sim("N", 14.0, 2.0))
    assert sorted(fsynced) == ["batches.csv", "checks.csv", "lineage.csv", "simulations.csv"]
    with pytest.raises(ValueError, match="cannot record into"):
        _write_one_row_each(tmp_path / "elsewhere", recorder.ledger, 2)


def test_each_record_file_declares_its_rules_with_its_owner():
    from course_utils.campaign import batch_plan, lineage, trust

    owned = {rec.SIMULATIONS_FILE: rec.SIMULATIONS, rec.ITERATIONS_FILE: rec.ITERATIONS,
             lineage.LINEAGE_FILE: lineage.LINEAGE, trust.CHECKS_FILE: trust.CHECKS,
             batch_plan.PLAN_FILE: batch_plan.PLAN}
    for name, file in owned.items():
        assert file.name == name and rec.ROW_RULES[name] == file.rules
    source = "".join(p.read_text() for p in (REPO / "course_utils" / "records").glob("*.py"))
    assert all(f'"{name}"' not in source for name in ("lineage.csv", "checks.csv", "batches.csv"))
    with pytest.raises(ValueError, match="declared twice"):
        rec.RecordFile(lineage.LINEAGE_FILE, lineage.LINEAGE_FIELDS, {"version": "text"})
    assert rec.row_problem(lineage.LINEAGE_FILE, {"version": "x", "data_version": "1"}) == (
        "version 'x' is not a number")


# --- strict JSON -----------------------------------------------------------------------------
def _strict(path: Path):
    def refuse(name: str):
        raise ValueError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_strict_json_writes_null_for_what_json_cannot_hold(tmp_path):
    import numpy as np

    data = {"nan": math.nan, "inf": -math.inf, "np": np.float64("nan"), "i": np.int64(3),
            "array": np.array([1.5, np.nan]), "na": pd.NA, "nat": pd.NaT, "t": (1, 2.5),
            "path": Path("a/b"), 4: "int key", "ok": 1.25}
    rec.atomic_write_json(tmp_path / "x.json", data)
    assert _strict(tmp_path / "x.json") == {
        "nan": None, "inf": None, "np": None, "i": 3, "array": [1.5, None], "na": None,
        "nat": None, "t": [1, 2.5], "path": "a/b", "4": "int key", "ok": 1.25}
    with pytest.raises(ValueError):
        json.dumps({"x": math.nan}, allow_nan=False)  # what dumps_json relies on


def _replay_space(tmp_path: Path) -> tuple[Path, Path]:
    """Nine molecules the shipped table answers and three it records as failures."""
    from course_utils.ground_truth.shipped import load_ground_truth

    table = load_ground_truth("qm9")
    part = pd.concat([table[table["status"] == "ok"].head(9),
                      table[table["status"] == "failed"].head(3)])
    space, truth = tmp_path / "space.csv", tmp_path / "truth.csv"
    part[["smiles"]].to_csv(space, index=False)
    part.to_csv(truth, index=False)
    return space, truth


def _replay_params(space: Path, truth: Path, **extra) -> dict:
    return {"search_space": str(space), "ground_truth": str(truth), "simulator": "replay",
            "initial_training_count": 4, "max_training_count": 8, "batch_size": 2, "seed": 1,
            "workers": 2, **extra}


def test_every_json_file_the_kit_writes_is_strict(tmp_path):
    from course_utils.campaign.runner import run_campaign
    from course_utils.grading import grade
    from course_utils.studies import sweep as sw

    space, truth = _replay_space(tmp_path)
    run = tmp_path / "run"
    run_campaign(_replay_params(space, truth), run, progress=False, plot=False)
    configs = tmp_path / "configs.txt"
    configs.write_text("initial_training_count=4 max_training_count=8 batch_size=2 seed=0\n"
                       "initial_training_count=4 max_training_count=8 batch_size=2 seed=1\n")
    common = {"simulator": "replay", "workers": 2, "search_space": str(space),
              "ground_truth": str(truth)}
    sw.run_sweep(sw.read_configs(configs), tmp_path / "sweep", eta=2, rungs=[6],
                 common=common, echo=None)
    grade([run, tmp_path / "sweep"], tmp_path / "grading", verify=False)

    files = sorted(tmp_path.rglob("*.json"))
    names = {p.name for p in files}
    assert {"results.json", "parameters.json", "v0001.json", "sweep.json"} <= names
    loaded = {p: _strict(p) for p in files}  # raises on NaN or Infinity anywhere
    results = loaded[run / "results.json"]
    assert results["totals"]["failed"] >= 1 and results["failures"][0]["status"] == "failed"
    version = loaded[run / "models" / "v0001.json"]
    assert version["valid_size"] == 0 and version["valid_mae_ev"] is None
    assert version["valid_r2"] is None


# --- temporary files of a killed save ---------------------------------------------------------
def test_a_resume_removes_temporary_files_of_a_killed_save(tmp_path, capsys):
    from course_utils.campaign.runner import run_campaign

    space, truth = _replay_space(tmp_path)
    run = tmp_path / "run"
    run_campaign(_replay_params(space, truth), run, progress=False, plot=False)
    stale = [run / "models" / "v0002.json.tmp", run / "results.json.tmp"]
    for path in stale:
        path.write_bytes(b"")  # killed during a save: renamed never
    capsys.readouterr()

    run_campaign(_replay_params(space, truth, max_training_count=9), run, progress=False,
                 plot=False)
    assert not any(path.exists() for path in stale)
    notes = [line for line in capsys.readouterr().err.splitlines() if ".tmp" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ")
    assert "models/v0002.json.tmp" in notes[0] and "results.json.tmp" in notes[0]


# --- torn JSON files -------------------------------------------------------------------------
def _tear(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _results(tmp_path: Path, parameters: dict) -> None:
    recorder = CampaignRecorder.open(tmp_path)
    results = rec.summarize(recorder, parameters, status="interrupted", environment={},
                            wall_time_s=3.0)
    rec.atomic_write_json(tmp_path / rec.RESULTS_FILE, results)


def test_torn_parameters_and_results_do_not_break_a_resume(tmp_path, capsys):
    _recorder_with_two(tmp_path)
    _results(tmp_path, PARAMS)
    _tear(tmp_path / rec.PARAMETERS_FILE)
    _tear(tmp_path / rec.RESULTS_FILE)
    capsys.readouterr()

    recorder = CampaignRecorder.open(tmp_path)
    recorder.check_parameters(PARAMS, KEYS)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and rec.PARAMETERS_FILE in err[0]
    assert json.loads((tmp_path / rec.PARAMETERS_FILE).read_text()) == PARAMS
    assert len(recorder.simulations) == 2


def test_empty_parameters_file_falls_back_to_results(tmp_path, capsys):
    _recorder_with_two(tmp_path)
    _results(tmp_path, PARAMS)
    (tmp_path / rec.PARAMETERS_FILE).write_text("")
    capsys.readouterr()
    CampaignRecorder.open(tmp_path).check_parameters(PARAMS, KEYS)
    assert capsys.readouterr().err == ""  # results.json held the parameters: nothing to say


def test_mismatch_is_still_found_through_results_json(tmp_path):
    _recorder_with_two(tmp_path)
    _results(tmp_path, {**PARAMS, "seed": 7})
    _tear(tmp_path / rec.PARAMETERS_FILE)
    recorder = CampaignRecorder.open(tmp_path)
    with pytest.raises(ResumeMismatchError, match="seed: 7 there, 1 now"):
        recorder.check_parameters(PARAMS, KEYS)


# --- one writer per folder -------------------------------------------------------------------
HOLDER = textwrap.dedent("""
    import sys, time
    from course_utils.records import acquire_run_lock
    acquire_run_lock(sys.argv[1])
    print("locked", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the run lock of ``tmp_path / 'run'``."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
        yield proc, out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


def test_second_run_fails_at_once_naming_the_first(holder):
    proc, out = holder
    with pytest.raises(FolderInUseError) as info:
        acquire_run_lock(out)
    message = str(info.value)
    assert "\n" not in message
    assert f"PID {proc.pid}" in message and socket.gethostname() in message
    assert "--out" in message
    started = json.loads((out / rec.LOCK_FILE).read_text())["started"]
    assert started in message


def test_lock_of_a_killed_run_is_taken_over_with_a_note(holder, capsys):
    proc, out = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    lock = acquire_run_lock(out)
    try:
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"PID {proc.pid}" in err[0]
        assert json.loads((out / rec.LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        lock.release()


def test_same_process_may_take_its_lock_again_and_others_after_release(tmp_path, capsys):
    first = acquire_run_lock(tmp_path)
    second = acquire_run_lock(tmp_path)  # a notebook re-running the cell
    first.release()  # the stale handle must not unlock the new owner
    assert second.held and not first.held
    check = [sys.executable, "-c", "import sys; from course_utils.records import "
             "acquire_run_lock; acquire_run_lock(sys.argv[1])", str(tmp_path)]
    busy = subprocess.run(check, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert busy.returncode != 0 and "FolderInUseError" in busy.stderr
    second.release()
    second.release()  # idempotent
    assert (tmp_path / rec.LOCK_FILE).read_text() == ""
    free = subprocess.run(check, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert free.returncode == 0, free.stderr
    assert capsys.readouterr().err == ""


def test_a_lost_handle_of_this_process_does_not_lock_it_out(tmp_path):
    first = acquire_run_lock(tmp_path)
    run_lock._HELD.clear()  # what importlib.reload(records) in a notebook leaves behind
    try:
        second = acquire_run_lock(tmp_path)
        assert second.held
        second.release()
    finally:
        first.release()
    assert first.fd is None and not run_lock._HELD


def _no_flock(fd, operation):
    raise OSError(errno.ENOLCK, "No locks available")


def test_without_flock_a_live_pid_on_this_host_still_blocks(holder, monkeypatch):
    proc, out = holder
    monkeypatch.setattr(run_lock.fcntl, "flock", _no_flock)
    with pytest.raises(FolderInUseError, match=f"PID {proc.pid}"):
        acquire_run_lock(out)
    proc.kill()
    proc.wait(timeout=30)
    lock = acquire_run_lock(out)  # the recorded PID is dead now
    assert not lock.flocked and lock.held
    lock.release()


def test_campaign_holds_the_lock_until_release(small_space, tmp_path):
    from course_utils.campaign.runner import Campaign, CampaignParameters

    params = CampaignParameters(initial_training_count=4, max_training_count=6,
                                search_space=str(small_space))
    campaign = Campaign(params, tmp_path / "run", progress=False)
    again = Campaign(params, tmp_path / "run", progress=False)  # same process: allowed
    assert again._lock is not None and again._lock.held
    with pytest.raises(FolderInUseError):
        _acquire_in_other_process(tmp_path / "run")
    again.release_lock()
    campaign.release_lock()
    again.release_lock()
    _acquire_in_other_process(tmp_path / "run")


def _acquire_in_other_process(out: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys; from course_utils.records import "
                           "acquire_run_lock; acquire_run_lock(sys.argv[1])", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise FolderInUseError(proc.stderr.strip().splitlines()[-1])


def test_best_so_far_is_the_running_maximum_in_arrival_order():
    """Record order is arrival order: a clock column out of order does not reorder the curve;
    failures are left out and an unreadable IE never hides the best found before it."""
    sims = pd.DataFrame({
        "smiles": ["A", "B", "C", "D", "E"], "ie": [9.0, 11.0, None, "x", 10.0],
        "status": ["ok", "ok", "failed", "ok", "ok"], "elapsed_s": [5.0, 3.0, 4.0, 6.0, 7.0]})
    curve = rec.best_so_far(sims)
    assert curve["smiles"].tolist() == ["A", "B", "D", "E"]
    assert curve["n_simulations"].tolist() == [1, 2, 3, 4]
    assert curve["best_ie"].tolist() == [9.0, 11.0, 11.0, 11.0]
    assert curve["elapsed_s"].tolist() == [5.0, 3.0, 6.0, 7.0]
    assert math.isnan(curve["ie"].iloc[2])
    assert rec.running_best([]).tolist() == []
