"""The command line on bad input: exit code 2 and one line, before Parsl starts or files appear."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from course_utils import records as rec
from course_utils.__main__ import existing_outputs

REPO = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_utils", "run", *args, "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_out_naming_a_file(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    line = _one_error_line(_run(tmp_path, "--out", str(target)))
    assert f"--out {target} is a file, not a folder" in line
    assert target.read_text() == "mine\n"


@pytest.mark.parametrize("where", ["/proc/course_utils_x/y", "blocker/sub"])
def test_out_folder_that_cannot_be_created(tmp_path, where):
    (tmp_path / "blocker").write_text("")  # a file where a parent folder should be
    line = _one_error_line(_run(tmp_path, "--out", where))
    assert where in line
    assert "No such file or directory" in line or "Not a directory" in line


@pytest.mark.parametrize(("option", "name"), [("--simulation-walltime", "simulation_walltime"),
                                              ("--ucb-kappa", "ucb_kappa")])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_numbers(tmp_path, option, name, value):
    out = tmp_path / "run"
    line = _one_error_line(_run(tmp_path, option, value, "--out", str(out)))
    assert name in line
    assert not out.exists()


def test_summary_lists_only_files_that_exist(tmp_path):
    (tmp_path / rec.RESULTS_FILE).write_text("{}")
    (tmp_path / rec.SIMULATIONS_FILE).write_text("smiles\n")
    (tmp_path / "runinfo").mkdir()
    assert existing_outputs(tmp_path) == [rec.RESULTS_FILE, rec.SIMULATIONS_FILE]
    (tmp_path / rec.PLOT_FILE).write_bytes(b"\x89PNG")
    (tmp_path / rec.ITERATIONS_FILE).write_text("iteration\n")
    assert existing_outputs(tmp_path) == [rec.RESULTS_FILE, rec.SIMULATIONS_FILE,
                                          rec.ITERATIONS_FILE, rec.PLOT_FILE]


def test_folder_in_use_by_another_run(tmp_path):
    out = tmp_path / "run"
    space = tmp_path / "space.csv"
    space.write_text("smiles\n" + "\n".join(["C", "O", "N", "CC", "CO", "CN", "OO", "NN", "CCC",
                                             "CCO", "OCO", "NCN"]) + "\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from course_utils.records import acquire_run_lock
            acquire_run_lock(sys.argv[1])
            print("locked", flush=True)
            time.sleep(120)
        """), str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = _one_error_line(_run(tmp_path, "--initial-training-count", "4",
                                    "--max-training-count", "6", "--search-space", str(space),
                                    "--out", str(out)))
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    assert f"PID {holder.pid}" in line and "--out" in line
    assert sorted(p.name for p in out.iterdir()) == [rec.LOCK_FILE]  # nothing else touched


def test_two_identical_runs_started_together_do_not_mix(small_space, tmp_path):
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "course_utils", "run", "--initial-training-count", "4",
           "--max-training-count", "8", "--batch-size", "2", "--seed", "9", "--workers", "2",
           "--search-space", str(small_space), "--out", str(out), "--quiet"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outcomes = [(p.wait(timeout=300), p.communicate()[1]) for p in (first, second)]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    refused = next(err for code, err in outcomes if code == 2).strip().splitlines()
    assert len(refused) == 1 and "in use by another run" in refused[0] and "PID" in refused[0]
    sims = rec.read_simulations(out)
    assert sims["smiles"].is_unique and (sims["status"] == "ok").sum() == 8


def test_summary_names_the_lineage_and_the_checks_when_a_run_wrote_them(tmp_path):
    (tmp_path / rec.RESULTS_FILE).write_text("{}")
    (tmp_path / "lineage.csv").write_text("version\n")
    (tmp_path / "checks.csv").write_text("iteration\n")
    assert existing_outputs(tmp_path) == [rec.RESULTS_FILE, "lineage.csv", "checks.csv"]


def test_a_run_into_a_folder_a_shell_would_split(small_space, tmp_path):
    """Real workers and real xTB: a space, quotes, a dollar, parentheses and a non-ASCII letter
    in the output folder once lost every worker (Parsl's commands carry its paths unquoted)."""
    out = tmp_path / "it's \"my\" $HOME (run 1) é" / "run"
    proc = subprocess.run([sys.executable, "-m", "course_utils", "run", "--initial-training-count",
                           "4", "--max-training-count", "6", "--batch-size", "2", "--seed", "5",
                           "--workers", "2", "--search-space", str(small_space), "--out",
                           str(out), "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sims = rec.read_simulations(out)
    assert (sims["status"] == rec.STATUS_OK).sum() == 6 and sims["smiles"].is_unique
    assert list((out / "runinfo").glob("*/parsl.log"))  # Parsl's own files are in the folder
