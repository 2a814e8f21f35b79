"""What a sweep runs, checked before it starts: its configurations and the rung budgets.

:func:`check_sweep` is everything a sweep checks before it runs (also before a PBS job waits in
a queue, :mod:`course_utils.polaris.pbs`): each configuration's campaign parameters at the full
budget (validating them builds each campaign's parts, :mod:`course_utils.campaign.build`), and
the successive-halving schedule (:func:`plan_rungs`). :mod:`course_utils.studies.sweep` runs it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from course_utils.resilience import error_message
from course_utils.studies.sweep_file import SweepFileError, parse_value, read_sweep

#: Set by the sweep for every configuration alike, so that they compete on equal terms.
SWEEP_KEYS = ("config", "simulator", "search_space", "ground_truth", "workers")


class SweepError(ValueError):
    """A sweep that cannot run as given; the message is one line naming the problem."""


# --------------------------------------------------------------------------- inputs


def read_configs(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The configurations of a sweep file (``submit/example_sweep.txt`` format), typed."""
    if not Path(path).is_file():
        raise SweepError(f"configurations file {path} not found")
    try:
        sets = read_sweep(path)
    except SweepFileError as err:
        raise SweepError(str(err)) from None
    return [{name: parse_value(value) for name, value in line.items()} for line in sets]


def parse_rungs(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"16,32,64"`` (or ``16:32:64``, or a list) as rung budgets; None for none given."""
    if text is None:
        return None
    if isinstance(text, str) and not text.strip():
        raise SweepError(f"rungs {text!r} is empty: give increasing budgets such as 16,32,64, "
                         "or leave it out for rungs from eta")
    words = text.replace(":", ",").split(",") if isinstance(text, str) else list(text)
    try:
        return tuple(int(str(w).strip()) for w in words)
    except ValueError:
        raise SweepError(f"rungs {text!r}: give increasing budgets such as 16,32,64") from None


def plan_rungs(budget: int, n_configs: int, *, eta: int = 3, rungs: Sequence[int] | None = None,
               min_budget: int | None = None, smallest: int = 1) -> tuple[int, ...]:
    """The budget of every rung, increasing, the last one the full ``budget``.

    ``rungs`` gives them outright (the full budget is added if missing); ``min_budget`` starts
    a geometric series (x eta each rung); by default the first rung is budget / eta^s, with s
    the halvings it takes to get from ``n_configs`` to one. Every rung must exceed the largest
    initial_training_count (``smallest`` - 1), or its campaigns would have nothing to learn.
    """
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise SweepError(f"eta ({eta!r}) must be an integer >= 2: each rung keeps the best 1/eta")
    if rungs is not None and min_budget is not None:
        raise SweepError("give the rungs or a minimum budget, not both")
    if rungs is not None:
        planned = [int(r) for r in rungs]
        if not planned:
            raise SweepError("rungs: give at least one budget")
        if any(b <= a for a, b in zip(planned, planned[1:], strict=False)):
            raise SweepError(f"rungs {planned} must increase strictly")
        if planned[-1] > budget:
            raise SweepError(f"rungs {planned}: the last exceeds the full budget ({budget})")
        if planned[-1] < budget:
            planned.append(budget)
    else:
        if min_budget is None:
            halvings = math.ceil(math.log(n_configs, eta) - 1e-9) if n_configs > 1 else 0
            min_budget = max(smallest, round(budget / eta ** halvings))
        if not smallest <= min_budget <= budget:
            raise SweepError(f"min budget ({min_budget}) must be between {smallest} and the "
                             f"full budget ({budget})")
        planned, rung = [], int(min_budget)
        while rung < budget:
            planned.append(rung)
            rung *= eta
        planned.append(budget)
    if planned[0] < smallest:
        raise SweepError(f"rung budget {planned[0]} must be larger than every "
                         f"initial_training_count (up to {smallest - 1}): a campaign needs "
                         "model-guided simulations")
    return tuple(planned)


def campaign_parameters(configs: Sequence[Mapping[str, Any]], common: Mapping[str, Any] | None,
                        budget: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Every configuration's campaign parameters at the full budget, checked; and that budget.

    ``common`` holds the sweep's own settings (:data:`SWEEP_KEYS`, and defaults for the rest);
    ``budget`` overrides every line's max_training_count, which must otherwise agree.
    """
    # deferred: parameters imports Parsl through configs (+0.7 s, measured)
    from course_utils.campaign.parameters import CampaignParameterError, CampaignParameters

    if not configs:
        raise SweepError("the sweep has no configuration")
    common = dict(common or {})
    if common.get("simulator") == "replay":
        common.setdefault("search_space", "truth:qm9")
    out = []
    for number, line in enumerate(configs, start=1):
        fixed = sorted(set(line) & set(SWEEP_KEYS))
        if fixed:
            raise SweepError(f"configuration {number} sets {', '.join(fixed)}: the sweep sets "
                             "these for every configuration alike (command-line options)")
        values = {**common, **line}
        if budget is not None:
            values["max_training_count"] = int(budget)
        try:
            CampaignParameters.from_mapping(values).validate()
        except (CampaignParameterError, TypeError) as err:
            raise SweepError(f"configuration {number}: {error_message(err)}") from None
        out.append(values)
    budgets = sorted({int(v.get("max_training_count", CampaignParameters.max_training_count))
                      for v in out})
    if len(budgets) > 1:
        raise SweepError(f"configurations have different max_training_count ({budgets}): give "
                         "one full budget for all (--budget N)")
    for values in out:
        values["max_training_count"] = budgets[0]
    return out, budgets[0]


def check_sweep(configs: Sequence[Mapping[str, Any]], *, eta: int = 3,
                rungs: Sequence[int] | None = None, min_budget: int | None = None,
                budget: int | None = None, common: Mapping[str, Any] | None = None
                ) -> tuple[list[dict[str, Any]], tuple[int, ...]]:
    """Everything a sweep checks before it runs (also before a job waits in a queue): the
    campaign parameters at the full budget, and the rung budgets."""
    parameters, full = campaign_parameters(configs, common, budget)
    smallest = max(int(p.get("initial_training_count", 8)) for p in parameters) + 1
    return parameters, plan_rungs(full, len(parameters), eta=eta, rungs=rungs,
                                  min_budget=min_budget, smallest=smallest)
