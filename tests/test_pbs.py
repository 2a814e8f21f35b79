"""Polaris batch jobs: job scripts, submission helpers, and the whole job run behind a stand-in qsub.

No PBS scheduler runs here, so ``tests/standin/qsub`` takes its place at the very last step: it
records what was submitted and then runs the job script on this machine with the variables PBS
would set. Everything before it (the helper, parameter checks, the rendered directives) and
after it (environment activation, papermill, the Polaris Parsl configuration with one manager
per "node" started by a real MPICH ``mpiexec``) is the real code.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from course_utils import records as rec
from course_utils.polaris import pbs

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "tests" / "standin"
HOMEWORK = REPO / "notebooks" / "4_homework.ipynb"
needs_mpiexec = pytest.mark.skipif(shutil.which("mpiexec") is None,
                                   reason="needs an MPI mpiexec (Debian: apt-get install mpich)")


def _env(record: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{STANDIN}:{os.environ['PATH']}",
            "QSUB_RECORD_DIR": str(record)}


def _submit(args: list[str], record: Path, script: str = "submit_homework.sh", **env):
    return subprocess.run(["bash", str(REPO / "submit" / script), *args], capture_output=True,
                          text=True, env={**_env(record), **env}, cwd=REPO, check=False)


# --- pieces ----------------------------------------------------------------------------------
def test_rendered_script_has_the_alcf_directives():
    spec = pbs.JobSpec(account="MyProj", queue="prod", nodes=4, walltime="01:15:00",
                       name="sweep-3")
    lines = pbs.render_job_script(spec).splitlines()
    assert lines[0].startswith("#!/bin/bash")
    directives = [line for line in lines if line.startswith("#PBS")]
    for expected in ("#PBS -A MyProj", "#PBS -q prod", "#PBS -l select=4:system=polaris",
                     "#PBS -l place=scatter", "#PBS -l walltime=01:15:00",
                     "#PBS -l filesystems=home:eagle", "#PBS -N sweep-3"):
        assert expected in directives
    assert len(directives) == len(set(directives)) == 8  # the template's own ones replaced
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert first_command > max(lines.index(d) for d in directives)


def test_papermill_arguments_come_from_job_variables_named_like_parameters():
    env = {"batch_size": "8", "acquisition": "ucb", "config_options": "{nodes: 2}",
           "HOME": "/root", "unrelated": "x"}
    args = pbs.papermill_arguments(HOMEWORK, env)
    assert args == ["-p", "batch_size", "8", "-p", "acquisition", "ucb",
                    "-y", "config_options: {nodes: 2}"]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"bacth_size": "4"}, "unknown parameter 'bacth_size'"),
        ({"initial_training_count": "24", "max_training_count": "24"}, "max_training_count"),
        ({"batch_size": "0"}, "batch_size"),
        ({"acquisition": "ucb,greedy"}, "commas"),
    ],
)
def test_bad_parameters_are_refused_before_submission(parameters, message):
    with pytest.raises(pbs.SubmitError, match=message):
        pbs.JobSpec(account="MyProj", parameters=parameters).validate()


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"account": ""}, "--account"), ({"walltime": "30"}, "HH:MM:SS"), ({"nodes": 0}, "nodes"),
     ({"notebook": "notebooks/nope.ipynb"}, "not found")],
)
def test_bad_job_options_are_refused(changes, message):
    with pytest.raises(pbs.SubmitError, match=message):
        pbs.JobSpec(**{"account": "MyProj", **changes}).validate()


def test_helper_with_impossible_campaign_exits_2_and_submits_nothing(tmp_path):
    proc = _submit(["-A", "MyProj", "initial_training_count=24", "max_training_count=24"],
                   tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "initial_training_count" in proc.stderr
    assert not (tmp_path / "calls.txt").exists()


def test_sweep_submits_one_job_per_line(tmp_path):
    sweep = tmp_path / "sweep.txt"
    sweep.write_text("# two runs\ninitial_training_count=8 max_training_count=32 batch_size=4\n\n"
                     "initial_training_count=16 max_training_count=32 batch_size=8 "
                     "acquisition=ucb  # explore\n")
    proc = _submit(["-A", "MyProj", "-n", "2", "--out-root", str(tmp_path / "jobs"), str(sweep)],
                   tmp_path / "record", script="submit_sweep.sh", QSUB_STANDIN_NO_RUN="1")
    assert proc.returncode == 0, proc.stderr
    calls = [shlex.split(line) for line in (tmp_path / "record" / "calls.txt").read_text()
             .splitlines()]
    assert len(calls) == 2
    variables = [dict(kv.split("=", 1) for kv in call[call.index("-v") + 1].split(","))
                 for call in calls]
    assert [v["batch_size"] for v in variables] == ["4", "8"]
    assert variables[1]["acquisition"] == "ucb" and variables[0]["RUN_NAME"] == "sweep-1"
    scripts = sorted((tmp_path / "record").glob("job-*.pbs"))
    assert all("#PBS -l select=2:system=polaris" in s.read_text() for s in scripts)


def test_sweep_with_one_bad_line_submits_none(tmp_path):
    sweep = tmp_path / "sweep.txt"
    sweep.write_text("batch_size=4\nbatch_size=-1\n")
    proc = _submit(["-A", "MyProj", str(sweep)], tmp_path / "record", script="submit_sweep.sh",
                   QSUB_STANDIN_NO_RUN="1")
    assert proc.returncode == 2 and "batch_size (-1)" in proc.stderr
    assert not (tmp_path / "record" / "calls.txt").exists()


def test_folders_with_commas_and_quotes_reach_the_job_unchanged(tmp_path, monkeypatch):
    """qsub -v splits at commas and reads quotes: such paths travel in qsub's environment, also
    when the printed --dry-run command is run by hand."""
    template = tmp_path / "show.pbs"
    template.write_text('#!/bin/bash\nprintf "%s\\n" "$OUT_DIR" "$OUTPUT_ROOT" "$COURSE_ROOT"\n')
    weird = tmp_path / "a, b (1) it's \"q\" $HOME é"
    spec = pbs.JobSpec(account="MyProj", out_dir=str(weird / "run 1"),
                       output_root=str(weird / "jobs"))
    expected = [str(weird / "run 1"), str(weird / "jobs"), str(REPO)]
    for name, value in _env(tmp_path / "record").items():
        monkeypatch.setenv(name, value)
    job, _ = pbs.submit(spec, template=template)
    assert job == "1.standin-pbs"
    assert (tmp_path / "record" / "job-1.out").read_text().splitlines() == expected
    printed, _ = pbs.submit(spec, template=template, dry_run=True)
    subprocess.run(["bash", "-c", printed], check=True, capture_output=True)
    assert (tmp_path / "record" / "job-2.out").read_text().splitlines() == expected


# --- the whole job, behind the stand-in qsub ---------------------------------------------------
@needs_mpiexec
def test_homework_job_runs_on_two_nodes_end_to_end(small_space, tmp_path):
    """submit_homework.sh -> qsub -> job script -> activate_env.sh -> papermill -> notebook 4 ->
    Polaris Parsl config -> mpiexec starts one manager per node -> both take simulations."""
    # Polaris' mpiexec (Cray PALS) spells two options differently from MPICH's; everything else
    # is the Polaris path, including the interface-free loopback address for this one machine.
    options = tmp_path / "mpich.yaml"
    options.write_text("config_options:\n  address: 127.0.0.1\n  bind_cmd: --bind-to\n"
                       "  launcher_overrides: --ppn 1\n")
    jobs = tmp_path / "jobs"
    proc = _submit(["-A", "MyProj", "-q", "debug", "-n", "2", "-t", "00:20:00",
                    "--workers-per-node", "1", "--out-root", str(jobs), "--params-file",
                    str(options), "initial_training_count=4", "max_training_count=8",
                    "batch_size=2", "seed=3", f"search_space={small_space}"],
                   tmp_path / "record")
    assert proc.returncode == 0, proc.stderr
    assert "submitted 1.standin-pbs: 2 node(s)" in proc.stdout
    record = tmp_path / "record"
    script = (record / "job-1.pbs").read_text()
    for directive in ("#PBS -A MyProj", "#PBS -q debug", "#PBS -l select=2:system=polaris",
                      "#PBS -l walltime=00:20:00", "#PBS -l filesystems=home:eagle"):
        assert directive in script
    log = (record / "job-1.out").read_text()
    assert (record / "job-1.exit").read_text().strip() == "0", log[-3000:]

    out = jobs / "4_homework-1"
    assert "on 2 node(s), config polaris" in (out / "job.log").read_text()
    nb = nbformat.read(out / "4_homework.ipynb", as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert nb.metadata.papermill.parameters["batch_size"] == 2
    results = json.loads((out / rec.RESULTS_FILE).read_text())
    sims = rec.read_simulations(out)
    ok = sims[sims["status"] == rec.STATUS_OK]
    assert results["status"] == "complete" and len(ok) == 8 and ok["smiles"].is_unique
    assert results["best"]["ie"] == pytest.approx(ok["ie"].max(), abs=1e-9)
    assert (out / rec.PLOT_FILE).read_bytes()[:4] == b"\x89PNG"
    # Two managers (one per "node", each with one worker) both ran simulations.
    per_manager = ok.groupby(ok["manager"].astype(str)).size()
    assert len(per_manager) == 2 and (per_manager > 0).all(), per_manager
    assert not list((REPO / "notebooks").glob("*.nodes"))  # nothing left beside the notebooks
    assert list((out / "runinfo").rglob("*.nodes"))
    # The instructor's command grades what the job wrote.
    from course_utils.grading import grade

    report = grade([out], tmp_path / "grading", verify=False)
    assert report.board["best_ie_ev"].tolist() == pytest.approx([ok["ie"].max()])


@needs_mpiexec
def test_job_without_scheduler_variables_still_runs_locally(small_space, tmp_path):
    """The job script outside PBS (e.g. bash submit/run_notebook.pbs on a laptop, CONFIG=local),
    into a folder whose name a shell would split: every path in it is quoted."""
    out = tmp_path / "my \"job\" (1) it's $HOME é" / "o"
    env = {**os.environ, "CONFIG": "local", "WORKERS_PER_NODE": "2", "OUT_DIR": str(out),
           "NOTEBOOK": "notebooks/4_homework.ipynb", "initial_training_count": "4",
           "max_training_count": "6", "batch_size": "2", "search_space": str(small_space)}
    env.pop("PBS_NODEFILE", None)
    proc = subprocess.run(["bash", "submit/run_notebook.pbs"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    sims = pd.read_csv(out / rec.SIMULATIONS_FILE)
    assert (sims["status"] == "ok").sum() == 6
    assert f"outputs: {out}" in (out / "job.log").read_text()


GROUND_TRUTH_JOB = REPO / "submit" / "build_ground_truth.pbs"


def test_ground_truth_job_script_is_valid_and_documents_its_use():
    proc = subprocess.run(["bash", "-n", str(GROUND_TRUTH_JOB)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    text = GROUND_TRUTH_JOB.read_text()
    assert "python -m course_utils truth build" in text
    for needed in ("#PBS -l filesystems=home:eagle", "#PBS -l select=4:system=polaris",
                   "source \"$COURSE_ROOT/activate_env.sh\"", "-v SHARD=$i/4",
                   "python -m course_utils truth pack outputs/ground_truth/qm9*.csv"):
        assert needed in text


def test_ground_truth_job_builds_its_shard_behind_the_standin_qsub(tmp_path):
    """qsub -> job script -> activate_env.sh -> truth build (local Parsl) -> the shard's file."""
    from course_utils.ground_truth.table import build_order

    space = tmp_path / "space.csv"
    smiles = ["O", "C", "N", "CC"]
    pd.DataFrame({"smiles": smiles}).to_csv(space, index=False)
    out, record = tmp_path / "gt.csv", tmp_path / "record"
    variables = f"SHARD=2/2,CONFIG=local,WORKERS_PER_NODE=1,SEARCH_SPACE={space},OUT={out}"
    proc = subprocess.run(["qsub", "-A", "MyProj", "-v", variables, str(GROUND_TRUTH_JOB)],
                          capture_output=True, text=True, env=_env(record), cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr
    log = (record / "job-1.out").read_text()
    assert (record / "job-1.exit").read_text().strip() == "0", log[-3000:]
    assert "shard 2/2" in log and "ground truth covers 2 of 4 molecules" in log
    table = pd.read_csv(out)
    assert sorted(table["smiles"]) == sorted(build_order(smiles, (2, 2)))
    assert (table["status"] == "ok").all()
