"""The homework's control panel: sliders, a Run button and live progress, in JupyterLab.

Executed headless (papermill, nbval, a PBS job) nobody can press a button, so the notebook
uses its ``parameters`` cell instead; :func:`is_interactive` tells the two situations apart.

A run started with Run goes on in a background thread, so that Stop (and the notebook's own
stop button) can be handled while it runs: JupyterLab may run widget callbacks outside the
main thread, where no signal arrives, and may show the kernel as idle meanwhile.
"""

from __future__ import annotations

import os
import re
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils.campaign.engine import CampaignResult
from course_utils.campaign.parameters import (
    ACQUISITIONS,
    MODES,
    CampaignNote,
    CampaignParameterError,
    CampaignParameters,
)
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
        "status": r["status"],
    }])


class HomeworkPanel:
    """Widgets for the campaign parameters; pressing Run calls ``run(parameters, on_update)``
    in a background thread, and Stop (or the notebook's stop button) ends it gracefully."""

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
        self._notes = ""
        style = {"description_width": "170px"}
        layout = w.Layout(width="460px")

        def slider(name: str, lo: int, hi: int, value: int) -> w.IntSlider:
            return w.IntSlider(value=value, min=lo, max=hi, description=name, style=style,
                               layout=layout, continuous_update=False)

        self.initial = slider("initial_training_count", 4, max_budget - 1,
                              defaults.initial_training_count)
        self.maximum = slider("max_training_count", 5, max_budget, defaults.max_training_count)
        self.batch = slider("batch_size", 1, 64, defaults.batch_size)
        self.seed = w.IntText(value=defaults.seed, description="seed", style=style,
                              layout=layout)
        self.acquisition = w.Dropdown(options=list(ACQUISITIONS), value=defaults.acquisition,
                                      description="acquisition", style=style, layout=layout)
        models = list(MODEL_CHOICES) + ([] if defaults.model in MODEL_CHOICES
                                        else [defaults.model])
        self.model = w.Dropdown(options=models, value=defaults.model, description="model",
                                style=style, layout=layout)
        self.mode = w.Dropdown(options=list(MODES), value=defaults.mode, description="mode",
                               style=style, layout=layout)
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop",
                                    disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=defaults.max_training_count,
                                      description="simulations", style=style, layout=layout)
        self.status = w.HTML("Set the parameters and press <b>Run</b>.")
        self.output = w.Output()
        self.button.on_click(self._on_click)
        self.stop_button.on_click(self._on_stop)
        self.widget = w.VBox([
            w.HTML("<b>Homework: tune the loop</b>"),
            self.initial, self.maximum, self.batch, self.seed, self.model, self.acquisition,
            self.mode, w.HBox([self.button, self.stop_button]), self.progress, self.status, self.output,
        ])
        relay_idle_interrupts()  # the stop button must reach a run even while the kernel idles

    def parameters(self) -> CampaignParameters:
        values = self.defaults.to_dict()
        values.update(
            initial_training_count=self.initial.value, max_training_count=self.maximum.value,
            batch_size=self.batch.value, seed=self.seed.value,
            model=self.model.value, acquisition=self.acquisition.value, mode=self.mode.value,
        )
        return CampaignParameters.from_mapping(values)

    def _update(self, info: dict[str, Any]) -> None:
        self.progress.max = info["max"]
        self.progress.value = min(info["n_ok"], info["max"])
        best = info.get("best_ie")
        best_text = f"best simulated IE {best:.3f} eV ({info['best_smiles']})" if best else ""
        self._progress_text = (f"{info['n_ok']}/{info['max']} successful, {info['n_failed']} "
                               f"failed, {info['elapsed_s']:.0f} s. {best_text}")
        if not self.stop_button.disabled:  # a run in progress says so, whatever the kernel says
            self.status.value = f"{self._progress_text} <i>{RUNNING}</i>"

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
                params.validate()
        except CampaignParameterError as err:
            self.status.value = f"<span style='color:#b00'>Cannot run: {err}</span>"
            return
        self._notes = "".join(f" Note: {w.message}." for w in caught
                              if issubclass(w.category, CampaignNote))
        self.result, self.error, self._progress_text = None, None, ""
        self.output.outputs = ()
        self.button.disabled, self.stop_button.disabled = True, False
        self.status.value = RUNNING + self._notes
        self._done.clear()
        self._thread = threading.Thread(target=self._work, args=(params,),
                                        name="homework-run", daemon=True)
        self._thread.start()

    def _work(self, params: CampaignParameters) -> None:
        thread = threading.current_thread()
        try:
            with interrupts_stop(thread):
                self.result = self._run(params, self._update)
        except CampaignParameterError as err:  # e.g. a folder holding another campaign
            self.status.value = f"<span style='color:#b00'>Cannot run: {err}</span>"
        except CampaignInterrupted as err:
            self.error = err
            self.status.value = f"<span style='color:#b00'>{err}</span>"
        except BaseException as err:  # noqa: BLE001 - a thread has nobody else to tell
            self.error = err
            self.status.value = f"<span style='color:#b00'>Failed: {one_line(err)}</span>"
        else:
            self.status.value = (f"{self._progress_text} Done: "
                                 f"{self.result.results['status']}.{self._notes}")
            self._show(self.result)
        finally:
            withdraw_stop(thread)
            self.button.disabled, self.stop_button.disabled = False, True
            self._done.set()

    def _show(self, result: CampaignResult) -> None:
        """The summary and the plot, appended from the run's thread (``with output`` would
        capture the wrong cell's output there)."""
        from IPython import get_ipython
        from IPython.display import Image, display

        shown = [summary_table(result)]
        if result.plot_path is not None:
            shown.append(Image(filename=str(result.plot_path)))
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


def output_folder_for(parameters: CampaignParameters, root: str | Path) -> Path:
    """One folder per parameter set, so runs from the panel never overwrite each other (the
    default model is left out of the name: folders of the KNN-only kit keep theirs)."""
    p = parameters
    model = "" if p.model == "knn" else re.sub(r"[^A-Za-z0-9.=-]+", "-", p.model) + "_"
    name = (f"init{p.initial_training_count}_max{p.max_training_count}_batch{p.batch_size}_"
            f"{model}{p.acquisition}_{p.mode}_seed{p.seed}")
    return Path(root) / name
