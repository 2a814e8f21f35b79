"""Figures from records: ``python -m course_utils figures RUN... --out DIR``."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from course_utils import records as rec
from course_utils.campaign.runner import run_campaign
from course_utils.figures import campaign as figures
from course_utils.figures import command as figures_command
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
    figures_command.make_figures([run], tmp_path / "out", truth=table)
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
    assert "knn + greedy" in text["Title"]  # the model and the acquisition, by name
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
    reports = [figures_command.make_figures([run, real], tmp_path / out, truth=table)
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
    report = figures_command.make_figures([run], tmp_path / "out", truth=None)
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


# --- the titles name the model ---------------------------------------------------------------
def test_every_campaign_title_names_the_model_and_the_acquisition():
    base = {"initial_training_count": 8, "max_training_count": 24, "batch_size": 4, "seed": 0,
            "mode": "batch"}
    assert figures._campaign_title({**base, "model": "gp:mean=training", "acquisition": "ei"}
                                   ).startswith("gp:mean=training + ei (batch)")
    assert "knn + ucb" in figures._campaign_title({**base, "acquisition": "ucb"})  # old records
    assert "random search" in figures._campaign_title({**base, "model": "gp",
                                                       "acquisition": "random"})


def test_the_model_error_figure_names_the_model(replay_run, tmp_path, monkeypatch):
    run, _ = replay_run
    titles = []
    save = figure_style.save
    monkeypatch.setattr(figure_style, "save", lambda fig, path, **kw: (
        titles.append(fig.axes[0].get_title()), save(fig, path, **kw))[1])
    assert figures.plot_model_error(run, tmp_path / "e.png").is_file()
    assert titles[0].startswith("Model error per iteration, knn + greedy")


# --- comparison figures: small multiples ------------------------------------------------------
def _curves(strategies: list[str], seeds: int = 4, budget: int = 40) -> pd.DataFrame:
    """Fabricated replay curves: each strategy climbs at its own rate, with seed noise."""
    rng = np.random.default_rng(0)
    rows = []
    for k, strategy in enumerate(strategies):
        for seed in range(seeds):
            ie = 13.0 + rng.normal(0, 0.8, budget) + np.linspace(0, 0.1 * k, budget)
            rows.append(pd.DataFrame({
                "strategy": strategy, "seed": seed, "n": np.arange(1, budget + 1),
                "smiles": [f"S{k}-{seed}-{i}" for i in range(budget)], "ie": ie,
                "best_ie": np.maximum.accumulate(ie),
                "top100_recall_so_far": np.linspace(0, 0.01 * (k + 1), budget),
                "elapsed_s": np.arange(budget, dtype=float)}))
    curves = pd.concat(rows, ignore_index=True)
    curves.attrs = {"search_space": "fabricated"}
    return curves


def _marks():
    from course_utils.studies.comparison import Yardsticks

    top = [f"T{i}" for i in range(100)]
    return Yardsticks("fabricated", "ground truth covers 9 of 9 molecules", True, 9, "T0", 17.5,
                      {1: 17.5, 10: 16.9, 100: 16.0},
                      {1: frozenset(top[:1]), 10: frozenset(top[:10]), 100: frozenset(top)})


def _drawn(monkeypatch) -> list:
    figs = []
    save = figure_style.save

    def capture(fig, path, **kw):
        fig.canvas.draw()  # lay out, so that legend and axes have their final boxes
        figs.append((fig, [ax.get_window_extent() for ax in fig.axes if ax.get_visible()],
                     [leg.get_window_extent() for leg in fig.legends]))
        return save(fig, path, **kw)

    monkeypatch.setattr(figure_style, "save", capture)
    return figs


def _line_colors(ax) -> list[str]:
    from matplotlib.colors import to_hex

    return [to_hex(line.get_color()) for line in ax.get_lines()
            if line.get_linestyle() == "-" and len(line.get_xdata()) > 2]


def test_the_model_grid_has_a_panel_per_model_and_a_colour_per_acquisition(tmp_path, monkeypatch):
    from course_utils.studies.comparison import panels_by_model, plot_comparison

    models, acquisitions = ["knn", "gp", "gp:mean=training", "rf"], ["greedy", "ucb", "ei",
                                                                     "thompson"]
    curves = _curves([f"{m} {a}" for m in models for a in acquisitions] + ["random"])
    figs = _drawn(monkeypatch)
    path = plot_comparison(curves, tmp_path / "grid.png", marks=_marks(),
                           panels=panels_by_model(curves["strategy"].unique(), models))
    assert path.read_bytes()[:4] == b"\x89PNG"
    fig, boxes, legends = figs[0]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [f"{m} (4 seeds)" for m in models]
    per_panel = [_line_colors(ax) for ax in panels]
    for colors in per_panel:
        assert len(colors) == len(set(colors)) == len(acquisitions)  # distinct within a panel
    assert all(colors == per_panel[0] for colors in per_panel)  # one colour per acquisition
    # random search is drawn in every panel, in grey, dashed
    assert all(any(line.get_linestyle() == "--" and line.get_label().startswith("random")
                   for line in ax.get_lines()) for ax in panels)
    # one legend for the figure, outside every panel
    assert not any(ax.get_legend() for ax in fig.axes) and len(legends) == 1
    assert not any(legends[0].overlaps(box) for box in boxes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:4] == acquisitions and any("global best 17.50 eV" in t for t in labels)
    # the y axis fits the data and the yardsticks, not a fixed range
    low, high = panels[0].get_ylim()
    assert low > curves["best_ie"].min() - 0.5 and high < 17.5 + 0.5
    assert "REPLAY of 'fabricated'" in fig._suptitle.get_text()


def test_one_strategy_per_panel_shades_its_band_over_random_s(tmp_path, monkeypatch):
    from matplotlib.collections import PolyCollection

    from course_utils.studies.comparison import plot_comparison

    strategies = ["greedy", "ucb kappa=0.5", "ucb kappa=2", "epsilon-greedy 0.1", "random"]
    curves = _curves(strategies)
    figs = _drawn(monkeypatch)
    plot_comparison(curves, tmp_path / "c.png", marks=_marks(), column="top100_recall_so_far")
    fig, boxes, legends = figs[0]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [f"{s} (4 seeds)" for s in strategies[:-1]]
    for ax in panels:  # its own band and random's
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2
    colors = [_line_colors(ax)[0] for ax in panels]
    assert len(set(colors)) == len(colors)
    assert not any(legends[0].overlaps(box) for box in boxes)
    assert panels[0].get_ylim()[0] == 0 and panels[0].get_ylabel().startswith("top-100 recall")
    with pytest.raises(ValueError, match="column"):
        plot_comparison(curves, tmp_path / "x.png", marks=_marks(), column="ie")
    with pytest.raises(ValueError, match="do not hold"):
        plot_comparison(curves, tmp_path / "x.png", marks=_marks(), panels={"pi": ("a", "b")})


def test_colours_are_distinct_and_fixed_ones_are_kept():
    names = [f"s{i}" for i in range(8)]
    assert len(set(figure_style.colors(names).values())) == 8
    fixed = figure_style.colors(["random", "a", "b"], fixed={"random": "0.45"})
    assert fixed["random"] == "0.45" and len(set(fixed.values())) == 3


# --- the models' figures ----------------------------------------------------------------------
def test_calibration_curves_that_coincide_both_stay_visible(tmp_path, monkeypatch):
    from course_utils.figures.models import gaussian_coverage, plot_calibration

    z = np.linspace(0, 3, 31)
    share = gaussian_coverage(z)
    coverage = pd.concat([pd.DataFrame({"model": m, "size": 200, "z": z, "share": s})
                          for m, s in [("knn", share * 0.8), ("gp", share),
                                       ("gp:mean=training", share + 0.002), ("rf", share * 0.9)]])
    figs = _drawn(monkeypatch)
    plot_calibration(coverage, tmp_path / "cal.png")
    ax = figs[0][0].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    same = lines["gp:mean=training (on gp's curve)"]
    gp = lines["gp"]
    assert (same.get_linestyle(), same.get_marker()) != (gp.get_linestyle(), gp.get_marker())
    assert same.get_color() != gp.get_color()
    assert "knn" in lines and "rf" in lines  # apart from the others: no note
    styles = {(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in lines.values()}
    assert len(styles) == len(lines)
