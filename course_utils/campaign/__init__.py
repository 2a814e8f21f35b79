"""The campaign and its parts.

:class:`Campaign` (``runner``) is a thin composition: it holds its parts, built once from the
parameters (``build``; every knob is defined in ``parameters``), and its collaborators, and its
public methods are the steps notebook 3 calls; ``run_campaign`` loads Parsl and runs one.

The parts, each keeping a contract (``parts``; the one ``Registry`` that turns a user's string
into a part is :mod:`course_utils.registry`): the simulator (``simulators``), acquisition
(``acquisition``), retrain policy and validation share (``retraining``), arrival of the search
space (``arrival``), stop rules, the trust streak among them (``stopping``), trust checks
(``trust``, with the MPI program :mod:`course_utils.mpi_cheap`); the models themselves are in
:mod:`course_utils.ml`.

The collaborators: ``dispatch`` (simulations in flight), ``history`` (the run's past, from its
records), ``model_keeper`` and ``lineage`` (the model in use and its saved versions),
``batch_plan`` and ``batch_steps`` (what each batch simulates, so a resumed batch picks what an
unstopped one would have), ``stop_checks`` (when the stop rule is asked), ``progress`` (the bar
and the panel's updates). The loops, ``batch_loop`` and ``streaming_loop``, are given what they
use; ``outputs`` words how a run ended and writes results.json and the figures.
"""

from course_utils import lazy_exports

__all__ = ["ACQUISITIONS", "MODES", "Campaign", "CampaignInterrupted", "CampaignParameterError",
           "CampaignParameters", "CampaignResult", "run_campaign"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "Campaign": "runner", "CampaignResult": "runner", "run_campaign": "runner",
    "CampaignParameters": "parameters", "CampaignParameterError": "parameters",
    "ACQUISITIONS": "parameters", "MODES": "parameters",
    "CampaignInterrupted": "runner",
})
