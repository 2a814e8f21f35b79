"""The model side of a campaign, mixed into :class:`course_utils.campaign.engine.Campaign`.

Train on every successful simulation, score the whole search space (as chained Parsl apps, or
in-process for a replay), save each model as a version with its lineage, and rank the untried
molecules for the acquisition strategy. A lost or failed scoring round is run again.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.apps import SmilesBlock, chunked
from course_utils.campaign.acquisition import rank_candidates
from course_utils.campaign.lineage import failed_labels, training_hash, version_name
from course_utils.campaign.parameters import N_NEIGHBORS
from course_utils.campaign.retraining import validation_of
from course_utils.resilience import CampaignStopped, one_line, public_step
from course_utils.search_space import position_index


class CampaignModel:
    """Model steps of :class:`~course_utils.campaign.engine.Campaign`, which supplies their data."""

    #: Train + score attempts before the run stops with one line.
    SCORING_ATTEMPTS = 3
    #: Seconds a scoring round may take before it counts as lost (typical: well under 10 s).
    SCORING_TIMEOUT_S = 600.0

    @public_step
    def score_search_space(self, trigger: str = "", upto: int | None = None) -> Future:
        """Step 2: train -> chunked scoring -> reduce, chained as Parsl apps; returns a future.

        The future's result is an (n, 2) array of predicted IE and spread, in search-space
        order; :meth:`predictions` turns it into a table. What the model is trained on is
        noted for its lineage (``trigger``: why it is trained). ``upto`` trains on the first
        ``upto`` simulation records only: a saved version's data, to rebuild that version.
        Waiting for the future's result (as notebook 3 does) takes the same stop path as every
        step.
        """
        n_chunks = self.parameters.score_chunks or self._workers()
        blocks = [] if self.replayed else self._blocks(n_chunks)
        records = self.recorder.simulations[:upto]
        training = self.training_data(upto)
        future = self.simulator.score(training, blocks, N_NEIGHBORS)
        self._scoring_meta[future] = {
            "trigger": trigger or "requested", "training": training,
            "n_ok": sum(r["status"] == rec.STATUS_OK for r in records),
            "data_version": len(records), "valid": self.validation_rows(upto),
            "started": time.perf_counter()}
        self._stoppable_result(future)
        return future

    def _stoppable_result(self, future: Future) -> None:
        """Make ``future.result()`` wait in short steps on the stop path: a plain wait would
        ignore a stop request (the stop button would do nothing until the scores arrive)."""
        plain = future.result

        def result(timeout: float | None = None) -> Any:
            if timeout is None and not future.done():
                with self.stop_path():
                    while not future.done():
                        self._check_stop()
                        wait([future], timeout=self.POLL_S)
            return plain(timeout)

        future.result = result  # type: ignore[method-assign]

    @public_step
    def new_model(self, trigger: str) -> pd.DataFrame:
        """Train, score and save a new model version; its predictions of the search space."""
        future = self._score_with_retries(trigger)
        return self.adopt_model(future)

    def adopt_model(self, future: Future) -> pd.DataFrame:
        """Make a finished scoring round's model the one in use, and save it as a version."""
        meta = self._scoring_meta.pop(future)
        predictions = self.predictions(future.result())
        train_s = time.perf_counter() - meta["started"]
        model = getattr(future, "model", None)
        if isinstance(model, Future):
            model = model.result()
        valid_mae, valid_r2, n_valid = validation_of(predictions, meta["valid"])
        previous = self.models.last
        since = int(previous["data_version"]) if previous is not None else 0
        info: dict[str, Any] = {
            "trigger": meta["trigger"], "policy": self.retrain_policy.text,
            "data_version": meta["data_version"],
            "training_hash": training_hash(meta["training"]),
            "train_size": len(meta["training"]), "valid_size": n_valid,
            "valid_mae_ev": valid_mae, "valid_r2": valid_r2, "train_time_s": train_s,
            "failed_since_previous": failed_labels(self.recorder.simulations[
                since:meta["data_version"]]),
            "parameters": self.parameters.to_dict(),
            "packages": rec.environment_info(self.engine)["packages"]}
        if model is not None:
            info = self.models.save(model, info)
        self._model = model
        self.model_info = info
        self._model_n_ok = meta["n_ok"]
        self._predictions = predictions
        return predictions

    def restore_model(self, version: int) -> bool:
        """Make a saved version the model in use again, without saving a new version.

        A resumed run must rank with the model the stopped run used, so the version is rebuilt
        from the simulation records it was trained on (the first ``data_version`` rows, which a
        resume never changes): the same data through the same code gives the same scores. False
        (and a note) if the version is unknown or its training set is not the recorded one.
        """
        row = next((r for r in self.models.rows if int(r["version"]) == version), None)
        try:
            upto = int(row["data_version"]) if row is not None else -1
        except (TypeError, ValueError):
            upto = -1
        if not 0 <= upto <= len(self.recorder.simulations):
            print(f"note: cannot rebuild model version {version} (not in lineage.csv or newer "
                  "than the records); training a new one", file=sys.stderr)
            return False
        future = self._score_with_retries(f"rebuild of v{version:04d}", upto)
        meta = self._scoring_meta.pop(future)
        if training_hash(meta["training"]) != row["training_hash"]:
            print(f"note: the records no longer give model version {version}'s training set; "
                  "training a new one", file=sys.stderr)
            return False
        model = getattr(future, "model", None)
        self._model = model.result() if isinstance(model, Future) else model
        self.model_info = _saved_info(self.models.models_dir / f"{version_name(version)}.json",
                                      row)
        self._model_n_ok = meta["n_ok"]
        self._predictions = self.predictions(future.result())
        return True

    def _score_with_retries(self, trigger: str, upto: int | None = None) -> Future:
        """Train and score, waiting with a timeout; a failed or lost round is run again.

        Raises :class:`CampaignStopped` (one line) if every attempt fails.
        """
        last = ""
        for attempt in range(1, self.SCORING_ATTEMPTS + 1):
            future = self.score_search_space(trigger, upto)
            self._await([future])
            if not future.done():
                last = f"no result after {self.SCORING_TIMEOUT_S:.0f} s"
            elif future.exception() is not None:
                last = one_line(future.exception())
            else:
                return future
            self._scoring_meta.pop(future, None)
            print(f"scoring attempt {attempt} of {self.SCORING_ATTEMPTS} failed ({last})",
                  file=sys.stderr)
        raise CampaignStopped(f"scoring the search space failed {self.SCORING_ATTEMPTS} times "
                              f"(last: {last})")

    def _await(self, futures: list[Future]) -> None:
        """Wait up to ``SCORING_TIMEOUT_S`` for all of ``futures``, honouring a stop request
        every ``POLL_S``; the caller looks at what is done."""
        started = time.monotonic()
        while (not all(f.done() for f in futures)
               and time.monotonic() - started < self.SCORING_TIMEOUT_S):
            self._check_stop()
            wait(futures, timeout=self.POLL_S)
        self._check_stop()

    @functools.cached_property
    def space_position(self) -> dict[str, int]:
        """Each search-space molecule's position (the order of the model's scores)."""
        return position_index(self.space)

    @functools.cached_property
    def space_smiles(self) -> pd.Series:
        """The search space as a Series, converted once (not once per model version)."""
        return pd.Series(self.space, name="smiles")

    def predictions(self, scores: np.ndarray) -> pd.DataFrame:
        """Scores from :meth:`score_search_space` as ``smiles``, ``ie``, ``ie_spread`` (eV)."""
        return pd.DataFrame({"smiles": self.space_smiles, "ie": scores[:, 0],
                             "ie_spread": scores[:, 1]})

    def _blocks(self, n: int) -> list:
        if getattr(self, "_block_cache", (None, None))[0] != n:
            self._block_cache = (n, [SmilesBlock(c) for c in chunked(self.space, n)])
        return self._block_cache[1]

    def pick(self, predictions: pd.DataFrame | None, iteration: int,
             exclude: set[str] | None = None, n_ok: int | None = None) -> Iterator[str]:
        """Step 3: untried molecules in the order the acquisition strategy prefers (lazy).

        ``exclude`` and ``n_ok`` (default: now) are what was tried and succeeded when the batch
        began: random draws depend on them, so a resumed batch passes its start's values.
        """
        p = self.parameters
        rng = np.random.default_rng([p.seed, iteration])
        if predictions is None:  # random search needs no model
            predictions = pd.DataFrame({"smiles": self.space_smiles, "ie": 0.0, "ie_spread": 0.0})
        mask = self.available(n_ok)
        if mask is not None and len(predictions) == len(mask):
            predictions = predictions[mask]
        positions = self.space_position if len(predictions) == len(self.space) else None
        exclude = self._tried() if exclude is None else exclude
        return self._fresh(rank_candidates(predictions, exclude, acquisition=p.acquisition,
                                           rng=rng, ucb_kappa=p.ucb_kappa, epsilon=p.epsilon,
                                           positions=positions))

    def _model_error(self, rows: list[dict]) -> tuple[float, float]:
        """Mean absolute error (eV) and mean absolute percentage error of the picks' predictions."""
        pairs = [(float(r["ie"]), r["predicted"]) for r in rows
                 if r["status"] == rec.STATUS_OK and not math.isnan(r.get("predicted", math.nan))]
        if not pairs:
            return math.nan, math.nan
        true, pred = np.array(pairs).T
        return float(np.mean(np.abs(pred - true))), float(np.mean(np.abs(pred - true) / true) * 100)



def _saved_info(path: Path, row: Mapping[str, Any]) -> dict[str, Any]:
    """A version's JSON (what :meth:`CampaignModel.adopt_model` kept), or its lineage row."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    return info if isinstance(info, dict) else dict(row)
