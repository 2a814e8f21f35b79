"""The stop-rule part: when is the search done?

A rule is spelled as a string, the same in :class:`~course_utils.campaign.parameters.CampaignParameters`
(``stop``), on the command line (``--stop``) and in the notebooks:

``budget``
    the default: only the budget (``max_training_count`` successful simulations) ends a run.
``converged:window=W,delta=D[,top=K]``
    stop once the best IE found (with ``top=K``: the mean of the K best found) rose by less
    than D eV over the last W iterations (MolPAL's rule).
``predicted:delta=D[,min_points=M]``
    fit a saturating curve to best-so-far against successful simulations (at least M of them)
    and stop once the rise it predicts from here to the budget is below D eV (the
    learning-curve extrapolation of neural-architecture search, applied to our search).

With trust checks (``trust_tol``), the trust streak is one more rule (:class:`TrustStreakRule`:
``trust_streak`` consecutive batches whose every pick the cheap check confirmed); the run asks
both, the user's first (:func:`first_of`).

The campaign asks its rule after each batch (:meth:`StopRule.check`) with a
:class:`StopHistory` made from the records (:func:`history_from_records`), so a resumed run
re-evaluates the rule on everything it holds. :func:`conclude` turns what the rule decided into
the run's status, its last message and results.json's ``stopping`` block, in one place.
Nothing here runs or writes anything.
"""

from __future__ import annotations

import heapq
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from course_utils.records.summary import running_best
from course_utils.registry import Registry
from course_utils.status import STOPPED_EARLY as STOPPED_EARLY  # re-exported: status names' home
from course_utils.status import is_finished_status as is_finished_status  # as above
from course_utils.status import stopped_early_status as stopped_early_status  # as above

RULES = ("budget", "converged", "predicted")
#: The trust streak's name as a rule: a run it ended is ``stopped early (trust)``.
TRUST_RULE = "trust"
SPELLINGS = ("budget", "converged:window=W,delta=D[,top=K]", "predicted:delta=D[,min_points=M]")


class StopRuleError(ValueError):
    """A stop rule that cannot be read; the message is one line naming the bad part."""


# --- what a rule sees and what it says ---------------------------------------------------------
@dataclass(frozen=True)
class StopHistory:
    """A campaign so far, as the rules see it.

    ``ies``: the IE (eV) of each successful simulation, in arrival order. ``ends``: how many of
    them were done at each point of the history: after the initial batch, then after each
    iteration. ``iterations``: the iteration number of each point (0 for the initial batch).
    ``budget``: successful simulations the run may use in all. ``trust_streak``: consecutive
    batches, up to now, whose every pick the trust checks confirmed (0 without checks).
    """

    ies: tuple[float, ...]
    ends: tuple[int, ...]
    iterations: tuple[int, ...]
    budget: int
    trust_streak: int = 0

    def __post_init__(self) -> None:
        if len(self.ends) != len(self.iterations):
            raise ValueError("ends and iterations must have one entry per point")
        if any(b < a for a, b in zip(self.ends, self.ends[1:], strict=False)):
            raise ValueError("ends must not decrease")
        if self.ends and not (0 <= self.ends[0] and self.ends[-1] <= len(self.ies)):
            raise ValueError("ends must count successes that are in ies")

    @classmethod
    def per_iteration(cls, ies: Sequence[float], new_per_iteration: Sequence[int],
                      initial: int, budget: int) -> StopHistory:
        """A history from the initial batch's size and each iteration's new successes."""
        ends = np.cumsum([initial, *new_per_iteration]).astype(int).tolist()
        return cls(tuple(float(v) for v in ies), tuple(ends), tuple(range(len(ends))), budget)

    def with_trust_streak(self, streak: int) -> StopHistory:
        return replace(self, trust_streak=int(streak))

    @property
    def points(self) -> int:
        return len(self.ends)

    @property
    def iteration(self) -> int:
        return self.iterations[-1] if self.iterations else 0

    @property
    def simulations(self) -> int:
        """Successful simulations done at the last point."""
        return self.ends[-1] if self.ends else 0

    @property
    def best(self) -> list[float]:
        """Best IE found at each point (NaN before the first success)."""
        curve = self.curve
        return [curve[end - 1] if end else math.nan for end in self.ends]

    def top_mean(self, k: int) -> list[float]:
        """Mean IE of the ``k`` best found at each point (NaN while fewer than ``k`` exist)."""
        heap: list[float] = []
        out, done = [], 0
        for end in self.ends:
            for value in self.ies[done:end]:
                (heapq.heappush if len(heap) < k else heapq.heappushpop)(heap, value)
            done = end
            out.append(float(np.mean(heap)) if len(heap) >= k else math.nan)
        return out

    @property
    def curve(self) -> list[float]:
        """Best-so-far after each successful simulation (x = 1, 2, ... successes)."""
        return running_best(self.ies).tolist()


def history_from_records(simulations: Iterable[Mapping[str, Any]],
                         iterations: Iterable[Mapping[str, Any]], budget: int) -> StopHistory:
    """The history of a campaign folder's records (the recorder's rows, live or resumed).

    Successes arrive in the order of ``simulations``; an iteration holds those that arrived
    before it was recorded (by the campaign clock ``elapsed_s``). The first point is the
    initial batch: the ``training_size`` of the first iteration.
    """
    ok = [r for r in simulations if r.get("status") == "ok"]
    ies = tuple(float(r["ie"]) for r in ok)
    times = np.maximum.accumulate(np.nan_to_num(
        np.asarray([float(r.get("elapsed_s") or math.nan) for r in ok], float), nan=np.inf))
    its = list(iterations)
    ends, numbers = [], []
    if its:
        ends.append(min(int(its[0]["training_size"]), len(ies)))
        numbers.append(int(its[0]["iteration"]) - 1)
    for row in its:
        end = int(np.searchsorted(times, float(row["elapsed_s"]), side="right"))
        ends.append(max(end, ends[-1]))
        numbers.append(int(row["iteration"]))
    return StopHistory(ies, tuple(ends), tuple(numbers), int(budget))


@dataclass(frozen=True)
class SaturatingFit:
    """best(n) = a - b*exp(-n/c) or a - b/(n+c), fitted to a best-so-far curve.

    ``method``: ``grid`` (exact on a grid of c) or ``curve_fit`` (polished from there).
    """

    model: str
    a: float
    b: float
    c: float
    rmse_ev: float
    method: str

    def __call__(self, n: float | np.ndarray) -> Any:
        return _MODELS[self.model](np.asarray(n, float), self.a, self.b, self.c)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "a": self.a, "b": self.b, "c": self.c,
                "rmse_ev": self.rmse_ev, "method": self.method}


def _exponential(n, a, b, c):
    return a - b * np.exp(-n / c)


def _hyperbolic(n, a, b, c):
    return a - b / (n + c)


_MODELS = {"a - b*exp(-n/c)": _exponential, "a - b/(n+c)": _hyperbolic}


def fit_saturating(best: Sequence[float], horizon: int | None = None) -> SaturatingFit:
    """Fit both saturating curves to ``best`` (x = 1..len) and keep the closer one.

    For a fixed ``c`` both curves are straight lines in ``(a, b)``, so each is fitted exactly
    on a log grid of ``c`` (``b >= 0``: the curve never falls), and the best grid point is then
    polished with :func:`scipy.optimize.curve_fit` (kept only if it fits better). ``c`` runs up
    to 100 times ``horizon`` (the budget): there the curve is nearly a straight line, so a curve
    still climbing predicts a large gain. The grid always has an answer, even for a flat curve.
    """
    y = np.asarray(best, float)
    x = np.arange(1, len(y) + 1, dtype=float)
    c_min, c_max = 1e-2, 100.0 * max(len(y), horizon or 0, 1)
    fits = [_fit_model(model, x, y, c_min, c_max) for model in _MODELS]
    return min(fits, key=lambda f: f.rmse_ev)


def _fit_model(model: str, x: np.ndarray, y: np.ndarray, c_min: float, c_max: float
               ) -> SaturatingFit:
    """One curve: exact (a, b) on a grid of c, then a short curve_fit polish."""
    from scipy.optimize import curve_fit

    function = _MODELS[model]
    cs = np.geomspace(c_min, c_max, 240)
    g = function(x[None, :], 0.0, 1.0, cs[:, None])  # rising in x: f = a + b*g, b >= 0
    g_mean, y_mean = g.mean(axis=1), y.mean()
    var = ((g - g_mean[:, None]) ** 2).sum(axis=1)
    cov = ((g - g_mean[:, None]) * (y - y_mean)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.clip(np.where(var > 1e-300, cov / var, 0.0), 0.0, None)
    a = y_mean - b * g_mean
    sse = ((a[:, None] + b[:, None] * g - y) ** 2).sum(axis=1)
    i = int(np.nanargmin(sse))
    params, best_sse, method = (float(a[i]), float(b[i]), float(cs[i])), float(sse[i]), "grid"
    if len(y) >= 4 and best_sse > 0:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                polished, _ = curve_fit(function, x, y, p0=params, maxfev=200,
                                        bounds=([-np.inf, 0.0, c_min], [np.inf, np.inf, c_max]))
            polished_sse = float(((function(x, *polished) - y) ** 2).sum())
            if math.isfinite(polished_sse) and polished_sse < best_sse:
                params, best_sse, method = tuple(map(float, polished)), polished_sse, "curve_fit"
        except (RuntimeError, ValueError, FloatingPointError):
            pass
    return SaturatingFit(model, *params, float(np.sqrt(best_sse / len(y))), method)


@dataclass(frozen=True)
class StopDecision:
    """A rule fired: which, when, why; ``curve`` for ``predicted``."""

    rule: str
    iteration: int
    simulations: int
    reason: str
    #: ``predicted`` only: the fitted curve, its value at the budget, the gain it predicts.
    curve: dict[str, Any] | None = None
    predicted_final_ev: float | None = None


# --- the rules -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StopRule:
    """A stop rule: :meth:`check` says whether the run should stop now.

    A new rule is a subclass with a ``name``, a ``text`` that :func:`parse_stop_rule` reads
    back, and :meth:`check`; plus one ``STOP_RULE_REGISTRY.register`` line below.
    """

    name: str = field(default="", init=False)
    #: What a user does to go on once this rule ended a run (the end of its last message).
    go_on: ClassVar[str] = "run again with another rule (e.g. --stop budget) to go on"

    @property
    def text(self) -> str:
        """The canonical spelling, which :func:`parse_stop_rule` reads back."""
        return self.name

    def __str__(self) -> str:
        return self.text

    def check(self, history: StopHistory) -> StopDecision | None:
        """A decision if the run should stop now, else None."""
        return None

    def go_on_after(self, decision: StopDecision) -> str:
        """How to go on after ``decision`` (a combination asks the rule that fired)."""
        return self.go_on


@dataclass(frozen=True)
class BudgetRule(StopRule):
    """Only the budget stops the run (``budget``, the default): it never fires."""

    name: str = field(default="budget", init=False)


@dataclass(frozen=True)
class ConvergedRule(StopRule):
    window: int = 3
    delta: float = 0.01
    top: int | None = None
    name: str = field(default="converged", init=False)

    @property
    def text(self) -> str:
        top = f",top={self.top}" if self.top else ""
        return f"converged:window={self.window},delta={self.delta:g}{top}"

    def check(self, history: StopHistory) -> StopDecision | None:
        if history.points <= self.window:
            return None
        if self.top:
            values, what = history.top_mean(self.top), f"the mean of the top {self.top} found"
        else:
            values, what = history.best, "the best found"
        now, then = values[-1], values[-1 - self.window]
        if not (math.isfinite(now) and math.isfinite(then)):
            return None
        gain = now - then
        if gain >= self.delta:
            return None
        return StopDecision(self.name, history.iteration, history.simulations,
                            f"{what} rose by {gain:.3f} eV over the last {self.window} "
                            f"iterations ({then:.3f} -> {now:.3f} eV), less than "
                            f"delta={self.delta:g} eV")


@dataclass(frozen=True)
class PredictedRule(StopRule):
    delta: float = 0.01
    min_points: int = 20
    name: str = field(default="predicted", init=False)

    @property
    def text(self) -> str:
        return f"predicted:delta={self.delta:g},min_points={self.min_points}"

    def check(self, history: StopHistory) -> StopDecision | None:
        curve = history.curve[:history.simulations]
        n = len(curve)
        if n < self.min_points or n >= history.budget:
            return None
        fit = fit_saturating(curve, history.budget)
        gain = max(float(fit(history.budget) - fit(n)), 0.0)
        if not gain < self.delta:
            return None
        final = curve[-1] + gain
        block = {**fit.to_dict(), "points": n, "budget": history.budget,
                 "fit_now_ev": float(fit(n)), "fit_at_budget_ev": float(fit(history.budget)),
                 "predicted_gain_ev": gain, "predicted_final_ev": final}
        return StopDecision(self.name, history.iteration, history.simulations,
                            f"the curve {fit.model} fitted to {n} successful simulations "
                            f"predicts a gain of {gain:.3f} eV from the remaining "
                            f"{history.budget - n} (best {curve[-1]:.3f} -> {final:.3f} eV), "
                            f"less than delta={self.delta:g} eV",
                            curve=block, predicted_final_ev=final)


@dataclass(frozen=True)
class TrustStreakRule(StopRule):
    """The trust streak (``trust_streak``, with trust checks): stop once that many consecutive
    batches had every pick confirmed by the cheap check (within ``tol`` eV of the model)."""

    streak: int = 3
    tol: float = 0.0
    name: str = field(default=TRUST_RULE, init=False)
    go_on: ClassVar[str] = "run again with a larger --trust-streak (or without --trust-tol) to go on"

    @property
    def text(self) -> str:
        return f"trust-streak:{self.streak}"

    def check(self, history: StopHistory) -> StopDecision | None:
        if history.trust_streak < self.streak:
            return None
        return StopDecision(self.name, history.iteration, history.simulations,
                            f"{self.streak} consecutive batches in which the cheap check agreed "
                            f"with the model on every pick (within {self.tol} eV)")


@dataclass(frozen=True)
class FirstOf(StopRule):
    """Several rules asked in order; the first that fires decides."""

    rules: tuple[StopRule, ...] = ()
    name: str = field(default="first-of", init=False)

    @property
    def text(self) -> str:
        return " + ".join(rule.text for rule in self.rules)

    def check(self, history: StopHistory) -> StopDecision | None:
        return next((d for d in (rule.check(history) for rule in self.rules) if d is not None),
                    None)

    def go_on_after(self, decision: StopDecision) -> str:
        fired = next((r for r in self.rules if r.name == decision.rule), None)
        return StopRule.go_on if fired is None else fired.go_on_after(decision)


def first_of(*rules: StopRule | None) -> StopRule:
    """One rule that asks ``rules`` in order (None: left out); a single rule is itself."""
    kept = tuple(rule for rule in rules if rule is not None)
    return kept[0] if len(kept) == 1 else FirstOf(kept)


def _integer(minimum: int):
    def convert(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise ValueError(f"must be an integer >= {minimum}")
        return number
    return convert


def _electronvolts(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError("must be a positive number of eV")
    return number


STOP_RULE_REGISTRY: Registry[StopRule] = Registry(
    "stop", error=StopRuleError,
    unknown="stop {text!r}: unknown rule {name!r}; choose one of {choices}")
STOP_RULE_REGISTRY.register("budget", options={})(BudgetRule)
STOP_RULE_REGISTRY.register(
    "converged", spelling=SPELLINGS[1], required=("window", "delta"),
    options={"window": _integer(1), "delta": _electronvolts, "top": _integer(1)})(ConvergedRule)
STOP_RULE_REGISTRY.register(
    "predicted", spelling=SPELLINGS[2], required=("delta",),
    options={"delta": _electronvolts, "min_points": _integer(4)})(PredictedRule)


def parse_stop_rule(text: str | StopRule | None) -> StopRule:
    """The rule a string spells; :class:`StopRuleError` (one line naming the bad part) if none."""
    if isinstance(text, StopRule):
        return text
    if text is None:
        return BudgetRule()
    if not isinstance(text, str):
        raise StopRuleError(f"stop must be a string such as 'budget', got {text!r}")
    return STOP_RULE_REGISTRY.make(text)


# --- what a run reports ----------------------------------------------------------------------
def stopping_block(rule: str, decision: StopDecision | None, stopped_at: Mapping[str, Any], *,
                   left: int, seconds_per_simulation: float | None, workers: int
                   ) -> dict[str, Any]:
    """results.json's ``stopping``: the rule, whether and when it fired, and what it saved
    (``left`` successful simulations of the budget, at the run's mean time per simulation)."""
    block: dict[str, Any] = {
        "rule": rule, "fired": decision is not None, "at_iteration": None,
        "at_simulations": None, "elapsed_s": None, "on_resume": False, "reason": None,
        "predicted": None, "saved": None}
    if decision is None:
        return block
    per_sim = seconds_per_simulation
    block.update(
        at_iteration=decision.iteration, at_simulations=decision.simulations,
        reason=decision.reason, elapsed_s=stopped_at.get("elapsed_s"),
        on_resume=bool(stopped_at.get("on_resume")), predicted=decision.curve,
        saved={"simulations": left, "seconds_per_simulation": per_sim, "workers": workers,
               "seconds": None if per_sim is None else left * per_sim / workers})
    return block


def stop_message(block: Mapping[str, Any], budget: int,
                 go_on: str = StopRule.go_on) -> str:
    """The one line a stopped run ends with: which rule, when, why, and how to go on."""
    saved = block["saved"]
    text = (f"stopped early by the rule {block['rule']} at iteration {block['at_iteration']} "
            f"with {block['at_simulations']} of {budget} successful simulations: "
            f"{block['reason']}")
    if block["on_resume"]:
        return text + ("; the rule already held on the resumed records, so this run stopped "
                       f"at once without a new simulation: {go_on}")
    seconds = f" (about {saved['seconds']:.0f} s)" if saved["seconds"] is not None else ""
    return text + f"; saved {saved['simulations']} simulations of the budget{seconds}; {go_on}"


@dataclass(frozen=True)
class StopOutcome:
    """What a stop decision makes of the run: its status (None: no rule fired), its last
    message and results.json's ``stopping`` block."""

    status: str | None
    message: str
    block: dict[str, Any]


def conclude(rule: StopRule, decision: StopDecision | None, stopped_at: Mapping[str, Any], *,
             left: int, seconds_per_simulation: float | None, workers: int, budget: int
             ) -> StopOutcome:
    """The one place a stop decision becomes the run's status, message and ``stopping``."""
    block = stopping_block(rule.text, decision, stopped_at, left=left,
                           seconds_per_simulation=seconds_per_simulation, workers=workers)
    if decision is None:
        return StopOutcome(None, "", block)
    return StopOutcome(stopped_early_status(decision.rule),
                       stop_message(block, budget, rule.go_on_after(decision)), block)
