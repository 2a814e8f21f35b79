"""numba for the models' parallel loops, set up in one place: a threading layer that survives fork.

numba's default threading layer on Linux is GNU OpenMP, and a process that forks after one of
its parallel loops ran is terminated ("fork() called from a process already using GNU
OpenMP"). The kit forks after training models all the time: a replay grid's worker processes,
Parsl's local workers, a notebook that fits a model and then replays campaigns. The
``workqueue`` layer ships with every numba, survives fork, and is as fast for these loops; it
refuses two threads running parallel loops at once, which the kit never does (one campaign
per process or thread at a time).
"""

from __future__ import annotations

import numba
from numba import njit, prange

numba.config.THREADING_LAYER = "workqueue"

__all__ = ["njit", "prange"]
