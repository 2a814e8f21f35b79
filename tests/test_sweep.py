"""Sweeps with early termination (course_utils.studies.sweep): the rung plan, the decisions and why,
survivors resumed without recomputation, the command line, and the one-job PBS path.

Sweeps are replayed on the part of QM9 the shipped table covers (``truth:qm9``), so every
configuration is a real campaign and a whole sweep takes seconds.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from course_utils import records as rec
from course_utils.studies import sweep as sw

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "tests" / "standin"
CONFIGS = """# four configurations, as in submit/example_sweep.txt
initial_training_count=8 max_training_count=24 batch_size=4 acquisition=greedy seed=0
initial_training_count=8 max_training_count=24 batch_size=4 acquisition=random seed=1
initial_training_count=8 max_training_count=24 batch_size=4 acquisition=ucb ucb_kappa=2.0 seed=2
initial_training_count=8 max_training_count=24 batch_size=2 acquisition=greedy seed=3
"""
COMMON = {"simulator": "replay", "workers": 2}
#: A fixed set of molecules (truth:qm9 grows with the table, and with it what a seed picks).
FIXED = {**COMMON, "search_space": "truth:qm9:4000"}


def _configs(tmp_path: Path, text: str = CONFIGS) -> Path:
    path = tmp_path / "configs.txt"
    path.write_text(text)
    return path


# --- the plan ------------------------------------------------------------------------------------
def test_rungs_grow_by_eta_up_to_the_full_budget():
    assert sw.plan_rungs(64, 9, eta=3, smallest=9) == (9, 27, 64)  # 64/3^2 = 7 -> at least 9
    assert sw.plan_rungs(81, 9, eta=3) == (9, 27, 81)
    assert sw.plan_rungs(64, 4, eta=2, min_budget=10) == (10, 20, 40, 64)
    assert sw.plan_rungs(64, 4, rungs=[16, 32]) == (16, 32, 64)
    assert sw.plan_rungs(64, 4, rungs=[16, 64]) == (16, 64)
    assert sw.plan_rungs(64, 1) == (64,)
    assert sw.parse_rungs("16,32") == sw.parse_rungs("16:32") == (16, 32)
    assert sw.parse_rungs(None) is None


@pytest.mark.parametrize("text", ["", "  "])
def test_empty_rungs_are_refused_not_read_as_none_given(text):
    with pytest.raises(sw.SweepError, match="is empty: give increasing budgets"):
        sw.parse_rungs(text)


def test_a_name_given_twice_on_a_line_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "configs.txt"
    path.write_text("batch_size=4\nmodel=knn acquisition=ucb model=gp\n")
    with pytest.raises(sw.SweepError, match=r"line 2: model is given twice \(model=knn and model=gp\)"):
        sw.read_configs(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"eta": 1}, "eta (1) must be an integer >= 2"),
     ({"eta": 2.5}, "eta (2.5) must be an integer >= 2"),
     ({"rungs": [32, 16]}, "must increase strictly"),
     ({"rungs": [16, 128]}, "exceeds the full budget (64)"),
     ({"rungs": [8, 32]}, "rung budget 8 must be larger than every initial_training_count"),
     ({"min_budget": 100}, "min budget (100) must be between 9 and the full budget (64)"),
     ({"rungs": [16], "min_budget": 16}, "not both")],
)
def test_bad_plans_are_one_line(options, message):
    with pytest.raises(sw.SweepError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        sw.plan_rungs(64, 4, smallest=9, **{"eta": 3, **options})
    assert "\n" not in str(err.value)


def test_configurations_are_checked_before_anything_runs(tmp_path):
    configs = sw.read_configs(_configs(tmp_path))
    assert configs[2] == {"initial_training_count": 8, "max_training_count": 24, "batch_size": 4,
                          "acquisition": "ucb", "ucb_kappa": 2.0, "seed": 2}
    with pytest.raises(sw.SweepError, match="configuration 2: batch_size"):
        sw.check_sweep([configs[0], {**configs[1], "batch_size": 0}], common=COMMON)
    with pytest.raises(sw.SweepError, match="configuration 1 sets simulator"):
        sw.check_sweep([{**configs[0], "simulator": "xtb"}], common=COMMON)
    with pytest.raises(sw.SweepError, match=r"different max_training_count \(\[24, 32\]\)"):
        sw.check_sweep([configs[0], {**configs[1], "max_training_count": 32}], common=COMMON)
    parameters, rungs = sw.check_sweep([configs[0], {**configs[1], "max_training_count": 32}],
                                       budget=40, common=COMMON)
    assert rungs[-1] == 40 and {p["max_training_count"] for p in parameters} == {40}
    assert parameters[0]["search_space"] == "truth:qm9"  # replay's default
    with pytest.raises(sw.SweepError, match="line 2: expected name=value"):
        sw.read_configs(_configs(tmp_path, "batch_size=4\nbatch_size 4\n"))


def test_ties_at_the_cut_go_to_the_faster_configuration():
    results = [{"config": c, "best_ie": ie, "time_to_best_s": t, "simulations": 12,
                "campaign_status": "complete", "message": "", "best_smiles": "C"}
               for c, ie, t in ((1, 15.0, 9.0), (2, 15.0, 4.0), (3, 14.0, 1.0))]
    rung = sw._decide(1, 12, results, eta=3, final=False)
    decisions = {r["config"]: (r["decision"], r["why"]) for r in rung["results"]}
    assert decisions[2][0] == "kept" and rung["cut_ev"] == 15.0
    assert decisions[1] == ("stopped", "rung 1: best 15.000 eV ties the cut of the top 1 of 3 "
                                       "but was reached later (9.0 s vs 4.0 s)")
    assert decisions[3] == ("stopped", "rung 1: best 14.000 eV, below the cut 15.000 eV of the "
                                       "top 1 of 3")


def test_a_campaign_that_did_not_finish_is_failed_and_never_kept():
    results = [{"config": 1, "best_ie": 15.0, "time_to_best_s": 1.0, "simulations": 5,
                "campaign_status": "stopped", "message": "stopped with 5 of 12: no molecule left",
                "best_smiles": "C"},
               {"config": 2, "best_ie": 13.0, "time_to_best_s": 1.0, "simulations": 12,
                "campaign_status": "complete", "message": "", "best_smiles": "C"}]
    rung = sw._decide(1, 12, results, eta=2, final=False)
    first, second = rung["results"]
    assert (first["decision"], second["decision"]) == ("failed", "kept")
    assert first["why"] == "rung 1: campaign stopped: stopped with 5 of 12: no molecule left"


# --- a replayed sweep ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """eta=2 over rungs 12, 24: four configurations, two go on, one wins. Before every campaign
    call, the records the configuration's folder held are kept to check the resumes."""
    tmp = tmp_path_factory.mktemp("sweep")
    out = tmp / "sweep"
    before: dict[tuple[str, int], pd.DataFrame] = {}
    real_run_to = sw._run_to

    def spy(parameters, budget, folder):
        before[(Path(folder).name, budget)] = rec.read_simulations(folder)
        return real_run_to(parameters, budget, folder)

    sw._run_to = spy
    try:
        result = sw.run_sweep(sw.read_configs(_configs(tmp)), out, eta=2, rungs=[12],
                              common=FIXED, echo=None)
    finally:
        sw._run_to = real_run_to
    return result, before, tmp


def test_sweep_csv_says_who_was_stopped_when_and_why(sweep):
    result, _, _ = sweep
    table = pd.read_csv(result.out_dir / sw.SWEEP_CSV)
    assert table["config"].tolist() == [1, 2, 3, 4]
    assert table["folder"].tolist() == [f"configs/config-0{i}" for i in range(1, 5)]
    assert table["acquisition"].tolist() == ["greedy", "random", "ucb", "greedy"]
    rung1 = result.summary["rungs_log"][0]
    ranked = sorted(rung1["results"], key=lambda r: r["rank"])
    kept = {r["config"] for r in ranked[:2]}
    cut = ranked[1]["best_ie"]
    assert rung1["cut_ev"] == cut and rung1["kept"] == 2
    for row in table.itertuples():
        if row.config in kept:
            assert row.rung == 2 and row.rung_budget == 24 and row.simulations == 24
            assert row.status == "kept" and pd.isna(row.stopped_at_rung)
        else:
            assert (row.status, row.rung, row.stopped_at_rung) == ("stopped", 1, 1)
            assert row.stopped_at_simulations == row.simulations == 12
            assert row.why.startswith(f"rung 1: best {row.best_ie:.3f} eV")
            assert "the top 2 of 4" in row.why
            assert row.best_ie <= cut
    winner = result.winner
    final = table[table["status"] == "kept"]
    assert winner["best_ie"] == final["best_ie"].max()
    assert table.loc[table["config"] == winner["config"], "why"].item() == (
        "reached the full budget (24): rank 1 of 2")
    assert result.summary["simulations"] == {"used": 2 * 24 + 2 * 12, "all_to_full_budget": 96,
                                             "saved": 24, "saved_share": 0.25}
    assert result.summary["status"] == "complete" and result.summary["settings"]["rungs"] == [12, 24]


def test_survivors_resume_in_their_folder_without_recomputation(sweep):
    result, before, _ = sweep
    table = pd.read_csv(result.out_dir / sw.SWEEP_CSV)
    for row in table[table["status"] == "kept"].itertuples():
        folder = result.out_dir / row.folder
        at_rung_1 = before[(folder.name, 24)]
        after = rec.read_simulations(folder)
        ok = rec.STATUS_OK
        assert (at_rung_1["status"] == ok).sum() == 12 and (after["status"] == ok).sum() == 24
        pd.testing.assert_frame_equal(after.head(len(at_rung_1)).reset_index(drop=True),
                                      at_rung_1)
        assert after["smiles"].is_unique
        results = json.loads((folder / rec.RESULTS_FILE).read_text())
        assert results["resumed_from_simulations"] == len(at_rung_1)
    stopped = table[table["status"] == "stopped"]
    assert all((folder_name, 24) not in before
               for folder_name in stopped["folder"].str.split("/").str[-1])


def test_the_same_sweep_again_goes_on_and_recomputes_nothing(sweep):
    result, _, _ = sweep
    stamps = {p: p.stat().st_mtime_ns for p in result.out_dir.rglob(rec.SIMULATIONS_FILE)}
    again = sw.run_sweep(sw.read_configs(_configs(result.out_dir.parent)), result.out_dir, eta=2,
                         rungs=[12], common=FIXED, echo=None)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again.table.drop(columns="time_to_best_s").equals(
        result.table.drop(columns="time_to_best_s"))
    with pytest.raises(sw.SweepError, match="holds a sweep with other settings"):
        sw.run_sweep(sw.read_configs(_configs(result.out_dir.parent)), result.out_dir, eta=3,
                     rungs=[12], common=FIXED, echo=None)


def test_the_same_sweep_again_removes_temporary_files_of_a_killed_save(sweep, capsys):
    result, _, _ = sweep
    stale = result.out_dir / (sw.SWEEP_CSV + ".tmp")
    stale.write_bytes(b"")  # killed while rewriting sweep.csv
    capsys.readouterr()
    sw.run_sweep(sw.read_configs(_configs(result.out_dir.parent)), result.out_dir, eta=2,
                 rungs=[12], common=FIXED, echo=None)
    assert not stale.exists()
    notes = [line for line in capsys.readouterr().err.splitlines() if ".tmp" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "sweep.csv.tmp" in notes[0]


def test_the_sweep_figure(sweep):
    result, _, tmp = sweep
    path = sw.plot_sweep(result.out_dir, tmp / "sweep.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


# --- command line --------------------------------------------------------------------------------
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_utils", "sweep", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300, check=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--eta", "1"], "eta (1) must be an integer >= 2"),
     (["--rungs", "16,x"], "rungs '16,x'"),
     (["--rungs", "16,12"], "must increase strictly")],
)
def test_cli_bad_plans_exit_2_with_one_line(tmp_path, options, message):
    proc = _cli("--configs", str(_configs(tmp_path)), "--out", str(tmp_path / "out"),
                "--simulator", "replay", *options, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_runs_a_replayed_sweep(tmp_path):
    proc = _cli("--configs", str(_configs(tmp_path)), "--out", str(tmp_path / "out"),
                "--simulator", "replay", "--eta", "2", "--rungs", "12", "--workers", "2",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "rung 1/2 (12 simulations): config 1: best" in proc.stdout
    assert "sweep complete" in proc.stdout and "72 simulations instead of 96" in proc.stdout
    assert (tmp_path / "out" / sw.SWEEP_JSON).is_file()


# --- the one-job PBS path, behind the stand-in qsub ------------------------------------------------
def _submit(args: list[str], record: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "submit" / "submit_sweep.sh"), *args],
                          capture_output=True, text=True, cwd=REPO, check=False,
                          env={**os.environ, "PATH": f"{STANDIN}:{os.environ['PATH']}",
                               "QSUB_RECORD_DIR": str(record), **env})


def test_halving_submits_one_job_running_the_sweep_command(tmp_path):
    configs = _configs(tmp_path)
    proc = _submit(["--halving", "--eta", "2", "--rungs", "12", "-A", "MyProj", "-n", "2",
                    "-t", "01:00:00", "--out-root", str(tmp_path / "jobs"), str(configs)],
                   tmp_path / "record", QSUB_STANDIN_NO_RUN="1")
    assert proc.returncode == 0, proc.stderr
    calls = [shlex.split(line) for line in (tmp_path / "record" / "calls.txt").read_text()
             .splitlines()]
    assert len(calls) == 1
    variables = dict(kv.split("=", 1) for kv in calls[0][calls[0].index("-v") + 1].split(","))
    assert variables["SWEEP_FILE"] == str(configs.resolve())
    assert (variables["ETA"], variables["RUNGS"], variables["SIMULATOR"]) == ("2", "12:24", "xtb")
    assert variables["RUN_NAME"] == "configs-halving"
    script = (tmp_path / "record" / "job-1.pbs").read_text()
    for needed in ("#PBS -A MyProj", "#PBS -l select=2:system=polaris",
                   "#PBS -l walltime=01:00:00", "#PBS -l filesystems=home:eagle",
                   'python -m course_utils sweep --configs "$SWEEP_FILE" --out "$out" '
                   '--config "$CONFIG"', '${RUNGS:+--rungs "${RUNGS//:/,}"}'):
        assert needed in script
    assert 'CONFIG="${CONFIG:-polaris}"' in script


def test_halving_with_a_bad_plan_submits_nothing(tmp_path):
    proc = _submit(["--halving", "--eta", "1", "-A", "MyProj", str(_configs(tmp_path))],
                   tmp_path / "record", QSUB_STANDIN_NO_RUN="1")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "eta (1) must be an integer >= 2" in proc.stderr
    assert not (tmp_path / "record" / "calls.txt").exists()


def test_halving_job_runs_the_sweep_end_to_end(tmp_path):
    """submit_sweep.sh --halving -> qsub -> run_sweep.pbs -> activate_env.sh -> the sweep."""
    jobs = tmp_path / "jobs"
    proc = _submit(["--halving", "--eta", "2", "--rungs", "12", "--simulator", "replay",
                    "-A", "MyProj", "--workers-per-node", "2", "--out-root", str(jobs),
                    str(_configs(tmp_path))], tmp_path / "record")
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "record" / "job-1.out").read_text()
    assert (tmp_path / "record" / "job-1.exit").read_text().strip() == "0", log[-3000:]
    out = jobs / "configs-halving-1"
    summary = json.loads((out / sw.SWEEP_JSON).read_text())
    assert summary["status"] == "complete" and summary["settings"]["rungs"] == [12, 24]
    assert summary["settings"]["common"]["config"] == "polaris"
    assert "sweep complete" in (out / "job.log").read_text()
    assert len(pd.read_csv(out / sw.SWEEP_CSV)) == 4
