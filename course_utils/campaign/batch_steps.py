"""One batch, planned: the steps behind :meth:`Campaign.simulate_batch` and the model's resume.

A batch writes its picks to the plan (batches.csv) before it submits them, so a run stopped
inside a batch finishes that batch with the same molecules and the same model when it resumes
(:func:`planned_batch`, :func:`resume_model`). With trust checks a batch first asks the model
and the cheap check about its picks, and only the picks they disagree on get full simulations
(:func:`checked_batch`). Each function is given the collaborators it uses.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from pathlib import Path

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.campaign.batch_plan import PLANNED, REPLACEMENT, BatchPlan
from course_utils.campaign.dispatch import Dispatch
from course_utils.campaign.history import RunHistory
from course_utils.campaign.model_keeper import ModelKeeper, Predicted
from course_utils.campaign.parts import Acquisition, RankingContext, RetrainPolicy, TrustCheck
from course_utils.resilience import CampaignStopped, one_line
from course_utils.search_space import iter_unseen, sample_smiles


def fresh(ordered: Iterable[str], history: RunHistory, dispatch: Dispatch) -> Iterator[str]:
    """Candidates never simulated and not running, checked at the last moment."""
    for smiles in ordered:
        if smiles not in history.tried(dispatch.in_flight()):
            yield smiles


def rank_untried(predictions: pd.DataFrame | None, batch: int, exclude: set[str] | None,
                 n_ok: int | None, *, seed: int, draws: int, acquisition: Acquisition,
                 keeper: ModelKeeper, history: RunHistory, dispatch: Dispatch) -> Iterator[str]:
    """Untried molecules in the order ``acquisition`` prefers (lazy): see :meth:`Campaign.pick`.

    Random draws come from a generator seeded by the run's seed and the batch, so a resumed
    batch, given its start's ``exclude`` and ``n_ok``, ranks exactly as it did.
    """
    rng = np.random.default_rng([seed, batch])
    if predictions is None:  # random search needs no model
        predictions = pd.DataFrame({"smiles": keeper.space_smiles, "ie": 0.0, "ie_spread": 0.0})
    mask = history.available(n_ok)
    if mask is not None and len(predictions) == len(mask):
        predictions = predictions[mask]
    positions = keeper.space_position if len(predictions) == len(history.space) else None
    best = history.best_ie_before(None if exclude is None else batch)
    context = RankingContext(best_ie=best, model=keeper.in_use, draws=draws)
    exclude = history.tried(dispatch.in_flight()) if exclude is None else exclude
    return fresh(acquisition.rank(predictions, exclude, rng, positions, context), history,
                 dispatch)


def initial_candidates(history: RunHistory, dispatch: Dispatch, count: int, seed: int,
                       n_ok: int | None = None) -> Iterator[str]:
    """The initial batch's seeded random candidates: ``count`` drawn with ``seed``, then the
    rest of the space in a seeded order (``n_ok``: successes the arrival scheme counts; the
    batch's start for its first picks, so a resume draws the same)."""
    space = history.available_space(n_ok)
    yield from fresh(sample_smiles(space, count, seed=seed), history, dispatch)
    yield from fresh(iter_unseen(space, seed=seed + 1, exclude=history.tried(dispatch.in_flight())),
                     history, dispatch)


def planned_batch(batch: int, candidates: Iterable[str], target: int, predicted: Predicted, *,
                  version: int | None, plan: BatchPlan, history: RunHistory,
                  dispatch: Dispatch) -> list[dict]:
    """Simulate batch ``batch`` until ``target`` of its simulations succeeded; its rows.

    The batch's first picks are written to the plan before any is submitted, and each
    replacement before it is: a resumed run first finishes the molecules the stopped one
    planned, then takes replacements from ``candidates``, which must be the same ranking (as of
    the batch's start). Rows the batch recorded before a stop are part of what is returned.
    """
    earlier = history.batch_rows(batch, predicted)
    need = target - history.ok_in(batch)
    if need <= 0:
        return earlier
    seen: set[str] = set()  # the ranking yields the batch's planned molecules again
    stream = (s for s in fresh(chain(plan.smiles(batch), candidates), history, dispatch)
              if not (s in seen or seen.add(s)))
    first = list(islice(stream, need))
    plan.add(batch, first, kind=PLANNED, model_version=version, predicted=predicted)

    def in_plan_order() -> Iterator[str]:
        yield from first
        for smiles in stream:  # a replacement is planned before it is submitted
            plan.add(batch, [smiles], kind=REPLACEMENT, model_version=version,
                     predicted=predicted)
            yield smiles

    return earlier + dispatch.simulate(in_plan_order(), need, batch, predicted)


def checked_batch(batch: int, picks: Iterable[str], predicted: Predicted, size: int, *,
                  keeper: ModelKeeper, trust: TrustCheck, ranks: int, checks_dir: Path,
                  plan: BatchPlan, history: RunHistory, dispatch: Dispatch) -> list[dict]:
    """One batch of ``size`` picks with trust checks: the model's values and the cheap MPI
    check of the picks run as two futures at once; only the picks they disagree on get full
    simulations (so the budget is never overshot). Its full simulations' rows (the picks are
    in the plan, which is how the loop tells a batch that found nothing to pick).
    """
    timeout = keeper.SCORING_TIMEOUT_S
    simulator = keeper.simulator
    picked = plan.smiles(batch)[:size] or list(islice(picks, size))
    if not picked:
        return []
    version = keeper.version
    plan.add(batch, picked, model_version=version, predicted=predicted)
    if any(int(r["iteration"]) == batch for r in trust.rows):
        return history.batch_rows(batch, predicted)  # done before a stop
    model_values = simulator.predict(keeper.in_use, picked)
    cheap = simulator.cheap(picked, ranks, checks_dir / f"iteration-{batch:04d}.csv")
    dispatch.wait_bounded([model_values, cheap], timeout)
    if cheap.done() and cheap.exception() is None:
        cheap_table = cheap.result()
    else:  # a failed or hung check trusts nothing: every pick gets its full simulation
        why = (one_line(cheap.exception()) if cheap.done()
               else f"no result after {timeout:.0f} s")
        print(f"cheap check of iteration {batch} failed ({why}); simulating every pick",
              file=sys.stderr)
        cheap_table = pd.DataFrame({"smiles": picked, "ie": math.nan, "status": "failed",
                                    "error": why, "rank": -1, "seconds": math.nan})
    if not model_values.done():
        raise CampaignStopped(f"the model's predictions of iteration {batch} did not "
                              f"arrive within {timeout:.0f} s")
    checks = trust.judge(batch, picked, model_values.result(), cheap_table, version)
    rows = history.batch_rows(batch, predicted)  # simulated before a stop
    todo = [c["smiles"] for c in checks
            if not c["trusted"] and c["smiles"] not in history.recorder.attempted]
    if todo:  # no replacements: a failed full simulation leaves its pick unlabelled
        rows += dispatch.simulate(iter(todo), len(todo), batch, predicted)
    trust.record(checks, rows)
    return rows


def resume_model(keeper: ModelKeeper, plan: BatchPlan, history: RunHistory,
                 retrain_policy: RetrainPolicy, restore: Callable[[int], bool]) -> None:
    """Go on with the model the stopped session used, as if it had never stopped.

    A batch planned before the stop gets the version it was ranked with back (``restore``).
    Between batches, the last version counts as this session's model: if the retrain policy
    says a new one is due, the loop trains it (no rebuild needed); if not, the version is
    rebuilt. A version that cannot be rebuilt leaves the session without a model (a new one is
    trained, as before batches.csv existed).
    """
    if keeper.n_ok_at_fit is not None:
        return
    batch = history.next_batch
    planned = bool(plan.smiles(batch))
    version = plan.model_version(batch) if planned else None
    if version is None and keeper.lineage.last is not None:
        version = int(keeper.lineage.last["version"])
    row = next((r for r in keeper.lineage.rows if int(r["version"]) == version), None)
    if row is None:
        return
    try:
        upto = int(row["data_version"])
    except (TypeError, ValueError):
        return
    n_then = sum(r["status"] == rec.STATUS_OK for r in history.recorder.simulations[:upto])
    if not planned and retrain_policy.due(history.n_ok, n_then, batch_mode=True):
        keeper.assume_fitted_at(n_then)
        return
    restore(version)
