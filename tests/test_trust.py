"""The trust-check part: judging, streaks and bookkeeping, then the loop in replayed campaigns
(full simulations from the ground-truth table, cheap checks computed for real in-process).
The real MPI path runs in tests/test_mpi_cheap.py and in notebook 7's test."""

from __future__ import annotations

import json
import math
from concurrent.futures import Future
from pathlib import Path

import pandas as pd
import pytest

from course_utils.campaign.parameters import CampaignParameterError
from course_utils.campaign.runner import Campaign, CampaignParameters, run_campaign
from course_utils.campaign.trust import TrustLedger, is_trusted, read_checks, trailing_streak


def test_is_trusted_within_the_tolerance_only():
    assert is_trusted(14.0, 14.05, 0.05)
    assert not is_trusted(14.0, 14.051, 0.05)
    assert not is_trusted(14.0, math.nan, 10.0)  # a failed check trusts nothing
    assert not is_trusted(math.nan, 14.0, 10.0)


def test_trailing_streak_counts_fully_trusted_batches_at_the_end():
    rows = [{"iteration": 1, "trusted": True}, {"iteration": 1, "trusted": False},
            {"iteration": 2, "trusted": True}, {"iteration": 2, "trusted": "True"},
            {"iteration": 3, "trusted": True}]
    assert trailing_streak(rows) == 2
    assert trailing_streak(rows + [{"iteration": 4, "trusted": "False"}]) == 0
    assert trailing_streak([]) == 0


def test_ledger_judges_each_pick_and_records_full_values(tmp_path):
    # Real molecules: a row whose SMILES RDKit refuses is set aside when read back.
    ledger = TrustLedger.open(tmp_path, tol=0.2, streak=2, ranks=2)
    model = pd.DataFrame({"smiles": ["N", "B", "C"], "ie": [14.0, 15.0, 16.0],
                          "ie_spread": [0.1, 0.2, 0.3]})
    cheap = pd.DataFrame({"smiles": ["N", "B", "C"], "ie": [14.1, 15.5, math.nan],
                          "status": ["ok", "ok", "failed"], "error": ["", "", "EmbeddingError"],
                          "rank": [0, 1, 0], "seconds": [0.1, 0.2, 0.05]})
    rows = ledger.judge(1, ["N", "B", "C"], model, cheap, model_version=3)
    assert [r["trusted"] for r in rows] == [True, False, False]
    ledger.record(rows, [{"smiles": "B", "ie": 15.4, "status": "ok"},
                         {"smiles": "C", "ie": math.nan, "status": "failed"}])
    checks = read_checks(tmp_path)
    assert checks["full_status"].fillna("").tolist() == ["", "ok", "failed"]
    assert checks["full_ie"].tolist()[1] == 15.4 and math.isnan(checks["full_ie"].iloc[0])
    assert checks["cheap_error"].tolist()[2] == "EmbeddingError"
    assert ledger.trusted_smiles == {"N"}
    block = ledger.block(fired=False, seconds_per_full=2.0)
    assert block["trusted"] + block["untrusted"] == block["picks_checked"] == 3
    assert block["full_compute_saved_s"] == 2.0
    assert block["cheap_compute_s"] == pytest.approx(0.35)
    assert TrustLedger.open(tmp_path, 0.2, 2, 2).trusted_smiles == {"N"}  # read back


def test_checks_rows_that_do_not_parse_are_set_aside_on_open(tmp_path, capsys):
    ledger = TrustLedger.open(tmp_path, tol=0.2, streak=2, ranks=2)
    model = pd.DataFrame({"smiles": ["N"], "ie": [14.0], "ie_spread": [0.1]})
    cheap = pd.DataFrame({"smiles": ["N"], "ie": [14.1], "status": ["ok"], "error": [""],
                          "rank": [0], "seconds": [0.1]})
    ledger.record(ledger.judge(1, ["N"], model, cheap, model_version=1), [])
    with (tmp_path / "checks.csv").open("a") as fh:
        fh.write("2,abc,14.0,0.1,14.0,ok,,0.0,True,,,0.1,1\n")  # not a molecule
        fh.write("2,O,14.0,0.1,14.0,ok,,0.0,maybe,,,0.1,1\n")  # trusted is not True/False
    capsys.readouterr()

    again = TrustLedger.open(tmp_path, 0.2, 2, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "moved 2 rows" in err[0] and "checks.rejected.csv" in err[0]
    assert [r["smiles"] for r in again.rows] == ["N"] and again.streak == 1
    aside = pd.read_csv(tmp_path / "checks.rejected.csv")
    assert aside["line"].tolist() == [3, 4]
    assert "smiles 'abc' is not a molecule" in aside["reason"].iloc[0]
    assert "trusted 'maybe'" in aside["reason"].iloc[1]
    assert len(read_checks(tmp_path)) == 1


# --- the loop ----------------------------------------------------------------------------------
def _params(**extra) -> dict:
    return {"initial_training_count": 8, "max_training_count": 24, "batch_size": 3, "seed": 4,
            "search_space": "truth:qm9:4000", "simulator": "replay", "workers": 2,
            "trust_ranks": 2, **extra}


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_the_loop_stops_after_the_trust_streak(tmp_path):
    result = run_campaign(_params(trust_tol=50.0, trust_streak=2), tmp_path, progress=False,
                          plot=False)
    assert result.results["status"] == "stopped early (trust)"
    trust = result.results["trust"]
    assert trust["stopped_by_streak"] and trust["streak"] == 2
    assert trust["picks_checked"] == trust["trusted"] == 6 and trust["untrusted"] == 0
    assert trust["full_simulations_saved"] == 6
    ok = result.simulations[result.simulations["status"] == "ok"]
    assert len(ok) == 8  # only the initial batch was simulated in full
    checks = read_checks(tmp_path)
    assert set(checks["smiles"]).isdisjoint(result.simulations["smiles"])
    assert "2 consecutive batches" in result.results["message"]


def test_the_loop_runs_to_the_budget_when_nothing_is_trusted(tmp_path):
    result = run_campaign(_params(trust_tol=0.0), tmp_path, progress=False, plot=False)
    assert result.results["status"] == "complete"
    trust = result.results["trust"]
    assert trust["trusted"] == 0 and not trust["stopped_by_streak"]
    checks = read_checks(tmp_path)
    model_picked = result.simulations[result.simulations["batch"] > 0]
    assert sorted(checks["smiles"]) == sorted(model_picked["smiles"])  # each pick checked once
    assert (result.simulations["status"] == "ok").sum() == 24  # never past the budget


def test_trusted_and_untrusted_add_up(tmp_path):
    result = run_campaign(_params(trust_tol=0.35, max_training_count=30), tmp_path,
                          progress=False, plot=False)
    trust = result.results["trust"]
    checks = read_checks(tmp_path)
    trusted = checks[checks["trusted"]]
    untrusted = checks[~checks["trusted"]]
    assert trust["trusted"] == len(trusted) and trust["untrusted"] == len(untrusted)
    assert trust["trusted"] + trust["untrusted"] == trust["picks_checked"] == len(checks)
    assert trusted["full_status"].isna().all()  # trusted: no full simulation
    assert untrusted["full_status"].notna().all()  # untrusted: simulated, value recorded
    sims = result.simulations.set_index("smiles")
    assert untrusted["full_ie"].tolist() == pytest.approx(
        sims.loc[untrusted["smiles"], "ie"].tolist(), nan_ok=True)
    assert (checks["difference_ev"] <= 0.35).tolist() == checks["trusted"].tolist()
    assert trust["net_compute_saved_s"] == pytest.approx(
        trust["full_compute_saved_s"] - trust["cheap_compute_s"])
    assert len(list((tmp_path / "checks").glob("iteration-*.csv"))) == trust["batches_checked"]


def test_a_failed_check_trusts_nothing_and_simulates_every_pick(tmp_path, capsys):
    campaign = Campaign(CampaignParameters(**_params(trust_tol=50.0, trust_streak=2,
                                                     max_training_count=14)),
                        tmp_path, progress=False)

    def broken(smiles, ranks, out_file):
        future: Future = Future()
        future.set_exception(RuntimeError("mpiexec: all ranks died"))
        return future

    campaign.simulator.cheap = broken
    result = campaign.run()
    assert result.results["status"] == "complete"
    checks = read_checks(tmp_path)
    assert not checks["trusted"].any() and len(checks) == 6
    assert checks["cheap_error"].str.contains("all ranks died").all()
    assert "cheap check of iteration 1 failed" in capsys.readouterr().err


def test_a_resumed_run_never_picks_a_trusted_molecule_again(tmp_path):
    first = run_campaign(_params(trust_tol=50.0, trust_streak=1), tmp_path, progress=False,
                         plot=False)
    assert first.results["status"] == "stopped early (trust)"
    trusted = set(read_checks(tmp_path)["smiles"])
    again = run_campaign(_params(trust_tol=0.0, trust_streak=1), tmp_path, progress=False,
                         plot=False)
    assert again.results["status"] == "complete"
    assert trusted.isdisjoint(again.simulations["smiles"])


@pytest.mark.parametrize("extra, words", [
    ({"mode": "streaming"}, "mode='batch'"),
    ({"acquisition": "random"}, "random search has no model"),
    ({"simulator": "xtb", "config": "local"}, "config='local-mpi'"),
    ({"trust_tol": -0.1}, "finite number of eV"),
    ({"trust_streak": 0}, "trust_streak"),
    ({"trust_ranks": 0}, "trust_ranks")])
def test_impossible_trust_parameters_say_why(extra, words):
    with pytest.raises(CampaignParameterError, match=words):
        CampaignParameters(**{**_params(trust_tol=0.1), **extra}).validate()
