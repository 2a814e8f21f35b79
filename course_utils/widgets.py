"""The homework's control panel: sliders, a Run button and live progress, in JupyterLab.

Executed headless (papermill, nbval, a PBS job) nobody can press a button, so the notebook
uses its ``parameters`` cell instead; :func:`is_interactive` tells the two situations apart.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils.campaign import ACQUISITIONS, MODES, CampaignParameters, CampaignResult


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
    """Widgets for the campaign parameters; pressing Run calls ``run(parameters, on_update)``."""

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
        self.mode = w.Dropdown(options=list(MODES), value=defaults.mode, description="mode",
                               style=style, layout=layout)
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.progress = w.IntProgress(value=0, min=0, max=defaults.max_training_count,
                                      description="simulations", style=style, layout=layout)
        self.status = w.HTML("Set the parameters and press <b>Run</b>.")
        self.output = w.Output()
        self.button.on_click(self._on_click)
        self.widget = w.VBox([
            w.HTML("<b>Homework: tune the loop</b>"),
            self.initial, self.maximum, self.batch, self.seed, self.acquisition, self.mode,
            self.button, self.progress, self.status, self.output,
        ])

    def parameters(self) -> CampaignParameters:
        values = self.defaults.to_dict()
        values.update(
            initial_training_count=self.initial.value, max_training_count=self.maximum.value,
            batch_size=self.batch.value, seed=self.seed.value,
            acquisition=self.acquisition.value, mode=self.mode.value,
        )
        return CampaignParameters.from_mapping(values)

    def _update(self, info: dict[str, Any]) -> None:
        self.progress.max = info["max"]
        self.progress.value = min(info["n_ok"], info["max"])
        best = info.get("best_ie")
        best_text = f"best simulated IE {best:.3f} eV ({info['best_smiles']})" if best else ""
        self.status.value = (f"{info['n_ok']}/{info['max']} successful, {info['n_failed']} "
                             f"failed, {info['elapsed_s']:.0f} s. {best_text}")

    def _on_click(self, _button: Any = None) -> None:
        from IPython.display import Image, display

        from course_utils.campaign import CampaignParameterError
        from course_utils.parameters import CampaignNote

        self.button.disabled = True
        self.output.clear_output()
        try:
            params = self.parameters()
            # A click's warnings end up in the kernel's log, not under the panel: show notes here.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", CampaignNote)
                params.validate()
            notes = "".join(f" Note: {w.message}." for w in caught
                            if issubclass(w.category, CampaignNote))
            self.status.value = "running..." + notes
            self.result = self._run(params, self._update)
        except CampaignParameterError as err:
            self.status.value = f"<span style='color:#b00'>Cannot run: {err}</span>"
            return
        finally:
            self.button.disabled = False
        self.status.value += f" Done: {self.result.results['status']}.{notes}"
        with self.output:
            display(summary_table(self.result))
            if self.result.plot_path is not None:
                display(Image(filename=str(self.result.plot_path)))

    def click(self) -> None:
        """Press Run from code (tests, or a cell that wants the panel's current values)."""
        self.button.click()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def output_folder_for(parameters: CampaignParameters, root: str | Path) -> Path:
    """One folder per parameter set, so runs from the panel never overwrite each other."""
    p = parameters
    name = (f"init{p.initial_training_count}_max{p.max_training_count}_batch{p.batch_size}_"
            f"{p.acquisition}_{p.mode}_seed{p.seed}")
    return Path(root) / name
