"""Grids of replayed campaigns (course_utils.studies.comparison): curves, summaries, the figure.

Small grids on the part of QM9 the shipped table covers (``truth:qm9``), so every run is a real
replayed campaign; the numbers are checked against each run's own ``evaluation`` block.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from course_utils.campaign.runner import run_campaign
from course_utils.studies.comparison import (
    CURVE_COLUMNS,
    Yardsticks,
    plot_comparison,
    replay_grid,
    run_curve,
    strategy_table,
    summarize_runs,
    yardsticks,
)

STRATEGIES = {"greedy": {"acquisition": "greedy"},
              "ucb kappa=2": {"acquisition": "ucb", "ucb_kappa": 2.0},
              "random": {"acquisition": "random"}}
SEEDS = [3, 11]
GRID = {"budget": 24, "initial": 8, "batch_size": 8, "workers": 2}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    return replay_grid(STRATEGIES, SEEDS, out_dir=out, processes=1, **GRID), out


def _run_dir(out, strategy: str, seed: int):
    return out / strategy.replace(" ", "-").replace("=", "-") / f"seed-{seed:03d}"


def test_one_row_per_run_and_successful_simulation(grid):
    curves, out = grid
    assert list(curves.columns) == CURVE_COLUMNS
    assert len(curves) == len(STRATEGIES) * len(SEEDS) * GRID["budget"]
    assert list(dict.fromkeys(curves["strategy"])) == list(STRATEGIES)
    for (_, _), run in curves.groupby(["strategy", "seed"]):
        assert run["n"].tolist() == list(range(1, GRID["budget"] + 1))
        assert run["smiles"].is_unique
    assert curves.attrs["budget"] == GRID["budget"] and curves.attrs["seeds"] == SEEDS
    assert "ground truth covers" in curves.attrs["coverage"]
    assert sorted(p.name for p in out.iterdir()) == ["greedy", "random", "ucb-kappa-2"]


def test_best_so_far_is_monotone_and_recall_is_a_share(grid):
    curves, _ = grid
    for _, run in curves.groupby(["strategy", "seed"]):
        assert (run["best_ie"].diff().dropna() >= 0).all()
        assert np.array_equal(run["best_ie"].to_numpy(), run["ie"].cummax().to_numpy())
        recall = run["top100_recall_so_far"]
        assert recall.between(0, 1).all() and (recall.diff().dropna() >= 0).all()
        assert (run["elapsed_s"].diff().dropna() >= 0).all()  # the simulated clock


def test_curves_and_summary_agree_with_each_runs_evaluation(grid):
    curves, out = grid
    summary = summarize_runs(curves)
    assert len(summary) == len(STRATEGIES) * len(SEEDS)
    for row in summary.itertuples():
        results = json.loads((_run_dir(out, row.strategy, row.seed) / "results.json").read_text())
        ev = results["evaluation"]
        run = curves[(curves["strategy"] == row.strategy) & (curves["seed"] == row.seed)]
        assert run["top100_recall_so_far"].iloc[-1] == pytest.approx(ev["top_k_recall"]["100"])
        assert row.top100_recall == pytest.approx(ev["top_k_recall"]["100"])
        assert row.best_ie == pytest.approx(results["best"]["ie"])
        assert row.best_smiles == results["best"]["smiles"]
        assert row.regret_ev == pytest.approx(ev["regret_ev"], abs=1e-6)
        reached = ev["simulations_to_top_k"]["10"]
        assert (pd.isna(row.sims_to_top10) if reached is None else row.sims_to_top10 == reached)
        assert row.wall_time_s == pytest.approx(run["elapsed_s"].iloc[-1])
        assert row.simulations == GRID["budget"]


def test_a_grid_run_is_the_single_campaign_with_that_seed(grid, tmp_path):
    curves, _ = grid
    params = {"initial_training_count": GRID["initial"], "max_training_count": GRID["budget"],
              "batch_size": GRID["batch_size"], "workers": GRID["workers"], "seed": SEEDS[1],
              "acquisition": "ucb", "ucb_kappa": 2.0, "simulator": "replay",
              "search_space": "truth:qm9"}
    single = run_campaign(params, tmp_path / "single", progress=False, plot=False)
    ok = single.simulations[single.simulations["status"] == "ok"]
    run = curves[(curves["strategy"] == "ucb kappa=2") & (curves["seed"] == SEEDS[1])]
    assert run["smiles"].tolist() == ok["smiles"].tolist()
    assert np.array_equal(run["ie"].to_numpy(), ok["ie"].to_numpy(dtype=float))


def test_same_seeds_give_the_same_curves_in_two_processes(grid, tmp_path):
    curves, _ = grid
    again = replay_grid(STRATEGIES, SEEDS, out_dir=tmp_path, processes=2, **GRID)
    deterministic = [c for c in CURVE_COLUMNS if c != "elapsed_s"]  # includes model time
    pd.testing.assert_frame_equal(again[deterministic], curves[deterministic])
    # a second grid into the same folder replaces the earlier runs, it does not resume them
    third = replay_grid(STRATEGIES, SEEDS, out_dir=tmp_path, processes=1, **GRID)
    pd.testing.assert_frame_equal(third[deterministic], curves[deterministic])


def test_the_figure_names_its_coverage(grid, tmp_path):
    curves, _ = grid
    path = plot_comparison(curves, tmp_path / "figs" / "comparison.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_yardsticks_match_the_table_and_are_loaded_once():
    marks = yardsticks("truth:qm9")
    assert marks is yardsticks("truth:qm9")
    assert marks.thresholds[1] == marks.global_best_ie >= marks.thresholds[10] >= marks.thresholds[100]
    assert marks.global_best_smiles in marks.top_k[1] <= marks.top_k[10] <= marks.top_k[100]
    assert len(marks.top_k[100]) == min(100, marks.ranked)



def test_yardsticks_of_the_first_n_molecules_are_those_of_its_n_molecules_only():
    """truth:qm9:N is measured against its N molecules, as a campaign's own evaluation is: the
    best molecule of the whole table (water, outside the first 300) must not be its optimum."""
    from course_utils.ground_truth.shipped import load_ground_truth
    from course_utils.search_space import load_search_space

    space = set(load_search_space("truth:qm9:300")["smiles"])
    table = load_ground_truth("qm9")
    ok = table[table["smiles"].isin(space) & (table["status"] == "ok")]
    marks = yardsticks("truth:qm9:300")
    assert marks.coverage == "ground truth covers 300 of 300 molecules" and marks.complete
    assert marks.ranked == len(ok) and marks.top_k[100] <= space
    assert marks.global_best_ie == pytest.approx(ok["ie"].max())
    assert marks.global_best_ie < yardsticks("truth:qm9").global_best_ie  # so the test can fail

def _marks(top: list[str], ies: list[float]) -> Yardsticks:
    return Yardsticks("custom", "ground truth covers 5 of 9 molecules", False, len(top),
                      top[0], ies[0], {1: ies[0], 10: ies[-1], 100: ies[-1]},
                      {1: frozenset(top[:1]), 10: frozenset(top), 100: frozenset(top)})


def test_run_curve_counts_only_successes_in_record_order():
    marks = _marks(["A", "B", "C", "D"], [20.0, 18.0, 17.0, 15.0])
    sims = pd.DataFrame({"smiles": ["X", "B", "Y", "A", "Z"],
                         "ie": [12.0, 18.0, np.nan, 20.0, 13.0],
                         "status": ["ok", "ok", "failed", "ok", "ok"],
                         "elapsed_s": [1.0, 2.0, 2.5, 3.0, 4.0]})
    curve = run_curve(sims, marks)
    assert curve["n"].tolist() == [1, 2, 3, 4]
    assert curve["smiles"].tolist() == ["X", "B", "A", "Z"]
    assert curve["best_ie"].tolist() == [12.0, 18.0, 20.0, 20.0]
    assert curve["top100_recall_so_far"].tolist() == [0.0, 0.25, 0.5, 0.5]
    summary = summarize_runs(curve.assign(strategy="s", seed=0), marks)
    assert summary.loc[0, "sims_to_top10"] == 2 and summary.loc[0, "regret_ev"] == 0.0


def test_strategy_table_counts_runs_that_never_reached_the_top_10():
    summary = pd.DataFrame({
        "strategy": ["a"] * 4 + ["b"] * 3,
        "seed": [0, 1, 2, 3, 0, 1, 2],
        "best_ie": [20.0, 19.0, 18.0, 17.0, 15.0, 15.0, 16.0],
        "regret_ev": [0.0, 1.0, 2.0, 3.0, 5.0, 5.0, 4.0],
        "sims_to_top10": pd.array([30, 10, None, 50, None, None, 7], dtype="Int64"),
        "top100_recall": [0.1] * 7,
        "wall_time_s": [10.0] * 7,
    })
    table = strategy_table(summary)
    assert table.loc["a", "never_reached_top10"] == 1
    assert table.loc["a", "median_sims_to_top10"] == 40  # of 10, 30, 50, never
    assert table.loc["b", "never_reached_top10"] == 2
    assert pd.isna(table.loc["b", "median_sims_to_top10"])  # most runs never reached it
    assert table.loc["a", "median_regret_ev"] == 1.5


def test_bad_grids_fail_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        replay_grid({"g": {"seed": 1}}, [0], out_dir=tmp_path, **GRID)
    with pytest.raises(ValueError, match="folder names"):
        replay_grid({"a b": {}, "a-b": {}}, [0], out_dir=tmp_path, **GRID)
    with pytest.raises(ValueError, match="initial_training_count"):
        replay_grid({"g": {}}, [0], out_dir=tmp_path, **{**GRID, "initial": 30})
    with pytest.raises(ValueError, match="kapa"):  # a typo in the last strategy, not a worker's error
        replay_grid({"g": {}, "u": {"acquisition": "ucb", "kapa": 2}}, [0, 1], out_dir=tmp_path,
                    **GRID)
    assert not any(tmp_path.iterdir())


def test_a_folder_that_is_not_a_campaign_is_never_replaced(tmp_path):
    precious = tmp_path / "greedy" / "seed-000"
    precious.mkdir(parents=True)
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a campaign folder"):
        replay_grid({"greedy": {}}, [0], out_dir=tmp_path, processes=1, **GRID)
    assert (precious / "notes.txt").read_text() == "mine"
