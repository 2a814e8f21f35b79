"""The campaign: the model picks molecules, Parsl simulates them, the model retrains.

Same steps as notebook 3: a seeded random initial batch; then, batch after batch, train the
model on every successful simulation (when the retrain policy says so), score the whole search
space, pick the best molecules never run before (the acquisition), simulate them (the batch
plan first writes what each batch simulates), record the batch and ask the stop rule; until
``max_training_count`` simulations have succeeded. Failed simulations are recorded with their
error and replaced by new molecules, never by ones already tried.

:class:`Campaign` is a thin composition. It holds its parts, built once from the parameters
(``simulator``, ``model``, ``acquisition``, ``retrain_policy``, ``stop_rule``, ``arrival``,
``trust``; contracts in :mod:`~course_utils.campaign.parts`), and its collaborators:
``recorder`` (the records, :mod:`course_utils.records`), ``history`` (questions about the past,
:mod:`~course_utils.campaign.history`), ``dispatch`` (simulations in flight,
:mod:`~course_utils.campaign.dispatch`), ``keeper`` (the model in use and its versions,
:mod:`~course_utils.campaign.model_keeper`) and ``plan`` (batches.csv). Its public methods are
the steps notebook 3 calls, and :meth:`Campaign.run`, which runs one of the two loops:
:mod:`~course_utils.campaign.batch_loop` (wait for the whole batch, as the tutorial) or
:mod:`~course_utils.campaign.streaming_loop` (keep every worker busy). How a run ends and what
it reports are :mod:`~course_utils.campaign.outputs`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.campaign.batch_loop import run_batches
from course_utils.campaign.batch_plan import BatchPlan
from course_utils.campaign.batch_steps import (
    checked_batch,
    initial_candidates,
    planned_batch,
    rank_untried,
    resume_model,
)
from course_utils.campaign.dispatch import Dispatch
from course_utils.campaign.history import RunHistory
from course_utils.campaign.lineage import ModelLineage
from course_utils.campaign.model_keeper import ModelKeeper, Predicted
from course_utils.campaign.outputs import (
    CampaignResult,
    draw_figures,
    ending,
    evaluation_of,
    ground_truth_for,
    models_block,
    pick_error,
    write_results,
)
from course_utils.campaign.parameters import (
    ACQUISITIONS,
    MODES,
    RESUME_KEYS,
    CampaignParameterError,
    CampaignParameters,
)
from course_utils.campaign.progress import Progress
from course_utils.campaign.retraining import ValidationSplit
from course_utils.campaign.simulators import ReplayMissingError
from course_utils.campaign.stop_checks import StopChecks
from course_utils.campaign.streaming_loop import run_streaming
from course_utils.configs import make_config
from course_utils.ground_truth.evaluation import HeldOutSample, heldout_sample
from course_utils.resilience import (
    CampaignInterrupted,
    CampaignStopped,
    StopRequest,
    one_line,
    public_step,
    stop_signals,
)
from course_utils.search_space import load_search_space
from course_utils.status import FAILED, INTERRUPTED, RUNNING, STOPPED

#: What a notebook needs to run a campaign, importable from here in one line. Modules import
#: each name from its home (parameters, resilience), never through this list.
__all__ = ["ACQUISITIONS", "MODES", "Campaign", "CampaignInterrupted", "CampaignParameterError",
           "CampaignParameters", "CampaignResult", "run_campaign"]


@dataclass
class Campaign:
    """One campaign writing into ``out_dir``; :meth:`run` needs a loaded Parsl DataFlowKernel."""

    parameters: CampaignParameters
    out_dir: Path
    progress: bool = True
    on_update: Callable[[dict[str, Any]], None] | None = None
    #: Draw ml_in_the_loop.png at the end (sweeps of many replays may skip it).
    plot: bool = True

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir).resolve()  # the kernel may change directory later
        p = self.parameters
        space = load_search_space(p.search_space)
        self.space: list[str] = space["smiles"].tolist()
        self.workers: int = p.workers or os.cpu_count() or 1
        parts = p.parts(len(self.space))  # validated, each part built once (campaign.build)
        # Only after validation: bad parameters must leave no folder or file behind.
        self._lock: rec.RunLock | None = rec.acquire_run_lock(self.out_dir)
        try:
            self.recorder = rec.CampaignRecorder.open(self.out_dir)
            self.recorder.check_parameters(p.to_dict(), RESUME_KEYS,
                                           defaults=CampaignParameters().to_dict())
            self.resumed = len(self.recorder.simulations)
            self.simulator = parts.simulator(workers=self.workers, space=self.space)
            ledger = self.recorder.ledger  # appends every record file of the run, one flag:
            ledger.durable = self.simulator.needs_parsl  # a replay (ms a row) skips the fsync
            self.lineage = ModelLineage.open(self.out_dir, ledger)  # versions go on from the last
            self.plan = BatchPlan.open(self.out_dir, ledger)  # what each batch simulates
        except BaseException:
            self.release_lock()  # a campaign that cannot start must not keep the folder
            raise
        # --- the parts, built once from the parameters (campaign.build), each called through
        # its contract (campaign.parts)
        self.model = parts.model  # unfitted: the keeper fits copies of it
        self.acquisition = parts.acquisition
        self.retrain_policy = parts.retrain_policy
        self.stop_rule = parts.stop_rule  # when the search is done (the trust streak included)
        self.arrival = parts.arrival
        self.trust = None if parts.trust is None else parts.trust.open(self.out_dir, ledger)
        # --- its collaborators
        self.split = ValidationSplit(p.valid_fraction, p.seed)
        self.history = RunHistory(self.recorder, space=self.space, arrival=self.arrival,
                                  seed=p.seed, split=self.split, trust=self.trust)
        self.stop_checks = StopChecks(self.stop_rule, self.history, budget=p.max_training_count,
                                      clock=self._elapsed)
        self.progress_report = Progress(self.recorder, self.history, budget=p.max_training_count,
                                        clock=self._elapsed, on_update=self.on_update)
        self.stop_request = StopRequest()  # a signal or the panel's Stop, acted on at safe points
        self.dispatch = Dispatch(
            self.simulator, self.recorder, stop=self.stop_request, clock=self._elapsed,
            walltime=p.simulation_walltime, waves=self.history.wave_by_smiles,
            room=lambda running: self.history.n_failed + running <= self._max_failures,
            notify=self.progress_report.notify)
        self.keeper = ModelKeeper(
            self.model, self.simulator, self.lineage, space=self.space,
            chunks=p.score_chunks or self.workers, parameters=p.to_dict(),
            engine=self.simulator.engine, retrain=self.retrain_policy.text,
            wait=self.dispatch.wait_bounded, heldout=self._heldout(), notify=self.progress_report.notify,
            progress=self.progress)
        # --- the run's own state
        self._steps = 0  # public steps running (they nest: run -> initial_batch -> simulate)
        self._stop_handled = False  # the last stop was acted on; the next step starts afresh

    # --- what the run stands at ------------------------------------------------------------
    @property
    def n_ok(self) -> int:
        return self.history.n_ok

    @property
    def next_iteration(self) -> int:
        """The next batch's number (its row in iterations.csv)."""
        return self.history.next_batch

    @property
    def _max_failures(self) -> int:
        p = self.parameters
        return p.max_failures if p.max_failures is not None else max(8, p.max_training_count)

    def budget_left(self) -> bool:
        """Budget left and failures within the limit: the loops go on while this holds."""
        return (self.n_ok < self.parameters.max_training_count
                and self.history.n_failed <= self._max_failures)

    def _elapsed(self) -> float:
        return self.recorder.elapsed_offset + self.simulator.now()

    def _heldout(self) -> HeldOutSample | None:
        """The random molecules each model version is checked on, where a table knows them."""
        p = self.parameters
        truth = ground_truth_for(str(p.search_space), p.ground_truth, len(self.space))
        return None if truth is None else heldout_sample(self.space, truth)

    def release_lock(self) -> None:
        """Let another run write into ``out_dir`` (idempotent); the run's last step."""
        lock, self._lock = getattr(self, "_lock", None), None
        if lock is not None:
            lock.release()

    def announce(self, phase: str) -> None:
        """Say what the run is doing now (event ``phase``): a panel shows it while no
        simulation has finished yet, so a slow step is never silent."""
        self.progress_report.notify("phase", phase=phase)

    # --- the one way a stop ends a step ------------------------------------------------------
    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """The one way a stop ends :meth:`run` or any public step a notebook calls.

        The stop button, Ctrl-C or SIGTERM only ask for a stop (handled at the next safe point,
        on the main thread); when it comes, what finished is kept, results.json says
        ``interrupted``, and :class:`CampaignInterrupted` ends the cell with one line. Calling
        the step (or the whole notebook) again resumes.
        """
        if self._steps == 0 and self._stop_handled:  # a step after a stop: start afresh
            self.stop_request.clear()
            self._stop_handled = False
        self._steps += 1
        try:
            with stop_signals(self.stop_request):
                yield
        except CampaignInterrupted:
            raise
        except KeyboardInterrupt as err:  # keep what finished, say how to go on
            self.dispatch.cancel()
            cause = str(err) if str(err).startswith("stopped by") else "interrupted"
            self._report(INTERRUPTED, f"{cause}; run again to resume")
            self._stop_handled = True
            raise CampaignInterrupted(self.out_dir, self.n_ok, cause) from None
        finally:
            self._steps -= 1

    @public_step
    def wait_for(self, future: Future) -> Any:
        """Wait for a future (scores, a model) and return its result, on the stop path: the
        stop button works while it waits, as in every step."""
        return self.dispatch.result(future)

    # --- the steps ---------------------------------------------------------------------------
    @public_step
    def initial_batch(self) -> list[dict]:
        """Step 1: a seeded random sample until ``initial_training_count`` simulations succeed
        (and, with a validation share, until the model has enough training molecules)."""
        p = self.parameters
        rows = []
        if self.n_ok < p.initial_training_count:
            self.announce(f"simulating the initial batch ({p.initial_training_count} random "
                          "molecules)")
            rows = self.simulate_batch(0, self._initial(n_ok=0),
                                       p.initial_training_count)
        while (len(self.history.training_data()) < self.model.min_training
               and self.n_ok < p.max_training_count):
            known = len(self.history.batch_rows(0))
            rows = self.simulate_batch(0, self._initial(), self.history.ok_in(0) + 1)
            if len(rows) == known:
                break  # search space exhausted
        return rows

    @public_step
    def score_search_space(self, trigger: str = "", upto: int | None = None) -> Future:
        """Step 2: fit -> chunked scoring -> reduce, chained as Parsl apps; returns a future.

        The future's result is an (n, 2) array of predicted IE and std, in search-space order;
        :meth:`wait_for` waits for it on the stop path, :meth:`predictions` turns it into a
        table, and :meth:`adopt_model` makes its model the one in use and saves it as a version.
        ``trigger``: why the model is trained (for its lineage).
        """
        return self.keeper.start(self.history.training_round(trigger, upto))

    @public_step
    def adopt_model(self, future: Future) -> pd.DataFrame:
        """Wait for a scoring round, make its model the one in use and save it as a version
        (models/, lineage.csv); its predictions of the search space."""
        self.wait_for(future)
        return self.keeper.adopt(future)

    @public_step
    def new_model(self, trigger: str) -> pd.DataFrame:
        """Train, score and save a new model version (a failed round is run again); its
        predictions of the search space."""
        return self.keeper.adopt(
            self.keeper.score_with_retries(self.history.training_round(trigger)))

    def predictions(self, scores: np.ndarray) -> pd.DataFrame:
        """Scores from :meth:`score_search_space` as ``smiles``, ``ie``, ``ie_spread`` (eV)."""
        return self.keeper.table(scores)

    @public_step
    def model_for(self, batch: int) -> pd.DataFrame | None:
        """The retrain policy's step: the predictions batch ``batch`` ranks with, from a new
        model when one is due (None for random search, which needs no model). A batch planned
        before a stop keeps the model it was ranked with."""
        if not self.acquisition.needs_model:
            return None
        keeper = self.keeper
        if keeper.n_ok_at_fit is None and keeper.predictions is None:
            resume_model(keeper, self.plan, self.history, self.retrain_policy,
                         lambda version: keeper.restore(version, self.history.training_round,
                                                        len(self.recorder.simulations)))
        trigger = (None if self.plan.smiles(batch) and keeper.predictions is not None
                   else self.retrain_policy.due(self.n_ok, keeper.n_ok_at_fit, batch_mode=True))
        if trigger is not None:
            self.announce(f"training and scoring model {self.parameters.model} on "
                          f"{self.n_ok} simulated molecules")
            self.new_model(trigger)
        return keeper.predictions

    def pick(self, predictions: pd.DataFrame | None, iteration: int,
             exclude: set[str] | None = None, n_ok: int | None = None) -> Iterator[str]:
        """Step 3: untried molecules in the order the acquisition strategy prefers (lazy).

        ``exclude`` and ``n_ok`` (default: now) are what was tried and succeeded when the batch
        began: random draws depend on them, so a resumed batch passes its start's values.
        """
        return rank_untried(predictions, iteration, exclude, n_ok, seed=self.parameters.seed,
                            draws=self.parameters.batch_size, acquisition=self.acquisition,
                            keeper=self.keeper, history=self.history, dispatch=self.dispatch)

    @public_step
    def simulate(self, candidates: Iterable[str], target: int, batch: int,
                 predictions: pd.DataFrame | None = None) -> list[dict]:
        """Run candidates until ``target`` more succeed; each failure is replaced by the next one.

        ``predictions`` (the model's, if any) are kept beside each result to measure model error.
        """
        return self.dispatch.simulate(candidates, target, batch, self._predicted(predictions))

    @public_step
    def simulate_batch(self, batch: int, candidates: Iterable[str], target: int,
                       predictions: pd.DataFrame | None = None) -> list[dict]:
        """Step 4: simulate batch ``batch`` as planned until ``target`` of it succeeded (with
        trust checks: only the picks the cheap check disagrees on); its rows, earlier ones of a
        resumed batch included. The picks go to batches.csv before they are submitted."""
        predicted = self._predicted(predictions)
        if self.trust is not None and batch > 0:
            return checked_batch(batch, candidates, predicted, target, keeper=self.keeper,
                                 trust=self.trust, ranks=self.parameters.trust_ranks,
                                 checks_dir=self.out_dir / "checks", plan=self.plan,
                                 history=self.history, dispatch=self.dispatch)
        version = self.keeper.version if predictions is not None else None
        return planned_batch(batch, candidates, target, predicted, version=version,
                             plan=self.plan, history=self.history, dispatch=self.dispatch)

    def _initial(self, n_ok: int | None = None) -> Iterator[str]:
        p = self.parameters
        return initial_candidates(self.history, self.dispatch, p.initial_training_count, p.seed,
                                  n_ok)

    def _predicted(self, predictions: pd.DataFrame | None) -> Predicted:
        return Predicted(predictions, self.keeper.space_position)

    @public_step
    def record_iteration(self, iteration: int, training_size: int, rows: list[dict], *,
                         model_s: float = 0.0, select_s: float = 0.0,
                         simulate_s: float = 0.0) -> None:
        """Step 5: write batch ``iteration`` to iterations.csv (``rows``: its simulations;
        ``training_size``: successes when it began; the seconds its steps took)."""
        error = pick_error(rows)
        best = self.recorder.best()
        self.recorder.add_iteration({
            "iteration": iteration, "training_size": training_size,
            "n_new": sum(r["status"] == rec.STATUS_OK for r in rows),
            "best_ie": float(best["ie"]) if best else float("nan"),
            "model_time_s": model_s, "select_time_s": select_s,
            "simulate_time_s": simulate_s, **error,
            "elapsed_s": self._elapsed(), **self.keeper.columns(),
        })
        self._report(RUNNING, "")
        self.progress_report.notify("iteration", iteration=iteration, **error)

    def rule_says_stop(self, on_resume: bool = False) -> bool:
        """Step 6: has the stop rule (or the trust streak) ended the search? Asked about the
        whole history, resumed records included (:class:`StopChecks`)."""
        planned = (on_resume and self.parameters.mode == "batch"
                   and bool(self.plan.smiles(self.next_iteration)))
        return self.stop_checks.fired(on_resume=on_resume, batch_planned=planned)

    # --- the whole run -----------------------------------------------------------------------
    def run(self) -> CampaignResult:
        """Run to the end. A stop (signal, Ctrl-C) raises :class:`CampaignInterrupted` after
        the records are safe; a run that cannot go on ends as ``stopped`` with its reason."""
        p = self.parameters
        if self.progress:
            self.progress_report.open_bar()
        try:
            with self.interruptible():
                try:
                    self._report(RUNNING, "")
                    self.initial_batch()
                    # A resumed run asks its stop rule first: its records may already satisfy it.
                    ready = (self.n_ok >= p.initial_training_count
                             and not self.rule_says_stop(on_resume=True))
                    if ready and p.mode == "batch":
                        run_batches(self, self.history, self.plan, batch_size=p.batch_size,
                                    budget=p.max_training_count)
                    elif ready:
                        run_streaming(self, self.dispatch, self.keeper, self.history,
                                      self.retrain_policy,
                                      model=p.model if self.acquisition.needs_model else None,
                                      budget=p.max_training_count, workers=self.workers)
                except KeyboardInterrupt:
                    raise  # the stop path keeps what finished and says how to resume
                except CampaignStopped as err:
                    self.dispatch.cancel()
                    return self.finish(STOPPED, str(err))
                except ReplayMissingError as err:
                    self.dispatch.cancel()
                    self._report(FAILED, str(err))
                    raise
                except BaseException as err:
                    self.dispatch.cancel()
                    self._report(FAILED, one_line(err))
                    raise
                finally:
                    self.progress_report.close_bar()
            return self.finish()
        finally:
            self.release_lock()

    @public_step
    def finish(self, status: str | None = None, message: str = "") -> CampaignResult:
        """Last step: write the results file and the plot; return everything the run produced.

        Without a ``status`` the campaign works out how it ended (:func:`outputs.ending`):
        complete, stopped early by its rule or trust streak, or stopped with the reason.
        """
        if status is None:
            status, message = ending(
                n_ok=self.n_ok, budget=self.parameters.max_training_count,
                stop=self.stop_checks.outcome(self.workers), n_failed=self.history.n_failed,
                max_failures=self._max_failures)
        results = self._report(status, message, evaluate=True)
        plot_path = draw_figures(self.out_dir) if self.plot and self.recorder.successes else None
        self.progress_report.notify("done", status=status)
        self.release_lock()
        return CampaignResult(self.out_dir, results, rec.read_simulations(self.out_dir),
                              rec.read_iterations(self.out_dir), plot_path)

    # --- what the run reports ----------------------------------------------------------------
    def _report(self, status: str, message: str, evaluate: bool = False) -> dict[str, Any]:
        p = self.parameters
        blocks: dict[str, Any] = {
            "resumed_from_simulations": self.resumed, "simulator": p.simulator,
            "replayed": p.simulator == "replay",
            "stopping": self.stop_checks.outcome(self.workers).block,
            "models": models_block(self.lineage, retrain=self.retrain_policy.text,
                                   valid_fraction=self.split.fraction, arrival=self.arrival.text),
            "trust": (None if self.trust is None else
                      self.trust.block(self.stop_checks.trust_fired,
                                       self.history.seconds_per_success()))}
        if evaluate:
            blocks["evaluation"] = evaluation_of(self.out_dir, str(p.search_space),
                                                 p.ground_truth, len(self.space))
        return write_results(self.recorder, p.to_dict(), status=status, message=message,
                             engine=self.simulator.engine, wall_time_s=self._elapsed(),
                             blocks=blocks, workers=self.workers)


def run_campaign(
    parameters: CampaignParameters | dict[str, Any],
    out_dir: str | Path,
    *,
    progress: bool = True,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    config_options: dict[str, Any] | None = None,
    plot: bool = True,
) -> CampaignResult:
    """Run (or resume) a campaign into ``out_dir``, loading Parsl unless it is loaded already."""
    import parsl
    from parsl.errors import NoDataFlowKernelError

    if isinstance(parameters, dict):
        parameters = CampaignParameters.from_mapping(parameters)
    campaign = Campaign(parameters, Path(out_dir), progress=progress, on_update=on_update,
                        plot=plot)
    try:
        with stop_signals(campaign.stop_request):
            if not campaign.simulator.needs_parsl:  # replay: everything in this process
                return campaign.run()
            try:
                parsl.dfk()
            except NoDataFlowKernelError:
                options = {"run_dir": str(Path(out_dir) / "runinfo"), **(config_options or {})}
                if parameters.workers is not None:  # per node on Polaris
                    options.setdefault("workers", parameters.workers)
                campaign.announce("starting Parsl (its workers take a few seconds)")
                with parsl.load(make_config(parameters.config, **options)):
                    return campaign.run()
            return campaign.run()
    finally:
        campaign.release_lock()
