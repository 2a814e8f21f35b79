"""The campaign engine and its parts.

One :class:`Campaign` (``engine``) runs the loop; each part it holds has a contract and lives in
its own module: the simulator (``simulators``), acquisition (``acquisition``), retrain policy
and validation share (``retraining``), arrival of the search space (``arrival``), stop rule
(``stopping``), trust check (``trust``, with the MPI program ``mpi_cheap``), and model versions
(``lineage``). ``parameters`` defines every knob; ``batch_plan`` makes a resumed batch pick what
an unstopped one would have.
"""

from course_utils import lazy_exports

__all__ = ["ACQUISITIONS", "MODES", "Campaign", "CampaignInterrupted", "CampaignParameterError",
           "CampaignParameters", "CampaignResult", "run_campaign"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "Campaign": "engine", "CampaignResult": "engine", "run_campaign": "engine",
    "CampaignParameters": "parameters", "CampaignParameterError": "parameters",
    "ACQUISITIONS": "parameters", "MODES": "parameters",
    "CampaignInterrupted": "engine",
})
