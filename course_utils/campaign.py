"""The active-learning campaign: the model picks molecules, Parsl simulates them, it retrains.

Same steps as notebook 3: a seeded random initial batch; then train the KNN model on every
successful simulation, score the whole search space, pick the best molecules never run before,
simulate them; until ``max_training_count`` simulations have succeeded. Failed simulations are
recorded with their error and replaced by new molecules, never by ones already tried.

Two modes: ``batch`` (wait for the whole batch, as the original tutorial) and ``streaming``
(keep every worker busy, submitting the next pick as each simulation finishes, and retrain in
the background once ``retrain_after`` new results have arrived).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils import records as rec
from course_utils.configs import CONFIG_NAMES

ACQUISITIONS = ("greedy", "ucb", "epsilon-greedy", "random")
MODES = ("batch", "streaming")
N_NEIGHBORS = 4
# Parameters that define *which* campaign a folder holds; the budget may grow on resume.
RESUME_KEYS = ("initial_training_count", "batch_size", "seed", "acquisition", "mode",
               "search_space", "ucb_kappa", "epsilon")


class CampaignParameterError(ValueError):
    """Parameters that cannot make a campaign; the message is one line naming them."""


@dataclass
class CampaignParameters:
    """Everything that defines a campaign; defaults run in about a minute on 2 cores."""

    initial_training_count: int = 8
    max_training_count: int = 24
    batch_size: int = 4
    seed: int = 0
    acquisition: str = "greedy"
    mode: str = "batch"
    search_space: str = "qm9"
    config: str = "local"
    workers: int | None = None
    ucb_kappa: float = 1.0
    epsilon: float = 0.1
    retrain_after: int | None = None
    score_chunks: int | None = None
    engine: str | None = None
    simulation_walltime: float = 300.0
    max_failures: int | None = None

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> CampaignParameters:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CampaignParameterError(f"unknown parameter(s): {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self, search_space_size: int | None = None) -> None:
        """Raise :class:`CampaignParameterError` with a one-line reason naming the parameters."""
        def fail(message: str) -> None:
            raise CampaignParameterError(message)

        for name in ("initial_training_count", "max_training_count", "batch_size", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool):
                fail(f"{name} must be an integer, got {value!r}")
        if self.initial_training_count < N_NEIGHBORS:
            fail(f"initial_training_count ({self.initial_training_count}) must be at least "
                 f"{N_NEIGHBORS}: the model averages {N_NEIGHBORS} nearest neighbours")
        if self.initial_training_count >= self.max_training_count:
            fail(f"initial_training_count ({self.initial_training_count}) must be smaller than "
                 f"max_training_count ({self.max_training_count}), or no model-guided "
                 "simulation would run")
        if self.batch_size < 1:
            fail(f"batch_size ({self.batch_size}) must be at least 1")
        if search_space_size is not None and self.max_training_count > search_space_size:
            fail(f"max_training_count ({self.max_training_count}) is larger than the search "
                 f"space ({search_space_size} molecules)")
        if self.acquisition not in ACQUISITIONS:
            fail(f"acquisition {self.acquisition!r} is unknown; choose one of "
                 f"{', '.join(ACQUISITIONS)}")
        if self.mode not in MODES:
            fail(f"mode {self.mode!r} is unknown; choose one of {', '.join(MODES)}")
        if str(self.config).lower() not in CONFIG_NAMES:
            fail(f"config {self.config!r} is unknown; choose one of {', '.join(CONFIG_NAMES)}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
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


# --- acquisition ---------------------------------------------------------------------------
def rank_candidates(
    predictions: pd.DataFrame,
    exclude: set[str],
    *,
    acquisition: str = "greedy",
    rng: np.random.Generator | None = None,
    ucb_kappa: float = 1.0,
    epsilon: float = 0.1,
) -> Iterator[str]:
    """Yield never-tried SMILES in the order the acquisition strategy prefers them.

    ``predictions`` has ``smiles``, ``ie`` (predicted, eV) and ``ie_spread``. Ties keep the
    search-space order, so the same inputs always give the same picks.
    """
    fresh = predictions[~predictions["smiles"].isin(exclude)]
    if acquisition == "random":
        order = (rng or np.random.default_rng()).permutation(len(fresh))
        yield from fresh["smiles"].to_numpy()[order]
        return
    score = fresh["ie"].to_numpy(dtype=float)
    if acquisition == "ucb":
        score = score + ucb_kappa * fresh["ie_spread"].to_numpy(dtype=float)
    greedy = fresh["smiles"].to_numpy()[np.argsort(-score, kind="stable")]
    if acquisition != "epsilon-greedy":
        yield from greedy
        return
    rng = rng or np.random.default_rng()
    taken: set[str] = set()
    g = 0
    while len(taken) < len(greedy):
        if rng.random() < epsilon:
            pick = greedy[rng.integers(len(greedy))]
            if pick in taken:
                continue
        else:
            while greedy[g] in taken:
                g += 1
            pick = greedy[g]
        taken.add(pick)
        yield pick


# --- the run ---------------------------------------------------------------------------------
def _as_lookup(predictions: pd.DataFrame | None) -> dict[str, float]:
    if predictions is None:
        return {}
    return dict(zip(predictions["smiles"], predictions["ie"], strict=True))


@dataclass
class CampaignResult:
    out_dir: Path
    results: dict[str, Any]
    simulations: pd.DataFrame
    iterations: pd.DataFrame
    plot_path: Path | None = None

    @property
    def best(self) -> dict[str, Any] | None:
        return self.results.get("best")


@dataclass
class _Pending:
    smiles: str
    batch: int
    submit_time: float
    predicted: float = math.nan


@dataclass
class Campaign:
    """One campaign writing into ``out_dir``; :meth:`run` needs a loaded Parsl DataFlowKernel."""

    parameters: CampaignParameters
    out_dir: Path
    progress: bool = True
    on_update: Callable[[dict[str, Any]], None] | None = None
    _pending: dict[Future, _Pending] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        from course_utils.search_space import load_search_space

        self.out_dir = Path(self.out_dir).resolve()  # the kernel may change directory later
        space = load_search_space(self.parameters.search_space)
        self.space: list[str] = space["smiles"].tolist()
        self.parameters.validate(len(self.space))
        self.recorder = rec.CampaignRecorder.open(self.out_dir)
        self.recorder.check_parameters(self.parameters.to_dict(), RESUME_KEYS)
        self.resumed = len(self.recorder.simulations)
        self.engine = self._engine()
        self._t0 = time.time()
        self._bar = None

    # --- small helpers ------------------------------------------------------------------
    def _engine(self) -> str:
        from course_utils.chemistry import resolve_engine

        return resolve_engine(self.parameters.engine)

    def elapsed(self) -> float:
        return self.recorder.elapsed_offset + (time.time() - self._t0)

    @property
    def n_ok(self) -> int:
        return len(self.recorder.successes)

    @property
    def max_failures(self) -> int:
        p = self.parameters
        return p.max_failures if p.max_failures is not None else max(8, p.max_training_count)

    @property
    def n_failed(self) -> int:
        return len(self.recorder.simulations) - self.n_ok

    def _workers(self) -> int:
        import os

        return self.parameters.workers or os.cpu_count() or 1

    def _tried(self) -> set[str]:
        return self.recorder.attempted | {p.smiles for p in self._pending.values()}

    def _notify(self, event: str, **info: Any) -> None:
        if self._bar is not None:
            self._bar.n = min(self.n_ok, self.parameters.max_training_count)
            best = self.recorder.best()
            if best is not None:
                self._bar.set_postfix_str(f"best {float(best['ie']):.3f} eV", refresh=False)
            self._bar.refresh()
        if self.on_update is not None:
            best = self.recorder.best()
            self.on_update({"event": event, "n_ok": self.n_ok, "n_failed": self.n_failed,
                            "max": self.parameters.max_training_count,
                            "best_ie": float(best["ie"]) if best else None,
                            "best_smiles": best["smiles"] if best else None,
                            "elapsed_s": self.elapsed(), **info})

    # --- simulations --------------------------------------------------------------------
    def _submit(self, smiles: str, batch: int, predicted: float = math.nan) -> Future:
        from course_utils.apps import simulate_record_app

        future = simulate_record_app(smiles, engine=self.engine,
                                     walltime=self.parameters.simulation_walltime)
        self._pending[future] = _Pending(smiles, batch, time.time(), predicted)
        return future

    def _collect(self, future: Future) -> dict:
        """Turn a finished future into a record, whatever happened to it, and write it."""
        pending = self._pending.pop(future)
        err = future.exception()
        if err is None:
            record = dict(future.result())
        else:
            name = type(err).__name__
            status = rec.STATUS_TIMEOUT if "Timeout" in name else rec.STATUS_LOST
            record = {"smiles": pending.smiles, "ie": math.nan, "status": status,
                      "error": f"{name}: {err}".strip()[:500]}
        record.update(batch=pending.batch, submit_time=pending.submit_time,
                      elapsed_s=self.elapsed())
        row = self.recorder.add_simulation(record)
        row["predicted"] = pending.predicted
        self._notify("simulation", smiles=row["smiles"], status=row["status"])
        return row

    def simulate(self, candidates: Iterable[str], target: int, batch: int,
                 predictions: pd.DataFrame | None = None) -> list[dict]:
        """Run candidates until ``target`` more succeed; each failure is replaced by the next one.

        ``predictions`` (the model's, if any) are kept beside each result to measure model error.
        """
        candidates = iter(candidates)
        predicted = _as_lookup(predictions)
        done: list[dict] = []
        successes = 0

        def top_up() -> None:
            while successes + len(self._pending) < target and self.n_failed <= self.max_failures:
                smiles = next(candidates, None)
                if smiles is None:
                    return
                self._submit(smiles, batch, predicted.get(smiles, math.nan))

        top_up()
        while self._pending:
            finished, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
            for future in finished:
                row = self._collect(future)
                done.append(row)
                successes += row["status"] == rec.STATUS_OK
            top_up()
        return done

    def _fresh(self, ordered: Iterable[str]) -> Iterator[str]:
        """Candidates that were never simulated and are not running, checked at the last moment."""
        for smiles in ordered:
            if smiles not in self._tried():
                yield smiles

    def initial_candidates(self) -> Iterator[str]:
        from course_utils.search_space import iter_unseen, sample_smiles

        p = self.parameters
        yield from self._fresh(sample_smiles(self.space, p.initial_training_count, seed=p.seed))
        yield from self._fresh(iter_unseen(self.space, seed=p.seed + 1, exclude=self._tried()))

    def initial_batch(self) -> list[dict]:
        """Step 1: a seeded random sample until ``initial_training_count`` simulations succeed."""
        missing = self.parameters.initial_training_count - self.n_ok
        return self.simulate(self.initial_candidates(), missing, batch=0) if missing > 0 else []

    # --- model --------------------------------------------------------------------------
    def score_search_space(self):
        """Step 2: train -> chunked scoring -> reduce, chained as Parsl apps; returns a future.

        The future's result is an (n, 2) array of predicted IE and spread, in search-space
        order; :meth:`predictions` turns it into a table.
        """
        from course_utils.apps import score_block_app, stack_app, train_app

        model = train_app(self.recorder.training_data(), n_neighbors=N_NEIGHBORS)
        n_chunks = self.parameters.score_chunks or self._workers()
        return stack_app(*[score_block_app(model, block) for block in self._blocks(n_chunks)])

    def predictions(self, scores: np.ndarray) -> pd.DataFrame:
        """Scores from :meth:`score_search_space` as ``smiles``, ``ie``, ``ie_spread`` (eV)."""
        return pd.DataFrame({"smiles": self.space, "ie": scores[:, 0], "ie_spread": scores[:, 1]})

    def _blocks(self, n: int) -> list:
        from course_utils.apps import SmilesBlock, chunked

        if getattr(self, "_block_cache", (None, None))[0] != n:
            self._block_cache = (n, [SmilesBlock(c) for c in chunked(self.space, n)])
        return self._block_cache[1]

    def pick(self, predictions: pd.DataFrame | None, iteration: int) -> Iterator[str]:
        """Step 3: untried molecules in the order the acquisition strategy prefers (lazy)."""
        p = self.parameters
        rng = np.random.default_rng([p.seed, iteration])
        if predictions is None:  # random search needs no model
            predictions = pd.DataFrame({"smiles": self.space, "ie": 0.0, "ie_spread": 0.0})
        return self._fresh(rank_candidates(predictions, self._tried(), acquisition=p.acquisition,
                                           rng=rng, ucb_kappa=p.ucb_kappa, epsilon=p.epsilon))

    def _model_error(self, rows: list[dict]) -> tuple[float, float]:
        """Mean absolute error (eV) and mean absolute percentage error of the picks' predictions."""
        pairs = [(float(r["ie"]), r["predicted"]) for r in rows
                 if r["status"] == rec.STATUS_OK and not math.isnan(r.get("predicted", math.nan))]
        if not pairs:
            return math.nan, math.nan
        true, pred = np.array(pairs).T
        return float(np.mean(np.abs(pred - true))), float(np.mean(np.abs(pred - true) / true) * 100)

    # --- main loop ----------------------------------------------------------------------
    def run(self) -> CampaignResult:
        from tqdm.auto import tqdm

        p = self.parameters
        if self.progress:
            self._bar = tqdm(total=p.max_training_count, desc="successful simulations",
                             unit="sim", initial=min(self.n_ok, p.max_training_count))
        try:
            self._write_results("running", "")
            self.initial_batch()
            if self.n_ok >= p.initial_training_count and p.mode == "batch":
                self._run_batches()
            elif self.n_ok >= p.initial_training_count:
                self._run_streaming()
        except BaseException:  # Ctrl-C included: keep what finished, say how to go on
            self._cancel_pending()
            self._write_results("interrupted", "stopped before finishing; run again to resume")
            raise
        finally:
            if self._bar is not None:
                self._bar.close()
        return self.finish(*self.outcome())

    def outcome(self) -> tuple[str, str]:
        """("complete", "") once the budget is met, else ("stopped", why)."""
        p = self.parameters
        if self.n_ok >= p.max_training_count:
            return "complete", ""
        return "stopped", (f"stopped with {self.n_ok} of {p.max_training_count} successful "
                           f"simulations after {self.n_failed} failures "
                           f"(max_failures={self.max_failures}); see failures")

    def finish(self, status: str = "complete", message: str = "") -> CampaignResult:
        """Last step: write the results file and the plot; return everything the run produced."""
        results = self._write_results(status, message)
        plot_path = self._plot()
        self._notify("done", status=status)
        return CampaignResult(self.out_dir, results, rec.read_simulations(self.out_dir),
                              rec.read_iterations(self.out_dir), plot_path)

    @property
    def next_iteration(self) -> int:
        return len(self.recorder.iterations) + 1

    def _run_batches(self) -> None:
        p = self.parameters
        while self.n_ok < p.max_training_count and self.n_failed <= self.max_failures:
            iteration, training_size = self.next_iteration, self.n_ok
            t0 = time.perf_counter()
            predictions = None
            if p.acquisition != "random":
                predictions = self.predictions(self.score_search_space().result())
            t1 = time.perf_counter()
            picks = self.pick(predictions, iteration)
            t2 = time.perf_counter()
            target = min(p.batch_size, p.max_training_count - self.n_ok)
            rows = self.simulate(picks, target, batch=iteration, predictions=predictions)
            t3 = time.perf_counter()
            self.record_iteration(iteration, training_size, rows, t1 - t0, t2 - t1, t3 - t2)
            if not rows:
                break  # search space exhausted

    def record_iteration(self, iteration: int, training_size: int, rows: list[dict],
                          model_s: float, select_s: float, simulate_s: float) -> None:
        mae, mape = self._model_error(rows)
        best = self.recorder.best()
        self.recorder.add_iteration({
            "iteration": iteration, "training_size": training_size,
            "n_new": sum(r["status"] == rec.STATUS_OK for r in rows),
            "best_ie": float(best["ie"]) if best else math.nan,
            "model_time_s": model_s, "select_time_s": select_s,
            "simulate_time_s": simulate_s, "mae_ev": mae, "mape_pct": mape,
            "elapsed_s": self.elapsed(),
        })
        self._write_results("running", "")
        self._notify("iteration", iteration=iteration, mae_ev=mae, mape_pct=mape)

    def _run_streaming(self) -> None:
        """Keep every worker busy; swap in a new model's ranking whenever one is ready."""
        p = self.parameters
        retrain_after = p.retrain_after or p.batch_size
        workers = self._workers()
        generation = self.next_iteration
        scoring = None if p.acquisition == "random" else self.score_search_space()
        scoring_started, scoring_size = time.perf_counter(), self.n_ok
        ranking = self.pick(None, generation) if scoring is None else None
        predicted: dict[str, float] = {}
        gen_rows: list[dict] = []
        since_training = 0

        def fill() -> None:
            while (ranking is not None and self.n_failed <= self.max_failures
                   and self.n_ok + len(self._pending) < p.max_training_count
                   and len(self._pending) < workers):
                smiles = next(ranking, None)
                if smiles is None:
                    return
                self._submit(smiles, generation, predicted.get(smiles, math.nan))

        while self.n_ok < p.max_training_count and self.n_failed <= self.max_failures:
            if scoring is not None and scoring.done():
                predictions = self.predictions(scoring.result())
                model_s = time.perf_counter() - scoring_started
                if ranking is not None:  # close the previous generation's record
                    self.record_iteration(generation, scoring_size, gen_rows, model_s, 0, 0)
                    generation += 1
                    gen_rows = []
                predicted = _as_lookup(predictions)
                ranking = self.pick(predictions, generation)
                scoring, scoring_size = None, self.n_ok
            fill()
            if not self._pending and scoring is None:
                break  # nothing running and nothing left to pick
            waiting = list(self._pending) + ([scoring] if scoring is not None else [])
            finished, _ = wait(waiting, return_when=FIRST_COMPLETED)
            for future in finished:
                if future in self._pending:
                    row = self._collect(future)
                    gen_rows.append(row)
                    since_training += row["status"] == rec.STATUS_OK
            if (scoring is None and p.acquisition != "random" and since_training >= retrain_after
                    and self.n_ok < p.max_training_count):
                scoring, since_training = self.score_search_space(), 0
                scoring_started = time.perf_counter()
        while self._pending:  # budget reached while others still ran: keep their results
            finished, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
            gen_rows.extend(self._collect(f) for f in finished)
        if gen_rows:
            self.record_iteration(generation, scoring_size, gen_rows, 0, 0, 0)

    def _cancel_pending(self) -> None:
        """On an interrupt, keep what already finished; unfinished work is simply redone later."""
        for future in list(self._pending):
            if future.done():
                self._collect(future)
            else:  # Parsl futures cannot be cancelled; the task's result is just not waited for
                self._pending.pop(future, None)

    # --- outputs ------------------------------------------------------------------------
    def _write_results(self, status: str, message: str) -> dict[str, Any]:
        results = rec.summarize(
            self.recorder, self.parameters.to_dict(), status=status, message=message,
            environment=rec.environment_info(self.engine), wall_time_s=self.elapsed(),
        )
        results["resumed_from_simulations"] = self.resumed
        rec.atomic_write_json(self.out_dir / rec.RESULTS_FILE, results)
        return results

    def _plot(self) -> Path | None:
        from course_utils.plotting import plot_campaign

        if not self.recorder.successes:
            return None
        return plot_campaign(self.out_dir, workers=self._workers())


def run_campaign(
    parameters: CampaignParameters | dict[str, Any],
    out_dir: str | Path,
    *,
    progress: bool = True,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    config_options: dict[str, Any] | None = None,
) -> CampaignResult:
    """Run (or resume) a campaign into ``out_dir``, loading Parsl unless it is loaded already."""
    import parsl
    from parsl.errors import NoDataFlowKernelError

    from course_utils.configs import make_config

    if isinstance(parameters, dict):
        parameters = CampaignParameters.from_mapping(parameters)
    campaign = Campaign(parameters, Path(out_dir), progress=progress, on_update=on_update)
    try:
        parsl.dfk()
    except NoDataFlowKernelError:
        options = {"run_dir": str(Path(out_dir) / "runinfo"), **(config_options or {})}
        if parameters.workers is not None:  # per node on Polaris
            options.setdefault("workers", parameters.workers)
        with parsl.load(make_config(parameters.config, **options)):
            return campaign.run()
    return campaign.run()
