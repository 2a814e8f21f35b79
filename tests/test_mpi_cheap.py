"""The cheap-fidelity MPI program: its split and gather, real ``mpiexec`` runs on 1, 2 and 4 ranks,
and the Parsl bash app on the ``local-mpi`` config; every run must match the serial values."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from course_utils import mpi_cheap
from course_utils.apps import _cheap_mpi, mpi_resource_spec
from course_utils.chemistry import compute_vertical

GOOD = ["C", "CC", "O", "CO", "N"]
# Unparsable, and one with no 3D geometry (cyclopropyne: embedding fails after every retry).
BAD = {"not a smiles": "InvalidSmilesError", "C1#CC1": "EmbeddingError"}
MIXED = ["C", "not a smiles", "CC", "O", "C1#CC1", "CO", "N"]

MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs MPICH's mpiexec and mpi4py: pip install 'course-utils[mpi]' (activate_env.sh does)")


@pytest.fixture(scope="module")
def serial() -> dict[str, float]:
    return {s: compute_vertical(s, fidelity="cheap") for s in GOOD}


def _check(frame: pd.DataFrame, smiles: list[str], serial: dict[str, float]) -> None:
    """Input order, the serial numbers for the good molecules, typed one-line errors for the bad."""
    assert list(frame.columns) == list(mpi_cheap.COLUMNS)
    assert frame["smiles"].tolist() == smiles
    for row in frame.itertuples():
        if row.smiles in BAD:
            assert row.status == "failed" and math.isnan(row.ie)
            assert row.error.startswith(BAD[row.smiles] + ": ") and "\n" not in row.error
        else:
            assert row.status == "ok" and row.error == ""
            assert row.ie == pytest.approx(serial[row.smiles], abs=1e-6)
        assert row.seconds >= 0


# --- plain functions --------------------------------------------------------------------------
@pytest.mark.parametrize("n_items", [0, 1, 5, 7])
@pytest.mark.parametrize("n_ranks", [1, 2, 3, 8])
def test_round_robin_split_covers_every_molecule_once(n_items, n_ranks):
    shares = [mpi_cheap.rank_share(n_items, n_ranks, r) for r in range(n_ranks)]
    assert sorted(i for share in shares for i in share) == list(range(n_items))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert shares == [mpi_cheap.rank_share(n_items, n_ranks, r) for r in range(n_ranks)]


@pytest.mark.parametrize(("n_ranks", "rank"), [(0, 0), (2, 2), (2, -1)])
def test_split_rejects_a_rank_outside_the_job(n_ranks, rank):
    with pytest.raises(ValueError, match="rank"):
        mpi_cheap.rank_share(3, n_ranks, rank)


def _record(i: int, rank: int) -> dict:
    return {"position": i, "smiles": f"S{i}", "ie": float(i), "status": "ok", "error": "",
            "rank": rank, "seconds": 0.1}


def test_gather_puts_every_rank_back_in_input_order():
    shares = [[_record(1, 1), _record(3, 1)], [_record(0, 0), _record(2, 0), _record(4, 0)], []]
    frame = mpi_cheap.gather_frame(shares, 5)
    assert frame["smiles"].tolist() == [f"S{i}" for i in range(5)]
    assert frame["rank"].tolist() == [0, 1, 0, 1, 0]
    assert list(frame.columns) == list(mpi_cheap.COLUMNS)
    assert mpi_cheap.gather_frame([[], []], 0).empty


@pytest.mark.parametrize("positions", [[0, 2], [0, 1, 1, 2]])
def test_gather_refuses_a_missing_or_repeated_molecule(positions):
    with pytest.raises(ValueError, match="expected each"):
        mpi_cheap.gather_frame([[_record(i, 0) for i in positions]], 3)


def test_result_file_is_written_atomically_and_reads_back(tmp_path):
    frame = pd.DataFrame({"smiles": ["C", "N", "bad"], "ie": [16.9, float("nan"), float("nan")],
                          "status": ["ok", "ok", "failed"], "error": ["", "", "X: y"],
                          "rank": [0, 1, 0], "seconds": [0.1, 0.2, 0.0]})
    out = mpi_cheap.write_atomic(frame, tmp_path / "sub" / "out.csv")
    assert [p.name for p in out.parent.iterdir()] == ["out.csv"]  # no temporary file left
    back = mpi_cheap.read_results(out)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back["error"].tolist() == ["", "", "X: y"] and back["ie"].isna().tolist()[1:] == [1, 1]


def test_single_rank_without_mpi_writes_the_same_table(tmp_path, serial):
    listing = tmp_path / "in.smiles"
    listing.write_text("\n".join(MIXED) + "\n")
    frame = mpi_cheap.run(listing, tmp_path / "out.csv", comm=None)
    _check(mpi_cheap.read_results(tmp_path / "out.csv"), MIXED, serial)
    assert frame["rank"].eq(0).all()


def test_launcher_size_is_read_from_the_launchers_variables():
    """Compared with mpi4py's world size, it catches an mpi4py built for another MPI."""
    assert mpi_cheap.launcher_size({}) == 1
    assert mpi_cheap.launcher_size({"PMI_SIZE": "4", "PMI_RANK": "2"}) == 4
    assert mpi_cheap.launcher_size({"OMPI_COMM_WORLD_SIZE": "3", "PMI_SIZE": "x"}) == 3


def test_resource_spec_and_command_line(tmp_path):
    assert mpi_resource_spec(4) == {"num_nodes": 1, "num_ranks": 4, "ranks_per_node": 4}
    assert mpi_resource_spec(6, nodes=4)["ranks_per_node"] == 2
    for ranks, nodes in ((0, 1), (2, 3), (True, 1)):
        with pytest.raises(ValueError):
            mpi_resource_spec(ranks, nodes)
    out = tmp_path / "a b" / "r.csv"
    command = _cheap_mpi(["C", "O"], str(out), python="/opt/py thon", engine="tblite")
    assert (out.parent / "r.csv.smiles").read_text() == "C\nO\n"
    assert "export OMP_NUM_THREADS=1" in command
    assert ("$PARSL_MPI_PREFIX ${COURSE_UTILS_MPI_OPTIONS:-} '/opt/py thon' "
            "-m course_utils.mpi_cheap") in command
    assert f"--out '{out}' --engine tblite" in command


# --- the real program under MPICH's mpiexec ---------------------------------------------------
def _mpirun(ranks: int, smiles: list[str], folder: Path) -> pd.DataFrame:
    """``mpiexec -n ranks python -m course_utils.mpi_cheap``; a hang kills its group."""
    listing, out = folder / f"in{ranks}.smiles", folder / f"out{ranks}.csv"
    listing.write_text("".join(f"{s}\n" for s in smiles))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_UTILS_XTB_THREADS": "1"}
    proc = subprocess.Popen([MPIEXEC, "-n", str(ranks), sys.executable, "-m",
                             "course_utils.mpi_cheap", "--input", str(listing),
                             "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-2000:]
    assert f"on {ranks} rank(s)" in stdout
    return mpi_cheap.read_results(out)


@needs_mpi
@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_mpi_program_matches_the_serial_values(ranks, tmp_path, serial):
    frame = _mpirun(ranks, MIXED, tmp_path)
    _check(frame, MIXED, serial)
    assert frame["rank"].tolist() == [i % ranks for i in range(len(MIXED))]


@needs_mpi
def test_more_ranks_than_molecules_leaves_ranks_idle(tmp_path, serial):
    frame = _mpirun(3, ["CC", "not a smiles"], tmp_path)
    _check(frame, ["CC", "not a smiles"], serial)
    assert frame["rank"].tolist() == [0, 1]


# --- through Parsl: the bash app on the local-mpi config -------------------------------------
_PARSL_DRIVER = textwrap.dedent("""
    import json, sys
    import parsl
    from course_utils.apps import cheap_results_app, simulate_record_app, submit_cheap_mpi
    from course_utils.configs import make_config

    folder, smiles = sys.argv[1], json.loads(sys.argv[2])
    with parsl.load(make_config("local-mpi", workers=1, run_dir=folder + "/runinfo")):
        task = submit_cheap_mpi(smiles, folder + "/cheap.csv", ranks=2)
        table = cheap_results_app(folder + "/cheap.csv", task).result(timeout=240)
        beside = simulate_record_app("CC", fidelity="cheap").result(timeout=240)
    print(json.dumps({"exit": task.result(), "beside": beside["ie"]}))
""")


@needs_mpi
def test_parsl_bash_app_on_the_local_mpi_config(tmp_path, serial):
    """One MPI task of 2 ranks through Parsl's MPI mode, with an ordinary app beside it.

    Its own process: a test session may already hold a loaded Parsl configuration. Its folder's
    name needs quoting in a shell, as the ranks' input and output paths then do."""
    folder = tmp_path / "mpi (1) it's \"q\" $HOME é"
    folder.mkdir()
    proc = subprocess.run([sys.executable, "-c", _PARSL_DRIVER, str(folder), json.dumps(MIXED)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["exit"] == 0
    assert report["beside"] == pytest.approx(serial["CC"], abs=1e-6)
    frame = mpi_cheap.read_results(folder / "cheap.csv")
    _check(frame, MIXED, serial)
    assert set(frame["rank"]) == {0, 1}
    log = (folder / "cheap.csv.log").read_text()
    assert "on 2 rank(s)" in log
