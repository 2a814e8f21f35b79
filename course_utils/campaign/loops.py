"""The two ways a campaign runs its loop, mixed into :class:`course_utils.campaign.engine.Campaign`.

``batch`` waits for the whole batch, as the original tutorial does: retrain (when the retrain
policy says so), rank, simulate a batch, record, ask the stop rule. With trust checks each batch
first goes to the cheap check beside the model, and only the picks they disagree on are
simulated in full. ``streaming`` keeps every worker busy: it submits the next pick as each
simulation finishes and swaps in a new model's ranking whenever one is ready.

Both use the campaign's steps (``simulate``, ``pick``, ``new_model``, ``record_iteration``, the
stop rule) and nothing else, so a pattern added to the engine reaches both modes.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Mapping
from itertools import islice

import pandas as pd

from course_utils.resilience import CampaignStopped, one_line


class Predicted:
    """A model's predicted IE of a molecule, looked up by its position in the search space.

    Predictions cover the whole space, so a dict of them per batch cost more than the model
    itself in a replay of all of QM9; the positions are one dict per campaign.
    """

    def __init__(self, predictions: pd.DataFrame | None, position: Mapping[str, int]):
        self._ie = None if predictions is None else predictions["ie"].to_numpy()
        self._position = position
        if self._ie is not None and len(self._ie) != len(position):  # a part of the space
            self._position = {s: i for i, s in enumerate(predictions["smiles"].tolist())}

    def get(self, smiles: str, default: float = math.nan) -> float:
        i = None if self._ie is None else self._position.get(smiles)
        return default if i is None else float(self._ie[i])


class CampaignModes:
    """The loops of :class:`~course_utils.campaign.engine.Campaign`; it supplies every step they use."""

    def _run_batches(self) -> None:
        """Retrain when due, rank, simulate one batch, record it; until the budget is met, the
        space is exhausted, or the stop rule or the trust streak ends the search.

        A run stopped inside a batch is resumed by finishing that batch (batches.csv) with the
        model it was ranked with, so the run simulates what an unstopped one would have.
        """
        p = self.parameters
        self._resume_model()
        while self.n_ok < p.max_training_count and self.n_failed <= self.max_failures:
            iteration = self.next_iteration
            training_size = self.ok_before(iteration)  # n_ok when the batch began
            t0 = time.perf_counter()
            predictions = None
            if p.acquisition != "random":
                # A batch planned before a stop keeps its model (restored by _resume_model);
                # otherwise the policy decides. The first call without a model is always due.
                trigger = (None if self.plan.smiles(iteration) and self._predictions is not None
                           else self.retrain_policy.due(self.n_ok, self._model_n_ok,
                                                        batch_mode=True))
                if trigger is not None:
                    self.new_model(trigger)
                predictions = self._predictions
            t1 = time.perf_counter()
            picks = self.pick(predictions, iteration, self.tried_before(iteration), training_size)
            t2 = time.perf_counter()
            target = min(p.batch_size, p.max_training_count - training_size)
            if self.trust is not None:
                rows, checked = self.checked_batch(iteration, picks, predictions, target)
            else:
                rows = self.simulate_batch(iteration, picks, target, predictions)
                checked = len(rows)
            t3 = time.perf_counter()
            self.record_iteration(iteration, training_size, rows, t1 - t0, t2 - t1, t3 - t2)
            if not checked:
                break  # search space exhausted
            if self._ask_stop_rule():
                break
            if self.trust is not None and self.trust.streak >= p.trust_streak:
                self.trust_fired = True
                break

    def _resume_model(self) -> None:
        """Go on with the model the stopped session used, as if it had never stopped.

        A batch planned before the stop gets the version it was ranked with back. Between
        batches, the last version counts as this session's model: if the retrain policy says a
        new one is due, the loop trains it (no rebuild needed); if not, the version is rebuilt.
        A version that cannot be rebuilt leaves the session without a model (a new one is
        trained, as before batches.csv existed).
        """
        if self.parameters.acquisition == "random" or self._model_n_ok is not None:
            return
        iteration = self.next_iteration
        planned = bool(self.plan.smiles(iteration))
        version = self.plan.model_version(iteration) if planned else None
        if version is None and self.models.last is not None:
            version = int(self.models.last["version"])
        row = next((r for r in self.models.rows if int(r["version"]) == version), None)
        if row is None:
            return
        try:
            upto = int(row["data_version"])
        except (TypeError, ValueError):
            return
        n_then = sum(r["status"] == "ok" for r in self.recorder.simulations[:upto])
        if not planned and self.retrain_policy.due(self.n_ok, n_then, batch_mode=True):
            self._model_n_ok = n_then
            return
        self.restore_model(version)

    def checked_batch(self, iteration: int, picks: Iterable[str], predictions: pd.DataFrame,
                      size: int) -> tuple[list[dict], int]:
        """One batch of ``size`` picks with trust checks: the model's values and the cheap MPI
        check of the picks run as two futures at once; only the picks they disagree on get
        full simulations (so the budget is never overshot).

        Returns the full simulations' rows and the number of picks checked.
        """
        p = self.parameters
        batch = self.plan.smiles(iteration)[:size] or list(islice(picks, size))
        if not batch:
            return [], 0
        version = (self.model_info or {}).get("version")
        self.plan.add(iteration, batch, model_version=version,
                      predicted=Predicted(predictions, self.space_position))
        if any(int(r["iteration"]) == iteration for r in self.trust.rows):
            return self.batch_rows(iteration, predictions), len(batch)  # done before a stop
        model_values = self.simulator.predict(self._model, batch)
        cheap_file = self.out_dir / "checks" / f"iteration-{iteration:04d}.csv"
        cheap = self.simulator.cheap(batch, p.trust_ranks, cheap_file)
        self._await([model_values, cheap])
        if cheap.done() and cheap.exception() is None:
            cheap_table = cheap.result()
        else:  # a failed or hung check trusts nothing: every pick gets its full simulation
            why = (one_line(cheap.exception()) if cheap.done()
                   else f"no result after {self.SCORING_TIMEOUT_S:.0f} s")
            print(f"cheap check of iteration {iteration} failed ({why}); simulating every pick",
                  file=sys.stderr)
            cheap_table = pd.DataFrame({"smiles": batch, "ie": math.nan, "status": "failed",
                                        "error": why, "rank": -1, "seconds": math.nan})
        if not model_values.done():
            raise CampaignStopped(f"the model's predictions of iteration {iteration} did not "
                                  f"arrive within {self.SCORING_TIMEOUT_S:.0f} s")
        checks = self.trust.judge(iteration, batch, model_values.result(), cheap_table, version)
        untrusted = [c["smiles"] for c in checks if not c["trusted"]]
        rows = self.batch_rows(iteration, predictions)  # simulated before a stop
        todo = [s for s in untrusted if s not in self.recorder.attempted]
        if todo:  # no replacements: a failed full simulation leaves its pick unlabelled
            rows += self.simulate(iter(todo), len(todo), batch=iteration, predictions=predictions)
        self.trust.record(checks, rows)
        return rows, len(batch)

    def _run_streaming(self) -> None:
        """Keep every worker busy; swap in a new model's ranking whenever one is ready."""
        p = self.parameters
        workers = self._workers()
        generation = self.next_iteration
        trigger = self.retrain_policy.due(self.n_ok, None)
        scoring = None if p.acquisition == "random" else self.score_search_space(trigger)
        scoring_started, scoring_size = time.perf_counter(), self.n_ok
        ranking = self.pick(None, generation) if scoring is None else None
        predicted = Predicted(None, {})
        gen_rows: list[dict] = []
        scoring_failures = 0

        def fill() -> None:
            while (ranking is not None and self._room()
                   and self.n_ok + len(self._pending) < p.max_training_count
                   and len(self._pending) < workers):
                smiles = next(ranking, None)
                if smiles is None:
                    return
                self._submit(smiles, generation, predicted.get(smiles, math.nan))

        while self.n_ok < p.max_training_count and self.n_failed <= self.max_failures:
            if scoring is not None and (
                    (scoring.done() and scoring.exception() is not None)
                    or time.perf_counter() - scoring_started > self.SCORING_TIMEOUT_S):
                scoring_failures += 1
                last = (one_line(scoring.exception()) if scoring.done()
                        else f"no result after {self.SCORING_TIMEOUT_S:.0f} s")
                if scoring_failures >= self.SCORING_ATTEMPTS:
                    raise CampaignStopped(f"scoring the search space failed {scoring_failures} "
                                          f"times (last: {last})")
                print(f"scoring attempt {scoring_failures} of {self.SCORING_ATTEMPTS} failed "
                      f"({last})", file=sys.stderr)
                self._scoring_meta.pop(scoring, None)
                scoring, scoring_started = self.score_search_space(trigger), time.perf_counter()
            if scoring is not None and scoring.done():
                scoring_failures = 0
                predictions = self.adopt_model(scoring)
                model_s = time.perf_counter() - scoring_started
                if ranking is not None:  # close the previous generation's record
                    self.record_iteration(generation, scoring_size, gen_rows, model_s, 0, 0)
                    generation += 1
                    gen_rows = []
                    if self._ask_stop_rule():
                        break  # the running simulations are still collected below
                predicted = Predicted(predictions, self.space_position)
                ranking = self.pick(predictions, generation)
                scoring, scoring_size = None, self.n_ok
            fill()
            if not self._pending and scoring is None:
                break  # nothing running and nothing left to pick
            rows, _ = self._wait_rows([scoring] if scoring is not None else [])
            gen_rows.extend(rows)
            if scoring is None and p.acquisition != "random" and self.n_ok < p.max_training_count:
                trigger = self.retrain_policy.due(self.n_ok, self._model_n_ok)
                if trigger is not None:
                    scoring = self.score_search_space(trigger)
                    scoring_started = time.perf_counter()
        while self._pending:  # budget reached while others still ran: keep their results
            gen_rows.extend(self._wait_rows()[0])
        if gen_rows:
            self.record_iteration(generation, scoring_size, gen_rows, 0, 0, 0)
