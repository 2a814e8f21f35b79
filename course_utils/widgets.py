"""The homework's control panel: sliders, a Run button and live progress, in JupyterLab.

Executed headless (papermill, nbval, a PBS job) nobody can press a button, so the notebook
uses its ``parameters`` cell instead; :func:`is_interactive` tells the two situations apart.

A run started with Run goes on in a background thread, so that Stop (and the notebook's own
stop button) can be handled while it runs: JupyterLab may run widget callbacks outside the
main thread, where no signal arrives, and may show the kernel as idle meanwhile.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils import records as rec
from course_utils.campaign.build import min_training_of
from course_utils.campaign.parameters import (
    ACQUISITIONS,
    MODES,
    CampaignNote,
    CampaignParameterError,
    CampaignParameters,
)
from course_utils.campaign.runner import CampaignResult
from course_utils.grading import HAND_IN_LABEL
from course_utils.ml.registry import MODEL_CHOICES
from course_utils.resilience import (
    CampaignInterrupted,
    interrupts_stop,
    one_line,
    relay_idle_interrupts,
    request_stop,
    withdraw_stop,
)

RUNNING = "running... press <b>Stop</b> to end it (finished simulations are kept)."
STOP_CAUSE = "stopped by the Stop button"
#: The panel's width: every control, the status line and the summary fit in it.
PANEL_WIDTH_PX = 460
#: The acquisition each knob belongs to: the panel enables a knob only with its acquisition.
KNOB_OF = {"ucb_kappa": "ucb", "epsilon": "epsilon-greedy"}


def is_interactive(setting: bool | str = "auto") -> bool:
    """True when a person is looking at the notebook in Jupyter (not papermill or nbval).

    A Jupyter server (JupyterLab, Notebook 7, JupyterHub) starts each notebook's kernel with
    ``JPY_SESSION_NAME`` set to the notebook's path; papermill and nbval start kernels directly
    and do not set it (``JPY_PARENT_PID`` is set by both, so it cannot tell them apart).
    """
    if isinstance(setting, bool):
        return setting
    if str(setting).lower() in ("true", "yes", "1"):
        return True
    if str(setting).lower() in ("false", "no", "0"):
        return False
    return bool(os.environ.get("JPY_SESSION_NAME"))


def summary_table(result: CampaignResult) -> pd.DataFrame:
    """The graded numbers of a run, one row, with units in the column names."""
    r = result.results
    best = r.get("best") or {}
    p = r["parameters"]
    return pd.DataFrame([{
        "initial_training_count": p["initial_training_count"],
        "max_training_count": p["max_training_count"],
        "batch_size": p["batch_size"],
        "model": p.get("model", "knn"),  # older runs had only the KNN
        "acquisition": p["acquisition"],
        "mode": p["mode"],
        "successful simulations": r["totals"]["successful"],
        "failed simulations": r["totals"]["failed"],
        "best simulated IE (eV)": round(best.get("ie", float("nan")), 3),
        "best molecule": best.get("smiles"),
        "time to best (s)": round(best.get("time_to_best_s") or float("nan"), 1),
        "total time (s)": round(r["totals"]["wall_time_s"], 1),
        "workers": r.get("workers"),  # runs of older kits did not record them
        "machine": _machine_text(r.get("machine")),
        "status": r["status"],
    }])


def _machine_text(machine: dict[str, Any] | None) -> str | None:
    if not machine:
        return None
    host = str(machine.get("hostname", "?")).split(".")[0]  # a cluster's full name is long
    return f"{host} ({machine.get('cpu_count')} cores)"


def summary_card(result: CampaignResult) -> pd.DataFrame:
    """The summary as one column (a row per number), so it fits the panel's width."""
    card = summary_table(result).T
    card.columns = ["value"]
    card.index.name = None
    return card


def stop_text(err: CampaignInterrupted) -> str:
    """How a panel's run ended by a stop, and what to do next: press Run (a panel user has
    no command to run again)."""
    return (f"Campaign {err.cause}: {err.n_ok} successful simulations kept in {err.out_dir}. "
            "Press Run with the same settings to resume (nothing finished is recomputed).")


def hand_in_folder(run: CampaignResult | str | Path | None, start: str | Path = ".") -> str:
    """The one line naming the folder to hand in (``run``: a result, or a run folder), relative
    to ``start`` (the notebook's folder) when it is inside it. The grader reads this line from
    an executed notebook to find the run (:func:`course_utils.grading.notebook_hand_in`)."""
    if run is None:
        return "No run yet: nothing to hand in (press Run, then run this cell again)."
    folder = Path(run.out_dir if isinstance(run, CampaignResult) else run)
    folder = (folder if folder.is_absolute() else Path(start) / folder).resolve()
    try:
        shown = folder.relative_to(Path(start).resolve())
    except ValueError:
        shown = folder
    return f"{HAND_IN_LABEL} {shown.as_posix()}"


def runs_table(root: str | Path, start: str | Path = ".") -> pd.DataFrame:
    """The runs in ``root`` (a headless run writes into ``root`` itself, each panel run into a
    folder of its own inside it), newest last, with what tells them apart and their graded
    numbers: which one to hand in."""
    root = Path(root)
    inside = sorted((d for d in root.glob("*") if rec.is_run_folder(d)),
                    key=lambda d: d.stat().st_mtime)
    folders = [root, *inside] if rec.is_run_folder(root) else inside
    rows = []
    for folder in folders:
        try:
            r = rec.load_json_object(folder / rec.RESULTS_FILE)
        except (OSError, ValueError):
            r = {}
        p, best = r.get("parameters") or {}, r.get("best") or {}
        rows.append({
            "folder": hand_in_folder(folder, start).removeprefix(HAND_IN_LABEL).strip(),
            "model": p.get("model"), "acquisition": p.get("acquisition"),
            "status": r.get("status", "no results.json"),
            "best simulated IE (eV)": best.get("ie"), "time to best (s)": best.get("time_to_best_s"),
            "workers": r.get("workers")})
    columns = ["folder", "model", "acquisition", "status", "best simulated IE (eV)",
               "time to best (s)", "workers"]
    return pd.DataFrame(rows, columns=columns).round(3)


class HomeworkPanel:
    """Widgets for the campaign parameters; pressing Run calls ``run(parameters, on_update)``
    in a background thread, and Stop (or the notebook's stop button) ends it gracefully.

    While a run goes, every parameter control is locked (what the panel shows is what runs),
    and the status line says what the run is doing (its ``phase`` events) before and between
    simulations.
    """

    def __init__(
        self,
        defaults: CampaignParameters,
        run: Callable[[CampaignParameters, Callable[[dict], None]], CampaignResult],
        *,
        max_budget: int = 256,
    ) -> None:
        import ipywidgets as w

        self._run = run
        self.defaults = defaults
        self.result: CampaignResult | None = None
        self.error: BaseException | None = None  # how the last run ended, if not with a result
        self._thread: threading.Thread | None = None
        self._done = threading.Event()  # set when the run's thread has finished everything
        self._done.set()
        self._progress_text = ""
        self._phase = ""
        self.phases: list[str] = []  # what the last run said it was doing, in order
        self._notes = ""
        style = {"description_width": "170px"}
        layout = w.Layout(width=f"{PANEL_WIDTH_PX}px")

        def slider(name: str, lo: int, hi: int, value: int) -> w.IntSlider:
            return w.IntSlider(value=value, min=lo, max=hi, description=name, style=style,
                               layout=layout, continuous_update=False)

        def knob(name: str, hi: float, step: float, value: float) -> w.FloatSlider:
            return w.FloatSlider(value=value, min=0.0, max=max(hi, value), step=step,
                                 description=name, style=style, layout=layout,
                                 continuous_update=False, readout_format=".2f")

        # The fewest molecules the chosen model learns from (it follows the model dropdown).
        least = min(_least_training(defaults.model), max_budget - 1)
        self.initial = slider("initial_training_count", least, max_budget - 1,
                              defaults.initial_training_count)
        self.maximum = slider("max_training_count", least + 1, max_budget,
                              defaults.max_training_count)
        self.batch = slider("batch_size", 1, 64, defaults.batch_size)
        self.seed = w.IntText(value=defaults.seed, description="seed", style=style,
                              layout=layout)
        acquisitions = list(ACQUISITIONS) + ([] if defaults.acquisition in ACQUISITIONS
                                             else [defaults.acquisition])  # "ucb:kappa=2"
        self.acquisition = w.Dropdown(options=acquisitions, value=defaults.acquisition,
                                      description="acquisition", style=style, layout=layout)
        self.ucb_kappa = knob("ucb_kappa", 5.0, 0.1, defaults.ucb_kappa)
        self.epsilon = knob("epsilon", 1.0, 0.05, defaults.epsilon)
        models = list(MODEL_CHOICES) + ([] if defaults.model in MODEL_CHOICES
                                        else [defaults.model])
        self.model = w.Dropdown(options=models, value=defaults.model, description="model",
                                style=style, layout=layout)
        self.mode = w.Dropdown(options=list(MODES), value=defaults.mode, description="mode",
                               style=style, layout=layout)
        #: Everything a run reads; locked while it goes.
        self.controls = [self.initial, self.maximum, self.batch, self.seed, self.model,
                         self.acquisition, self.ucb_kappa, self.epsilon, self.mode]
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop",
                                    disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=defaults.max_training_count,
                                      description="simulations", style=style, layout=layout)
        self.status = w.HTML("Set the parameters and press <b>Run</b>.", layout=layout)
        self.output = w.Output(layout=w.Layout(width=f"{PANEL_WIDTH_PX}px", overflow="auto"))
        self.button.on_click(self._on_click)
        self.stop_button.on_click(self._on_stop)
        self.acquisition.observe(self._on_acquisition, names="value")
        self.model.observe(self._on_model, names="value")
        self._lock(False)
        self.widget = w.VBox([
            w.HTML("<b>Homework: tune the loop</b>"),
            self.initial, self.maximum, self.batch, self.seed, self.model, self.acquisition,
            self.ucb_kappa, self.epsilon, self.mode, w.HBox([self.button, self.stop_button]),
            self.progress, self.status, self.output,
        ], layout=w.Layout(width=f"{PANEL_WIDTH_PX + 20}px"))
        relay_idle_interrupts()  # the stop button must reach a run even while the kernel idles

    def _lock(self, locked: bool) -> None:
        """Lock every control during a run (Run and Stop swap); when idle, a knob is open
        only with the acquisition that uses it."""
        for control in self.controls:
            control.disabled = locked
        if not locked:
            self.ucb_kappa.disabled = self.acquisition.value != KNOB_OF["ucb_kappa"]
            self.epsilon.disabled = self.acquisition.value != KNOB_OF["epsilon"]
        self.button.disabled, self.stop_button.disabled = locked, not locked

    def _on_acquisition(self, _change: Any = None) -> None:
        if not self.running:  # a run keeps everything locked (and Stop as it is)
            self._lock(False)

    def _on_model(self, change: Any = None) -> None:
        """The initial training count starts at what the chosen model needs to learn."""
        least = min(_least_training(self.model.value), self.initial.max)
        self.initial.min, self.maximum.min = least, least + 1

    def parameters(self) -> CampaignParameters:
        """The parameters the controls spell. The knob of an acquisition not chosen stays at
        its class default, so it never tells two otherwise equal runs (and folders) apart."""
        values = self.defaults.to_dict()
        acquisition = self.acquisition.value
        plain = CampaignParameters()
        values.update(
            initial_training_count=self.initial.value, max_training_count=self.maximum.value,
            batch_size=self.batch.value, seed=self.seed.value,
            model=self.model.value, acquisition=acquisition, mode=self.mode.value,
            ucb_kappa=(round(self.ucb_kappa.value, 3) if acquisition == KNOB_OF["ucb_kappa"]
                       else plain.ucb_kappa),
            epsilon=(round(self.epsilon.value, 3) if acquisition == KNOB_OF["epsilon"]
                     else plain.epsilon),
        )
        return CampaignParameters.from_mapping(values)

    def _update(self, info: dict[str, Any]) -> None:
        """A progress event from the run's thread: a simulation, an iteration, a phase."""
        if info.get("event") == "phase":
            self._phase = str(info.get("phase", ""))
            self.phases.append(self._phase)
        if "max" in info and "n_ok" in info:
            self.progress.max = info["max"]
            self.progress.value = min(info["n_ok"], info["max"])
        if info.get("event") in ("simulation", "iteration", "done"):
            best = info.get("best_ie")
            best_text = (f"best simulated IE {best:.3f} eV ({info.get('best_smiles')})"
                         if best else "")
            self._progress_text = html.escape(
                f"{info['n_ok']}/{info['max']} successful, {info['n_failed']} failed, "
                f"{info['elapsed_s']:.0f} s. {best_text}")
        if self.running and not self.stop_button.disabled:  # says so, whatever the kernel says
            self.status.value = self._running_text()

    def _running_text(self) -> str:
        phase = f"<b>{html.escape(self._phase)}</b><br>" if self._phase else ""
        return f"{phase}{self._progress_text} <i>{RUNNING}</i>{self._notes}"

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def _on_click(self, _button: Any = None) -> None:
        """Check the parameters, then start the run in a thread and return (so Stop works)."""
        if self.running:
            return
        relay_idle_interrupts()  # in case the panel was made outside a main-thread cell
        try:
            params = self.parameters()
            # A click's warnings end up in the kernel's log, not under the panel: show notes here.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", CampaignNote)
                params.validate()  # builds the parts once; the run takes the same ones
        except CampaignParameterError as err:
            self.status.value = f"<span style='color:#b00'>Cannot run: {html.escape(str(err))}</span>"
            return
        self._notes = html.escape("".join(f" Note: {w.message}." for w in caught
                                          if issubclass(w.category, CampaignNote)))
        self.result, self.error, self._progress_text = None, None, ""
        self._phase, self.phases = "starting: reading the search space", []
        self.output.outputs = ()
        self.progress.max, self.progress.value = params.max_training_count, 0  # not the last run's
        self._done.clear()
        self._lock(True)
        self.status.value = self._running_text()
        self._thread = threading.Thread(target=self._work, args=(params,),
                                        name="homework-run", daemon=True)
        self._thread.start()

    def _work(self, params: CampaignParameters) -> None:
        thread = threading.current_thread()
        try:
            with interrupts_stop(thread):
                self.result = self._run(params, self._update)
        except CampaignParameterError as err:  # e.g. a folder holding another campaign
            self.status.value = f"<span style='color:#b00'>Cannot run: {html.escape(str(err))}</span>"
        except CampaignInterrupted as err:
            self.error = err
            self.status.value = f"<span style='color:#b00'>{html.escape(stop_text(err))}</span>"
        except BaseException as err:  # noqa: BLE001 - a thread has nobody else to tell
            self.error = err
            self.status.value = (f"<span style='color:#b00'>Failed: "
                                 f"{html.escape(one_line(err))}</span>")
        else:
            folder = html.escape(str(self.result.out_dir))
            self.status.value = (f"{self._progress_text} Done: "
                                 f"{self.result.results['status']}. Outputs in {folder}."
                                 f"{self._notes}")
            self._show(self.result)
        finally:
            withdraw_stop(thread)
            self._lock(False)  # before the run counts as ended: a waiter sees Run back
            self._done.set()

    def _show(self, result: CampaignResult) -> None:
        """The summary (one column, to fit the panel) and the plot, appended from the run's
        thread (``with output`` would capture the wrong cell's output there)."""
        from IPython import get_ipython
        from IPython.display import Image, display

        shown = [summary_card(result)]
        if result.plot_path is not None:
            shown.append(Image(filename=str(result.plot_path), width=PANEL_WIDTH_PX))
        for item in shown:
            if get_ipython() is not None:
                self.output.append_display_data(item)
            else:  # no kernel (a plain script or test): nothing to route
                with self.output:
                    display(item)

    def _on_stop(self, _button: Any = None) -> None:
        thread = self._thread
        if thread is not None and self.running:
            request_stop(thread, STOP_CAUSE)
            self.stop_button.disabled = True
            self.status.value = "stopping: keeping the finished simulations..."

    def stop(self) -> None:
        """Press Stop from code."""
        self.stop_button.click()

    def wait(self, timeout: float | None = None) -> CampaignResult | None:
        """Wait for the run started with Run; re-raise how it ended if it did not finish.

        The stop button during this wait (a KeyboardInterrupt here) stops the run the same way
        as Stop does, and the cell then ends with the run's one line. (It polls: a
        ``Thread.join`` interrupted by Ctrl-C can lose track of the thread in Python 3.11.)
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running and (deadline is None or time.monotonic() < deadline):
            try:
                time.sleep(0.1)
            except KeyboardInterrupt:
                if self._thread is not None:
                    request_stop(self._thread, "interrupted")
        if self.error is not None and not self.running:
            raise self.error
        return self.result

    def click(self) -> CampaignResult | None:
        """Press Run from code and wait for the run (tests, or a cell that wants the panel's
        current values); a stopped run ends the cell with its one line."""
        self.button.click()
        return self.wait()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _least_training(model: str) -> int:
    """The slider minimum for ``model``: what it needs to learn (1 if it spells no model: Run
    then says why in one line)."""
    try:
        return min_training_of(model)
    except CampaignParameterError:
        return 1


def output_folder_for(parameters: CampaignParameters, root: str | Path) -> Path:
    """One folder per parameter set, so runs from the panel never overwrite each other (the
    default model and knobs at their defaults are left out of the name: folders of earlier
    kits keep theirs)."""
    p = parameters
    plain = CampaignParameters()
    model = "" if p.model == plain.model else re.sub(r"[^A-Za-z0-9.=-]+", "-", p.model) + "_"
    knob = ""
    if p.acquisition == KNOB_OF["ucb_kappa"] and p.ucb_kappa != plain.ucb_kappa:
        knob = f"-kappa{p.ucb_kappa:g}"
    if p.acquisition == KNOB_OF["epsilon"] and p.epsilon != plain.epsilon:
        knob = f"-epsilon{p.epsilon:g}"
    name = (f"init{p.initial_training_count}_max{p.max_training_count}_batch{p.batch_size}_"
            f"{model}{p.acquisition}{knob}_{p.mode}_seed{p.seed}")
    return Path(root) / name
