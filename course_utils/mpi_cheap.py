"""Cheap-fidelity ionization energies of many molecules as one MPI program.

    mpiexec -n 4 python -m course_utils.mpi_cheap --input smiles.txt --out result.csv

One Parsl task (see :func:`course_utils.apps.cheap_mpi_app`) screens a whole list on many ranks,
as an HPC code would, instead of one task per molecule. The input has one SMILES per line. Every
rank reads it and takes a round-robin share; rank 0 gathers the records and writes one CSV in
input order (``smiles, ie, status, error, rank, seconds``; ``ie`` in eV, empty on failure),
atomically, so a reader never sees half a file. A molecule that fails is a ``failed`` row with
its one-line error; the others still complete. Without mpi4py, and not started by an MPI
launcher, the program runs as a single rank.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils.chemistry import molecule_row, resolve_engine
from course_utils.resilience import one_line

COLUMNS = ("smiles", "ie", "status", "error", "rank", "seconds")
STATUS_OK, STATUS_FAILED = "ok", "failed"
_GATHER_TAG = 17
_POLL_SECONDS = 0.02
# Set in every rank by the launchers we meet: MPICH/Hydra and Cray PALS (PMI), Open MPI, PMIx.
_LAUNCHER_VARIABLES = ("PMI_RANK", "PALS_RANKID", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
_LAUNCHER_SIZES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def rank_share(n_items: int, n_ranks: int, rank: int) -> list[int]:
    """Input positions rank ``rank`` computes: round robin, so shares differ by at most one
    molecule and each holds a mix of the list (neighbours in QM9 order have similar sizes)."""
    if n_ranks < 1 or not 0 <= rank < n_ranks:
        raise ValueError(f"rank {rank} is not one of {n_ranks} ranks")
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    return list(range(rank, n_items, n_ranks))


def _failed_row(smiles: str, err: BaseException, seconds: float) -> dict[str, Any]:
    """What ``molecule_row`` leaves to its caller (a missing engine, anything unexpected): in
    an MPI program it is one molecule's failure too."""
    return {"smiles": smiles, "ie": math.nan, "status": STATUS_FAILED,
            "error": one_line(err), "seconds": seconds}


def evaluate_share(smiles: Sequence[str], positions: Iterable[int], rank: int = 0,
                   engine: str | None = None) -> list[dict[str, Any]]:
    """Cheap-fidelity records of ``smiles[i]`` for each position ``i``; failures become records.

    Any exception of one molecule is caught: in an MPI program a rank that dies takes the
    whole job (and every other rank's results) with it.
    """
    records = []
    for i in positions:
        start = time.perf_counter()
        try:
            row = molecule_row(smiles[i], engine, fidelity="cheap")
        except Exception as err:  # noqa: BLE001 - recorded per molecule, see the docstring
            row = _failed_row(smiles[i], err, time.perf_counter() - start)
        records.append({"position": i, "smiles": smiles[i], "ie": row["ie"],
                        "status": row["status"], "error": one_line(row["error"]),
                        "rank": rank, "seconds": row["seconds"]})
    return records


def gather_frame(shares: Iterable[Sequence[dict[str, Any]]], n_items: int) -> pd.DataFrame:
    """Rank 0's merge of every rank's records into one frame in input order.

    A position missing or computed twice means the split and the ranks disagree: that is a
    bug to report, never a table to write.
    """
    rows = [record for share in shares for record in share]
    frame = pd.DataFrame(rows, columns=["position", *COLUMNS])
    frame = frame.sort_values("position", kind="stable").reset_index(drop=True)
    if frame["position"].tolist() != list(range(n_items)):
        raise ValueError(f"the ranks returned positions {frame['position'].tolist()[:10]}..., "
                         f"expected each of 0..{n_items - 1} once")
    return frame.drop(columns="position").astype({"ie": float, "rank": int, "seconds": float})


def write_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            frame.to_csv(handle, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """The result CSV as written: ``ie`` NaN for failures, empty strings kept as strings."""
    return pd.read_csv(path, keep_default_na=False, na_values={"ie": ["", "nan", "NaN"]},
                       dtype={"smiles": str, "status": str, "error": str, "rank": int,
                              "seconds": float, "ie": float})


def read_smiles(path: str | os.PathLike) -> list[str]:
    """One SMILES per line; every line counts (a blank one is reported as an invalid molecule)."""
    return Path(path).read_text().splitlines()


def launcher_size(environ: dict[str, str] | None = None) -> int:
    """Ranks the MPI launcher says it started (1 when none did)."""
    environ = os.environ if environ is None else environ
    sizes = [int(environ[name]) for name in _LAUNCHER_SIZES if environ.get(name, "").isdigit()]
    return max(sizes, default=1)


def _world():
    """MPI's world communicator, or None to run as a single rank where MPI is absent."""
    try:
        from mpi4py import MPI
    except ImportError as err:
        if any(name in os.environ for name in _LAUNCHER_VARIABLES):
            raise SystemExit(f"mpi_cheap was started by an MPI launcher but cannot import mpi4py "
                             f"({err}); install it: pip install 'course-utils[mpi]'") from err
        return None
    if MPI.COMM_WORLD.Get_size() == 1 < launcher_size():
        # An mpi4py built for another MPI than this mpiexec's: every rank would think it is
        # alone and compute the whole list.
        raise SystemExit(f"mpi_cheap: mpiexec started {launcher_size()} ranks but mpi4py sees 1: "
                         f"mpi4py ({MPI.Get_library_version().splitlines()[0]}) does not match "
                         "this mpiexec; use the MPI that mpi4py was built with")
    return MPI.COMM_WORLD


def _gather(comm, share: list[dict[str, Any]]) -> list[list[dict[str, Any]]] | None:
    """``comm.gather`` to rank 0 without busy waiting.

    MPICH spins a core inside blocking calls; ranks that finish first would steal CPU from
    those still computing (or the idle ranks of a short list would, all along).
    """
    from mpi4py import MPI

    if comm.Get_rank() != 0:
        request = comm.isend(share, dest=0, tag=_GATHER_TAG)
        while not request.Test():
            time.sleep(_POLL_SECONDS)
        return None
    shares = [share]
    for _ in range(comm.Get_size() - 1):
        while not comm.iprobe(source=MPI.ANY_SOURCE, tag=_GATHER_TAG):
            time.sleep(_POLL_SECONDS)
        shares.append(comm.recv(source=MPI.ANY_SOURCE, tag=_GATHER_TAG))
    return shares


def run(input_file: str | os.PathLike, out: str | os.PathLike, engine: str | None = None,
        comm=None) -> pd.DataFrame | None:
    """This rank's part of the program; rank 0 returns the frame it wrote, others None."""
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    smiles = read_smiles(input_file)
    name = resolve_engine(engine)  # no engine is a broken install: stop, not n failed rows
    share = evaluate_share(smiles, rank_share(len(smiles), size, rank), rank, name)
    shares = _gather(comm, share) if comm is not None else [share]
    if shares is None:
        return None
    frame = gather_frame(shares, len(smiles))
    write_atomic(frame, out)
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.mpi_cheap",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="text file, one SMILES per line")
    parser.add_argument("--out", required=True, help="result CSV (written by rank 0)")
    parser.add_argument("--engine", default=None, help="xtb | tblite | auto (default)")
    args = parser.parse_args(argv)
    comm = _world()
    try:
        frame = run(args.input, args.out, args.engine, comm)
    except Exception as err:  # noqa: BLE001 - one rank's crash must not leave the others waiting
        print(f"mpi_cheap: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        if comm is not None and comm.Get_size() > 1:
            comm.Abort(1)
        return 1
    if frame is not None:
        failed = int((frame["status"] != STATUS_OK).sum())
        size = comm.Get_size() if comm is not None else 1
        print(f"mpi_cheap: {len(frame)} molecules ({failed} failed) on {size} rank(s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
