"""The run's history: what its records say it tried, got and may still pick.

One object over the recorder (and the trust checks, if any) answers every question the loops
and the model steps ask of the past: successes and failures so far, a batch's rows, what was
tried or succeeded before a batch began (so a resumed batch ranks as it did), what the model
trains and validates on, which molecules the arrival scheme has unlocked, and the history a
stop rule reads. It writes nothing: the records are written by dispatch and the recorder.

A *batch* is one round of picks: batch 0 is the initial random sample, batch ``k`` is row
``k`` of iterations.csv (whose column keeps the older name ``iteration``); in streaming mode a
batch is the stretch of results one model version picked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.campaign.model_keeper import Predicted, TrainingRound
from course_utils.campaign.parts import Arrival, TrustCheck
from course_utils.campaign.retraining import ValidationSplit
from course_utils.campaign.stopping import StopHistory, history_from_records
from course_utils.campaign.trust import truthy


def batch_of(row: dict) -> int:
    """A record's batch (-1 if it has none: a folder of an older kit)."""
    try:
        return int(row["batch"])
    except (KeyError, TypeError, ValueError):
        return -1


def training_frame(records: list[dict]) -> pd.DataFrame:
    """(smiles, ie) of the successful ``records``, sorted as the recorder's training data is."""
    rows = [(r["smiles"], float(r["ie"])) for r in records if r["status"] == rec.STATUS_OK]
    frame = pd.DataFrame(rows, columns=["smiles", "ie"])
    return frame.sort_values("smiles", kind="stable").reset_index(drop=True)


class RunHistory:
    """Questions about the run's past, answered from its records."""

    def __init__(self, recorder: rec.CampaignRecorder, *, space: Sequence[str],
                 arrival: Arrival, seed: int, split: ValidationSplit,
                 trust: TrustCheck | None):
        self.recorder = recorder
        self.space = space
        self.arrival = arrival
        self.split = split
        self.trust = trust
        self.waves = arrival.wave_of(space, seed)
        #: Arrival wave of each molecule (empty with one wave).
        self.wave_by_smiles = (dict(zip(space, self.waves.tolist(), strict=True))
                               if arrival.waves > 1 else {})
        self._by_batch: dict[int, list[dict]] = {}  # simulation records by batch
        self._indexed = 0  # records in _by_batch so far

    # --- counts -----------------------------------------------------------------------------
    @property
    def n_ok(self) -> int:
        return len(self.recorder.successes)

    @property
    def n_failed(self) -> int:
        """Failed simulations (chemistry or timeouts); lost tasks are retried, not counted."""
        return sum(r["status"] not in (rec.STATUS_OK, rec.STATUS_LOST)
                   for r in self.recorder.simulations)

    @property
    def next_batch(self) -> int:
        return len(self.recorder.iterations) + 1

    # --- batches ----------------------------------------------------------------------------
    def by_batch(self) -> dict[int, list[dict]]:
        """The simulation records by batch, indexed as they arrive (records only grow)."""
        sims = self.recorder.simulations
        for r in sims[self._indexed:]:
            self._by_batch.setdefault(batch_of(r), []).append(r)
        self._indexed = len(sims)
        return self._by_batch

    def batch_rows(self, batch: int, predicted: Predicted | None = None) -> list[dict]:
        """Copies of the batch's records (a resumed batch has some already), with the model's
        ``predicted`` IE and its ``predicted_std`` (for its error and calibration)."""
        predicted = predicted or Predicted(None, {})
        return [{"predicted": predicted.get(r["smiles"]), "predicted_std": predicted.std(r["smiles"]),
                 **r} for r in self.by_batch().get(batch, ())]

    def ok_in(self, batch: int) -> int:
        return sum(r["status"] == rec.STATUS_OK for r in self.by_batch().get(batch, ()))

    def tried(self, running: set[str] = frozenset()) -> set[str]:
        """Every molecule simulated, ``running`` or trusted without a simulation."""
        tried = self.recorder.attempted | running
        return tried | self.trust.trusted_smiles if self.trust is not None else tried

    def tried_before(self, batch: int) -> set[str]:
        """Molecules tried before batch ``batch`` began, rebuilt from the records however
        often the run was stopped (what :meth:`tried` was when the batch was picked)."""
        tried = {r["smiles"] for b, rows in self.by_batch().items() if b < batch
                 for r in rows if r["status"] != rec.STATUS_LOST}
        if self.trust is not None:
            tried |= {r["smiles"] for r in self.trust.rows
                      if int(r["iteration"]) < batch and truthy(r["trusted"])}
        return tried

    def ok_before(self, batch: int) -> int:
        """Successful simulations before batch ``batch`` began."""
        return sum(r["status"] == rec.STATUS_OK for b, rows in self.by_batch().items()
                   if b < batch for r in rows)

    def best_ie_before(self, batch: int | None = None) -> float:
        """Best simulated IE (eV) of the batches before ``batch`` (all if None); NaN if none."""
        return max((float(r["ie"]) for b, rows in self.by_batch().items()
                    if batch is None or b < batch for r in rows if r["status"] == rec.STATUS_OK),
                   default=math.nan)

    # --- what the model learns from ---------------------------------------------------------
    def training_data(self, upto: int | None = None) -> pd.DataFrame:
        """Successful simulations the model learns from: all but the validation share
        (``upto``: of the first ``upto`` simulation records only)."""
        data = (self.recorder.training_data() if upto is None
                else training_frame(self.recorder.simulations[:upto]))
        if self.split.fraction <= 0:
            return data
        keep = [not self.split.is_validation(s) for s in data["smiles"]]
        return data[keep].reset_index(drop=True)

    def validation_rows(self, upto: int | None = None) -> list[dict]:
        return [r for r in self.recorder.simulations[:upto]
                if r["status"] == rec.STATUS_OK and self.split.is_validation(r["smiles"])]

    def training_round(self, trigger: str = "", upto: int | None = None) -> TrainingRound:
        """What a model trained now learns from (``upto``: the first ``upto`` records only: a
        saved version's data, to rebuild that version); ``trigger``: why it is trained."""
        return TrainingRound(trigger or "requested", self.training_data(upto),
                             self.recorder.simulations[:upto], self.validation_rows(upto))

    # --- what may be picked ------------------------------------------------------------------
    def available(self, n_ok: int | None = None) -> np.ndarray | None:
        """Mask of the search space the arrival scheme has unlocked after ``n_ok`` successes
        (default: so far); None: all of it."""
        if self.arrival.waves <= 1:
            return None
        return self.waves < self.arrival.unlocked(self.n_ok if n_ok is None else n_ok)

    def available_space(self, n_ok: int | None = None) -> Sequence[str]:
        mask = self.available(n_ok)
        return self.space if mask is None else [s for s, m in zip(self.space, mask, strict=True)
                                                if m]

    # --- for the stop rules and the report ---------------------------------------------------
    def for_stop_rules(self, budget: int, *, on_resume: bool = False) -> StopHistory:
        """The history a stop rule reads: the records, and the trust checks' streak (not on
        resume: a streak ends the session it happened in, and a resumed run, perhaps with
        another tolerance, goes on until its own batches make the streak long enough)."""
        history = history_from_records(self.recorder.simulations, self.recorder.iterations, budget)
        if self.trust is None or on_resume:
            return history
        return history.with_trust_streak(self.trust.streak)

    def seconds_per_success(self) -> float | None:
        """Mean compute seconds of a successful simulation so far (None if none is timed)."""
        spans = [float(r["end_time"]) - float(r["start_time"]) for r in self.recorder.successes
                 if r.get("end_time") is not None and r.get("start_time") is not None]
        spans = [s for s in spans if math.isfinite(s) and s >= 0]
        return float(np.mean(spans)) if spans else None
