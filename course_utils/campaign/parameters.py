"""What defines a campaign, checked before anything runs or is written."""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from course_utils.campaign.acquisition import ACQUISITION_REGISTRY
from course_utils.campaign.build import CampaignParameterError, Parts, build_parts
from course_utils.campaign.parts import RetrainPolicy
from course_utils.campaign.simulators import SIMULATORS, ground_truth_file_problem
from course_utils.chemistry import ENGINES
from course_utils.configs import CONFIG_NAMES
from course_utils.ml.registry import MODEL_REGISTRY

ACQUISITIONS = ACQUISITION_REGISTRY.names
MODES = ("batch", "streaming")
#: Seeds go to numpy, to the models' random_state (scikit-learn takes 0 to 2**32 - 1) and into
#: results.json, whose readers may hold integers as doubles: one range for all of them.
MAX_SEED = 2**32 - 1
#: What ``engine`` may name (chemistry.resolve_engine; ``auto``: the first installed one).
ENGINE_NAMES = (*ENGINES, "auto", "xtb-python")
# Parameters that define *which* campaign a folder holds; the budget may grow on resume.
RESUME_KEYS = ("initial_training_count", "batch_size", "seed", "acquisition", "model", "mode",
               "search_space", "ucb_kappa", "epsilon", "simulator", "valid_fraction", "arrival")


# CampaignParameterError is raised where the parts are built (campaign.build, its home) and
# named here too, beside the parameters it is about.
__all__ = ["ACQUISITIONS", "ENGINE_NAMES", "MAX_SEED", "MODES", "RESUME_KEYS", "CampaignNote",
           "CampaignParameterError", "CampaignParameters"]


def _search_space_file_problem(space: Any) -> str | None:
    """A search space that names a file that is not there (``qm9`` and ``truth:...`` are names):
    said here, before a folder is made or a sweep's processes start."""
    text = str(space)
    if text == "qm9" or text.startswith("truth:"):
        return None
    if not text.strip():
        return "search_space is empty; give 'qm9', 'truth:qm9' or a CSV/TSV file with a smiles column"
    if Path(text).expanduser().is_file():
        return None
    return (f"search-space file {text} not found; give 'qm9', 'truth:qm9' or a CSV/TSV file "
            "with a smiles column")


def _caller_level() -> int:
    """The ``stacklevel`` of the first caller outside the parameters and the builder: a note
    names the line that asked (a notebook cell's ``validate()``), as before parts were built."""
    inside = {__file__, build_parts.__code__.co_filename}
    frame, level = sys._getframe(1), 1  # _getframe(1): the function that warns
    while frame is not None and frame.f_code.co_filename in inside:
        frame, level = frame.f_back, level + 1
    return level


def _param(default: Any, help: str) -> Any:
    """A field with its ``help``: ``python -m course_utils run`` makes its flag from it (name,
    type, default and help), so a parameter is defined once for the CLI, notebooks and panel."""
    return field(default=default, metadata={"help": help})


class CampaignNote(UserWarning):
    """Parameters that run, but probably not as meant: said once per parameters object."""


@dataclass
class CampaignParameters:
    """Everything that defines a campaign; defaults run in about a minute on 2 cores."""

    initial_training_count: int = _param(
        8, "molecules simulated at random before the first model")
    max_training_count: int = _param(
        24, "budget: successful simulations in all (a resumed run may raise it)")
    batch_size: int = _param(
        4, "picks per batch; streaming: results between new models (see --retrain)")
    seed: int = _param(0, "seeds the initial molecules and every random choice")
    acquisition: str = _param("greedy", "|".join(ACQUISITIONS))
    #: The surrogate model (:mod:`course_utils.ml.registry`). A resume key, like
    #: ``acquisition``: the model decides the picks, and a resumed batch rebuilds the model
    #: version it was ranked with from the records, which only the same model gives.
    model: str = _param("knn", "the surrogate model: " + " | ".join(MODEL_REGISTRY.spellings)
                        + " (default knn: the tutorial's 4 nearest neighbours)")
    mode: str = _param("batch", "|".join(MODES))
    search_space: str = _param("qm9", "'qm9' or a CSV/TSV file with a smiles column")
    config: str = _param("local", "local|polaris, or local-mpi|polaris-mpi (with an MPI executor)")
    workers: int | None = _param(None, "workers (per node on Polaris)")
    ucb_kappa: float = _param(1.0, "ucb: weight of the model's spread in the score")
    epsilon: float = _param(0.1, "epsilon-greedy: share of random picks")
    retrain_after: int | None = _param(
        None, "streaming: older spelling of --retrain count:N (default: every batch)")
    score_chunks: int | None = _param(
        None, "tasks the search space is scored in (default: one per worker)")
    engine: str | None = _param(None, "xtb|tblite (default: auto)")
    simulation_walltime: float = _param(300.0, "seconds a simulation may take before it fails")
    max_failures: int | None = _param(
        None, "failed simulations tolerated before the run stops (default: the larger of 8 "
              "and --max-training-count)")
    #: ``xtb`` runs the real simulations; ``replay`` answers from the ground-truth table.
    simulator: str = _param(
        "xtb", "xtb (real simulations) | replay (answers from the ground-truth table, instant, "
               "simulated clock; with a partial --ground-truth table use --search-space "
               "truth:qm9, the part it covers)")
    #: Table that ``replay`` answers from: a file from ``truth build``; default: the packaged one.
    ground_truth: str | None = _param(
        None, "replay: table file from `truth build` (default: the shipped table)")
    #: When the search is done (:mod:`course_utils.campaign.stopping`): ``budget`` (only the budget),
    #: ``converged:window=W,delta=D[,top=K]`` or ``predicted:delta=D[,min_points=M]``.
    #: Not a resume key: a stopped run may go on with another rule or a larger budget.
    stop: str = _param(
        "budget", "when the search is done: budget (default: only the budget) | "
                  "converged:window=W,delta=D[,top=K] | predicted:delta=D[,min_points=M]"
                  " (D in eV); a run a rule stopped is finished")
    #: When to train a new model (:mod:`course_utils.campaign.retraining`): ``every-batch``,
    #: ``count:N`` (N new results) or ``growth:F`` (the successful data grew by the fraction F).
    retrain: str = _param(
        "every-batch", "when to train a new model: every-batch (default) | count:N (after N "
                       "new results) | growth:F (once the successful data grew by F, e.g. 0.25)")
    #: Share of successful simulations held out of training to validate each model (seeded,
    #: stable per molecule); 0 keeps the homework's behaviour.
    valid_fraction: float = _param(
        0.0, "share of successful simulations held out to validate each model "
             "(seeded, a molecule never changes sides; default 0)")
    #: ``all``, or ``waves:W,every:K``: the search space arrives in W seeded waves, the next one
    #: every K successful simulations (:mod:`course_utils.campaign.arrival`).
    arrival: str = _param(
        "all", "all (default) | waves:W,every:K: the search space arrives in W seeded "
               "waves, one more every K successful simulations")
    #: Trust checks (:mod:`course_utils.campaign.trust`, batch mode): a pick whose model value and cheap
    #: MPI check agree within ``trust_tol`` eV is accepted without a full simulation; None: off.
    trust_tol: float | None = _param(
        None, "trust checks (batch mode, needs --config local-mpi|polaris-mpi; a replay runs "
              "them in-process on any config): a pick whose model value and cheap MPI check "
              "agree within this many eV gets no full simulation (default: no checks)")
    trust_streak: int = _param(3, "stop after this many consecutive fully trusted batches")
    trust_ranks: int = _param(2, "MPI ranks of each batch's cheap check")

    def retrain_policy(self) -> RetrainPolicy:
        """The retrain policy; ``retrain_after`` (older spelling) is ``count:N`` when streaming.
        One of the built parts (:meth:`parts`)."""
        return self.parts().retrain_policy

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> CampaignParameters:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CampaignParameterError(f"unknown parameter(s): {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _validate_trust(self, fail) -> None:
        tol = self.trust_tol
        if (not isinstance(tol, int | float | np.integer | np.floating) or isinstance(tol, bool)
                or not math.isfinite(tol) or tol < 0):
            fail(f"trust_tol ({tol!r}) must be a finite number of eV >= 0, or None (no checks)")
        if self.mode != "batch":
            fail("trust checks work batch by batch: use mode='batch' with trust_tol")
        if self.acquisition == "random":
            fail("trust checks compare the model with a cheap calculation: random search has "
                 "no model; choose another acquisition or trust_tol=None")
        if self.simulator == "xtb" and not str(self.config).lower().endswith("-mpi"):
            fail(f"trust checks run the cheap fidelity as an MPI program: use config='local-mpi' "
                 f"(or 'polaris-mpi'), not {self.config!r}")
        if self.simulator == "replay" and not str(self.config).lower().endswith("-mpi"):
            self._note_once(f"trust checks with simulator='replay' compute the cheap fidelity "
                            f"in this process, not as an MPI program, so config={self.config!r} "
                            f"runs them (charged as {self.trust_ranks} ranks on the simulated "
                            "clock); with simulator='xtb' they need config='local-mpi'")

    def validate(self, search_space_size: int | None = None) -> Parts:
        """Raise :class:`CampaignParameterError` with a one-line reason naming the parameters;
        valid parameters return their parts: validating means building them (:meth:`parts`)."""
        return self.parts(search_space_size)

    def parts(self, search_space_size: int | None = None) -> Parts:
        """The campaign's parts (:func:`course_utils.campaign.build.build_parts`), built the
        first time and kept on this object until a field changes: the command line, the
        panel and the campaign then share them, and each text is parsed once.
        ``search_space_size``: also check the budget against the search space."""
        key = self._field_values()
        built = self.__dict__.get("_parts")  # not a field: not in to_dict()
        if built is None or built[0] != key:
            built = (key, build_parts(self, search_space_size))
            self.__dict__["_parts"] = built
        else:
            self._check_space(search_space_size)
        self._note_once(self.budget_note())
        return built[1]

    def _field_values(self) -> tuple:
        """What the kept parts were built from (types too: ``1`` and ``True`` differ here)."""
        return tuple((type(v), v) for v in (getattr(self, f.name) for f in fields(self)))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the kept parts (rebuilt where needed)."""
        return {k: v for k, v in self.__dict__.items() if k != "_parts"}

    def _check_space(self, search_space_size: int | None) -> None:
        if search_space_size is not None and self.max_training_count > search_space_size:
            raise CampaignParameterError(
                f"max_training_count ({self.max_training_count}) is larger than the search "
                f"space ({search_space_size} molecules)")

    def check_values(self, search_space_size: int | None = None) -> None:
        """The rules on plain values, in order (the first broken one is raised);
        :func:`~course_utils.campaign.build.build_parts` runs them before building parts."""
        def fail(message: str) -> None:
            raise CampaignParameterError(message)

        def is_int(value: Any) -> bool:
            return isinstance(value, int | np.integer) and not isinstance(value, bool)

        for name in ("initial_training_count", "max_training_count", "batch_size", "seed"):
            value = getattr(self, name)
            if not is_int(value):
                fail(f"{name} must be an integer, got {value!r}")
        # Optional counts: a float or a bool here is a typo that would misbehave much later.
        for name in ("workers", "retrain_after", "score_chunks", "max_failures", "trust_streak",
                     "trust_ranks"):
            value = getattr(self, name)
            if value is not None and not is_int(value):
                fail(f"{name} must be an integer, got {value!r}")
        # nan passes every comparison below unnoticed, and inf makes a walltime or a score useless.
        for name in ("simulation_walltime", "ucb_kappa", "epsilon", "valid_fraction"):
            value = getattr(self, name)
            if (not isinstance(value, int | float | np.integer | np.floating)
                    or isinstance(value, bool) or not math.isfinite(value)):
                fail(f"{name} ({value!r}) must be a finite number")
        if not 0 <= self.seed <= MAX_SEED:
            fail(f"seed ({self.seed}) must be a non-negative integer up to {MAX_SEED} "
                 "(2**32 - 1)")
        for name in ("trust_streak", "trust_ranks"):  # checked even while trust_tol is off
            if getattr(self, name) is None or getattr(self, name) < 1:
                fail(f"{name} ({getattr(self, name)!r}) must be at least 1")
        if self.engine is not None and (not isinstance(self.engine, str) or self.engine.strip()
                                        .lower() not in ENGINE_NAMES):
            fail(f"engine {self.engine!r} is unknown; choose one of {', '.join(ENGINE_NAMES)}")
        if self.initial_training_count >= self.max_training_count:
            fail(f"initial_training_count ({self.initial_training_count}) must be smaller than "
                 f"max_training_count ({self.max_training_count}), or no model-guided "
                 "simulation would run")
        if self.batch_size < 1:
            fail(f"batch_size ({self.batch_size}) must be at least 1")
        self._check_space(search_space_size)
        if self.acquisition not in ACQUISITIONS:  # exactly as listed, like model names
            fail(f"acquisition {self.acquisition!r} is unknown; choose one of "
                 f"{', '.join(ACQUISITIONS)} (names are lower case)")
        if self.simulator not in SIMULATORS:
            fail(f"simulator {self.simulator!r} is unknown; choose one of {', '.join(SIMULATORS)}")
        if self.mode not in MODES:
            fail(f"mode {self.mode!r} is unknown; choose one of {', '.join(MODES)}")
        if str(self.config).lower() not in CONFIG_NAMES:
            fail(f"config {self.config!r} is unknown; choose one of {', '.join(CONFIG_NAMES)}")
        if self.workers is not None and self.workers < 1:
            fail(f"workers ({self.workers!r}) must be a positive integer")
        if not 0.0 <= self.epsilon <= 1.0:
            fail(f"epsilon ({self.epsilon}) must be between 0 and 1")
        if self.ucb_kappa < 0:
            fail(f"ucb_kappa ({self.ucb_kappa}) must be >= 0")
        if self.retrain_after is not None and self.retrain_after < 1:
            fail(f"retrain_after ({self.retrain_after}) must be at least 1")
        if self.score_chunks is not None and self.score_chunks < 1:
            fail(f"score_chunks ({self.score_chunks}) must be at least 1")
        if self.simulation_walltime <= 0:
            fail(f"simulation_walltime ({self.simulation_walltime}) must be positive")
        if self.max_failures is not None and self.max_failures < 0:
            fail(f"max_failures ({self.max_failures}) must be >= 0")
        if self.trust_tol is not None:
            self._validate_trust(fail)
        if not 0.0 <= self.valid_fraction <= 0.5:
            fail(f"valid_fraction ({self.valid_fraction}) must be between 0 and 0.5: the rest "
                 "of the successful simulations train the model")
        if self.retrain_after is not None and self.retrain != "every-batch":
            fail(f"retrain_after ({self.retrain_after}) and retrain ({self.retrain!r}) both say "
                 "when to retrain; use retrain='count:N' alone")

    def check_files(self) -> None:
        """The search space's file, and replay's ground-truth table, are there."""
        problem = _search_space_file_problem(self.search_space)
        if problem:
            raise CampaignParameterError(problem)
        if self.simulator == "replay" and self.ground_truth is not None:
            problem = ground_truth_file_problem(self.ground_truth)
            if problem:
                raise CampaignParameterError(problem)

    def budget_note(self) -> str | None:
        """One line when ``batch_size`` exceeds the budget left after the initial training set:
        it runs, but not as the numbers suggest (valid parameters only)."""
        left = self.max_training_count - self.initial_training_count
        if self.batch_size <= left:
            return None
        head = (f"batch_size {self.batch_size} is more than the {left} simulations left after "
                f"the initial {self.initial_training_count}")
        if self.mode == "batch":
            return f"{head}; the one batch will have {left} (more only to replace failures)"
        if self.retrain == "every-batch" and self.retrain_after is None:
            return (f"{head}; streaming retrains every {self.batch_size} results, so the first "
                    "model will be the only one")
        return None

    def _note_once(self, note: str | None) -> None:
        """Warn with ``note`` the first time these parameters are validated: the CLI, notebooks
        and the homework panel validate again before running, and one note is enough."""
        given = self.__dict__.setdefault("_notes_given", set())  # not a field: not in to_dict()
        if note and note not in given:
            given.add(note)
            warnings.warn(note, CampaignNote, stacklevel=_caller_level())
