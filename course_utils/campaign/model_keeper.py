"""The model in use: fit it, score the search space, save each version, rebuild one on resume.

:class:`ModelKeeper` is the campaign's model side (``campaign.keeper``). It holds the model part
(``campaign.model``, any :class:`~course_utils.ml.contract.Model`) and hands the simulator a
fresh copy of it for each round: the simulator fits it and scores the space (as chained Parsl
apps, or in-process for a replay). A finished round is *adopted*: its scores become the
predictions the acquisition ranks, and the fitted model is saved as a version with its lineage
(:mod:`course_utils.campaign.lineage`). A lost or failed round is run again, at most
``SCORING_ATTEMPTS`` times (:class:`ScoringAttempts`, the one retry rule of both loops).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils import records as rec
from course_utils.apps import SmilesBlock, chunked
from course_utils.campaign.lineage import ModelLineage, failed_labels, training_hash, version_name
from course_utils.campaign.parts import Simulator
from course_utils.ground_truth.evaluation import HeldOutSample
from course_utils.ml.calibration import Calibration, calibration
from course_utils.ml.contract import Model, ReadsFingerprints
from course_utils.ml.fingerprints import cache_parts, prepare_fingerprints
from course_utils.resilience import CampaignStopped, one_line
from course_utils.search_space import position_index


@dataclass(frozen=True)
class TrainingRound:
    """What one model is trained on, noted for its lineage."""

    #: Why it is trained (``first model of this session``, ``growth:0.25: ...``).
    trigger: str
    #: The successful simulations it learns from (``smiles``, ``ie``).
    training: pd.DataFrame
    #: The simulation records that existed (its data version is their count).
    records: Sequence[Mapping[str, Any]]
    #: Held-out successful simulations it is validated on.
    valid: list[dict]

    @property
    def n_ok(self) -> int:
        return sum(r["status"] == rec.STATUS_OK for r in self.records)


class ScoringAttempts:
    """Failed scoring rounds so far: each is said on stderr; the last allowed one stops the run."""

    def __init__(self, allowed: int, timeout_s: float):
        self.allowed, self.timeout_s = allowed, timeout_s
        self.failures = 0

    def problem(self, future: Future, started: float) -> str | None:
        """Why the round begun at ``started`` (``time.perf_counter``) failed, or None if it
        succeeded or may still."""
        if future.done():
            error = future.exception()
            return None if error is None else one_line(error)
        if time.perf_counter() - started > self.timeout_s:
            return f"no result after {self.timeout_s:.0f} s"
        return None

    def failed(self, problem: str) -> None:
        """Count a failed round; :class:`CampaignStopped` (one line) if it was the last allowed."""
        self.failures += 1
        print(f"scoring attempt {self.failures} of {self.allowed} failed ({problem})",
              file=sys.stderr)
        if self.failures >= self.allowed:
            raise CampaignStopped(f"scoring the search space failed {self.failures} times "
                                  f"(last: {problem})")


class Predicted:
    """A model's predicted IE of a molecule, looked up by its position in the search space.

    Predictions cover the whole space, so a dict of them per batch cost more than the model
    itself in a replay of all of QM9; the positions are one dict per campaign.
    """

    def __init__(self, predictions: pd.DataFrame | None, position: Mapping[str, int]):
        self._ie = None if predictions is None else predictions["ie"].to_numpy()
        self._std = (None if predictions is None or "ie_spread" not in predictions
                     else predictions["ie_spread"].to_numpy())
        self._position = position
        if self._ie is not None and len(self._ie) != len(position):  # a part of the space
            self._position = {s: i for i, s in enumerate(predictions["smiles"].tolist())}

    def get(self, smiles: str, default: float = math.nan) -> float:
        i = None if self._ie is None else self._position.get(smiles)
        return default if i is None else float(self._ie[i])

    def std(self, smiles: str, default: float = math.nan) -> float:
        """The model's predicted standard deviation of the molecule's IE (eV)."""
        i = None if self._std is None else self._position.get(smiles)
        return default if i is None else float(self._std[i])

    def pair(self, smiles: str) -> tuple[float, float]:
        """(mean, std) predicted for the molecule; NaN for one the model did not score."""
        return self.get(smiles), self.std(smiles)


class ModelKeeper:
    """Fits, scores, saves and restores the campaign's model; knows the model in use."""

    #: Fit + score attempts before the run stops with one line.
    SCORING_ATTEMPTS = 3
    #: Seconds a scoring round may take before it counts as lost (typical: well under 10 s).
    SCORING_TIMEOUT_S = 600.0

    def __init__(self, model: Model, simulator: Simulator, lineage: ModelLineage, *,
                 space: Sequence[str], chunks: int, parameters: Mapping[str, Any], engine: str,
                 retrain: str, wait: Callable[[list[Future], float], None],
                 heldout: HeldOutSample | None = None,
                 notify: Callable[..., None] | None = None, progress: bool = False):
        self.model = model  # the part as configured; each round fits a copy
        self.simulator = simulator
        self.lineage = lineage
        self.space = space
        self.chunks = chunks
        self.parameters = dict(parameters)
        self.engine = engine
        self.retrain = retrain
        #: Waits up to a timeout for futures, honouring a stop request (the campaign's).
        self.wait = wait
        #: Random molecules with known IEs: each version's error on them (None: no table).
        self.heldout = heldout
        #: ``notify(event, **info)``: the campaign's updates (its ``phase`` while fingerprinting).
        self.notify = notify
        self.progress = progress  # a progress bar while fingerprinting the space
        self._fingerprinted = False
        self.in_use: Model | None = None  # the fitted model in use (the trust checks ask it)
        self.info: dict[str, Any] | None = None  # its saved version's JSON
        self.n_ok_at_fit: int | None = None  # successes when it was submitted
        self.predictions: pd.DataFrame | None = None  # its scores of the search space
        self._rounds: dict[Future, tuple[TrainingRound, float]] = {}
        self._blocks: list[SmilesBlock] | None = None

    # --- the search space, as the model scores it ----------------------------------------
    @functools.cached_property
    def space_position(self) -> dict[str, int]:
        """Each search-space molecule's position (the order of the model's scores)."""
        return position_index(self.space)

    @functools.cached_property
    def space_smiles(self) -> pd.Series:
        """The search space as a Series, converted once (not once per model version)."""
        return pd.Series(self.space, name="smiles")

    def table(self, scores: Any) -> pd.DataFrame:
        """An (n, 2) array of scores as ``smiles``, ``ie``, ``ie_spread`` (eV)."""
        return pd.DataFrame({"smiles": self.space_smiles, "ie": scores[:, 0],
                             "ie_spread": scores[:, 1]})

    def blocks(self) -> list[SmilesBlock]:
        """The search space in ``chunks`` blocks for the scoring apps (made once)."""
        if self._blocks is None:
            self._blocks = [SmilesBlock(c) for c in chunked(self.space, self.chunks)]
        return self._blocks

    def fingerprint_space(self) -> None:
        """Fingerprint the search space once, here, before the first round (the model's kinds).

        Every round's scoring then reads them from the cache: a replay from this process's
        memory, Parsl workers from one cache file per block, written here. On a cold cache the
        campaign says so (``phase`` event) and a progress bar shows it (``progress``); a cold
        QM9 took a silent ~95 s on a loaded 2-core machine when the first round did it.
        """
        if self._fingerprinted or not isinstance(self.model, ReadsFingerprints):
            return
        kinds = self.model.fingerprint_kinds()

        def announce(text: str) -> None:
            if self.notify is not None:
                self.notify("phase", phase=text)

        if kinds:
            arrays = prepare_fingerprints(self.space, kinds, progress=self.progress,
                                          what="the search space", announce=announce)
            if self.simulator.needs_parsl:
                cache_parts(chunked(self.space, self.chunks), kinds, arrays)
        self._fingerprinted = True

    # --- rounds ----------------------------------------------------------------------------
    def start(self, round_: TrainingRound) -> Future:
        """Submit a fit and the scoring of the space; a future of the (n, 2) scores."""
        self.fingerprint_space()
        blocks = self.blocks() if self.simulator.needs_parsl else []
        future = self.simulator.score(copy.deepcopy(self.model), round_.training, blocks)
        self._rounds[future] = (round_, time.perf_counter())
        return future

    def forget(self, future: Future) -> None:
        """Drop a round that failed or is no longer wanted."""
        self._rounds.pop(future, None)

    def started(self, future: Future) -> float:
        return self._rounds[future][1]

    def attempts(self) -> ScoringAttempts:
        return ScoringAttempts(self.SCORING_ATTEMPTS, self.SCORING_TIMEOUT_S)

    def score_with_retries(self, round_: TrainingRound) -> Future:
        """Fit and score, waiting with a timeout; a failed or lost round is run again.

        Raises :class:`CampaignStopped` (one line) if every attempt fails.
        """
        attempts = self.attempts()
        while True:
            future = self.start(round_)
            self.wait([future], self.SCORING_TIMEOUT_S)
            problem = attempts.problem(future, self.started(future))
            if future.done() and problem is None:
                return future
            self.forget(future)
            attempts.failed(problem or f"no result after {self.SCORING_TIMEOUT_S:.0f} s")

    def adopt(self, future: Future) -> pd.DataFrame:
        """Make a finished round's model the one in use and save it as a version; its
        predictions of the search space."""
        round_, started = self._rounds.pop(future)
        predictions = self.table(future.result())
        train_s = time.perf_counter() - started
        model = _value(getattr(future, "model", None))
        valid = _validation(predictions, round_.valid, self.space_position)
        previous = self.lineage.last
        since = int(previous["data_version"]) if previous is not None else 0
        data_version = len(round_.records)
        info: dict[str, Any] = {
            "trigger": round_.trigger, "policy": self.retrain,
            "data_version": data_version,
            "training_hash": training_hash(round_.training),
            "train_size": len(round_.training), "valid_size": valid.n,
            "valid_mae_ev": valid.mae_ev, "valid_r2": valid.r2,
            "valid_within_1sd": valid.within_1sd, "valid_within_2sd": valid.within_2sd,
            "heldout_mae_ev": (math.nan if self.heldout is None else
                               self.heldout.mae(predictions["ie"].to_numpy(),
                                                round_.training["smiles"])),
            "train_time_s": train_s,
            "failed_since_previous": failed_labels(round_.records[since:data_version]),
            "parameters": self.parameters,
            "packages": rec.environment_info(self.engine)["packages"]}
        if model is not None:
            info["model"] = model.describe()
            info = self.lineage.save(model, info)
        self._use(model, info, round_, predictions)
        return predictions

    def restore(self, version: int, round_of: Callable[[str, int], TrainingRound],
                n_records: int) -> bool:
        """Make a saved version the model in use again, without saving a new version.

        A resumed run must rank with the model the stopped run used, so the version is rebuilt
        from the simulation records it was trained on (the first ``data_version`` rows, which a
        resume never changes): the same data through the same code gives the same scores. False
        (and a note) if the version is unknown or its training set is not the recorded one.
        ``round_of(trigger, upto)``: the training round of the first ``upto`` records.
        """
        row = next((r for r in self.lineage.rows if int(r["version"]) == version), None)
        try:
            upto = int(row["data_version"]) if row is not None else -1
        except (TypeError, ValueError):
            upto = -1
        if not 0 <= upto <= n_records:
            print(f"note: cannot rebuild model version {version} (not in lineage.csv or newer "
                  "than the records); training a new one", file=sys.stderr)
            return False
        round_ = round_of(f"rebuild of v{version:04d}", upto)
        future = self.score_with_retries(round_)
        self.forget(future)
        if training_hash(round_.training) != row["training_hash"]:
            print(f"note: the records no longer give model version {version}'s training set; "
                  "training a new one", file=sys.stderr)
            return False
        info = _saved_info(self.lineage.models_dir / f"{version_name(version)}.json", row)
        self._use(_value(getattr(future, "model", None)), info, round_,
                  self.table(future.result()))
        return True

    def assume_fitted_at(self, n_ok: int) -> None:
        """Count the last saved version as this session's model, trained at ``n_ok``
        successes, without rebuilding it: a resumed run whose retrain policy says a new model
        is due trains that one instead."""
        self.n_ok_at_fit = n_ok

    def _use(self, model: Model | None, info: dict[str, Any], round_: TrainingRound,
             predictions: pd.DataFrame) -> None:
        self.in_use, self.info = model, info
        self.n_ok_at_fit = round_.n_ok
        self.predictions = predictions

    def columns(self) -> dict[str, Any]:
        """iterations.csv's columns about the model in use."""
        info = self.info or {}
        return {"model_version": info.get("version"), "valid_mae_ev": info.get("valid_mae_ev"),
                "valid_r2": info.get("valid_r2"), "heldout_mae_ev": info.get("heldout_mae_ev")}

    @property
    def version(self) -> int | None:
        return (self.info or {}).get("version")


def _validation(predictions: pd.DataFrame, rows: list[dict],
                position: Mapping[str, int]) -> Calibration:
    """The new model checked on the held-out ``rows``: its MAE and R², and how often the truths
    lie within 1 and 2 predicted std (n = 0 and NaN without validation molecules)."""
    predicted = Predicted(predictions, position)
    pairs = [predicted.pair(r["smiles"]) for r in rows]
    return calibration([float(r["ie"]) for r in rows], [m for m, _ in pairs],
                       [s for _, s in pairs])


def _value(model: Any) -> Any:
    """A fitted model given as a value or as a future of one."""
    return model.result() if isinstance(model, Future) else model


def _saved_info(path: Path, row: Mapping[str, Any]) -> dict[str, Any]:
    """A version's JSON (what :meth:`ModelKeeper.adopt` kept), or its lineage row."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    return info if isinstance(info, dict) else dict(row)
