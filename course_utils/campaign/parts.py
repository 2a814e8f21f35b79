"""The contracts of the campaign's parts, and the one registry that turns a user's string into one.

A campaign holds one part of each kind (``campaign.simulator``, ``.model``, ``.acquisition``,
``.retrain_policy``, ``.stop_rule``, ``.arrival``, ``.trust``) and calls it only through the
contract below, so a new part is a new class that keeps the contract plus one ``register`` line
beside it: the loops never change. The model contract lives with the models
(:mod:`course_utils.ml.contract`).

Each kind has a :class:`Registry` in the module of its parts (``STOP_RULE_REGISTRY`` in
``stopping``, ``RETRAIN_REGISTRY`` in ``retraining``, ``ARRIVAL_REGISTRY`` in ``arrival``,
``SIMULATOR_REGISTRY`` in ``simulators``, ``ACQUISITION_REGISTRY`` in ``acquisition``, ``MODEL_REGISTRY`` in
:mod:`course_utils.ml.registry`). The spelling is the same everywhere (parameters, the command
line, notebooks): ``name`` or ``name:arguments``, e.g. ``greedy``, ``growth:0.25``,
``converged:window=8,delta=0.01``, ``waves:4,every:8``, ``knn:k=4``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # annotations only: the parts' modules import this one
    from course_utils.campaign.stopping import StopDecision, StopHistory
    from course_utils.ml.contract import Model

T = TypeVar("T")


# --- the registry ----------------------------------------------------------------------------
class Registry(Generic[T]):
    """The names of one kind of part and the factories that make them from a user's string.

    ``make("name:arguments")`` finds ``name`` (case and spaces ignored) and calls its factory.
    A factory registered with ``options`` takes ``key=value`` arguments (``converged:window=8,
    delta=0.01``): each value goes through its converter (a ``ValueError`` from it becomes the
    one-line error), and the factory is called with keywords. Otherwise the factory receives the
    text after the colon as it is and the whole spelling, for its messages (``growth:0.25`` ->
    ``("0.25", "growth:0.25")``).
    """

    def __init__(self, kind: str, *, error: type[ValueError] = ValueError,
                 unknown: str = "{kind} {text!r} is unknown; choose one of {choices}"):
        self.kind = kind
        self.error = error
        #: The one line for an unknown name; fields: kind, text, name, choices.
        self.unknown = unknown
        self._factories: dict[str, Callable[..., T]] = {}
        self._spellings: dict[str, str] = {}
        self._options: dict[str, Mapping[str, Callable[[str], Any]] | None] = {}
        self._required: dict[str, tuple[str, ...]] = {}
        self._bare: set[str] = set()

    def register(self, name: str, *, spelling: str | None = None,
                 options: Mapping[str, Callable[[str], Any]] | None = None,
                 required: Sequence[str] = (), bare: bool = False
                 ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``factory`` makes the part spelled ``name`` (shown to users as
        ``spelling``, e.g. ``count:N``); ``bare``: the name takes nothing after it (anything
        after it makes an unknown name)."""
        def add(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            self._spellings[name] = spelling or name
            self._options[name] = options
            self._required[name] = tuple(required)
            if bare:
                self._bare.add(name)
            return factory
        return add

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    @property
    def spellings(self) -> tuple[str, ...]:
        return tuple(self._spellings.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower() in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def spelling(self, name: str) -> str:
        return self._spellings[name]

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name`` (for parts made from context, not from a
        spelling: a simulator takes the campaign's engine, workers and space)."""
        key = str(name).strip().lower()
        if key not in self._factories:
            raise self._unknown(str(name).strip(), str(name).strip())
        return self._factories[key]

    def _unknown(self, text: str, name: str) -> ValueError:
        return self.error(self.unknown.format(kind=self.kind, text=text, name=name,
                                              choices=", ".join(self.spellings)))

    def make(self, text: str) -> T:
        """The part ``text`` spells; :attr:`error` (one line naming the bad part) if none."""
        spelled = text.strip()
        head, _, arguments = spelled.partition(":")
        name = head.strip().lower()
        if name not in self._factories or (name in self._bare and arguments.strip()):
            raise self._unknown(spelled, head.strip())
        if self._options[name] is None:
            return self._factories[name](arguments.strip(), spelled)
        where = f"{self.kind} {spelled!r}"
        return self.build(name, where=where, **self.key_values(name, arguments, where))

    def build(self, name: str, *, where: str | None = None, **options: Any) -> T:
        """The part ``name`` with keyword ``options`` (already typed); checks names and required."""
        where = where or f"{self.kind} {name!r}"
        allowed = self._options.get(name) or {}
        unknown = [k for k in options if k not in allowed]
        if unknown:
            takes = ", ".join(allowed) or "no options"
            raise self.error(f"{where}: unknown option {unknown[0]!r} for {name} (takes {takes})")
        missing = [k for k in self._required[name] if k not in options]
        if missing:
            raise self.error(f"{where}: {name} needs {', '.join(f'{k}=...' for k in missing)} "
                             f"({self._spellings[name]})")
        return self._factories[name](**options)

    def key_values(self, name: str, arguments: str, where: str) -> dict[str, Any]:
        """``key=value,...`` as typed keywords, each converted by the option's converter."""
        allowed = self._options[name] or {}
        options: dict[str, Any] = {}
        for part in (p.strip() for p in arguments.split(",")) if arguments.strip() else ():
            key, eq, value = (s.strip() for s in part.partition("="))
            if not eq or not key or not value:
                raise self.error(f"{where}: {part!r} is not key=value")
            if key not in allowed:
                takes = ", ".join(allowed) or "no options"
                raise self.error(f"{where}: unknown option {key!r} for {name} (takes {takes})")
            if key in options:
                raise self.error(f"{where}: {key} is given twice")
            try:
                options[key] = allowed[key](value)
            except ValueError as err:
                raise self.error(f"{where}: {key}={value} {err}") from None
        return options


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
class StopRule(Protocol):
    """Says from a campaign's history whether the search is done."""

    @property
    def text(self) -> str: ...

    def check(self, history: StopHistory) -> StopDecision | None: ...


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
