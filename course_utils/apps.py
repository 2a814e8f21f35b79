"""Parsl apps: thin wrappers over plain ``course_utils`` functions.

Defining apps in an importable module (not in a notebook) lets workers import the real
functions by reference, which is Parsl's recommended structure. Each wrapper only forwards
arguments; the science lives in :mod:`course_utils.chemistry` and :mod:`course_utils.ml` (the
campaign's apps take any model part that keeps :class:`course_utils.ml.contract.Model`).
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from parsl import bash_app, python_app

from course_utils.chemistry import compute_vertical, molecule_row
from course_utils.configs import EXECUTOR_LABEL, MPI_EXECUTOR_LABEL, MPI_OPTIONS_ENV, thread_exports
from course_utils.ml.contract import Model, prediction_table
from course_utils.ml.knn import run_model, train_model
from course_utils.mpi_cheap import read_results as read_cheap_results

#: Seconds a single simulation may run before Parsl raises ``AppTimeout`` (typical: < 2 s).
SIMULATION_WALLTIME = 300.0
#: Ordinary apps run on the workers; in the ``-mpi`` configs the MPI executor beside them only
#: takes tasks that say how many ranks they need.
ON_WORKERS = [EXECUTOR_LABEL]


def _simulate(
    smiles: str,
    engine: str | None = None,
    threads: int | None = None,
    walltime: float | None = SIMULATION_WALLTIME,
    fidelity: str = "full",
) -> float:
    """Ionization energy in eV; ``walltime`` is consumed by Parsl to stop hung simulations."""
    return compute_vertical(smiles, engine=engine, threads=threads, fidelity=fidelity)


def _train(train_data: pd.DataFrame, n_neighbors: int = 4):
    return train_model(train_data, n_neighbors=n_neighbors)


def _score(model, smiles: Sequence[str]) -> pd.DataFrame:
    return run_model(model, list(smiles))


def _combine(*chunks: pd.DataFrame) -> pd.DataFrame:
    """Reduce step: join scored chunks and rank by predicted IE, highest first."""
    frame = pd.concat(chunks, ignore_index=True)
    return frame.sort_values("ie", ascending=False, kind="stable").reset_index(drop=True)


class SmilesBlock:
    """Many SMILES shipped to a worker as one string.

    Parsl serializes task data with dill, which pickles a list of 65,000 Python strings ~40x
    slower than one joined string; campaigns send the search space every iteration.
    """

    def __init__(self, smiles: Sequence[str]):
        self.text = "\n".join(smiles)
        self._n = len(smiles)

    def __len__(self) -> int:
        return self._n

    def to_list(self) -> list[str]:
        return self.text.split("\n") if self._n else []

    def __reduce__(self):
        return (_block_from_text, (self.text, self._n))


def _block_from_text(text: str, n: int) -> SmilesBlock:
    block = SmilesBlock.__new__(SmilesBlock)
    block.text, block._n = text, n
    return block


def _fit(model: Model, training: pd.DataFrame) -> Model:
    """The campaign's model part fitted on a training frame (``smiles``, ``ie``)."""
    return model.fit(training["smiles"].tolist(), training["ie"].to_numpy())


def _predict_block(model: Model, block: SmilesBlock) -> np.ndarray:
    """The model's mean and std (eV) of a block as an (n, 2) array: numbers travel fast."""
    mean, std = model.predict(block.to_list())
    return np.column_stack([mean, std])


def _stack(*parts):
    """Reduce step of the campaign: the chunks' arrays in search-space order."""
    return np.concatenate(parts, axis=0)


simulate_app = python_app(_simulate, executors=ON_WORKERS)
train_app = python_app(_train, executors=ON_WORKERS)
score_app = python_app(_score, executors=ON_WORKERS)
combine_app = python_app(_combine, executors=ON_WORKERS)
fit_app = python_app(_fit, executors=ON_WORKERS)
predict_block_app = python_app(_predict_block, executors=ON_WORKERS)
predict_app = python_app(prediction_table, executors=ON_WORKERS)
stack_app = python_app(_stack, executors=ON_WORKERS)


def chunked(items: Sequence[str], n_chunks: int) -> list[list[str]]:
    """Split ``items`` into ``n_chunks`` nearly equal contiguous pieces (none empty)."""
    if n_chunks < 1:
        raise ValueError(f"n_chunks must be >= 1, got {n_chunks}")
    items = list(items)
    n_chunks = min(n_chunks, max(len(items), 1))
    size, extra = divmod(len(items), n_chunks)
    out, start = [], 0
    for i in range(n_chunks):
        stop = start + size + (1 if i < extra else 0)
        out.append(items[start:stop])
        start = stop
    return out


def _simulate_record(
    smiles: str,
    engine: str | None = None,
    threads: int | None = None,
    walltime: float | None = SIMULATION_WALLTIME,
    fidelity: str = "full",
) -> dict:
    """Run one simulation and describe it: value or error, where it ran and when.

    Chemistry failures come back as records (status ``failed``) so a campaign can log them with
    their timings; a timeout or a dying worker still surfaces as the future's exception.
    ``fidelity="cheap"`` skips the xTB relaxation (see :func:`~course_utils.chemistry.compute_vertical`).
    """
    record = {
        "smiles": smiles,
        "host": socket.gethostname(),
        "manager": os.environ.get("PARSL_WORKER_POOL_ID", ""),
        "worker": os.environ.get("PARSL_WORKER_RANK", ""),
        "pid": os.getpid(),
        "start_time": time.time(),
    }
    row = molecule_row(smiles, engine=engine, threads=threads, fidelity=fidelity)
    record.update(ie=row["ie"], status=row["status"], error=row["error"])
    record["end_time"] = time.time()
    return record


simulate_record_app = python_app(_simulate_record, executors=ON_WORKERS)


def _truth_record(smiles: str, engine: str | None = None, walltime: float | None = 120.0) -> dict:
    """One row of the ground-truth table (see :mod:`course_utils.ground_truth.build`); ``walltime`` is
    consumed by Parsl."""
    return molecule_row(smiles, engine=engine)


truth_record_app = python_app(_truth_record, executors=ON_WORKERS)


# --------------------------------------------------------------------------- MPI programs


def mpi_resource_spec(ranks: int, nodes: int = 1) -> dict[str, int]:
    """Parsl's per-task request for an MPI app: ``ranks`` ranks spread over ``nodes`` nodes."""
    for name, value in (("ranks", ranks), ("nodes", nodes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if ranks < nodes:
        raise ValueError(f"{ranks} rank(s) cannot fill {nodes} nodes")
    return {"num_nodes": nodes, "num_ranks": ranks, "ranks_per_node": -(-ranks // nodes)}


def _cheap_mpi(
    smiles: SmilesBlock | Sequence[str],
    out_file: str,
    python: str | None = None,
    engine: str | None = None,
    parsl_resource_specification: dict | None = None,
    stdout: str | None = None,
    stderr: str | None = None,
) -> str:
    """Command line of :mod:`course_utils.mpi_cheap` on the task's ranks.

    Runs on the worker: the SMILES are written beside ``out_file`` there (``<out_file>.smiles``),
    where the ranks read them. ``python`` is an interpreter path (default: the worker's), so
    neither PATH nor an activated environment decides which Python the ranks run.
    """
    items = smiles.to_list() if isinstance(smiles, SmilesBlock) else list(smiles)
    out = Path(out_file)
    listing = out.with_name(out.name + ".smiles")
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{s}\n" for s in items))
    engine_option = f" --engine {shlex.quote(engine)}" if engine else ""
    return (f"{thread_exports(1)}\n"
            f"$PARSL_MPI_PREFIX ${{{MPI_OPTIONS_ENV}:-}} {shlex.quote(python or sys.executable)} "
            f"-m course_utils.mpi_cheap --input {shlex.quote(str(listing))} "
            f"--out {shlex.quote(str(out))}{engine_option}")


cheap_mpi_app = bash_app(_cheap_mpi, executors=[MPI_EXECUTOR_LABEL])


def submit_cheap_mpi(smiles: Sequence[str], out_file: str | os.PathLike, ranks: int = 2, *,
                     nodes: int = 1, engine: str | None = None):
    """Screen ``smiles`` at the cheap fidelity as one MPI task of ``ranks`` ranks.

    Needs a ``-mpi`` config. The future's result is the exit code (a failed program raises
    ``BashExitFailure``; its output is in ``<out_file>.log``); then read the table with
    :func:`read_cheap_results` or chain :data:`cheap_results_app` on the future.
    """
    items = list(smiles)
    bad = [s for s in items if not isinstance(s, str) or "\n" in s or "\r" in s]
    if bad:
        raise ValueError(f"SMILES must be one-line strings; got {bad[0]!r}")
    out = str(Path(out_file).absolute())
    return cheap_mpi_app(SmilesBlock(items), out, python=sys.executable, engine=engine,
                         parsl_resource_specification=mpi_resource_spec(ranks, nodes),
                         stdout=f"{out}.log", stderr=f"{out}.log")


def _cheap_results(out_file: str, done: object = None) -> pd.DataFrame:
    """The result table once ``done`` (the MPI task's future, passed to order the two) is."""
    return read_cheap_results(out_file)


cheap_results_app = python_app(_cheap_results, executors=ON_WORKERS)
