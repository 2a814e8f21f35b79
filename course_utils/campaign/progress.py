"""What a running campaign shows: the progress bar, and the updates a panel listens to.

Every event (a simulation recorded, a batch recorded, a phase begun, the end) moves the bar to
the successes so far with the best IE beside it, and goes to ``on_update`` (the homework panel)
as one dictionary: the event, counts, the best molecule so far and the run's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from course_utils import records as rec
from course_utils.campaign.history import RunHistory


class Progress:
    """The bar (while :meth:`bar` is open) and the ``on_update`` callback of one run."""

    def __init__(self, recorder: rec.CampaignRecorder, history: RunHistory, *, budget: int,
                 clock: Callable[[], float],
                 on_update: Callable[[dict[str, Any]], None] | None = None):
        self.recorder = recorder
        self.history = history
        self.budget = budget
        self.clock = clock
        self.on_update = on_update
        self._bar = None

    def open_bar(self) -> None:
        from tqdm.auto import tqdm  # deferred: tqdm.auto looks for Jupyter widgets (slow)

        self._bar = tqdm(total=self.budget, desc="successful simulations", unit="sim",
                         initial=min(self.history.n_ok, self.budget))

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def notify(self, event: str, **info: Any) -> None:
        """Say ``event`` (``simulation``, ``iteration``, ``phase``, ``done``) with ``info``."""
        best = self.recorder.best()
        n_ok = self.history.n_ok
        if self._bar is not None:
            self._bar.n = min(n_ok, self.budget)
            if best is not None:
                self._bar.set_postfix_str(f"best {float(best['ie']):.3f} eV", refresh=False)
            self._bar.refresh()
        if self.on_update is not None:
            self.on_update({"event": event, "n_ok": n_ok, "n_failed": self.history.n_failed,
                            "max": self.budget,
                            "best_ie": float(best["ie"]) if best else None,
                            "best_smiles": best["smiles"] if best else None,
                            "elapsed_s": self.clock(), **info})
