"""course_utils.ml.compiled: a process that ran a model's parallel loop can still fork."""

from __future__ import annotations

import multiprocessing

import numba
import numpy as np

from course_utils.ml import compiled
from course_utils.ml.tanimoto import tanimoto_kernel


def _kernel_in_child(queue) -> None:
    fp = np.arange(1, 9, dtype=np.uint64).reshape(4, 2)
    counts = np.bitwise_count(fp).sum(axis=1).astype(np.int64)
    queue.put(float(tanimoto_kernel(fp, fp, counts, counts).trace()))


def test_a_fork_after_a_parallel_loop_survives() -> None:
    fp = np.arange(1, 9, dtype=np.uint64).reshape(4, 2)
    counts = np.bitwise_count(fp).sum(axis=1).astype(np.int64)
    assert np.allclose(np.diag(tanimoto_kernel(fp, fp, counts, counts)), 1.0)  # loop ran here
    assert numba.threading_layer() == "workqueue" == compiled.numba.config.THREADING_LAYER
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_kernel_in_child, args=(queue,))
    child.start()
    child.join(60)
    assert child.exitcode == 0  # GNU OpenMP's layer terminates such a child
    assert queue.get(timeout=5) == 4.0
