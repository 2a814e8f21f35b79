"""The homework panel: headless detection, and a real run started by pressing Run."""

from __future__ import annotations

import pytest

from course_utils.campaign import CampaignParameters, run_campaign
from course_utils.widgets import HomeworkPanel, is_interactive, output_folder_for, summary_table


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
    assert [u["n_ok"] for u in updates if u["event"] == "simulation"][-1] == 7
    table = summary_table(panel.result)
    assert table.loc[0, "successful simulations"] == 7
    assert table.loc[0, "best simulated IE (eV)"] == pytest.approx(
        panel.result.best["ie"], abs=1e-3)
    assert not panel.button.disabled


def test_impossible_parameters_are_shown_not_run(tmp_path):
    calls = []
    panel = HomeworkPanel(CampaignParameters(), lambda p, u: calls.append(p))
    panel.initial.value, panel.maximum.value = 30, 30
    panel.click()
    assert calls == []
    assert "initial_training_count" in panel.status.value
    assert "Cannot run" in panel.status.value


def test_the_panel_shows_a_note_about_a_batch_beyond_the_budget(tmp_path):
    replay = CampaignParameters(simulator="replay", search_space="truth:qm9:200")
    panel = HomeworkPanel(replay, lambda p, u: run_campaign(p, tmp_path / "run", progress=False,
                                                            on_update=u))
    panel.initial.value, panel.maximum.value, panel.batch.value = 8, 12, 10
    panel.click()
    assert panel.result.results["status"] == "complete"
    assert panel.status.value.endswith(
        "Done: complete. Note: batch_size 10 is more than the 4 simulations left after the "
        "initial 8; the one batch will have 4 (more only to replace failures).")
