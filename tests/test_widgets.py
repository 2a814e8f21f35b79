"""The homework panel: headless detection, and a real run started by pressing Run."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from course_utils import records as rec
from course_utils.campaign.parameters import ACQUISITIONS
from course_utils.campaign.runner import (
    CampaignInterrupted,
    CampaignParameters,
    CampaignResult,
    run_campaign,
)
from course_utils.ml.registry import MODEL_CHOICES, MODELS, parse_model
from course_utils.widgets import (
    PANEL_WIDTH_PX,
    HomeworkPanel,
    hand_in_folder,
    is_interactive,
    output_folder_for,
    summary_card,
    summary_table,
)


def test_interactive_only_under_a_jupyter_server(monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setenv("JPY_PARENT_PID", "123")  # papermill/nbval kernels have this too
    assert is_interactive("auto") is False
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/4_homework.ipynb")
    assert is_interactive("auto") is True
    assert is_interactive(False) is False and is_interactive("false") is False
    assert is_interactive(True) is True


def test_output_folders_differ_per_parameter_set(tmp_path):
    a = output_folder_for(CampaignParameters(batch_size=2), tmp_path)
    b = output_folder_for(CampaignParameters(batch_size=3), tmp_path)
    assert a != b and a.parent == tmp_path
    knn, gp = (output_folder_for(CampaignParameters(model=m), tmp_path) for m in ("knn", "gp"))
    assert knn != gp and "_gp_" in gp.name and "knn" not in knn.name  # KNN folders keep names


def test_the_panel_offers_every_model_and_runs_the_one_chosen():
    panel = HomeworkPanel(CampaignParameters(), lambda p, u: None)
    assert list(panel.model.options) == list(MODEL_CHOICES) and panel.model.value == "knn"
    assert set(MODELS) <= set(MODEL_CHOICES)
    assert all(parse_model(choice) for choice in MODEL_CHOICES)  # every choice makes a model
    assert {"knn", "gp", "rf"} <= set(panel.model.options)
    assert panel.model in panel.widget.children
    panel.model.value = "gp"
    assert panel.parameters().model == "gp"
    spelled = HomeworkPanel(CampaignParameters(model="knn:k=6"), lambda p, u: None)
    assert spelled.model.value == "knn:k=6" and spelled.parameters().model == "knn:k=6"


def test_the_initial_count_starts_at_what_the_chosen_model_needs():
    """The slider's minimum is the chosen model's min_training, not the KNN's 4."""
    panel = HomeworkPanel(CampaignParameters(), lambda p, u: None)
    needs = {choice: parse_model(choice).min_training for choice in MODEL_CHOICES}
    assert panel.initial.min == needs["knn"] == 4
    for choice in MODEL_CHOICES:
        panel.model.value = choice
        assert panel.initial.min == needs[choice] and panel.maximum.min == needs[choice] + 1
    assert needs["gp"] < 4  # the GP learns from fewer: the slider goes below the KNN's 4
    spelled = HomeworkPanel(CampaignParameters(model="knn:k=6", initial_training_count=8),
                            lambda p, u: None)
    assert spelled.initial.min == 6


def test_the_panel_offers_every_acquisition_with_its_knob():
    panel = HomeworkPanel(CampaignParameters(), lambda p, u: None)
    assert list(panel.acquisition.options) == list(ACQUISITIONS)
    assert {"ei", "pi", "thompson", "ucb", "epsilon-greedy", "random"} <= set(ACQUISITIONS)
    assert panel.ucb_kappa in panel.widget.children and panel.epsilon in panel.widget.children
    assert panel.ucb_kappa.disabled and panel.epsilon.disabled  # greedy takes neither knob
    panel.acquisition.value = "ucb"
    assert not panel.ucb_kappa.disabled and panel.epsilon.disabled
    panel.ucb_kappa.value = 2.5
    assert panel.parameters().ucb_kappa == 2.5
    panel.acquisition.value = "epsilon-greedy"
    assert panel.ucb_kappa.disabled and not panel.epsilon.disabled
    panel.epsilon.value = 0.3
    chosen = panel.parameters()
    assert chosen.epsilon == 0.3 and chosen.ucb_kappa == CampaignParameters().ucb_kappa
    # a knob of another acquisition never tells two greedy runs apart (same folder, resumable)
    panel.acquisition.value = "greedy"
    assert panel.parameters() == CampaignParameters()


class _Gate:
    """A panel's run function that reports a phase, then waits until the test opens it."""

    def __init__(self):
        self.open, self.started, self.seen = threading.Event(), threading.Event(), []

    def __call__(self, parameters, on_update):
        self.seen.append(parameters)
        on_update({"event": "phase", "phase": "starting Parsl (its workers take a few seconds)",
                   "n_ok": 0, "n_failed": 0, "max": parameters.max_training_count,
                   "best_ie": None, "best_smiles": None, "elapsed_s": 0.0})
        self.started.set()
        assert self.open.wait(30)
        raise CampaignInterrupted(Path("somewhere"), 0, "stopped by the Stop button")


def test_controls_are_locked_during_a_run_and_the_bar_starts_from_zero():
    gate = _Gate()
    panel = HomeworkPanel(CampaignParameters(), gate)
    panel.progress.max, panel.progress.value = 24, 24  # the last run's full bar
    panel.maximum.value = 30
    panel.button.click()
    assert gate.started.wait(30)
    try:
        assert panel.running
        assert all(c.disabled for c in panel.controls) and panel.button.disabled
        assert not panel.stop_button.disabled
        assert (panel.progress.value, panel.progress.max) == (0, 30)
        assert "starting Parsl" in panel.status.value and "Stop" in panel.status.value
        assert panel.phases == ["starting Parsl (its workers take a few seconds)"]
        panel.acquisition.value = "ucb"  # (a control changed from code) does not unlock it
        assert panel.ucb_kappa.disabled
    finally:
        gate.open.set()
    with pytest.raises(CampaignInterrupted):
        panel.wait(30)
    assert not any(c.disabled for c in panel.controls if c is not panel.epsilon)
    assert panel.epsilon.disabled and not panel.button.disabled and panel.stop_button.disabled
    assert "Press Run" in panel.status.value and "same output folder" not in panel.status.value
    assert gate.seen[0].max_training_count == 30

def test_pressing_run_runs_a_campaign_and_shows_progress(parsl_local, tmp_path):
    updates = []

    def run(parameters, on_update):
        def spy(info):
            updates.append(info)
            on_update(info)

        return run_campaign(parameters, output_folder_for(parameters, tmp_path),
                            on_update=spy, progress=False)

    panel = HomeworkPanel(CampaignParameters(workers=2), run)
    panel.initial.value, panel.maximum.value, panel.batch.value = 4, 7, 3
    panel.seed.value = 12
    panel.click()
    assert panel.result is not None
    assert panel.result.results["status"] == "complete"
    assert panel.result.results["parameters"]["max_training_count"] == 7
    assert panel.progress.value == panel.progress.max == 7
    assert "eV" in panel.status.value and "Done" in panel.status.value
    assert str(panel.result.out_dir) in panel.status.value  # which folder the run wrote
    assert panel.phases[0].startswith("simulating the initial batch")
    assert any(p.startswith("training and scoring model knn") for p in panel.phases)
    assert "simulating batch 1 (3 molecules)" in panel.phases
    assert [u["n_ok"] for u in updates if u["event"] == "simulation"][-1] == 7
    table = summary_table(panel.result)
    assert table.loc[0, "successful simulations"] == 7
    assert table.loc[0, "model"] == "knn" and table.loc[0, "acquisition"] == "greedy"
    assert table.loc[0, "best simulated IE (eV)"] == pytest.approx(
        panel.result.best["ie"], abs=1e-3)
    assert not panel.button.disabled
    card = summary_card(panel.result)  # what the panel shows: one column, it fits the panel
    assert list(card.columns) == ["value"] and len(card) == table.shape[1]
    assert panel.output.layout.width == f"{PANEL_WIDTH_PX}px"
    results = panel.result.results
    assert results["workers"] == 2 and results["machine"]["cpu_count"] == os.cpu_count()
    assert table.loc[0, "workers"] == 2


def test_impossible_parameters_are_shown_not_run(tmp_path):
    calls = []
    panel = HomeworkPanel(CampaignParameters(), lambda p, u: calls.append(p))
    panel.initial.value, panel.maximum.value = 30, 30
    panel.click()
    assert calls == []
    assert "initial_training_count" in panel.status.value
    assert "Cannot run" in panel.status.value


REPLAY = CampaignParameters(initial_training_count=6, max_training_count=60, batch_size=4,
                            seed=9, search_space="truth:qm9:4000", simulator="replay", workers=2)


def _slow_replay(out, delay):
    """A panel's run function: a replay whose progress updates take ``delay[0]`` seconds each,
    so a run lasts long enough to be stopped."""

    def run(parameters, on_update):
        def slow(info):
            time.sleep(delay[0])
            on_update(info)

        return run_campaign(parameters, out, on_update=slow, progress=False, plot=False)

    return run


def _until(condition, timeout=60.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_stop_button_ends_a_run_that_run_again_resumes(tmp_path):
    delay = [0.1]
    panel = HomeworkPanel(REPLAY, _slow_replay(tmp_path, delay))
    panel.button.click()  # returns at once: the run goes on in the background
    assert panel.running and panel.button.disabled and not panel.stop_button.disabled
    _until(lambda: panel.progress.value >= 8)
    assert "Stop" in panel.status.value  # a run in progress says so, whatever the kernel says
    pressed = time.time()
    panel.stop()
    with pytest.raises(CampaignInterrupted):
        panel.wait(timeout=30)
    assert time.time() - pressed < 10
    assert "stopped by the Stop button" in panel.status.value
    assert "Press Run with the same settings to resume" in panel.status.value
    assert "same output folder" not in panel.status.value  # a panel user has no command
    assert not panel.button.disabled and panel.stop_button.disabled
    assert json.loads((tmp_path / rec.RESULTS_FILE).read_text())["status"] == "interrupted"
    before = rec.read_simulations(tmp_path)
    assert 8 <= (before["status"] == "ok").sum() < 60

    delay[0] = 0.0
    result = panel.click()  # Run again: it resumes
    assert result.results["status"] == "complete"
    assert result.results["resumed_from_simulations"] == len(before)
    assert result.simulations["smiles"].is_unique
    assert "Done: complete" in panel.status.value


def test_ctrl_c_while_click_waits_stops_the_run_in_one_line(tmp_path):
    """Ctrl-C where Python's own SIGINT handler is in place (a script, a terminal), sent once
    the run reports progress, so while ``click`` waits for it (a fixed delay once fired while
    a cold first run was still being set up, in a fresh clone)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    panel = HomeworkPanel(REPLAY, _slow_replay(tmp_path, [0.1]))

    def ctrl_c_once_running():
        _until(lambda: panel.progress.value >= REPLAY.initial_training_count)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c_once_running, daemon=True).start()
    try:
        with pytest.raises(CampaignInterrupted, match="interrupted.*resume"):
            panel.click()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not panel.running
    assert json.loads((tmp_path / rec.RESULTS_FILE).read_text())["status"] == "interrupted"


def test_the_panel_shows_a_note_about_a_batch_beyond_the_budget(tmp_path):
    replay = CampaignParameters(simulator="replay", search_space="truth:qm9:200")
    panel = HomeworkPanel(replay, lambda p, u: run_campaign(p, tmp_path / "run", progress=False,
                                                            on_update=u))
    panel.initial.value, panel.maximum.value, panel.batch.value = 8, 12, 10
    panel.click()
    assert panel.result.results["status"] == "complete"
    assert panel.status.value.endswith(
        f"Done: complete. Outputs in {tmp_path / 'run'}. Note: batch_size 10 is more than the "
        "4 simulations left after the initial 8; the one batch will have 4 (more only to replace failures).")


def test_kappa_and_epsilon_from_the_panel_reach_the_campaign(tmp_path):
    """The knobs' values are the run's parameters (results.json), and folders tell them apart."""
    replay = CampaignParameters(simulator="replay", search_space="truth:qm9:200", workers=2,
                                initial_training_count=6, max_training_count=10, batch_size=2)
    panel = HomeworkPanel(replay, lambda p, u: run_campaign(
        p, output_folder_for(p, tmp_path), progress=False, plot=False, on_update=u))
    panel.acquisition.value, panel.ucb_kappa.value = "ucb", 3.0
    ucb = panel.click().results["parameters"]
    panel.acquisition.value, panel.epsilon.value = "epsilon-greedy", 0.5
    greedyish = panel.click().results["parameters"]
    assert (ucb["acquisition"], ucb["ucb_kappa"]) == ("ucb", 3.0)
    assert (greedyish["acquisition"], greedyish["epsilon"]) == ("epsilon-greedy", 0.5)
    panel.acquisition.value, panel.ucb_kappa.value = "ucb", 2.0
    assert output_folder_for(panel.parameters(), tmp_path) != output_folder_for(
        CampaignParameters.from_mapping({**panel.parameters().to_dict(), "ucb_kappa": 3.0}),
        tmp_path)


def test_hand_in_line_names_the_run_folder_relative_to_the_notebook(tmp_path):
    import pandas as pd

    folder = tmp_path / "outputs" / "4_homework" / "init8_max24"
    result = CampaignResult(folder, {}, pd.DataFrame(), pd.DataFrame())
    assert hand_in_folder(result, tmp_path) == (
        "Hand in this folder: outputs/4_homework/init8_max24")
    assert hand_in_folder(result, tmp_path / "elsewhere") == f"Hand in this folder: {folder}"
    assert hand_in_folder("outputs/4_homework/init8_max24", tmp_path) == (  # a typed folder
        "Hand in this folder: outputs/4_homework/init8_max24")
    assert "No run yet" in hand_in_folder(None)
