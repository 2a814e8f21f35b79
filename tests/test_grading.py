"""Grading: real runs ranked on simulated values; broken, partial and tampered ones listed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from course_utils import records as rec
from course_utils.campaign.runner import run_campaign
from course_utils.grading import curve_label, format_report, grade, notebook_error

REPO = Path(__file__).resolve().parents[1]
RUNS = {
    "alice": {"initial_training_count": 4, "max_training_count": 8, "batch_size": 2, "seed": 1},
    "bob": {"initial_training_count": 5, "max_training_count": 9, "batch_size": 4, "seed": 2,
            "acquisition": "ucb"},
    "carol": {"initial_training_count": 4, "max_training_count": 7, "batch_size": 3, "seed": 3,
              "acquisition": "random"},
}


@pytest.fixture(scope="module")
def class_folder(parsl_local, small_space, tmp_path_factory) -> Path:
    """Three real runs with different parameters, as a class would hand them in."""
    root = tmp_path_factory.mktemp("class")
    for student, params in RUNS.items():
        run_campaign({**params, "search_space": str(small_space), "workers": 2},
                     root / student, progress=False)
    return root


@pytest.fixture(scope="module")
def long_run(parsl_local, small_space, tmp_path_factory) -> Path:
    """One real run long enough (about ten seconds of simulation) that a clock halved by hand
    falls well outside the grader's slack, whatever the machine's speed: on the class's
    eight-simulation runs a halved clock is within a fraction of a second of the honest one."""
    root = tmp_path_factory.mktemp("long")
    run_campaign({"initial_training_count": 8, "max_training_count": 24, "batch_size": 4,
                  "seed": 4, "search_space": str(small_space), "workers": 2},
                 root / "alice", progress=False)
    return root


def _copy(class_folder: Path, tmp_path: Path, *names: str) -> Path:
    root = tmp_path / "submissions"
    for name in names:
        shutil.copytree(class_folder / name, root / name)
    return root


def _errored_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("run(params)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("error", ename="CampaignParameterError",
                                           evalue="batch_size (0) must be at least 1",
                                           traceback=[])]
    nb.cells = [cell]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_leaderboard_ranks_simulated_values_and_lists_the_broken_one(class_folder, tmp_path):
    root = _copy(class_folder, tmp_path, *RUNS)
    _errored_notebook(root / "dave" / "4_homework.ipynb")
    report = grade([root], tmp_path / "grading")

    board = report.board
    assert sorted(board["run"].str.split("/").str[-1]) == sorted(RUNS)
    assert board["best_ie_ev"].is_monotonic_decreasing
    assert board["rank"].tolist() == [1, 2, 3]
    for entry in board.itertuples():
        sims = rec.read_simulations(root / entry.run.split("/")[-1])
        assert entry.best_ie_ev == pytest.approx(sims.loc[sims.status == "ok", "ie"].max())
        assert entry.verified == "matches the ground-truth table"  # QM9 molecules: instant
        assert entry.workers == 2 and entry.time_check.startswith("plausible: time to best")
    by_name = board.set_index(board["run"].str.split("/").str[-1])
    assert by_name.loc["bob", "batch_size"] == 4
    assert by_name["model"].tolist() == ["knn"] * 3  # the default, recorded in parameters
    assert by_name.loc["bob", "acquisition"] == "ucb" and by_name.loc["carol", "acquisition"] == "random"

    assert report.not_ranked["run"].str.contains("dave").tolist() == [True]
    assert "CampaignParameterError" in report.not_ranked["reason"].iloc[0]
    written = pd.read_csv(report.csv_path)
    assert written["run"].tolist() == board["run"].tolist()
    assert report.figure_path.read_bytes()[:4] == b"\x89PNG"


def test_tampered_best_ie_is_not_ranked(class_folder, tmp_path):
    root = _copy(class_folder, tmp_path, "alice")
    results_path = root / "alice" / rec.RESULTS_FILE
    results = json.loads(results_path.read_text())
    results["best"]["ie"] += 1.0
    results_path.write_text(json.dumps(results))
    report = grade([root / "alice"], tmp_path / "grading", verify=False)
    assert report.board.empty
    assert "not backed by simulations.csv" in report.not_ranked["reason"].iloc[0]


def _forge_best(out: Path, ie: float, smiles: str | None = None) -> tuple[str, float]:
    """Set the best molecule's IE (and perhaps its SMILES) consistently in both files;
    returns the best molecule and the IE it had."""
    results = json.loads((out / rec.RESULTS_FILE).read_text())
    sims = pd.read_csv(out / rec.SIMULATIONS_FILE)
    row = sims["smiles"] == results["best"]["smiles"]
    before = float(sims.loc[row, "ie"].iloc[0])
    sims.loc[row, "ie"] = ie
    results["best"]["ie"] = ie
    if smiles is not None:
        sims.loc[row, "smiles"] = smiles
        results["best"]["smiles"] = smiles
    sims.to_csv(out / rec.SIMULATIONS_FILE, index=False)
    (out / rec.RESULTS_FILE).write_text(json.dumps(results))
    return results["best"]["smiles"], before


def test_consistent_ie_forgery_is_caught_by_the_table_even_without_verify(class_folder, tmp_path):
    """Forgery 3 of issue 30: the best IE raised to 17.900 eV in both files, graded with
    --no-verify; the shipped table says what that molecule's IE is, instantly."""
    root = _copy(class_folder, tmp_path, "bob", "carol")
    smiles, true_ie = _forge_best(root / "bob", 17.9)
    report = grade([root], tmp_path / "grading", verify=False)
    assert [Path(r).name for r in report.board["run"]] == ["carol"]
    (reason,) = report.not_ranked["reason"]
    assert reason == (f"best IE 17.900 eV of {smiles} is not the ground-truth table's "
                      f"{true_ie:.3f} eV (shipped table, tolerance 0.01 eV)")


def test_best_molecule_outside_the_table_is_recomputed_with_xtb(class_folder, tmp_path):
    """A molecule the table does not cover (chlorine is not in QM9) is recomputed with xTB."""
    root = _copy(class_folder, tmp_path, "bob")
    _forge_best(root / "bob", 19.0, smiles="ClC(F)(F)F")
    unchecked = grade([root / "bob"], tmp_path / "g1", verify=False)
    assert unchecked.board["verified"].tolist() == ["not checked (not in the table; --no-verify)"]
    report = grade([root / "bob"], tmp_path / "g2")
    assert report.board.empty
    assert "best IE 19.000 eV of ClC(F)(F)F does not reproduce (recomputed: " in \
        report.not_ranked["reason"].iloc[0]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda out: (out / rec.RESULTS_FILE).unlink(), "missing results.json"),
        (lambda out: (out / rec.RESULTS_FILE).write_text("{not json"), "not valid JSON"),
        (lambda out: (out / rec.SIMULATIONS_FILE).write_text(
            "\n".join((out / rec.SIMULATIONS_FILE).read_text().splitlines()[:-1]) + "\n"),
         "simulations.csv holds"),
        (lambda out: (out / rec.SIMULATIONS_FILE).write_text("smiles\n"), "lacks columns"),
    ],
)
def test_broken_files_are_reasons_not_crashes(class_folder, tmp_path, damage, reason):
    root = _copy(class_folder, tmp_path, "carol")
    damage(root / "carol")
    report = grade([root / "carol", tmp_path / "nobody"], tmp_path / "grading", verify=False)
    reasons = dict(zip(report.not_ranked["run"].str.split("/").str[-1],
                       report.not_ranked["reason"], strict=True))
    assert reason in reasons["carol"]
    assert reasons["nobody"].startswith("not found")


def test_unfinished_run_is_listed_as_partial(class_folder, tmp_path):
    root = _copy(class_folder, tmp_path, "alice")
    results_path = root / "alice" / rec.RESULTS_FILE
    results = json.loads(results_path.read_text())
    results["status"] = "interrupted"
    results_path.write_text(json.dumps(results))
    report = grade([root / "alice"], tmp_path / "grading", verify=False)
    assert "unfinished run (status 'interrupted')" in report.not_ranked["reason"].iloc[0]


def test_executed_notebook_finds_its_output_folder(class_folder, tmp_path):
    """A notebook handed in beside its outputs counts once, graded from those outputs."""
    root = _copy(class_folder, tmp_path, "bob")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1 + 1", execution_count=1)]
    nb.metadata["papermill"] = {"parameters": {"output_dir": "/home/bob/elsewhere/bob"}}
    notebook = root / "bob" / "4_homework.ipynb"
    nbformat.write(nb, notebook)
    report = grade([notebook, root], tmp_path / "grading", verify=False)
    assert len(report.board) == 1 and report.not_ranked.empty
    assert notebook_error(notebook) is None


def test_cli_prints_sorted_table_and_reasons(class_folder, tmp_path):
    root = _copy(class_folder, tmp_path, *RUNS)
    (root / "erin").mkdir()
    proc = subprocess.run([sys.executable, "-m", "course_utils", "grade", str(root), "--out",
                           str(tmp_path / "g"), "--no-verify"], capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "best IE (eV)" in lines[0]
    order = [next(n for n in RUNS if n in line) for line in lines[1:4]]
    board = pd.read_csv(tmp_path / "g" / "leaderboard.csv")
    assert order == board["run"].str.split("/").str[-1].tolist()
    assert any("erin: empty folder" in line for line in lines)
    assert (tmp_path / "g" / "leaderboard.png").exists()


def test_cli_with_nothing_rankable_exits_1(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "course_utils", "grade", str(tmp_path / "x"),
                           "--out", str(tmp_path / "g")], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1
    assert "No run could be ranked" in proc.stdout and "not found" in proc.stdout


# --- symlink loops (reliability issue) ---
def _finished_run(out: Path) -> Path:
    """A complete run's records written directly, without simulating (grade with verify=False)."""
    params = {"initial_training_count": 2, "max_training_count": 3, "batch_size": 1, "seed": 0,
              "acquisition": "greedy", "mode": "batch", "workers": 1}
    recorder = rec.CampaignRecorder.open(out)
    recorder.check_parameters(params, ())
    # Each folder its own third molecule: runs with the same records would be copies.
    third = sum(map(ord, out.name)) % 50
    for i, (smiles, ie) in enumerate([("O", 18.293), ("OC", 15.459), ("C" * (third + 2), 12.0)]):
        recorder.add_simulation({"smiles": smiles, "ie": ie, "status": "ok", "error": "",
                                 "batch": 0, "elapsed_s": float(i + 1)})
    rec.atomic_write_json(out / rec.RESULTS_FILE, rec.summarize(
        recorder, params, status="complete", environment={}, wall_time_s=4.0))
    return out


@pytest.mark.parametrize("resumed", [False, True], ids=["in-place", "set-aside"])
def test_a_run_whose_records_held_rows_that_do_not_parse_is_not_ranked(tmp_path, resumed):
    run = _finished_run(tmp_path / "class" / "eve")
    with (run / rec.SIMULATIONS_FILE).open("a") as fh:
        fh.write("abc,12\n")  # would be counted as a 4th simulation, status NaN
    if resumed:
        rec.CampaignRecorder.open(run)  # a resume moves it to simulations.rejected.csv
    _finished_run(tmp_path / "class" / "good")
    report = grade([tmp_path / "class"], tmp_path / "grading", verify=False)

    assert [Path(r).name for r in report.board["run"]] == ["good"]
    reason = report.not_ranked.set_index(report.not_ranked["run"].map(
        lambda r: Path(r).name)).loc["eve", "reason"]
    assert "\n" not in reason and "do not parse" in reason and "delete" in reason
    assert ("simulations.rejected.csv holds rows" if resumed else "line 5") in reason


def _loopy_class(tmp_path: Path) -> Path:
    root = tmp_path / "class"
    _finished_run(root / "good")
    (root / "broken").mkdir()
    (root / "broken" / rec.RESULTS_FILE).write_text("{not json")
    (root / "loop_a").symlink_to("loop_b")
    (root / "loop_b").symlink_to("loop_a")
    (root / "again").symlink_to(".")  # a folder that contains itself
    return root


def test_symlink_loops_inside_a_folder_are_listed_not_skipped(tmp_path):
    from course_utils.grading import find_submissions

    problems = {Path(s.label).name: s.problem for s in find_submissions([_loopy_class(tmp_path)])}
    assert set(problems) == {"good", "broken", "loop_a", "loop_b", "again"}
    assert problems["good"] == ""
    for name in ("loop_a", "loop_b", "again"):
        assert problems[name].startswith("symlink loop") and "\n" not in problems[name]


def test_grade_survives_symlink_loops_and_ranks_the_rest(tmp_path):
    root = _loopy_class(tmp_path)
    lone = tmp_path / "lone.ipynb"
    lone.symlink_to(lone.name)  # handed in directly: a notebook link to itself
    report = grade([root, lone], tmp_path / "grading", verify=False)

    assert [Path(r).name for r in report.board["run"]] == ["good"]
    reasons = {Path(r).name: why for r, why in zip(report.not_ranked["run"],
                                                   report.not_ranked["reason"], strict=True)}
    assert set(reasons) == {"broken", "loop_a", "loop_b", "again", "lone.ipynb"}
    assert "missing simulations.csv" in reasons["broken"]
    for name in ("loop_a", "loop_b", "again", "lone.ipynb"):
        assert reasons[name].startswith("symlink loop")
    for path in (report.csv_path, report.figure_path, report.not_ranked_path):
        assert path.exists()
    assert pd.read_csv(report.not_ranked_path)["reason"].str.startswith("symlink loop").sum() == 4


def test_ground_truth_columns_are_computed_from_the_records_against_the_table():
    from course_utils.grading import leaderboard
    from course_utils.grading_checks import grading_truth, ground_truth_columns

    truth = grading_truth()
    if truth is None:
        pytest.skip("no ground-truth table is shipped yet")
    ok = truth[truth["status"] == "ok"].sort_values("ie").reset_index(drop=True)
    sims = ok.iloc[[0, len(ok) // 2, len(ok) - 1]][["smiles", "ie", "status", "error"]].assign(
        elapsed_s=[1.0, 2.0, 3.0])
    row = ground_truth_columns({"parameters": {"search_space": "qm9"}}, sims, truth)
    assert row["regret_ev"] == 0 and row["best_rank"] == 1 and row["top1_recall"] == 1.0
    assert row["simulations_to_top10"] == 3
    # Another search space: no table covers it, so no numbers are made up for it.
    assert ground_truth_columns({"parameters": {"search_space": "mine.csv"}}, sims, truth) == {}
    board = leaderboard([])
    assert {"regret_ev", "top10_recall"} <= set(board.columns)


def test_the_leaderboard_names_each_runs_model_and_acquisition(tmp_path):
    older = _finished_run(tmp_path / "class" / "older")  # a kit without models: no "model" key
    newer = _finished_run(tmp_path / "class" / "newer")
    for path in (newer / rec.PARAMETERS_FILE, newer / rec.RESULTS_FILE):
        data = json.loads(path.read_text())
        block = data.get("parameters", data)
        block.update(model="gp", acquisition="ucb")
        rec.atomic_write_json(path, data)
    assert "model" not in json.loads((older / rec.RESULTS_FILE).read_text())["parameters"]
    report = grade([tmp_path / "class"], tmp_path / "grading", verify=False)
    board = report.board.set_index(report.board["run"].str.split("/").str[-1])
    assert board.loc["older", "model"] == "knn" and board.loc["older", "acquisition"] == "greedy"
    assert board.loc["newer", "model"] == "gp" and board.loc["newer", "acquisition"] == "ucb"
    assert {"model", "acquisition"} <= set(pd.read_csv(report.csv_path).columns)
    first = report.board.iloc[0]  # a tie on IE and time: ranked by name
    assert curve_label(first) == f"1. {first['run']} (gp, ucb: 18.293 eV)"


# --- forgeries of issue 30: each caught with one line ---
def test_a_copied_run_folder_is_grouped_and_not_ranked(class_folder, tmp_path):
    """Forgery 1: a classmate's run folder handed in as one's own (byte-identical records)."""
    root = _copy(class_folder, tmp_path, "alice", "bob")
    shutil.copytree(root / "alice", root / "zed")
    report = grade([root], tmp_path / "grading", verify=False)

    assert [Path(r).name for r in report.board["run"]] == ["bob"]
    (group,) = report.duplicates
    assert [Path(r).name for r in group.runs] == ["alice", "zed"]
    assert "the same simulations in the same order" in group.shared
    reasons = dict(zip(report.not_ranked["run"].map(lambda r: Path(r).name),
                       report.not_ranked["reason"], strict=True))
    assert set(reasons) == {"alice", "zed"}
    assert reasons["zed"].startswith(f"copy: shares its records with {group.runs[0]}")
    assert "--rank-duplicates" in reasons["zed"] and "\n" not in reasons["zed"]
    written = pd.read_csv(report.duplicates_path)
    assert written["run"].map(lambda r: Path(r).name).tolist() == ["alice", "zed"]
    assert written["group"].tolist() == [1, 1]
    text = format_report(report)
    assert sum(line.strip().startswith(f"{group.runs[0]}, {group.runs[1]}:")
               for line in text.splitlines()) == 1  # the group in one line

    anyway = grade([root], tmp_path / "g2", verify=False, rank_duplicates=True)
    assert sorted(Path(r).name for r in anyway.board["run"]) == ["alice", "bob", "zed"]
    assert len(anyway.duplicates) == 1


def test_a_copy_with_edited_numbers_is_still_a_copy(class_folder, tmp_path):
    """Editing IEs and times of a copy does not make it one's own: the molecules and their
    order are the records' signature."""
    root = _copy(class_folder, tmp_path, "carol")
    shutil.copytree(root / "carol", root / "copy")
    sims = pd.read_csv(root / "copy" / rec.SIMULATIONS_FILE)
    sims["elapsed_s"] += 0.5
    sims.to_csv(root / "copy" / rec.SIMULATIONS_FILE, index=False)
    shutil.rmtree(root / "copy" / "models", ignore_errors=True)
    report = grade([root], tmp_path / "grading", verify=False)
    assert report.board.empty
    assert [Path(r).name for r in report.duplicates[0].runs] == ["carol", "copy"]


def _halve_times(out: Path, clocks: bool) -> None:
    """Every time of the run halved in simulations.csv and results.json; with ``clocks`` also
    its submit/start/end timestamps (halved from the first submission, so durations too)."""
    sims = pd.read_csv(out / rec.SIMULATIONS_FILE)
    results = json.loads((out / rec.RESULTS_FILE).read_text())
    sims["elapsed_s"] /= 2
    if clocks:
        t0 = sims["submit_time"].min()
        for column in ("submit_time", "start_time", "end_time"):
            sims[column] = t0 + (sims[column] - t0) / 2
    results["best"]["time_to_best_s"] /= 2
    results["totals"]["wall_time_s"] /= 2
    sims.to_csv(out / rec.SIMULATIONS_FILE, index=False)
    (out / rec.RESULTS_FILE).write_text(json.dumps(results))


@pytest.mark.parametrize("clocks", [False, True], ids=["elapsed", "every-clock"])
def test_halved_times_are_implausible_and_not_ranked(long_run, tmp_path, clocks):
    """Forgery 2: every time halved consistently in simulations.csv and results.json, so the
    copy would outrank the honest original on time. Its files disagree with the others (the
    workers' timestamps, or the model versions' save times in lineage.csv)."""
    root = _copy(long_run, tmp_path, "alice")
    (root / "alice").rename(root / "honest")
    forged = tmp_path / "forged" / "alice"
    shutil.copytree(root / "honest", forged)
    _halve_times(forged, clocks)
    report = grade([root, forged.parent], tmp_path / "grading", verify=False,
                   rank_duplicates=True)

    assert [Path(r).name for r in report.board["run"]] == ["honest"]
    (reason,) = report.not_ranked["reason"]
    assert "\n" not in reason and "simulations.csv" in reason
    if clocks:  # durations halved too: the models' save times disagree
        assert "before model version" in reason and "lineage.csv" in reason
    else:  # the workers' own timestamps disagree (their sum, or the clock's rate)
        assert "start/end times" in reason
    assert pd.read_csv(report.not_ranked_path)["reason"].tolist() == [reason]


def _slow_run(out: Path, elapsed: list[float], **results_extra) -> Path:
    """A finished run's records (not simulated) of the three QM9 molecules the table took
    longest to simulate (52, 46 and 44 s), claiming the given times."""
    params = {"initial_training_count": 2, "max_training_count": 3, "batch_size": 1, "seed": 0,
              "acquisition": "greedy", "mode": "batch", "workers": 1, "search_space": "qm9"}
    recorder = rec.CampaignRecorder.open(out)
    recorder.check_parameters(params, ())
    for t, (smiles, ie) in zip(elapsed, [("CC(O)C12CN1C(=O)C2", 13.823223),
                                         ("CC12OC3C=CC1(C)C23", 13.000388),
                                         ("O=C1CC=CCC2OC12", 13.857738)], strict=True):
        recorder.add_simulation({"smiles": smiles, "ie": ie, "status": "ok", "error": "",
                                 "batch": 0, "elapsed_s": t})
    results = rec.summarize(recorder, params, status="complete", environment={},
                            wall_time_s=elapsed[-1] + 1)
    rec.atomic_write_json(out / rec.RESULTS_FILE, {**results, **results_extra})
    return out


def test_times_below_the_tables_compute_are_implausible(tmp_path):
    """142 s of simulation (the table's seconds) cannot be done in 3 s on one worker, even on
    a machine MAX_SPEEDUP times faster; 60 s can."""
    from course_utils.grading_time import MAX_SPEEDUP

    _slow_run(tmp_path / "class" / "quick", [1.0, 2.0, 3.0])
    _slow_run(tmp_path / "class" / "slow", [20.0, 40.0, 60.0], workers=1, machine="laptop-7")
    report = grade([tmp_path / "class"], tmp_path / "grading", verify=False, rank_duplicates=True)

    assert [Path(r).name for r in report.board["run"]] == ["slow"]
    slow = report.board.iloc[0]
    assert slow["workers"] == 1 and slow["machine"] == "laptop-7"
    assert slow["time_check"].startswith("plausible: time to best 60.0 s on 1 worker(s)")
    (reason,) = report.not_ranked["reason"]
    floor = (52.104 + 45.643 + 44.393) / MAX_SPEEDUP
    assert reason == (f"implausible time to best: 3.0 s claimed on 1 worker(s), machine: not "
                      f"recorded, but its 3 simulations took 142.1 s in the ground-truth table: "
                      f"at least {floor:.1f} s even {MAX_SPEEDUP:g}x faster")


def test_older_runs_without_workers_say_so_in_the_time_check(tmp_path):
    run = _slow_run(tmp_path / "class" / "old", [20.0, 40.0, 60.0])
    for path in (run / rec.PARAMETERS_FILE, run / rec.RESULTS_FILE):
        data = json.loads(path.read_text())
        data.get("parameters", data).pop("workers")
        rec.atomic_write_json(path, data)
    report = grade([run], tmp_path / "grading", verify=False)
    (check,) = report.board["time_check"]
    assert check == ("not checked; workers not recorded (older run) and no worker in its records: "
                     "time not checked; no batches.csv: submissions not compared with model "
                     "versions")
    sims = pd.read_csv(run / rec.SIMULATIONS_FILE)
    sims["manager"], sims["worker"] = "m1", [0, 1, 0]  # records that name their workers
    sims.to_csv(run / rec.SIMULATIONS_FILE, index=False)
    (check,) = grade([run], tmp_path / "grading", verify=False).board["time_check"]
    assert check.startswith("plausible: time to best 60.0 s on 2 worker(s)")
    assert check.endswith("workers not recorded (older run): 2 worker slot(s) in its records; "
                          "no start/end times in its records; no batches.csv: submissions not "
                          "compared with model versions")


@pytest.mark.parametrize("verify", [False, True], ids=["no-verify", "verify"])
def test_a_run_without_parameters_json_is_not_ranked(tmp_path, verify):
    run = _finished_run(tmp_path / "class" / "ann")
    (run / rec.PARAMETERS_FILE).unlink()
    report = grade([run], tmp_path / "grading", verify=verify)
    assert report.board.empty
    assert report.not_ranked["reason"].tolist() == [f"missing parameters.json in {run}"]


def test_files_that_disagree_are_not_ranked(tmp_path):
    run = _finished_run(tmp_path / "class" / "ben")
    params = json.loads((run / rec.PARAMETERS_FILE).read_text())
    rec.atomic_write_json(run / rec.PARAMETERS_FILE, {**params, "batch_size": 4})
    report = grade([run], tmp_path / "grading", verify=False)
    assert report.not_ranked["reason"].tolist() == [
        "parameters.json and results.json disagree (batch_size: 4 in parameters.json, 1 in "
        "results.json)"]


def test_cli_names_each_forgery_in_one_line_and_ranks_copies_only_when_told(class_folder,
                                                                            tmp_path):
    root = _copy(class_folder, tmp_path, *RUNS)
    shutil.copytree(root / "alice", root / "zed")
    smiles, true_ie = _forge_best(root / "bob", 17.9)

    def cli(*extra: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-m", "course_utils", "grade", str(root), "--out",
                               str(tmp_path / "g"), "--no-verify", *extra],
                              capture_output=True, text=True, cwd=tmp_path, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    lines = cli()
    assert [line.split()[1] for line in lines[1:2]] == ["submissions/carol"]
    assert sum("submissions/alice, submissions/zed: the same simulations" in line
               for line in lines) == 1
    assert any(line.strip() == f"submissions/bob: best IE 17.900 eV of {smiles} is not the "
               f"ground-truth table's {true_ie:.3f} eV (shipped table, tolerance 0.01 eV)"
               for line in lines)
    assert any(line.strip().startswith("submissions/zed: copy: shares its records with "
                                       "submissions/alice") for line in lines)
    assert pd.read_csv(tmp_path / "g" / "duplicates.csv")["group"].tolist() == [1, 1]

    ranked = pd.read_csv(tmp_path / "g" / "leaderboard.csv")["run"]
    assert ranked.tolist() == ["submissions/carol"]
    cli("--rank-duplicates")
    ranked = pd.read_csv(tmp_path / "g" / "leaderboard.csv")["run"]
    assert sorted(ranked) == ["submissions/alice", "submissions/carol", "submissions/zed"]
