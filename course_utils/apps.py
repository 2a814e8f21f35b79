"""Parsl apps: thin wrappers over plain ``course_utils`` functions.

Defining apps in an importable module (not in a notebook) lets workers import the real
functions by reference, which is Parsl's recommended structure. Each wrapper only forwards
arguments; the science lives in :mod:`course_utils.chemistry` and :mod:`course_utils.ml`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from parsl import python_app

#: Seconds a single simulation may run before Parsl raises ``AppTimeout`` (typical: < 2 s).
SIMULATION_WALLTIME = 300.0


def _simulate(
    smiles: str,
    engine: str | None = None,
    threads: int | None = None,
    walltime: float | None = SIMULATION_WALLTIME,
) -> float:
    """Ionization energy in eV; ``walltime`` is consumed by Parsl to stop hung simulations."""
    from course_utils.chemistry import compute_vertical

    return compute_vertical(smiles, engine=engine, threads=threads)


def _train(train_data: pd.DataFrame, n_neighbors: int = 4):
    from course_utils.ml import train_model

    return train_model(train_data, n_neighbors=n_neighbors)


def _score(model, smiles: Sequence[str]) -> pd.DataFrame:
    from course_utils.ml import run_model

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


def _score_block(model, block: SmilesBlock):
    """Predicted IE and neighbour spread (eV) as an (n, 2) array: numbers travel fast."""
    import numpy as np

    ie, spread = model.predict_with_spread(block.to_list())
    return np.column_stack([ie, spread])


def _stack(*parts):
    """Reduce step of the campaign: the chunks' arrays in search-space order."""
    import numpy as np

    return np.concatenate(parts, axis=0)


simulate_app = python_app(_simulate)
train_app = python_app(_train)
score_app = python_app(_score)
combine_app = python_app(_combine)
score_block_app = python_app(_score_block)
stack_app = python_app(_stack)


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
) -> dict:
    """Run one simulation and describe it: value or error, where it ran and when.

    Chemistry failures come back as records (status ``failed``) so a campaign can log them with
    their timings; a timeout or a dying worker still surfaces as the future's exception.
    """
    import math
    import os
    import socket
    import time

    from course_utils.chemistry import ChemistryError, compute_vertical

    record = {
        "smiles": smiles,
        "host": socket.gethostname(),
        "manager": os.environ.get("PARSL_WORKER_POOL_ID", ""),
        "worker": os.environ.get("PARSL_WORKER_RANK", ""),
        "pid": os.getpid(),
        "start_time": time.time(),
    }
    try:
        record.update(ie=compute_vertical(smiles, engine=engine, threads=threads),
                      status="ok", error="")
    except ChemistryError as err:
        record.update(ie=math.nan, status="failed", error=f"{type(err).__name__}: {err.detail}")
    record["end_time"] = time.time()
    return record


simulate_record_app = python_app(_simulate_record)


def _truth_record(smiles: str, engine: str | None = None, walltime: float | None = 120.0) -> dict:
    """One row of the ground-truth table (see :mod:`course_utils.ground_truth`)."""
    from course_utils.ground_truth import truth_record

    return truth_record(smiles, engine=engine)


truth_record_app = python_app(_truth_record)
