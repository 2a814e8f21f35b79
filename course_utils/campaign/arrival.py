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

SPELLINGS = ("all", "waves:W,every:K")


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


def parse_arrival(text: str) -> Arrival:
    if not isinstance(text, str) or not text.strip():
        raise ArrivalError(f"arrival must be one of {', '.join(SPELLINGS)}, got {text!r}")
    text = text.strip()
    if text == "all":
        return Arrival()
    kind, _, rest = text.partition(":")
    values: dict[str, int] = {}
    if kind == "waves":
        parts = [p.strip() for p in rest.split(",")]
        values["waves"] = _whole(text, "W", parts[0] if parts else "")
        for part in parts[1:]:
            key, _, value = part.partition(":")
            if key.strip() != "every":
                raise ArrivalError(f"arrival {text!r}: unknown part {part!r}; spell it "
                                   "waves:W,every:K")
            values["every"] = _whole(text, "K", value)
    if kind == "waves" and "every" not in values:
        raise ArrivalError(f"arrival {text!r}: say when waves unlock, e.g. waves:4,every:8")
    if kind != "waves":
        raise ArrivalError(f"arrival {text!r} is unknown; choose one of {', '.join(SPELLINGS)}")
    return Arrival(text, values["waves"], values["every"])


def _whole(text: str, name: str, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ArrivalError(f"arrival {text!r}: {name} must be a whole number >= 1")
    return number
