"""What a campaign reports, mixed into :class:`course_utils.campaign.engine.Campaign`.

results.json, rewritten after every iteration so that an interrupted run still says where it
stood, and at the end with its ``evaluation`` against the ground truth (where there is a
table); then the figures. A figure never fails a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from course_utils import records as rec
from course_utils.campaign.simulators import measured_table
from course_utils.figures.campaign import plot_campaign, write_run_utilization
from course_utils.ground_truth.evaluation import evaluate_run
from course_utils.ground_truth.table import GroundTruthError, table_name


class CampaignOutputs:
    """Outputs of :class:`~course_utils.campaign.engine.Campaign`, built from its records."""

    def ground_truth(self) -> pd.DataFrame | None:
        """The table this run can be measured against, if there is one (replay's own, the one
        named by ``ground_truth``, or the shipped table of QM9); None otherwise."""

        p = self.parameters
        space = str(p.search_space)
        if p.ground_truth is None and table_name(space) != "qm9":
            return None
        try:
            table, _ = measured_table(space, p.ground_truth, len(self.space))
        except (GroundTruthError, OSError):
            return None
        return table

    def evaluation(self) -> dict[str, Any] | None:
        """Regret, rank, top-k recall against the ground truth; None without a table."""
        truth = self.ground_truth()
        if truth is None:
            return None
        return evaluate_run(rec.read_simulations(self.out_dir), truth,
                            space_size=len(self.space))

    def _write_results(self, status: str, message: str, evaluate: bool = False
                       ) -> dict[str, Any]:
        results = rec.summarize(
            self.recorder, self.parameters.to_dict(), status=status, message=message,
            environment=rec.environment_info(self.engine), wall_time_s=self.elapsed(),
        )
        results["resumed_from_simulations"] = self.resumed
        results["simulator"] = self.parameters.simulator
        results["replayed"] = self.replayed
        results["stopping"] = self.stopping_block()
        results["models"] = self.models_block()
        results["trust"] = (None if self.trust is None else
                            self.trust.block(self.trust_fired, self._seconds_per_success()))
        if evaluate:
            results["evaluation"] = self.evaluation()
        rec.atomic_write_json(self.out_dir / rec.RESULTS_FILE, results)
        return results

    def models_block(self) -> dict[str, Any]:
        """results.json's ``models``: the retrain policy and the versions saved (lineage.csv)."""
        last = self.models.last
        return {"retrain": self.retrain_policy.text, "valid_fraction": self.split.fraction,
                "arrival": self.arrival.text, "versions": len(self.models.rows),
                "last_version": None if last is None else int(last["version"]),
                "lineage_file": "lineage.csv" if self.models.rows else None,
                "notes": list(self.models.notes)}

    def _plot(self) -> Path | None:
        if not self.plot or not self.recorder.successes:
            return None
        # workers from the records, as a regenerated copy (figures.make_figures) reads them
        path = plot_campaign(self.out_dir)
        try:  # the utilization timeline too; a figure never fails a run
            write_run_utilization(self.out_dir)
        except Exception:  # noqa: BLE001
            pass
        return path

