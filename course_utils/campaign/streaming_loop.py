"""The streaming loop: keep every worker busy.

Submit the next pick as each simulation finishes; train a new model in the background when the
retrain policy says so, and swap in its ranking as soon as it is ready. The stretch of results
each model version picked is one batch (one row of iterations.csv).

It is given what it uses: the campaign's steps, dispatch, the model keeper, the run's history
and the retrain policy, as the batch loop (:mod:`course_utils.campaign.batch_loop`) is.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from course_utils.campaign.dispatch import Dispatch
from course_utils.campaign.history import RunHistory
from course_utils.campaign.model_keeper import ModelKeeper, Predicted
from course_utils.campaign.parts import RetrainPolicy

if TYPE_CHECKING:  # annotations only: the runner imports this module
    from course_utils.campaign.runner import Campaign


def run_streaming(steps: Campaign, dispatch: Dispatch, keeper: ModelKeeper, history: RunHistory,
                  retrain_policy: RetrainPolicy, *, model: str | None, budget: int,
                  workers: int) -> None:
    """Simulations as fast as the workers go, until the run is done (``model``: its
    spelling, None for random search, which needs none)."""
    uses_model = model is not None
    batch = history.next_batch
    trigger = retrain_policy.due(history.n_ok, None)
    steps.announce(f"training and scoring model {model} on {history.n_ok} simulated molecules"
                   if uses_model else "simulating: a new pick as each ends")
    scoring = steps.score_search_space(trigger) if uses_model else None
    scoring_size = history.n_ok
    ranking = None if uses_model else steps.pick(None, batch)
    predicted = Predicted(None, {})
    batch_rows: list[dict] = []
    attempts = keeper.attempts()

    def fill() -> None:
        while (ranking is not None and dispatch.has_room()
               and history.n_ok + dispatch.running < budget and dispatch.running < workers):
            smiles = next(ranking, None)
            if smiles is None:
                return
            dispatch.submit(smiles, batch, *predicted.pair(smiles))

    while steps.budget_left():
        problem = None if scoring is None else attempts.problem(scoring, keeper.started(scoring))
        if problem is not None:
            attempts.failed(problem)  # the last allowed failure stops the run
            keeper.forget(scoring)
            scoring = steps.score_search_space(trigger)
        if scoring is not None and scoring.done():
            attempts = keeper.attempts()
            started = keeper.started(scoring)
            predictions = steps.adopt_model(scoring)
            model_s = time.perf_counter() - started
            if ranking is not None:  # close the previous model's batch
                steps.record_iteration(batch, scoring_size, batch_rows, model_s=model_s)
                batch += 1
                batch_rows = []
                if steps.rule_says_stop():
                    break  # the running simulations are still collected below
            predicted = Predicted(predictions, keeper.space_position)
            ranking = steps.pick(predictions, batch)
            steps.announce(f"simulating batch {batch}: a new pick as each simulation ends "
                           "(the next model trains in the background)")
            scoring, scoring_size = None, history.n_ok
        fill()
        if not dispatch.running and scoring is None:
            break  # nothing running and nothing left to pick
        batch_rows.extend(dispatch.collect([scoring] if scoring is not None else []))
        if scoring is None and uses_model and history.n_ok < budget:
            trigger = retrain_policy.due(history.n_ok, keeper.n_ok_at_fit)
            if trigger is not None:
                scoring = steps.score_search_space(trigger)
    while dispatch.running:  # budget reached while others still ran: keep their results
        batch_rows.extend(dispatch.collect())
    if batch_rows:
        steps.record_iteration(batch, scoring_size, batch_rows)
