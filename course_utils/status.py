"""The names of a run's status in results.json, in one place for the engine, the command line,
grading and sweeps (on the ground floor, so none of them imports the campaign for a word).

A finished run is ``complete`` (its budget met) or ``stopped early (<rule>)`` (a stop rule or the
trust streak ended it); ``stopped`` (a user's stop or a stall), ``interrupted`` and ``failed`` are
runs to resume or fix.
"""

from __future__ import annotations

from typing import Any

COMPLETE = "complete"
#: A run under way (results.json is rewritten after every batch).
RUNNING = "running"
#: Status of a run a rule ended: finished, not an error (``stopped early (converged)``).
STOPPED_EARLY = "stopped early"
STOPPED = "stopped"
INTERRUPTED = "interrupted"
FAILED = "failed"


def stopped_early_status(rule: str) -> str:
    """The status of a run the rule ``rule`` ended: ``stopped early (rule)``."""
    return f"{STOPPED_EARLY} ({rule})"


def is_stopped_early(status: Any) -> bool:
    """A run a stop rule (or the trust streak) ended before its budget."""
    return isinstance(status, str) and status.startswith(STOPPED_EARLY)


def is_finished_status(status: Any) -> bool:
    """A finished run: it met its budget (``complete``) or a stop rule ended it."""
    return status == COMPLETE or is_stopped_early(status)
