"""The campaign's parts, built once from its parameters: validating parameters means building them.

:func:`build_parts` turns every text of :class:`~course_utils.campaign.parameters.CampaignParameters`
that names a part (``model``, ``acquisition``, ``retrain``, ``stop``, ``arrival``, ``simulator``,
the trust settings) into that part, exactly once, and fails with the one-line
:class:`CampaignParameterError` of the first rule broken. ``CampaignParameters.parts()`` (and
``validate()``, which is the same call) keeps the :class:`Parts` it built on the parameters
object until a field changes, so the command line, the homework panel, sweeps and the
:class:`~course_utils.campaign.runner.Campaign` get the same objects and the same errors.

Only this module (and the module that defines each parser) calls the parsers;
``tests/test_imports.py`` checks it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from course_utils.campaign.acquisition import AcquisitionError, make_acquisition
from course_utils.campaign.arrival import ArrivalError, parse_arrival
from course_utils.campaign.parts import Acquisition, Arrival, RetrainPolicy, Simulator, StopRule
from course_utils.campaign.retraining import RetrainPolicyError, parse_retrain_policy
from course_utils.campaign.simulators import SIMULATOR_REGISTRY
from course_utils.campaign.stopping import StopRuleError, TrustStreakRule, first_of, parse_stop_rule
from course_utils.campaign.trust import TrustLedger
from course_utils.ml.contract import Model
from course_utils.ml.registry import ModelError, parse_model

if TYPE_CHECKING:  # annotations only: parameters imports this module
    from course_utils.campaign.parameters import CampaignParameters
    from course_utils.records.ledger import Ledger


class CampaignParameterError(ValueError):
    """Parameters that cannot make a campaign; the message is one line naming them."""


@dataclass(frozen=True)
class TrustSettings:
    """What a run needs to open its trust checks in its own folder (``trust_tol`` and co.)."""

    tol: float
    streak: int
    ranks: int

    def open(self, run_dir: str | os.PathLike, ledger: Ledger | None = None) -> TrustLedger:
        """The run's :class:`~course_utils.campaign.trust.TrustLedger` (its earlier checks)."""
        return TrustLedger.open(run_dir, self.tol, self.streak, self.ranks, ledger)


@dataclass(frozen=True)
class SimulatorFactory:
    """The simulator named by the parameters, resolved once; a run calls it with what only the
    run knows (its workers and its search space) to make its :class:`Simulator`."""

    name: str
    factory: Callable[..., Simulator]
    engine: str | None
    walltime: float
    space_name: str
    ground_truth: str | None

    def __call__(self, *, workers: int, space: Iterable[str]) -> Simulator:
        return self.factory(engine=self.engine, walltime=self.walltime, workers=workers,
                            space=space, space_name=self.space_name,
                            ground_truth=self.ground_truth)


@dataclass(frozen=True)
class Parts:
    """One campaign's parts, each called through its contract (:mod:`course_utils.campaign.parts`).

    ``model`` is the unfitted model as configured: the campaign's keeper fits deep copies of
    it (:mod:`course_utils.campaign.model_keeper`), so this one is never fitted and may be
    shared; ``trust`` is None when no checks are asked for.
    """

    model: Model
    acquisition: Acquisition
    retrain_policy: RetrainPolicy
    stop_rule: StopRule
    arrival: Arrival
    trust: TrustSettings | None
    simulator: SimulatorFactory


def _part(make: Callable[[], Any], error: type[ValueError]) -> Any:
    """A part, or its parser's one line as a :class:`CampaignParameterError`."""
    try:
        return make()
    except error as err:
        raise CampaignParameterError(str(err)) from None


def build_parts(parameters: CampaignParameters, search_space_size: int | None = None) -> Parts:
    """Check ``parameters`` and build each part once; the first rule broken is the one line
    raised. Callers go through ``parameters.parts()``, which keeps what this returns."""
    p = parameters
    p.check_values(search_space_size)  # the rules on plain values, in their order
    retrain_after = p.retrain_after if p.mode == "streaming" else None
    retrain_policy = _part(lambda: parse_retrain_policy(p.retrain, p.batch_size, retrain_after),
                           RetrainPolicyError)
    arrival = _part(lambda: parse_arrival(p.arrival), ArrivalError)
    model = _part(lambda: parse_model(p.model), ModelError)
    least = model.min_training
    if p.initial_training_count < least:  # the model says what it needs to learn at all
        raise CampaignParameterError(
            f"initial_training_count ({p.initial_training_count}) must be at least {least}: "
            f"the model {p.model!r} needs {least} training molecules")
    if not isinstance(p.stop, str):
        raise CampaignParameterError(
            f"stop must be a string such as 'budget' or 'converged:window=3,delta=0.01', "
            f"got {p.stop!r}")
    stop_rule = _part(lambda: parse_stop_rule(p.stop), StopRuleError)
    p.check_files()  # the search space's and the ground truth's files are there
    acquisition = _part(lambda: make_acquisition(p.acquisition, ucb_kappa=p.ucb_kappa,
                                                 epsilon=p.epsilon), AcquisitionError)
    simulator = SimulatorFactory(
        p.simulator, _part(lambda: SIMULATOR_REGISTRY.factory(p.simulator), ValueError),
        engine=p.engine, walltime=p.simulation_walltime, space_name=str(p.search_space),
        ground_truth=p.ground_truth)
    trust = (None if p.trust_tol is None
             else TrustSettings(p.trust_tol, p.trust_streak, p.trust_ranks))
    if trust is not None:  # the trust streak ends a search too, asked after the user's rule
        stop_rule = first_of(stop_rule, TrustStreakRule(trust.streak, trust.tol))
    return Parts(model=model, acquisition=acquisition, retrain_policy=retrain_policy,
                 stop_rule=stop_rule, arrival=arrival, trust=trust, simulator=simulator)


# --- one part from its text, outside a campaign's parameters ---------------------------------
@lru_cache(maxsize=64)
def min_training_of(model: str) -> int:
    """How many training molecules the model ``model`` spells needs (the panel's slider
    minimum); :class:`CampaignParameterError` if it spells none."""
    return _part(lambda: parse_model(model), ModelError).min_training


def stop_rule_of(rule: str | StopRule | None) -> StopRule:
    """The stop rule ``rule`` spells (a rule is returned as it is): a study applies rules by
    name to a finished run's records, with no campaign parameters to build."""
    return parse_stop_rule(rule)
