"""The streaming loop: keep every worker busy.

Submit the next pick as each simulation finishes; train a new model in the background when the
retrain policy says so, and swap in its ranking as soon as it is ready. Each model's stretch of
results is one iteration (a *generation*) in iterations.csv.

It uses the campaign's steps and parts and nothing else, as the batch loop
(:mod:`course_utils.campaign.batch_loop`) does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from course_utils.campaign.model_keeper import Predicted

if TYPE_CHECKING:  # annotations only: the engine imports this module
    from course_utils.campaign.runner import Campaign


def run_streaming(campaign: Campaign) -> None:
    """Simulations as fast as the workers go, until the run is done."""
    p = campaign.parameters
    keeper = campaign.keeper
    uses_model = campaign.acquisition.needs_model
    generation = campaign.next_iteration
    trigger = campaign.retrain_policy.due(campaign.n_ok, None)
    campaign.announce(f"training and scoring model {p.model} on {campaign.n_ok} simulated "
                      "molecules" if uses_model else "simulating: a new pick as each ends")
    scoring = campaign.score_search_space(trigger) if uses_model else None
    scoring_size = campaign.n_ok
    ranking = None if uses_model else campaign.pick(None, generation)
    predicted = Predicted(None, {})
    gen_rows: list[dict] = []
    attempts = keeper.attempts()

    def fill() -> None:
        while (ranking is not None and campaign.has_room()
               and campaign.n_ok + campaign.running < p.max_training_count
               and campaign.running < campaign.workers):
            smiles = next(ranking, None)
            if smiles is None:
                return
            campaign.submit(smiles, generation, *predicted.pair(smiles))

    while campaign.n_ok < p.max_training_count and campaign.n_failed <= campaign.max_failures:
        problem = None if scoring is None else attempts.problem(scoring, keeper.started(scoring))
        if problem is not None:
            attempts.failed(problem)  # the last allowed failure stops the run
            keeper.forget(scoring)
            scoring = campaign.score_search_space(trigger)
        if scoring is not None and scoring.done():
            attempts = keeper.attempts()
            started = keeper.started(scoring)
            predictions = campaign.adopt_model(scoring)
            model_s = time.perf_counter() - started
            if ranking is not None:  # close the previous generation's record
                campaign.record_iteration(generation, scoring_size, gen_rows, model_s=model_s)
                generation += 1
                gen_rows = []
                if campaign.ask_stop_rule():
                    break  # the running simulations are still collected below
            predicted = Predicted(predictions, keeper.space_position)
            ranking = campaign.pick(predictions, generation)
            campaign.announce(f"simulating generation {generation}: a new pick as each "
                              "simulation ends (the next model trains in the background)")
            scoring, scoring_size = None, campaign.n_ok
        fill()
        if not campaign.running and scoring is None:
            break  # nothing running and nothing left to pick
        gen_rows.extend(campaign.collect_finished([scoring] if scoring is not None else []))
        if scoring is None and uses_model and campaign.n_ok < p.max_training_count:
            trigger = campaign.retrain_policy.due(campaign.n_ok, keeper.n_ok_at_fit)
            if trigger is not None:
                scoring = campaign.score_search_space(trigger)
    while campaign.running:  # budget reached while others still ran: keep their results
        gen_rows.extend(campaign.collect_finished())
    if gen_rows:
        campaign.record_iteration(generation, scoring_size, gen_rows)
