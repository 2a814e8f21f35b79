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
                                    "--max-training-count", "6", "--batch-size", "2",
                                    "--search-space", str(space),
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


# --- issue 23: one line, never a traceback ------------------------------------------------

REPLAY = ("--simulator", "replay", "--search-space", "truth:qm9:200")


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory) -> Path:
    """A finished replay campaign (seconds): a run folder with saved models to predict with."""
    folder = tmp_path_factory.mktemp("replay") / "run"
    proc = _run(folder.parent, *REPLAY, "--out", str(folder))
    assert proc.returncode == 0, proc.stderr
    return folder


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_utils", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def _main(capsys, *args: str) -> tuple[int, str]:
    """The command run in this process (for checks made before any work): code, stderr."""
    from course_utils.__main__ import main

    code = main(list(args))
    return code, capsys.readouterr().err


def _commands(run: Path, out: str) -> dict[str, list[str]]:
    """Every command that takes an --out, with valid other arguments and ``out`` as --out."""
    configs = run.parent / "configs.txt"
    configs.write_text("batch_size=4\nbatch_size=8\n")
    return {
        "run": ["run", *REPLAY, "--quiet", "--out", out],
        "predict": ["predict", "--version", str(run / "models" / "v0001"), "CCO", "--out", out],
        "grade": ["grade", str(run), "--no-verify", "--out", out],
        "figures": ["figures", str(run), "--out", out],
        "sweep": ["sweep", "--configs", str(configs), *REPLAY, "--quiet", "--out", out],
        "truth build": ["truth", "build", "--search-space", "truth:qm9:10", "--limit", "0",
                        "--quiet", "--out", out],
        "truth status": ["truth", "status", "--search-space", "truth:qm9:10", "--out", out],
    }


@pytest.mark.parametrize("command", ["predict", "grade", "figures", "sweep", "truth build"])
def test_out_under_a_file_is_one_line(replay_run, tmp_path, command):
    (tmp_path / "blocker").write_text("mine\n")
    out = "blocker/sub/p.csv" if command in ("predict", "truth build") else "blocker/sub"
    line = _one_error_line(_cli(tmp_path, *_commands(replay_run, out)[command]))
    assert f"cannot create --out {out}: blocker is a file, not a folder" in line
    assert (tmp_path / "blocker").read_text() == "mine\n"


@pytest.mark.parametrize("command", ["predict", "grade", "sweep", "run"])
def test_output_error_after_the_checks_is_one_line(replay_run, tmp_path, capsys, monkeypatch,
                                                   command):
    """A disk that turns read-only (EROFS) while the command writes: one line, exit 2."""
    import errno

    import pandas as pd

    from course_utils import __main__ as cli

    def read_only(*_args, **_kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "o" / "x.csv"))

    target = {"predict": (pd.DataFrame, "to_csv"), "grade": (cli, "grade_main"),
              "sweep": (cli, "sweep_main"), "run": (cli, "run_campaign")}[command]
    monkeypatch.setattr(*target, read_only)
    out = str(tmp_path / "o" / "x.csv") if command == "predict" else str(tmp_path / "o")
    code, err = _main(capsys, *_commands(replay_run, out)[command])
    assert code == 2
    assert err.splitlines() == [f"error: cannot write --out {out} (Read-only file system: "
                                f"{tmp_path / 'o' / 'x.csv'}); give an --out you can write to"]


@pytest.mark.parametrize("command", ["predict", "grade", "figures", "sweep", "truth build"])
def test_read_only_out_is_refused_before_the_work(replay_run, tmp_path, capsys, monkeypatch,
                                                  command):
    import os

    monkeypatch.setattr(os, "access", lambda *_a, **_k: False)  # as on a read-only mount
    out = str(tmp_path / "ro" / "p.csv")
    code, err = _main(capsys, *_commands(replay_run, out)[command])
    assert code == 2
    assert err.splitlines() == [f"error: cannot write --out {out}: {tmp_path} is read-only or "
                                "not yours; give an --out you can write to"]
    assert not (tmp_path / "ro").exists()


@pytest.mark.parametrize("blank", ["", "  "])
@pytest.mark.parametrize("command", ["run", "predict", "grade", "figures", "sweep", "truth build",
                                     "truth status"])
def test_blank_out_is_refused(replay_run, tmp_path, capsys, monkeypatch, command, blank):
    monkeypatch.chdir(tmp_path)
    args = _commands(replay_run, "x")[command]
    args[args.index("--out") + 1] = blank
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = _main(capsys, *args)
    assert code == 2
    assert err.splitlines() == [f"error: --out is empty ({blank!r}); give a path, e.g. "
                                "--out outputs/mine"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written here


@pytest.mark.parametrize("workers", ["0", "-1"])
@pytest.mark.parametrize("command", ["run", "sweep", "truth build", "truth status"])
def test_workers_below_one_are_refused(replay_run, tmp_path, capsys, command, workers):
    args = _commands(replay_run, str(tmp_path / "out"))[command]
    code, err = _main(capsys, *args, "--workers", workers)
    assert code == 2
    assert err.splitlines() == [f"error: --workers {workers}: give at least 1 worker, or leave "
                                "--workers out"]
    assert not (tmp_path / "out").exists()


def test_missing_ground_truth_file_is_named(tmp_path):
    out = tmp_path / "run"
    missing = tmp_path / "nonexistent.csv"
    line = _one_error_line(_run(tmp_path, *REPLAY, "--ground-truth", str(missing),
                                "--out", str(out)))
    assert f"ground-truth table {missing} not found" in line
    assert not out.exists()


def test_a_batch_beyond_the_budget_is_noted_once_and_runs_one_batch(tmp_path):
    out = tmp_path / "run"
    proc = _run(tmp_path, *REPLAY, "--batch-size", "100", "--max-training-count", "24",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "note: batch_size 100 is more than the 16 simulations left after the initial 8; the "
        "one batch will have 16 (more only to replace failures)"]
    assert rec.read_iterations(out)["n_new"].tolist() == [16]


def test_an_os_error_elsewhere_is_not_blamed_on_out(tmp_path):
    import errno

    from course_utils.__main__ import _os_error_line

    out = tmp_path / "run"
    assert _os_error_line(OSError(errno.EADDRINUSE, "Address already in use"), out) == (
        "Address already in use")
    assert _os_error_line(OSError(errno.EACCES, "Permission denied", "/etc/x"), out) == (
        "Permission denied: /etc/x")
    assert _os_error_line(OSError(errno.ENOSPC, "No space left on device", str(out / "a.csv")),
                          out) == (f"cannot write --out {out} (No space left on device: "
                                   f"{out / 'a.csv'}); give an --out you can write to")


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_missing_search_space_file_is_named_before_anything_is_written(replay_run, tmp_path,
                                                                      command):
    missing = tmp_path / "nonexistent.csv"
    args = _commands(replay_run, str(tmp_path / "out"))[command]
    args[args.index("truth:qm9:200")] = str(missing)
    line = _one_error_line(_cli(tmp_path, *args))
    assert f"search-space file {missing} not found" in line
    assert not (tmp_path / "out").exists()


def test_sweep_errors_past_the_checks_are_one_line(tmp_path, capsys, monkeypatch):
    from course_utils import __main__ as cli
    from course_utils.ground_truth.table import GroundTruthError

    def fails(_args):
        raise GroundTruthError("no ground-truth table is shipped for 'x'\nsecond line")

    monkeypatch.setattr(cli, "sweep_main", fails)
    configs = tmp_path / "configs.txt"
    configs.write_text("batch_size=4\n")
    code, err = _main(capsys, "sweep", "--configs", str(configs), "--out", str(tmp_path / "s"))
    assert code == 2
    assert err.splitlines() == ["error: no ground-truth table is shipped for 'x'"]


# --------------------------------------------------------------------------- run's flags
# Captured from the hand-written parser before the flags were generated from CampaignParameters:
# instructors' scripts depend on every name, type, default and on what is required.
RUN_FLAGS = {
    ("--initial-training-count", "int", 8, False), ("--max-training-count", "int", 24, False),
    ("--batch-size", "int", 4, False), ("--seed", "int", 0, False),
    ("--acquisition", None, "greedy", False), ("--model", None, "knn", False),
    ("--mode", None, "batch", False), ("--search-space", None, "qm9", False),
    ("--config", None, "local", False),
    ("--workers", "int", None, False), ("--ucb-kappa", "float", 1.0, False),
    ("--epsilon", "float", 0.1, False), ("--retrain-after", "int", None, False),
    ("--score-chunks", "int", None, False), ("--engine", None, None, False),
    ("--simulation-walltime", "float", 300.0, False), ("--max-failures", "int", None, False),
    ("--ground-truth", None, None, False), ("--simulator", None, "xtb", False),
    ("--stop", None, "budget", False), ("--retrain", None, "every-batch", False),
    ("--valid-fraction", "float", 0.0, False), ("--arrival", None, "all", False),
    ("--trust-tol", "float", None, False), ("--trust-streak", "int", 3, False),
    ("--trust-ranks", "int", 2, False), ("--out", "_out_arg", None, True),
    ("--account", None, None, False), ("--queue", None, None, False),
    ("--walltime", None, None, False), ("--nodes", "int", None, False),
    ("--quiet", None, False, False),
}
RUN_HELP = {
    "--acquisition": "greedy|ucb|ei|pi|thompson|epsilon-greedy|random",
    "--mode": "batch|streaming",
    "--search-space": "'qm9' or a CSV/TSV file with a smiles column",
    "--config": "local|polaris, or local-mpi|polaris-mpi (with an MPI executor)",
    "--workers": "workers (per node on Polaris)",
    "--engine": "xtb|tblite (default: auto)",
    "--ground-truth": "replay: table file from `truth build` (default: the shipped table)",
    "--simulator": "xtb (real simulations) | replay (answers from the ground-truth table, "
                   "instant, simulated clock; with a partial --ground-truth table use "
                   "--search-space truth:qm9, the part it covers)",
    "--stop": "when the search is done: budget (default: only the budget) | "
              "converged:window=W,delta=D[,top=K] | predicted:delta=D[,min_points=M] (D in eV); "
              "a run a rule stopped is finished",
    "--retrain": "when to train a new model: every-batch (default) | count:N (after N new "
                 "results) | growth:F (once the successful data grew by F, e.g. 0.25)",
    "--valid-fraction": "share of successful simulations held out to validate each model "
                        "(seeded, a molecule never changes sides; default 0)",
    "--arrival": "all (default) | waves:W,every:K: the search space arrives in W seeded waves, "
                 "one more every K successful simulations",
    "--trust-tol": "trust checks (batch mode, needs --config local-mpi|polaris-mpi; a replay "
                   "runs them in-process on any config): a pick whose model value and cheap MPI "
                   "check agree within this many eV gets no full simulation (default: no checks)",
    "--trust-streak": "stop after this many consecutive fully trusted batches",
    "--trust-ranks": "MPI ranks of each batch's cheap check",
    "--out": "output folder",
    "--account": "Polaris: ALCF project to charge",
    "--queue": "Polaris: debug|prod|...",
    "--walltime": "Polaris: HH:MM:SS of Parsl's own job",
    "--nodes": "Polaris: nodes",
    "--quiet": "no progress bar",
}


def _run_subparser():
    import argparse

    from course_utils.__main__ import _run_parser

    sub = argparse.ArgumentParser(prog="python -m course_utils").add_subparsers(dest="command")
    _run_parser(sub)
    return sub.choices["run"]


def _flags(parser) -> dict[str, object]:
    return {a.option_strings[-1]: a for a in parser._actions if a.dest != "help"}


def test_run_flags_are_the_ones_scripts_use():
    flags = _flags(_run_subparser())
    got = {(name, getattr(a.type, "__name__", a.type), a.default, a.required)
           for name, a in flags.items()}
    assert got == RUN_FLAGS
    assert all(len(a.option_strings) == 1 and a.choices is None and a.metavar is None
               for a in flags.values())  # no aliases; a wrong value is refused by validate()
    assert {name: flags[name].help for name in RUN_HELP} == RUN_HELP


@pytest.mark.parametrize(("argv", "expected"), [
    (["--out", "o"], {}),
    (["--out", "o", "--initial-training-count", "5", "--ucb-kappa", "2.5", "--workers", "3",
      "--trust-tol", "0.1", "--engine", "tblite", "--ground-truth", "t.csv", "--acquisition", "ucb",
      "--retrain-after", "2", "--quiet", "--account", "A", "--nodes", "2", "--walltime", "0:10:00"],
     {"initial_training_count": 5, "ucb_kappa": 2.5, "workers": 3, "trust_tol": 0.1,
      "engine": "tblite", "ground_truth": "t.csv", "acquisition": "ucb", "retrain_after": 2,
      "quiet": True, "account": "A", "nodes": 2, "walltime": "0:10:00"}),
    (["--out", " ", "--acquisition", "bogus", "--valid-fraction", "1e-1", "--seed=3"],
     {"out": " ", "acquisition": "bogus", "valid_fraction": 0.1, "seed": 3}),
    (["--simulation-wall", "10", "--out", "o", "--stop", "converged:window=2,delta=0.1"],
     {"simulation_walltime": 10.0, "stop": "converged:window=2,delta=0.1"}),  # abbreviation
])
def test_run_command_lines_parse_as_before(argv, expected):
    defaults = {"initial_training_count": 8, "max_training_count": 24, "batch_size": 4, "seed": 0,
                "acquisition": "greedy", "model": "knn", "mode": "batch", "search_space": "qm9",
                "config": "local", "workers": None, "ucb_kappa": 1.0, "epsilon": 0.1, "retrain_after": None,
                "score_chunks": None, "engine": None, "simulation_walltime": 300.0,
                "max_failures": None, "ground_truth": None, "simulator": "xtb", "stop": "budget",
                "retrain": "every-batch", "valid_fraction": 0.0, "arrival": "all",
                "trust_tol": None, "trust_streak": 3, "trust_ranks": 2, "out": Path("o"),
                "account": None, "queue": None, "walltime": None, "nodes": None, "quiet": False}
    assert vars(_run_subparser().parse_args(argv)) == {**defaults, **expected}


@pytest.mark.parametrize("argv", [["--out", "o", "--batch-size", "2.5"],
                                  ["--out", "o", "--trust-tol", "x"], ["--seed", "1"],
                                  ["--out", "o", "--max", "30"]])  # --max: two flags begin so
def test_run_command_lines_refused_by_argparse_as_before(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        _run_subparser().parse_args(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_every_parameter_is_a_run_flag_with_its_help():
    from dataclasses import fields

    from course_utils.campaign.parameters import CampaignParameters

    flags = _flags(_run_subparser())
    for field in fields(CampaignParameters):
        action = flags[f"--{field.name.replace('_', '-')}"]
        assert (action.dest, action.default) == (field.name, field.default)
        assert action.help and action.help == field.metadata["help"]


@pytest.mark.parametrize(("annotation", "expected"), [
    (int, int), (float | None, float), (str, None), (str | None, None), (bool, TypeError),
    (list[int], TypeError), (int | str, TypeError)])
def test_a_parameter_type_without_a_plain_flag_is_refused(annotation, expected):
    from course_utils.__main__ import _flag_type

    if expected is TypeError:
        with pytest.raises(TypeError, match="CampaignParameters.x: no flag"):
            _flag_type("x", annotation)
    else:
        assert _flag_type("x", annotation) is expected


@pytest.mark.parametrize(("spelling", "said"), [("svm", "svm"), ("gp:foo=1", "foo")])
def test_an_unknown_model_or_option_is_one_line(tmp_path, spelling, said):
    out = tmp_path / "run"
    line = _one_error_line(_run(tmp_path, "--model", spelling, "--out", str(out)))
    assert "model" in line and said in line
    assert not out.exists()


# --- issue 30: every input a tester tried gets one line -------------------------------------
def _garbage_model(run: Path, tmp: Path) -> str:
    """A copy of the run whose model file is garbage, its JSON's checksum updated to match."""
    import hashlib
    import json
    import shutil

    copy = tmp / "garbage-model"
    shutil.copytree(run, copy)
    model = copy / "models" / "v0001.joblib"
    model.write_bytes(b"\x80\x04\x95 not a pickle at all " * 8)
    info_path = model.with_suffix(".json")
    info = json.loads(info_path.read_text())
    info["model_sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
    info_path.write_text(json.dumps(info))
    return str(copy / "models" / "v0001")


def _run_copy(run: Path, tmp: Path, damage: str) -> str:
    import shutil

    copy = tmp / damage
    shutil.copytree(run, copy)
    if damage == "no-results":
        (copy / rec.RESULTS_FILE).unlink()
    elif damage == "empty-simulations":
        (copy / rec.SIMULATIONS_FILE).write_text("")
    return str(copy)


def _sweep_file(tmp: Path, text: str) -> str:
    path = tmp / "configs.txt"
    path.write_text(text)
    return str(path)


WHY_INPUTS = {  # name: (argv given the replay run and a scratch folder, words of the error)
    "predict --version ''": (lambda run, tmp: ["predict", "--version", "", "CCO"],
                             "--version '' names no model version"),
    "predict --model '' (the older spelling)": (lambda run, tmp: ["predict", "--model", "", "CCO"],
                                                "--model '' names no model version"),
    "predict, garbage model with a matching checksum": (
        lambda run, tmp: ["predict", "--model", _garbage_model(run, tmp), "CCO"],
        "cannot be loaded as a model"),
    "truth build --limit -1": (
        lambda run, tmp: ["truth", "build", "--search-space", "truth:qm9:10", "--limit", "-1",
                          "--quiet", "--out", str(tmp / "gt.csv")], "--limit -1"),
    "truth build --config foo": (
        lambda run, tmp: ["truth", "build", "--search-space", "truth:qm9:10", "--limit", "0",
                          "--config", "foo", "--quiet", "--out", str(tmp / "gt.csv")],
        "--config 'foo' is unknown; choose one of local"),
    "truth status --out missing": (
        lambda run, tmp: ["truth", "status", "--out", str(tmp / "nonexistent.csv")],
        "nonexistent.csv not found"),
    "run --engine foo (replay)": (
        lambda run, tmp: ["run", *REPLAY, "--engine", "foo", "--out", str(tmp / "o")],
        "engine 'foo' is unknown; choose one of xtb, tblite"),
    "run --trust-streak 0": (
        lambda run, tmp: ["run", *REPLAY, "--trust-streak", "0", "--out", str(tmp / "o")],
        "trust_streak (0) must be at least 1"),
    "run --trust-ranks 0": (
        lambda run, tmp: ["run", *REPLAY, "--trust-ranks", "0", "--out", str(tmp / "o")],
        "trust_ranks (0) must be at least 1"),
    "run --model knn:": (
        lambda run, tmp: ["run", *REPLAY, "--model", "knn:", "--out", str(tmp / "o")],
        "model 'knn:': nothing after ':'"),
    "run --model KNN": (
        lambda run, tmp: ["run", *REPLAY, "--model", "KNN", "--out", str(tmp / "o")],
        "model 'KNN' is unknown; choose one of knn"),
    "run --acquisition GREEDY": (
        lambda run, tmp: ["run", *REPLAY, "--acquisition", "GREEDY", "--out", str(tmp / "o")],
        "acquisition 'GREEDY' is unknown; choose one of greedy"),
    "run --seed 2**70": (
        lambda run, tmp: ["run", *REPLAY, "--seed", "1180591620717411303424",
                          "--out", str(tmp / "o")],
        "seed (1180591620717411303424) must be a non-negative integer up to 4294967295"),
    "figures --ground-truth missing": (
        lambda run, tmp: ["figures", str(run), "--out", str(tmp / "f"), "--ground-truth",
                          str(tmp / "nonexistent.csv")], "nonexistent.csv: no such file"),
    "figures --ground-truth garbage": (
        lambda run, tmp: ["figures", str(run), "--out", str(tmp / "f"), "--ground-truth",
                          _sweep_file(tmp, "not,a\ntable,at all\n")],
        "is not a ground-truth table"),
    "figures, empty simulations.csv": (
        lambda run, tmp: ["figures", _run_copy(run, tmp, "empty-simulations"),
                          "--out", str(tmp / "f")], "holds no simulation"),
    "figures, no results.json": (
        lambda run, tmp: ["figures", _run_copy(run, tmp, "no-results"), "--out", str(tmp / "f")],
        "no results.json"),
    "sweep, a key twice on a line": (
        lambda run, tmp: ["sweep", "--configs", _sweep_file(tmp, "batch_size=4 batch_size=8\n"),
                          *REPLAY, "--quiet", "--out", str(tmp / "s")],
        "line 1: batch_size is given twice"),
    "sweep --rungs ''": (
        lambda run, tmp: ["sweep", "--configs", _sweep_file(tmp, "batch_size=4\nbatch_size=8\n"),
                          *REPLAY, "--rungs", "", "--quiet", "--out", str(tmp / "s")],
        "rungs '' is empty"),
}


@pytest.mark.parametrize("case", list(WHY_INPUTS))
def test_each_input_a_tester_tried_is_one_error_line(replay_run, tmp_path, capsys, case):
    make_argv, words = WHY_INPUTS[case]
    argv = make_argv(replay_run, tmp_path)
    capsys.readouterr()
    code, err = _main(capsys, *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert words in lines[0]
    for made in ("o", "f", "s"):
        assert not (tmp_path / made).exists()  # refused before anything is written


def test_trust_checks_of_a_replay_on_the_local_config_run_and_say_how(tmp_path):
    out = tmp_path / "run"
    proc = _run(tmp_path, *REPLAY, "--trust-tol", "0.1", "--config", "local",
                "--max-training-count", "12", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "trust checks" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "in this process" in notes[0]
    assert (out / "checks.csv").is_file()


def test_trust_checks_of_real_simulations_still_need_the_mpi_config(tmp_path):
    line = _one_error_line(_run(tmp_path, "--trust-tol", "0.1", "--config", "local",
                                "--out", str(tmp_path / "run")))
    assert "use config='local-mpi'" in line
