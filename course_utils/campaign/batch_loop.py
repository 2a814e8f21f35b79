"""The batch loop: wait for the whole batch, as the original tutorial does (and notebook 3).

Each batch: the retrain policy says whether a new model is due (and it is trained), the
acquisition ranks the untried molecules, the batch plan writes the picks and they are
simulated, the batch is recorded, and the stop rule is asked; until the budget is met, the
search space is exhausted, or a stop rule (the trust streak among them) ends the search. A run
stopped inside a batch resumes by finishing that batch with the model it was ranked with.

It is given what it uses: the campaign's steps, the run's history and the batch plan.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from course_utils.campaign.batch_plan import BatchPlan
from course_utils.campaign.history import RunHistory

if TYPE_CHECKING:  # annotations only: the runner imports this module
    from course_utils.campaign.runner import Campaign


def run_batches(steps: Campaign, history: RunHistory, plan: BatchPlan, *, batch_size: int,
                budget: int) -> None:
    """Batch after batch until the run is done."""
    while steps.budget_left():
        batch = history.next_batch
        began = history.ok_before(batch)  # successes when the batch began
        t0 = time.perf_counter()
        predictions = steps.model_for(batch)  # a new model if the retrain policy says so
        t1 = time.perf_counter()
        picks = steps.pick(predictions, batch, history.tried_before(batch), began)
        t2 = time.perf_counter()
        target = min(batch_size, budget - began)
        steps.announce(f"simulating batch {batch} ({target} molecules)")
        rows = steps.simulate_batch(batch, picks, target, predictions)
        t3 = time.perf_counter()
        steps.record_iteration(batch, began, rows, model_s=t1 - t0, select_s=t2 - t1,
                               simulate_s=t3 - t2)
        if not plan.smiles(batch) or steps.rule_says_stop():
            break  # nothing left to pick, or the search is done
