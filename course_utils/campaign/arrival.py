"""The arrival part: which molecules of the search space the campaign may pick from, and when.

``all`` (the default) makes the whole space available from the start. ``waves:W,every:K``
splits the space into W seeded waves and unlocks the next wave every K successful
simulations, as data that arrives over time in an online-learning project: the model must
then score molecules it has never seen beside older ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from course_utils.registry import Registry


class ArrivalError(ValueError):
    """An arrival scheme that cannot be read; one line naming the bad part."""


@dataclass(frozen=True)
class Arrival:
    text: str = "all"
    waves: int = 1
    every: int = 0

    def unlocked(self, n_ok: int) -> int:
        """How many waves are available after ``n_ok`` successful simulations (at least 1)."""
        if self.waves <= 1 or self.every <= 0:
            return 1
        return min(self.waves, 1 + n_ok // self.every)

    def wave_of(self, space: Sequence[str], seed: int) -> np.ndarray:
        """The wave (0-based) of each molecule of ``space``, in space order; seeded, stable."""
        n = len(space)
        if self.waves <= 1:
            return np.zeros(n, dtype=np.int64)
        order = np.random.default_rng([seed, 7919]).permutation(n)
        waves = np.empty(n, dtype=np.int64)
        for wave, members in enumerate(np.array_split(order, self.waves)):
            waves[members] = wave
        return waves


ARRIVAL_REGISTRY: Registry[Arrival] = Registry(
    "arrival", error=ArrivalError, unknown="arrival {text!r} is unknown; choose one of {choices}")


@ARRIVAL_REGISTRY.register("all", bare=True)
def _all(arguments: str, text: str) -> Arrival:
    return Arrival()


@ARRIVAL_REGISTRY.register("waves", spelling="waves:W,every:K")
def _waves(arguments: str, text: str) -> Arrival:
    parts = [p.strip() for p in arguments.split(",")]
    waves = _whole(text, "W", parts[0] if parts else "")
    every = None
    for part in parts[1:]:
        key, _, value = part.partition(":")
        if key.strip() != "every":
            raise ArrivalError(f"arrival {text!r}: unknown part {part!r}; spell it "
                               "waves:W,every:K")
        every = _whole(text, "K", value)
    if every is None:
        raise ArrivalError(f"arrival {text!r}: say when waves unlock, e.g. waves:4,every:8")
    return Arrival(text, waves, every)


SPELLINGS = ARRIVAL_REGISTRY.spellings


def parse_arrival(text: str) -> Arrival:
    if not isinstance(text, str) or not text.strip():
        raise ArrivalError(f"arrival must be one of {', '.join(SPELLINGS)}, got {text!r}")
    return ARRIVAL_REGISTRY.make(text)


def _whole(text: str, name: str, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ArrivalError(f"arrival {text!r}: {name} must be a whole number >= 1")
    return number
