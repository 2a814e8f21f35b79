"""The contracts of the campaign's parts (the registry that turns a user's string into one,
:class:`course_utils.registry.Registry`, is on the ground floor).

A campaign holds one part of each kind (``campaign.simulator``, ``.model``, ``.acquisition``,
``.retrain_policy``, ``.stop_rule``, ``.arrival``, ``.trust``) and calls it only through the
contract below, so a new part is a new class that keeps the contract plus one ``register`` line
beside it: the loops never change. The model contract lives with the models
(:mod:`course_utils.ml.contract`); the stop rule's is a base class with its rules
(:class:`course_utils.campaign.stopping.StopRule`, re-exported here), since every rule shares
how it reports.

Each kind has a :class:`~course_utils.registry.Registry` in the module of its parts (``STOP_RULE_REGISTRY`` in
``stopping``, ``RETRAIN_REGISTRY`` in ``retraining``, ``ARRIVAL_REGISTRY`` in ``arrival``,
``SIMULATOR_REGISTRY`` in ``simulators``, ``ACQUISITION_REGISTRY`` in ``acquisition``, ``MODEL_REGISTRY`` in
:mod:`course_utils.ml.registry`). The spelling is the same everywhere (parameters, the command
line, notebooks): ``name`` or ``name:arguments``, e.g. ``greedy``, ``growth:0.25``,
``converged:window=8,delta=0.01``, ``waves:4,every:8``, ``knn:k=4``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from course_utils.campaign.stopping import StopRule as StopRule  # re-exported: one definition
from course_utils.registry import Registry as Registry  # re-exported: its home is the ground floor

if TYPE_CHECKING:  # annotations only: the parts' modules import this one
    from course_utils.ml.contract import Model


# --- the contracts ---------------------------------------------------------------------------
@runtime_checkable
class Simulator(Protocol):
    """How a molecule gets its IE, where the model runs, and what the clock says."""

    name: str
    #: True: futures come from a loaded Parsl executor (records are fsynced).
    needs_parsl: bool
    #: The simulation engine results.json names (``xtb``, ``tblite``; ``replay``).
    engine: str

    def submit(self, smiles: str) -> Future: ...

    def wait(self, futures: Sequence[Future], timeout: float) -> set[Future]: ...

    def score(self, model: Model, training: pd.DataFrame, blocks: list) -> Future:
        """Fit ``model`` on ``training``; a future of the (n, 2) scores of the search space,
        with the fitted model as its ``model`` (a value or a future)."""
        ...

    def predict(self, model: Model, smiles: Sequence[str]) -> Future:
        """A future of a table ``smiles``, ``ie``, ``ie_spread`` for ``smiles``."""
        ...

    def cheap(self, smiles: Sequence[str], ranks: int, out_file: str | Path) -> Future: ...

    def now(self) -> float: ...


@dataclass(frozen=True)
class RankingContext:
    """What an acquisition may need beyond the predictions, as of the batch's start."""

    #: Best simulated IE so far (eV; NaN before any success): what ``ei`` and ``pi`` improve on.
    best_ie: float = math.nan
    #: The fitted model in use (``thompson`` draws posterior samples from it), or None.
    model: Model | None = None
    #: Posterior draws per ranking (``thompson``: one per pick of a batch).
    draws: int = 1


@runtime_checkable
class Acquisition(Protocol):
    """Orders untried molecules by preference (lazily: a batch reads a few dozen)."""

    name: str
    #: False: ranks without a model (random search), so the campaign trains none.
    needs_model: bool

    def rank(self, predictions: pd.DataFrame, exclude: set[str], rng: np.random.Generator,
             positions: Mapping[str, int] | None = None,
             context: RankingContext | None = None) -> Iterator[str]: ...


@runtime_checkable
class RetrainPolicy(Protocol):
    """Says from success counts whether a new model is due, and why."""

    text: str

    def due(self, n_ok: int, n_ok_at_last_model: int | None, batch_mode: bool = False
            ) -> str | None: ...


@runtime_checkable
class Arrival(Protocol):
    """Which molecules of the search space may be picked, and when."""

    text: str
    waves: int

    def unlocked(self, n_ok: int) -> int: ...

    def wave_of(self, space: Sequence[str], seed: int) -> np.ndarray: ...


@runtime_checkable
class TrustCheck(Protocol):
    """Judges a batch's picks by the model and a cheap calculation; keeps the checks."""

    rows: list[dict]
    trusted_smiles: set[str]

    @property
    def streak(self) -> int: ...

    def judge(self, iteration: int, picks: Sequence[str], model: pd.DataFrame,
              cheap: pd.DataFrame, model_version: int | None) -> list[dict]: ...

    def record(self, rows: list[dict], full: Sequence[Mapping[str, Any]]) -> None: ...

    def block(self, fired: bool, seconds_per_full: float | None) -> dict[str, Any]: ...
