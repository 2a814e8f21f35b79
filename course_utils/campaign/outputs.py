"""What a campaign reports: results.json, its ``evaluation`` and ``models`` blocks, the figures.

Plain functions of what they need: the campaign calls :func:`write_results` after every
iteration (so an interrupted run still says where it stood) and at the end with its
``evaluation`` against the ground truth (where there is a table); then :func:`draw_figures`.
A figure never fails a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils import records as rec
from course_utils.campaign.lineage import ModelLineage
from course_utils.campaign.simulators import measured_table
from course_utils.figures.campaign import plot_campaign, write_run_utilization
from course_utils.ground_truth.evaluation import evaluate_run
from course_utils.ground_truth.table import GroundTruthError, table_name


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
