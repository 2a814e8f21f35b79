"""Yardsticks of a run against a ground-truth table, on small hand-made tables with known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from course_utils.ground_truth import evaluation as ev_mod
from course_utils.ground_truth.evaluation import evaluate_folder, evaluate_run, format_evaluation
from course_utils.ground_truth.table import Coverage, GroundTruthError

KEYS = {"coverage", "global_best", "best_found", "regret_ev", "best_rank", "ranked_among",
        "best_percentile", "top_k_recall", "simulations_to_top_k", "top_k_threshold_ev",
        "missing", "missing_examples", "note"}


def _truth(coverage: Coverage | None = None) -> pd.DataFrame:
    """Sorted by IE: A 20, B 18, C 18 (tie: B first by SMILES), D 15, F 12, G 10; E failed."""
    df = pd.DataFrame({
        "smiles": ["A", "B", "C", "D", "E", "F", "G"],
        "ie": [20.0, 18.0, 18.0, 15.0, np.nan, 12.0, 10.0],
        "status": ["ok", "ok", "ok", "ok", "failed", "ok", "ok"],
        "error": ["", "", "", "", "EmbeddingError: no", "", ""],
    })
    if coverage is not None:
        df.attrs["coverage"] = coverage
    return df


def _sims(rows: list[tuple[str, float | None, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["smiles", "ie", "status"]).assign(
        error="", batch=0, elapsed_s=np.arange(len(rows), dtype=float))


RUN = _sims([("G", 10.0, "ok"), ("D", None, "lost"), ("C", 18.0000004, "ok"), ("D", 15.0, "ok")])


def test_regret_rank_with_ties_and_percentile():
    ev = evaluate_run(RUN, _truth(), ks=(1, 2, 3, 10))
    assert set(ev) == KEYS
    assert ev["global_best"] == {"smiles": "A", "ie": 20.0}
    assert ev["best_found"] == {"smiles": "C", "ie": 18.0000004, "table_ie": 18.0}
    assert ev["regret_ev"] == 2.0  # rounded to 1e-6 eV, the precision of the table
    assert ev["best_rank"] == 2  # only A is strictly higher; B ties and shares the rank
    assert ev["ranked_among"] == 6  # E failed in the table: it has no rank
    assert ev["best_percentile"] == pytest.approx(100 * (1 - 1 / 6), abs=1e-4)
    assert ev["missing"] == 0 and ev["missing_examples"] == []
    assert ev["note"] == "the table ranks only 6 molecules: a larger top k uses them all"
    assert evaluate_run(RUN, _truth(), ks=(1, 2))["note"] is None
    json.dumps(ev)  # goes into results.json as is


def test_rank_uses_the_table_value_so_rounding_cannot_change_it():
    """The run's own 17.9999996 for C would rank below B's 18.0; the table's values tie."""
    run = _sims([("C", 17.9999996, "ok")])
    assert evaluate_run(run, _truth())["best_rank"] == 2


def test_global_best_found_has_rank_one_and_no_regret():
    ev = evaluate_run(_sims([("D", 15.0, "ok"), ("A", 20.0, "ok")]), _truth())
    assert (ev["regret_ev"], ev["best_rank"], ev["best_percentile"]) == (0.0, 1, 100.0)
    assert ev["simulations_to_top_k"] == {"1": 2, "10": 1, "100": 1}


def test_top_k_recall_breaks_ties_by_smiles():
    ev = evaluate_run(RUN, _truth(), ks=(1, 2, 3, 10))
    # top-2 is {A, B} (B beats C on the tie); top-3 adds C; top-10 is all six ranked molecules
    assert ev["top_k_recall"] == {"1": 0.0, "2": 0.0, "3": pytest.approx(1 / 3, abs=1e-6), "10": 0.5}
    assert ev["top_k_threshold_ev"] == {"1": 20.0, "2": 18.0, "3": 18.0, "10": 10.0}
    assert "ranks only 6 molecules" in ev["note"]


def test_simulations_to_top_k_counts_successes_and_may_never_arrive():
    ev = evaluate_run(RUN, _truth(), ks=(1, 2, 3, 10))
    # successes in order: G (1), C (2), D (3); the lost attempt of D is not a simulation
    assert ev["simulations_to_top_k"] == {"1": None, "2": 2, "3": 2, "10": 1}


def test_failures_in_the_run_count_neither_as_found_nor_as_reached():
    run = _sims([("A", None, "failed"), ("B", 18.0, "ok")])
    ev = evaluate_run(run, _truth(), ks=(1, 2))
    assert ev["top_k_recall"] == {"1": 0.0, "2": 0.5}
    assert ev["simulations_to_top_k"] == {"1": None, "2": 1}


def test_missing_molecules_are_reported_and_never_estimated():
    run = _sims([("B", 18.0, "ok"), ("Z", 25.0, "ok"), ("Y", None, "failed")])
    ev = evaluate_run(run, _truth())
    assert ev["missing"] == 2 and ev["missing_examples"] == ["Z", "Y"]
    assert ev["best_found"] == {"smiles": "Z", "ie": 25.0, "table_ie": None}
    assert ev["regret_ev"] == -5.0  # the run's own value against the covered best
    assert ev["best_rank"] is None and ev["best_percentile"] is None
    assert "Z, is not in the table" in ev["note"] and "2 simulated molecule(s)" in ev["note"]
    assert ev["top_k_recall"]["10"] == pytest.approx(1 / 6, abs=1e-6)  # B only: Z is not guessed into it
    assert ev["simulations_to_top_k"] == {"1": None, "10": 1, "100": 1}


def test_missing_examples_are_capped():
    run = _sims([(f"X{i}", 1.0, "ok") for i in range(7)])
    ev = evaluate_run(run, _truth())
    assert ev["missing"] == 7 and ev["missing_examples"] == ["X0", "X1", "X2", "X3", "X4"]


def test_best_found_that_failed_in_the_table_has_no_rank():
    ev = evaluate_run(_sims([("D", 15.0, "ok"), ("E", 19.0, "ok")]), _truth())
    assert ev["best_found"]["smiles"] == "E" and ev["best_rank"] is None
    assert "has no IE in the table" in ev["note"] and ev["missing"] == 0


def test_run_without_success():
    ev = evaluate_run(_sims([("A", None, "failed"), ("B", None, "timeout")]), _truth())
    assert ev["regret_ev"] is None and ev["best_found"] is None and ev["best_rank"] is None
    assert ev["top_k_recall"] == {"1": 0.0, "10": 0.0, "100": 0.0}
    assert ev["simulations_to_top_k"] == {"1": None, "10": None, "100": None}
    assert "no successful simulation" in ev["note"]
    assert format_evaluation(ev).startswith("no successful simulation; ")


def test_empty_records_as_read_from_a_fresh_folder():
    from course_utils.records import SIMULATION_FIELDS

    ev = evaluate_run(pd.DataFrame(columns=SIMULATION_FIELDS), _truth())
    assert ev["regret_ev"] is None and ev["missing"] == 0


def test_coverage_from_attrs_then_space_size_then_table():
    cov = evaluate_run(RUN, _truth(Coverage(61_204, 130_831)))["coverage"]
    assert cov == {"covered": 61_204, "total": 130_831, "complete": False,
                   "text": "ground truth covers 61,204 of 130,831 molecules"}
    cov = evaluate_run(RUN, _truth(), space_size=10)["coverage"]
    assert (cov["covered"], cov["total"], cov["complete"]) == (7, 10, False)
    cov = evaluate_run(RUN, _truth())["coverage"]
    assert cov["text"] == "ground truth covers 7 of 7 molecules" and cov["complete"]


def test_lost_rows_of_a_build_file_are_not_table_molecules():
    truth = pd.concat([_truth(), pd.DataFrame({"smiles": ["H"], "ie": [np.nan], "status": ["lost"],
                                               "error": ["WorkerLost"]})], ignore_index=True)
    ev = evaluate_run(_sims([("H", 30.0, "ok")]), truth)
    assert ev["missing"] == 1 and ev["coverage"]["covered"] == 7


def test_table_without_any_ie_compares_nothing():
    truth = _truth().assign(ie=np.nan, status="failed")
    ev = evaluate_run(RUN, truth)
    assert ev["global_best"] is None and ev["regret_ev"] is None
    assert ev["top_k_recall"] == {"1": None, "10": None, "100": None}
    assert "no molecule with an IE" in ev["note"]


def test_bad_inputs_fail_with_one_line():
    with pytest.raises(ValueError, match="top-k sizes must be >= 1"):
        evaluate_run(RUN, _truth(), ks=(0, 10))
    with pytest.raises(ValueError, match="simulations lacks column"):
        evaluate_run(RUN.drop(columns="status"), _truth())


def test_format_reads_as_one_paragraph_with_coverage():
    n = 61_204
    truth = pd.DataFrame({"smiles": [f"m{i}" for i in range(n)], "ie": 20.0 - 1e-4 * np.arange(n),
                          "status": "ok"})
    truth.attrs["coverage"] = Coverage(n, 130_831)
    run = _sims([("m999", float(truth["ie"][999]), "ok"), ("m56", float(truth["ie"][56]), "ok")])
    ev = evaluate_run(run, truth)
    assert ev["best_rank"] == 57
    text = format_evaluation(ev)
    assert "\n" not in text
    assert text.startswith("regret 0.01 eV; best found ranks 57th of 61,204 (top 0.09 %); ")
    assert "top-1 recall 0.00, top-10 recall 0.00, top-100 recall 0.01" in text
    assert "simulations to reach the top-1: never, top-10: never, top-100: 2" in text
    assert text.endswith("ground truth covers 61,204 of 130,831 molecules")


def test_ordinals():
    assert [ev_mod._ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 57, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "57th", "101st", "111th"]


def _folder(tmp_path, space: str):
    out = tmp_path / "run"
    out.mkdir()
    RUN.to_csv(out / "simulations.csv", index=False)
    (out / "results.json").write_text(json.dumps({"parameters": {"search_space": space}}))
    return out


def test_evaluate_folder_with_a_given_table(tmp_path):
    ev = evaluate_folder(_folder(tmp_path, "my_space.csv"), truth=_truth())
    assert ev["best_rank"] == 2 and ev["simulations_to_top_k"]["10"] == 1


def test_evaluate_folder_needs_a_table_for_a_user_space(tmp_path):
    with pytest.raises(GroundTruthError, match="no ground-truth table ships for search space"):
        evaluate_folder(_folder(tmp_path, "my_space.csv"))


def test_evaluate_folder_loads_the_shipped_qm9_table(tmp_path, monkeypatch):
    from course_utils.ground_truth import evaluation

    asked = []
    monkeypatch.setattr(evaluation, "load_ground_truth",
                        lambda space: asked.append(space) or _truth(Coverage(7, 130_831)))
    ev = evaluate_folder(_folder(tmp_path, "qm9"))
    assert asked == ["qm9"] and ev["coverage"]["total"] == 130_831


def test_evaluate_folder_without_records_of_its_space(tmp_path):
    with pytest.raises(GroundTruthError, match="cannot tell the search space"):
        evaluate_folder(tmp_path)


# --- the held-out sample: a model's error on molecules nobody picked ---------------------------
def test_heldout_sample_draws_known_molecules_once_and_skips_training():
    from course_utils.ground_truth.evaluation import heldout_sample

    space = [f"m{i}" for i in range(50)]
    truth = pd.DataFrame({"smiles": space[::2] + ["other"],
                          "ie": [10.0 + i for i in range(25)] + [1.0]})
    truth.loc[3, "ie"] = np.nan  # a failed molecule has no IE to check against
    sample = heldout_sample(space, truth, size=10, seed=1)
    assert len(sample.smiles) == 10 and "m6" not in set(sample.smiles)
    assert all(int(s[1:]) % 2 == 0 for s in sample.smiles)  # only molecules the table knows
    assert [space[i] for i in sample.positions] == list(sample.smiles)
    again = heldout_sample(space, truth, size=10, seed=1)
    assert list(again.smiles) == list(sample.smiles)  # every run checks the same molecules
    predicted = np.zeros(len(space))
    predicted[sample.positions] = sample.ie + 0.5
    assert sample.mae(predicted) == pytest.approx(0.5)
    predicted[sample.positions[0]] += 10.0  # off by 10.5 eV, but it is a training molecule
    assert sample.mae(predicted, training=[sample.smiles[0]]) == pytest.approx(0.5)
    assert np.isnan(sample.mae(predicted, training=sample.smiles))
    assert heldout_sample(["x", "y"], truth) is None
