"""Figures from records: ``python -m course_utils figures RUN... --out DIR``."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from course_utils import records as rec
from course_utils.campaign.engine import run_campaign
from course_utils.figures import campaign as figures
from course_utils.figures import style as figure_style

PER_RUN = [figures.CAMPAIGN_PNG, figures.MODEL_ERROR_PNG, figures.UTILIZATION_PNG,
           figures.IE_DISTRIBUTION_PNG]


@pytest.fixture(scope="module")
def replay_run(tiny_truth, tmp_path_factory):
    space, table = tiny_truth
    out = tmp_path_factory.mktemp("runs") / "replay-greedy"
    result = run_campaign({"initial_training_count": 6, "max_training_count": 16, "batch_size": 4,
                           "seed": 2, "search_space": str(space), "workers": 2,
                           "simulator": "replay", "ground_truth": str(table)},
                          out, progress=False)
    assert result.results["status"] == "complete"
    return out, table


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_utils", "figures", *args],
                          capture_output=True, text=True, timeout=300)


def _png_chunks(path: Path) -> list[bytes]:
    data, pos, kinds = path.read_bytes(), 8, []
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        kinds.append(kind)
        pos += 12 + length
    return kinds


def test_a_finished_run_has_its_utilization_timeline(replay_run):
    out, _ = replay_run
    assert (out / figures.UTILIZATION_PNG).stat().st_size > 0
    assert (out / rec.PLOT_FILE).exists()


def test_figures_twice_give_byte_identical_files(replay_run, tmp_path):
    run, table = replay_run
    first = _cli(str(run), "--out", str(tmp_path / "a"), "--ground-truth", str(table))
    second = _cli(str(run), "--out", str(tmp_path / "b"), "--ground-truth", str(table))
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert f"figures written to {tmp_path / 'a'}/" in first.stdout
    # A replayed run is refused by the grader: no leaderboard, one note saying why.
    assert "leaderboard skipped" in first.stdout and "replayed run" in first.stdout
    label = run.name
    for name in PER_RUN:
        a, b = tmp_path / "a" / label / name, tmp_path / "b" / label / name
        assert a.is_file() and a.stat().st_size > 0, name
        assert a.read_bytes() == b.read_bytes(), name
        # Text only where the figure states what it was measured against; never a version
        # or a date (see test_the_campaign_figure_carries_its_ground_truth_as_text).
        chunks = _png_chunks(a)
        assert not {b"zTXt", b"iTXt", b"tIME"} & set(chunks), (name, chunks)
        assert set(Image.open(a).text) <= ({"Title", "Description"}
                                           if name == figures.CAMPAIGN_PNG else set()), name
    assert not (tmp_path / "a" / figures.LEADERBOARD_PNG).exists()


def test_the_regenerated_campaign_figure_is_the_run_s_own(replay_run, tmp_path):
    """One function draws the campaign figure at the end of a run and from the records."""
    run, table = replay_run
    figures.make_figures([run], tmp_path / "out", truth=table)
    regenerated = tmp_path / "out" / run.name / figures.CAMPAIGN_PNG
    assert regenerated.read_bytes() == (run / rec.PLOT_FILE).read_bytes()


def test_the_campaign_figure_carries_its_ground_truth_as_text(replay_run):
    """The PNG names the search space, the table's coverage and its global best, so a stored
    figure can be checked against the shipped table (tests/test_stored_outputs.py)."""
    run, _ = replay_run
    results = json.loads((run / rec.RESULTS_FILE).read_text())
    evaluation = results["evaluation"]
    text = Image.open(run / rec.PLOT_FILE).text
    best = evaluation["global_best"]
    assert text["Description"] == (f"search space {results['parameters']['search_space']}; "
                                   f"{evaluation['coverage']['text']}; "
                                   f"global best {best['ie']:.3f} eV ({best['smiles']})")
    assert "seed 2" in text["Title"] and "REPLAY" in text["Title"]
    assert "Software" not in text


def test_a_campaign_figure_without_an_evaluation_states_nothing(replay_run, tmp_path):
    run, _ = replay_run
    copy = tmp_path / "records-only"
    shutil.copytree(run, copy)
    (copy / rec.RESULTS_FILE).unlink()  # records only: nothing to measure against
    text = Image.open(figures.plot_campaign(copy)).text
    assert "Description" not in text and "seed 2" in text["Title"]


def test_workers_come_from_the_records(replay_run, tmp_path):
    """A regenerated figure states the workers the run had, not those of the machine now."""
    run, _ = replay_run
    assert figures.run_workers(run) == 2
    copy = tmp_path / "no-workers"
    shutil.copytree(run, copy)
    params = json.loads((copy / rec.PARAMETERS_FILE).read_text())
    (copy / rec.PARAMETERS_FILE).write_text(json.dumps({**params, "workers": None}))
    cpus = json.loads((copy / rec.RESULTS_FILE).read_text())["environment"]["cpu_count"]
    assert figures.run_workers(copy) == cpus


def test_leaderboard_of_runs_that_rank(replay_run, tmp_path):
    """The grader ranks real runs only: a copy of the replay marked as a real run stands in."""
    run, table = replay_run
    real = tmp_path / "runs" / "real"
    shutil.copytree(run, real)
    for name in (rec.RESULTS_FILE, rec.PARAMETERS_FILE):
        data = json.loads((real / name).read_text())
        if name == rec.RESULTS_FILE:
            data["replayed"] = False
            data["parameters"]["simulator"] = data["simulator"] = "xtb"
        else:
            data["simulator"] = "xtb"
        (real / name).write_text(json.dumps(data))
    # A replay's clock starts at 0; a real run's timestamps are dates after its models were saved.
    sims = pd.read_csv(real / rec.SIMULATIONS_FILE)
    saved = pd.to_datetime(pd.read_csv(real / "lineage.csv")["time"]).max().timestamp()
    for column in ("submit_time", "start_time", "end_time"):
        sims[column] += saved + 1
    sims.to_csv(real / rec.SIMULATIONS_FILE, index=False)
    reports = [figures.make_figures([run, real], tmp_path / out, truth=table)
               for out in ("a", "b")]
    board_a, board_b = (tmp_path / out / figures.LEADERBOARD_PNG for out in ("a", "b"))
    assert reports[0].written["leaderboard"] == [board_a]
    assert board_a.read_bytes() == board_b.read_bytes()
    assert any("replay-greedy not ranked" in note for note in reports[0].notes)
    assert set(reports[0].written) == {"replay-greedy", "real", "leaderboard"}


def test_two_runs_with_the_same_folder_name_get_distinct_labels(tmp_path):
    assert figures.run_labels([tmp_path / "x" / "run", tmp_path / "y" / "run", Path("z")]) == [
        "run", "run-2", "z"]


def _fabricated_run(folder: Path) -> Path:
    """Three workers on two hosts; worker b/m1/0 idles between 10 s and 30 s."""
    folder.mkdir(parents=True)
    t0 = 1_700_000_000.0
    rows = [  # host, manager, worker, start, end, status
        ("a", "m0", 0, 0, 10, "ok"), ("a", "m0", 0, 10, 40, "failed"),
        ("a", "m0", 1, 5, 40, "ok"),
        ("b", "m1", 0, 0, 10, "ok"), ("b", "m1", 0, 30, 50, "timeout"),
    ]
    sims = pd.DataFrame([{
        "smiles": f"C{'C' * i}", "ie": 10.0 + i if status == "ok" else None, "status": status,
        "error": "" if status == "ok" else "boom", "batch": 1, "submit_time": t0 + start,
        "start_time": t0 + start, "end_time": t0 + end, "elapsed_s": end, "host": host,
        "manager": manager, "worker": worker, "pid": 100 + i,
    } for i, (host, manager, worker, start, end, status) in enumerate(rows)])
    sims.loc[len(sims)] = {**sims.iloc[0].to_dict(), "smiles": "CO", "status": "lost",
                           "start_time": None, "end_time": None}  # never started: no bar
    sims.to_csv(folder / rec.SIMULATIONS_FILE, index=False)
    return folder


def test_utilization_timeline_rows_and_value(tmp_path, monkeypatch):
    run = _fabricated_run(tmp_path / "fab")
    busy = 10 + 30 + 35 + 10 + 20
    span = 50 - 0
    expected = busy / (3 * span)
    workers, got_span, mean = figures.utilization(rec.read_simulations(run))
    assert (workers, got_span) == (3, span)
    assert mean == pytest.approx(expected)

    drawn = {}
    save = figure_style.save

    def capture(fig, path):
        ax = fig.axes[0]
        drawn["rows"] = [t.get_text() for t in ax.get_yticklabels()]
        drawn["title"] = ax.get_title()
        drawn["bars"] = sum(len(c.get_paths()) for c in ax.collections)
        return save(fig, path)

    monkeypatch.setattr(figure_style, "save", capture)
    path = figures.plot_utilization(run, tmp_path / "u.png")
    assert path.is_file()
    assert drawn["rows"] == ["a / m0 / 0", "a / m0 / 1", "b / m1 / 0"]
    assert f"mean {100 * expected:.1f}%" in drawn["title"] and "3 workers x 50.0 s" in drawn["title"]
    assert drawn["bars"] == 5  # the lost simulation never started


def test_fabricated_run_without_model_or_truth_skips_with_notes(tmp_path):
    run = _fabricated_run(tmp_path / "fab")
    report = figures.make_figures([run], tmp_path / "out", truth=None)
    names = [p.name for p in report.written["fab"]]
    assert names == [figures.CAMPAIGN_PNG, figures.UTILIZATION_PNG]
    text = report.format()
    assert "no model error recorded" in text and "no ground-truth table" in text
    assert "leaderboard skipped" in text


def test_a_path_that_is_not_a_run_stops_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "missing", tmp_path / "empty"):
        proc = _cli(str(bad), "--out", str(tmp_path / "out"))
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and str(bad) in proc.stderr
        assert not (tmp_path / "out").exists()
