"""Running the seeds: every strategy replayed over many seeds, each run turned into its curve.

Each (strategy, seed) is an ordinary campaign: ``run_campaign`` with ``simulator="replay"``,
written into ``out_dir/<strategy>/seed-NNN`` like any other run (so ``results.json`` carries
its ``evaluation`` block). This module only runs the grid, in a few processes, and turns each
run's records into its curve against the table's yardsticks (:mod:`course_utils.studies.marks`);
what the curves say over the seeds is :mod:`course_utils.studies.summaries` and
:mod:`course_utils.studies.comparison_plot`.

Replay is retrospective: instant, on a simulated clock, and never graded.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.campaign.batch_plan import PLAN_FILE
from course_utils.campaign.lineage import LINEAGE_FILE, MODELS_DIR
from course_utils.ml.fingerprints import fingerprints
from course_utils.search_space import load_search_space
from course_utils.studies.marks import RECALL_K, Yardsticks, table_stamp, yardsticks

__all__ = ["CURVE_COLUMNS", "DEFAULT_STRATEGIES", "replay_grid", "run_curve", "slug", "warm"]

#: The acquisitions of the kit, as notebook 5 compares them: name -> campaign parameters.
DEFAULT_STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {"acquisition": "greedy"},
    "ucb kappa=0.5": {"acquisition": "ucb", "ucb_kappa": 0.5},
    "ucb kappa=2": {"acquisition": "ucb", "ucb_kappa": 2.0},
    "epsilon-greedy 0.1": {"acquisition": "epsilon-greedy", "epsilon": 0.1},
    "random": {"acquisition": "random"},
}
CURVE_COLUMNS = ["strategy", "seed", "n", "smiles", "ie", "best_ie", "top100_recall_so_far",
                 "elapsed_s"]
#: Parameters a strategy may not set: the grid decides them for every run alike.
_GRID_KEYS = ("initial_training_count", "max_training_count", "batch_size", "seed", "workers",
              "simulator", "search_space", "ground_truth")
#: Files a campaign folder may hold (and their ``.tmp`` versions, left by an interrupted
#: write); only such a folder is replaced by a new grid run.
_RUN_FILES = {rec.RESULTS_FILE, rec.PARAMETERS_FILE, rec.SIMULATIONS_FILE, rec.ITERATIONS_FILE,
              rec.PLOT_FILE, rec.LOCK_FILE, LINEAGE_FILE, MODELS_DIR, PLAN_FILE}


# --------------------------------------------------------------------------- one run


def run_curve(simulations: pd.DataFrame, marks: Yardsticks) -> pd.DataFrame:
    """Per successful simulation n = 1, 2, ... (record order): ``smiles``, ``ie``, ``best_ie``
    (best so far, eV), ``top100_recall_so_far`` and ``elapsed_s`` (the run's clock)."""
    curve = rec.best_so_far(simulations)
    smiles = curve["smiles"].to_numpy()
    top = marks.top_k[RECALL_K]
    first = ~pd.Series(smiles).duplicated().to_numpy()
    hits = np.cumsum(first & np.isin(smiles, list(top)))
    return pd.DataFrame({
        "n": curve["n_simulations"].to_numpy(),
        "smiles": smiles,
        "ie": curve["ie"].to_numpy(),
        "best_ie": curve["best_ie"].to_numpy(),
        "top100_recall_so_far": hits / len(top) if top else np.full(len(curve), np.nan),
        "elapsed_s": curve["elapsed_s"].to_numpy(),
    })


@dataclass(frozen=True)
class _Job:
    strategy: str
    seed: int
    parameters: dict[str, Any]
    out_dir: str


def _replay_one(job: _Job) -> pd.DataFrame:
    """One replayed campaign -> its curve (module level: it runs in worker processes)."""
    # deferred: the runner imports Parsl (+0.7 s on top of this module, measured)
    from course_utils.campaign.runner import run_campaign

    _fresh_folder(Path(job.out_dir))
    result = run_campaign(dict(job.parameters), job.out_dir, progress=False, plot=False)
    marks = yardsticks(job.parameters["search_space"], job.parameters.get("ground_truth"))
    curve = run_curve(result.simulations, marks)
    curve.insert(0, "seed", job.seed)
    curve.insert(0, "strategy", job.strategy)
    return curve


def warm(search_space: str, ground_truth: str | None) -> None:
    """Load the table, the search space and its fingerprints once in a worker process."""

    yardsticks(search_space, ground_truth)
    fingerprints(load_search_space(search_space)["smiles"])


def _fresh_folder(path: Path) -> None:
    """A grid run starts from scratch: an earlier run's folder (a campaign's files only) is
    replaced; anything else in the way is an error, never deleted."""
    if not path.exists():
        return
    names = {p.name.removesuffix(".tmp") for p in path.iterdir()} if path.is_dir() else {""}
    if names - _RUN_FILES:
        raise FileExistsError(f"{path} exists and is not a campaign folder: choose another out_dir")
    shutil.rmtree(path)


def slug(name: str) -> str:
    """A strategy name as a folder name (the grid's and the stopping study's run folders)."""
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-") or "strategy"


# --------------------------------------------------------------------------- the grid


def replay_grid(
    strategies: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    budget: int,
    initial: int,
    batch_size: int,
    out_dir: str | os.PathLike,
    search_space: str = "truth:qm9",
    workers: int = 2,
    processes: int = 2,
    ground_truth: str | os.PathLike | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Replay every strategy with every seed; one row per run and successful simulation.

    ``strategies`` maps a name to campaign parameters (``acquisition``, ``ucb_kappa``,
    ``epsilon``, ``mode``, ...); every run shares ``budget`` (``max_training_count``),
    ``initial`` (``initial_training_count``), ``batch_size``, ``workers`` (simulated, for the
    clock) and ``parameters`` (further common parameters). Run ``(s, seed)`` is written into
    ``out_dir/<s as a folder name>/seed-NNN``, replacing an earlier grid's run there.

    Returns columns strategy, seed, n (successful simulations so far), smiles, ie (eV),
    best_ie (best so far, eV), top100_recall_so_far (share of the table's top 100 found) and
    elapsed_s (simulated clock, s; it includes the real time the model took, so it varies
    slightly between identical runs; everything else is deterministic). ``attrs`` hold the
    grid's settings and the table's coverage. Runs go to ``processes`` worker processes.
    """
    strategies = {str(k): dict(v) for k, v in strategies.items()}
    seeds = [int(s) for s in seeds]
    if not strategies or not seeds:
        raise ValueError("replay_grid needs at least one strategy and one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}")
    folders = {slug(name): name for name in strategies}
    if len(folders) != len(strategies):
        raise ValueError(f"strategy names must differ as folder names: {list(strategies)}")
    for name, values in strategies.items():
        fixed = sorted(set(values) & set(_GRID_KEYS))
        if fixed:
            raise ValueError(f"strategy {name!r} sets {', '.join(fixed)}: the grid sets these "
                             "for every run alike")
    ground_truth = None if ground_truth is None else str(ground_truth)
    common = {**dict(parameters or {}), "initial_training_count": int(initial),
              "max_training_count": int(budget), "batch_size": int(batch_size),
              "workers": int(workers), "simulator": "replay",
              "search_space": str(search_space), "ground_truth": ground_truth}
    out = Path(out_dir)
    jobs = [_Job(name, seed, {**common, **values, "seed": seed},
                 str(out / slug(name) / f"seed-{seed:03d}"))
            for name, values in strategies.items() for seed in seeds]
    for job in jobs[::len(seeds)]:  # one per strategy: only the seed differs within one
        _check_parameters(job.parameters)

    stamp = table_stamp(search_space, ground_truth)
    marks = yardsticks(search_space, ground_truth)  # also warms this process (and forks)
    processes = max(1, min(int(processes), len(jobs)))
    if processes == 1:
        curves = [_replay_one(job) for job in jobs]
    else:
        warm(str(search_space), ground_truth)
        with ProcessPoolExecutor(max_workers=processes, initializer=warm,
                                 initargs=(str(search_space), ground_truth)) as pool:
            try:
                curves = list(pool.map(_replay_one, jobs))
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    if table_stamp(search_space, ground_truth) != stamp:  # runs would mix two versions of the space
        raise RuntimeError(f"the ground-truth table of {search_space!r} changed while the grid "
                           "ran (a build is writing to it); run the grid again")
    table = pd.concat(curves, ignore_index=True)[CURVE_COLUMNS]
    table.attrs = {"search_space": str(search_space), "ground_truth": ground_truth,
                   "coverage": marks.coverage, "budget": int(budget), "initial": int(initial),
                   "batch_size": int(batch_size), "workers": int(workers),
                   "strategies": list(strategies), "seeds": seeds}
    return table


def _check_parameters(values: Mapping[str, Any]) -> None:
    """Impossible parameters fail here, once, before any process starts."""
    # deferred: parameters imports Parsl through configs (+0.6 s, measured)
    from course_utils.campaign.parameters import CampaignParameters

    CampaignParameters.from_mapping(dict(values)).validate()
