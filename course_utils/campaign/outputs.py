"""What a campaign reports: how it ended, results.json and its blocks, the figures.

Plain functions of what they need: the campaign calls :func:`write_results` after every
batch (so an interrupted run still says where it stood) and at the end with its
``evaluation`` against the ground truth (where there is a table); :func:`ending` words how the
run ended; :func:`pick_error` is iterations.csv's measure of the model on its own picks; then
:func:`draw_figures`. A figure never fails a run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.campaign.lineage import ModelLineage
from course_utils.campaign.simulators import measured_table
from course_utils.campaign.stopping import StopOutcome
from course_utils.figures.campaign import plot_campaign, write_run_utilization
from course_utils.ground_truth.evaluation import evaluate_run
from course_utils.ground_truth.table import GroundTruthError, table_name
from course_utils.ml.calibration import calibration
from course_utils.status import COMPLETE, STOPPED


@dataclass
class CampaignResult:
    """Everything a finished run produced: its folder, results.json, its records, its plot."""

    out_dir: Path
    results: dict[str, Any]
    simulations: pd.DataFrame
    iterations: pd.DataFrame
    plot_path: Path | None = None

    @property
    def best(self) -> dict[str, Any] | None:
        return self.results.get("best")


def ending(*, n_ok: int, budget: int, stop: StopOutcome, n_failed: int, max_failures: int
           ) -> tuple[str, str]:
    """The status and last message of a run that ended on its own: ``complete`` once the
    budget is met; else stopped early by a rule (its words), or stopped, and why."""
    if n_ok >= budget:
        return COMPLETE, ""
    if stop.status is not None:
        return stop.status, stop.message
    if n_failed > max_failures:
        return STOPPED, (f"stopped with {n_ok} of {budget} successful simulations: {n_failed} "
                         f"failures, more than max_failures={max_failures}; see failures")
    return STOPPED, (f"stopped with {n_ok} of {budget} successful simulations: no untried "
                     "molecule left in the search space")


def pick_error(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """iterations.csv's error columns for the picks' predictions: mean absolute error (eV),
    mean absolute percentage error, R², and how often the truth was within 1 and 2 of the
    model's predicted std (NaN where not computable)."""
    picks = [(float(r["ie"]), r["predicted"], r.get("predicted_std", math.nan)) for r in rows
             if r["status"] == rec.STATUS_OK and not math.isnan(r.get("predicted", math.nan))]
    if not picks:
        return {"mae_ev": math.nan, "mape_pct": math.nan, "r2": math.nan,
                "within_1sd": math.nan, "within_2sd": math.nan}
    true, pred, std = np.array(picks, dtype=float).T
    measured = calibration(true, pred, std)
    return {"mae_ev": measured.mae_ev,
            "mape_pct": float(np.mean(np.abs(pred - true) / true) * 100),
            "r2": measured.r2, "within_1sd": measured.within_1sd,
            "within_2sd": measured.within_2sd}


def ground_truth_for(space: str, ground_truth: str | None, space_size: int
                     ) -> pd.DataFrame | None:
    """The table a run on ``space`` can be measured against, if there is one (replay's own,
    the one named by ``ground_truth``, or the shipped table of QM9); None otherwise."""
    if ground_truth is None and table_name(space) != "qm9":
        return None
    try:
        table, _ = measured_table(space, ground_truth, space_size)
    except (GroundTruthError, OSError):
        return None
    return table


def evaluation_of(out_dir: Path, space: str, ground_truth: str | None, space_size: int
                  ) -> dict[str, Any] | None:
    """Regret, rank, top-k recall of the run in ``out_dir``; None without a table."""
    truth = ground_truth_for(space, ground_truth, space_size)
    if truth is None:
        return None
    return evaluate_run(rec.read_simulations(out_dir), truth, space_size=space_size)


def models_block(lineage: ModelLineage, *, retrain: str, valid_fraction: float, arrival: str
                 ) -> dict[str, Any]:
    """results.json's ``models``: the retrain policy and the versions saved (lineage.csv)."""
    last = lineage.last
    return {"retrain": retrain, "valid_fraction": valid_fraction,
            "arrival": arrival, "versions": len(lineage.rows),
            "last_version": None if last is None else int(last["version"]),
            "lineage_file": "lineage.csv" if lineage.rows else None,
            "notes": list(lineage.notes)}


def machine_info() -> dict[str, Any]:
    """The machine a run used (hostname, cores, platform): a grader weighs its times by it."""
    env = rec.environment_info()
    return {"hostname": env["hostname"], "cpu_count": env["cpu_count"],
            "platform": env["platform"]}


def write_results(recorder: rec.CampaignRecorder, parameters: Mapping[str, Any], *,
                  status: str, message: str, engine: str, wall_time_s: float,
                  blocks: Mapping[str, Any], workers: int | None = None) -> dict[str, Any]:
    """Write results.json: the records' summary, the ``workers`` the run used and its
    ``machine``, then ``blocks`` (stopping, models, trust, evaluation, ...) in their order;
    returns what it wrote. ``workers`` is the count the run used, also when the parameters
    left it to the machine (``workers=None``: all cores)."""
    results = rec.summarize(recorder, dict(parameters), status=status, message=message,
                            environment=rec.environment_info(engine), wall_time_s=wall_time_s)
    results["workers"] = workers
    results["machine"] = machine_info()
    results.update(blocks)
    rec.atomic_write_json(recorder.out_dir / rec.RESULTS_FILE, results)
    return results


def draw_figures(out_dir: Path) -> Path | None:
    """ml_in_the_loop.png (its path) and the utilization timeline; a figure never fails a run."""
    # workers from the records, as a regenerated copy (figures.make_figures) reads them
    path = plot_campaign(out_dir)
    try:
        write_run_utilization(out_dir)
    except Exception:  # noqa: BLE001
        pass
    return path
