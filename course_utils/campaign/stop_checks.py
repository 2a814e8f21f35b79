"""When the run asks its stop rule, and what the rule said.

The run asks after each batch (and once when it resumes, since its records may already satisfy
the rule), only while budget is left and once a batch after the initial one exists: the random
batch alone says nothing about the search. What the rule decided, and when, becomes the run's
status, message and ``stopping`` block through :func:`~course_utils.campaign.stopping.conclude`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from course_utils.campaign.history import RunHistory
from course_utils.campaign.stopping import TRUST_RULE, StopDecision, StopOutcome, StopRule, conclude


class StopChecks:
    """The run's stop rule, asked at the right moments; remembers its decision."""

    def __init__(self, rule: StopRule, history: RunHistory, *, budget: int,
                 clock: Callable[[], float]):
        self.rule = rule
        self.history = history
        self.budget = budget
        self.clock = clock
        self.decision: StopDecision | None = None  # what the rule said, once it fired
        self._when: dict[str, Any] = {}

    def fired(self, *, on_resume: bool = False, batch_planned: bool = False) -> bool:
        """Ask the rule about the whole history (resumed records too); True once it fired.

        ``batch_planned`` on resume: the rule let that batch start before the stop, so it is
        finished first.
        """
        if self.decision is not None:
            return True
        if not self.history.recorder.iterations or self.history.n_ok >= self.budget:
            return False
        if on_resume and batch_planned:
            return False
        self.decision = self.rule.check(self.history.for_stop_rules(self.budget, on_resume=on_resume))
        if self.decision is not None:
            self._when = {"elapsed_s": self.clock(), "on_resume": on_resume}
        return self.decision is not None

    @property
    def trust_fired(self) -> bool:
        return self.decision is not None and self.decision.rule == TRUST_RULE

    def outcome(self, workers: int) -> StopOutcome:
        """Status, message and ``stopping`` block of what the rule said (or did not)."""
        return conclude(self.rule, self.decision, self._when,
                        left=max(self.budget - self.history.n_ok, 0),
                        seconds_per_simulation=self.history.seconds_per_success(),
                        workers=workers, budget=self.budget)
