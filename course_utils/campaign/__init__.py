"""The campaign engine and its parts.

One :class:`Campaign` (``engine``) runs the loop (``batch_loop`` or ``streaming_loop``); each
part it holds keeps a contract (``parts``; the one ``Registry`` that turns a user's string into
a part is :mod:`course_utils.registry`) and lives in its own module: the simulator
(``simulators``), acquisition (``acquisition``), retrain policy and validation share
(``retraining``), arrival of the search space (``arrival``), stop rule (``stopping``), trust
check (``trust``, with the MPI program :mod:`course_utils.mpi_cheap`); the model in use and its
versions (``model_keeper``, ``lineage``; the models themselves are in :mod:`course_utils.ml`).
``parameters`` defines every knob; ``batch_plan`` makes a resumed batch pick what an unstopped
one would have; ``outputs`` writes results.json and the figures.
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
