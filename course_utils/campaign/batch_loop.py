"""The batch loop: wait for the whole batch, as the original tutorial does.

Retrain (when the retrain policy says so), rank, simulate one batch, record it, ask the stop
rule; until the budget is met, the space is exhausted, or the stop rule or the trust streak
ends the search. With trust checks each batch first goes to the cheap check beside the model,
and only the picks they disagree on are simulated in full (:meth:`Campaign.checked_batch`).

It uses the campaign's steps and parts and nothing else, so a pattern added to the engine
reaches this loop and the streaming one (:mod:`course_utils.campaign.streaming_loop`) alike.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the engine imports this module
    from course_utils.campaign.runner import Campaign


def run_batches(campaign: Campaign) -> None:
    """Batch after batch until the run is done.

    A run stopped inside a batch is resumed by finishing that batch (batches.csv) with the
    model it was ranked with, so the run simulates what an unstopped one would have.
    """
    p = campaign.parameters
    keeper = campaign.keeper
    resume_model(campaign)
    while campaign.n_ok < p.max_training_count and campaign.n_failed <= campaign.max_failures:
        iteration = campaign.next_iteration
        training_size = campaign.ok_before(iteration)  # n_ok when the batch began
        t0 = time.perf_counter()
        predictions = None
        if campaign.acquisition.needs_model:
            # A batch planned before a stop keeps its model (restored by resume_model);
            # otherwise the policy decides. The first call without a model is always due.
            trigger = (None if campaign.plan.smiles(iteration) and keeper.predictions is not None
                       else campaign.retrain_policy.due(campaign.n_ok, keeper.n_ok_at_fit,
                                                        batch_mode=True))
            if trigger is not None:
                campaign.announce(f"training and scoring model {p.model} on "
                                  f"{campaign.n_ok} simulated molecules")
                campaign.new_model(trigger)
            predictions = keeper.predictions
        t1 = time.perf_counter()
        picks = campaign.pick(predictions, iteration, campaign.tried_before(iteration),
                              training_size)
        t2 = time.perf_counter()
        target = min(p.batch_size, p.max_training_count - training_size)
        campaign.announce(f"simulating batch {iteration} ({target} molecules)")
        if campaign.trust is not None:
            rows, checked = campaign.checked_batch(iteration, picks, predictions, target)
        else:
            rows = campaign.simulate_batch(iteration, picks, target, predictions)
            checked = len(rows)
        t3 = time.perf_counter()
        campaign.record_iteration(iteration, training_size, rows, model_s=t1 - t0,
                                  select_s=t2 - t1, simulate_s=t3 - t2)
        if not checked:
            break  # search space exhausted
        if campaign.ask_stop_rule():
            break
        if campaign.trust is not None and campaign.trust.streak >= p.trust_streak:
            campaign.trust_fired = True
            break


def resume_model(campaign: Campaign) -> None:
    """Go on with the model the stopped session used, as if it had never stopped.

    A batch planned before the stop gets the version it was ranked with back. Between
    batches, the last version counts as this session's model: if the retrain policy says a
    new one is due, the loop trains it (no rebuild needed); if not, the version is rebuilt.
    A version that cannot be rebuilt leaves the session without a model (a new one is
    trained, as before batches.csv existed).
    """
    keeper = campaign.keeper
    if not campaign.acquisition.needs_model or keeper.n_ok_at_fit is not None:
        return
    iteration = campaign.next_iteration
    planned = bool(campaign.plan.smiles(iteration))
    version = campaign.plan.model_version(iteration) if planned else None
    if version is None and keeper.lineage.last is not None:
        version = int(keeper.lineage.last["version"])
    row = next((r for r in keeper.lineage.rows if int(r["version"]) == version), None)
    if row is None:
        return
    try:
        upto = int(row["data_version"])
    except (TypeError, ValueError):
        return
    n_then = sum(r["status"] == "ok" for r in campaign.recorder.simulations[:upto])
    if not planned and campaign.retrain_policy.due(campaign.n_ok, n_then, batch_mode=True):
        keeper.n_ok_at_fit = n_then
        return
    campaign.restore_model(version)
