"""The batch plan: batches.csv is written before a batch is submitted, and a stopped run resumed
from it simulates the same molecules, in the same batches, as a run that was never stopped.

Replays run the engine in milliseconds; a stop is made the way Ctrl-C makes one during xTB:
the simulations running at that moment never finish and are never recorded.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pandas as pd
import pytest

from course_utils import records as rec
from course_utils.campaign.batch_plan import PLAN_FIELDS, PLAN_FILE, BatchPlan, read_plan
from course_utils.campaign.lineage import read_lineage
from course_utils.campaign.runner import Campaign, CampaignInterrupted, CampaignParameters


# --- the file ----------------------------------------------------------------------------------
def test_plan_rows_keep_their_order_and_are_never_planned_twice(tmp_path):
    plan = BatchPlan.open(tmp_path)
    plan.add(1, ["C", "CC"], model_version=3, predicted={"C": 13.5})
    plan.add(1, ["CC", "CCC"], kind="replacement", model_version=3)
    plan.add(2, ["CO"], model_version=4)
    again = BatchPlan.open(tmp_path)
    assert again.smiles(1) == ["C", "CC", "CCC"] and again.smiles(2) == ["CO"]
    assert again.smiles(5) == [] and again.model_version(5) is None
    assert again.model_version(1) == 3 and again.model_version(2) == 4
    frame = read_plan(tmp_path)
    assert frame.columns.tolist() == PLAN_FIELDS
    assert frame["order"].tolist() == [0, 1, 2, 0]
    assert frame["kind"].tolist() == ["planned", "planned", "replacement", "planned"]
    assert frame["predicted_ie"].iloc[0] == 13.5 and frame["predicted_ie"].isna().iloc[1:].all()


def test_a_torn_last_row_is_cut_off_before_anything_is_appended(tmp_path, capsys):
    BatchPlan.open(tmp_path).add(0, ["C", "CC"])
    path = tmp_path / PLAN_FILE
    path.write_text(path.read_text() + "0,2,CC")  # a writer killed mid-row
    plan = BatchPlan.open(tmp_path)
    assert plan.smiles(0) == ["C", "CC"]
    plan.add(0, ["CCO"])
    assert read_plan(tmp_path)["smiles"].tolist() == ["C", "CC", "CCO"]
    assert "torn last line" in capsys.readouterr().err


def test_a_garbage_row_is_set_aside_naming_the_file_and_line(tmp_path, capsys):
    """A row the plan cannot use once stopped every resume with "invalid literal for int()"."""
    BatchPlan.open(tmp_path).add(0, ["C", "CC"])
    path = tmp_path / PLAN_FILE
    path.write_text(path.read_text() + "b?,2,CCO,,,planned,\n0,3,CCN,,,sideways,\n")
    plan = BatchPlan.open(tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: ")
    assert str(path) in err[0] and "line 4: batch 'b?' is not a number" in err[0]
    assert plan.smiles(0) == ["C", "CC"]
    kept = pd.read_csv(tmp_path / "batches.rejected.csv")
    assert kept["line"].tolist() == [4, 5] and "sideways" in kept["reason"].iloc[1]
    assert read_plan(tmp_path)["smiles"].tolist() == ["C", "CC"]


# --- in the engine -----------------------------------------------------------------------------
def _params(**extra) -> CampaignParameters:
    return CampaignParameters(**{"initial_training_count": 8, "max_training_count": 28,
                                 "batch_size": 4, "seed": 5, "search_space": "truth:qm9:4000",
                                 "simulator": "replay", "workers": 2, **extra})


class _StopAfter:
    """The replay simulator, stopped after ``k`` submissions as Ctrl-C stops a real run: later
    submissions are left running (never finished, never recorded) and the next wait raises."""

    def __init__(self, inner, k: int):
        self.inner, self.k, self.n = inner, k, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def submit(self, smiles: str) -> Future:
        self.n += 1
        return self.inner.submit(smiles) if self.n <= self.k else Future()

    def wait(self, futures, timeout):
        if self.n > self.k:
            raise KeyboardInterrupt
        return self.inner.wait(futures, timeout)


def _session(out: Path, extra: dict, stop: tuple[str, int] | None = None) -> Campaign:
    """One run into ``out``: to the end, or stopped after the ``stop``-th submission
    ("submit", k) or after the k-th recorded iteration ("iteration", k)."""
    seen = []

    def on_update(update):
        if stop is not None and stop[0] == "iteration" and update["event"] == "iteration":
            seen.append(update)
            if len(seen) == stop[1]:
                raise KeyboardInterrupt

    campaign = Campaign(_params(**extra), out, progress=False, on_update=on_update, plot=False)
    if stop is not None and stop[0] == "submit":
        campaign.simulator = campaign.dispatch.simulator = _StopAfter(campaign.simulator, stop[1])
    if stop is None:
        campaign.run()
    else:
        with pytest.raises(CampaignInterrupted):
            campaign.run()
    return campaign


def _picks(out: Path) -> list[tuple[int, str]]:
    """(batch, smiles) of every simulation: the same molecules in the same batches."""
    sims = rec.read_simulations(out)
    return sorted(zip(sims["batch"].astype(int), sims["smiles"], strict=True))


def _models(out: Path) -> list[tuple[str, str]]:
    """Why each model version was trained, and on what: the retrain decisions."""
    lineage = read_lineage(out)
    return list(zip(lineage["trigger"], lineage["training_hash"], strict=True))


CASES = {
    "greedy": {},
    "epsilon-greedy": {"acquisition": "epsilon-greedy", "epsilon": 0.3},
    "count": {"retrain": "count:6"},
    "growth, validation share": {"acquisition": "epsilon-greedy", "retrain": "growth:0.5",
                                 "valid_fraction": 0.2},
    "arrival waves": {"arrival": "waves:4,every:2"},
}
STOPS = {
    "inside the initial batch": [("submit", 5)],
    "inside a later batch": [("submit", 15)],
    "between batches": [("iteration", 2)],
    "three times": [("submit", 6), ("iteration", 1), ("submit", 7)],
}


@pytest.fixture(scope="module")
def unstopped(tmp_path_factory):
    """The run of each case that was never stopped (computed once)."""
    cache: dict[str, tuple] = {}

    def get(case: str) -> tuple:
        if case not in cache:
            out = tmp_path_factory.mktemp("unstopped") / "run"
            _session(out, CASES[case])
            cache[case] = (_picks(out), _models(out), pd.read_csv(out / rec.ITERATIONS_FILE))
        return cache[case]

    return get


@pytest.mark.parametrize("stop", list(STOPS))
@pytest.mark.parametrize("case", list(CASES))
def test_a_stopped_and_resumed_run_makes_the_same_picks(tmp_path, unstopped, case, stop):
    picks, models, iterations = unstopped(case)
    for each in STOPS[stop]:
        campaign = _session(tmp_path, CASES[case], each)
        batch = campaign.next_iteration if campaign.n_ok >= 8 else 0
        planned = set(campaign.plan.smiles(batch))
        recorded = set(rec.read_simulations(tmp_path)["smiles"])
        assert recorded <= set(read_plan(tmp_path)["smiles"])  # planned before submitted
        if each[0] == "submit":  # the batch in progress was planned in full, running ones too
            assert planned - recorded, "a stop inside a batch leaves planned molecules to do"
    _session(tmp_path, CASES[case])
    assert _picks(tmp_path) == picks
    assert _models(tmp_path) == models  # the same retrain decisions, on the same data
    after = pd.read_csv(tmp_path / rec.ITERATIONS_FILE)
    columns = ["iteration", "training_size", "n_new", "best_ie", "model_version"]
    assert after[columns].equals(iterations[columns])


def test_every_simulation_is_planned_before_it_is_submitted(tmp_path):
    campaign = Campaign(_params(retrain="count:6"), tmp_path, progress=False, plot=False)
    submit = campaign.simulator.submit
    submitted: list[str] = []
    planned_at_first_submit: dict[int, int] = {}

    def checked(smiles):
        plan = read_plan(tmp_path)
        mine = plan.loc[plan["smiles"] == smiles, "batch"]
        assert len(mine) == 1, f"{smiles} submitted before it was planned"
        batch = int(mine.iloc[0])
        planned_at_first_submit.setdefault(batch, int((plan["batch"] == batch).sum()))
        submitted.append(smiles)
        return submit(smiles)

    campaign.simulator.submit = checked
    result = campaign.run()
    plan = read_plan(tmp_path)
    sims = result.simulations
    assert sorted(submitted) == sorted(plan["smiles"]) == sorted(sims["smiles"])
    # a batch's first picks are all written before the first of them is submitted
    first_picks = plan[plan["kind"] == "planned"].groupby("batch").size().to_dict()
    assert planned_at_first_submit == first_picks and first_picks[0] == 8
    assert (sims["status"] != "ok").any()  # this run has a failure, so a replacement
    assert (plan["kind"] == "replacement").sum() == (sims["status"] != "ok").sum()
    by_batch = plan.merge(sims[["smiles", "batch"]], on="smiles", suffixes=("", "_run"))
    assert (by_batch["batch"] == by_batch["batch_run"]).all()
    later = plan[plan["batch"] > 0]
    assert later["model_version"].notna().all() and later["predicted_ie"].notna().all()
    versions = dict(zip(result.iterations["iteration"], result.iterations["model_version"],
                        strict=True))
    assert all(versions[b] == v for b, v in zip(later["batch"], later["model_version"],
                                                strict=True))


def test_a_model_that_cannot_be_rebuilt_still_finishes_the_planned_batch(tmp_path, capsys):
    batch = _session(tmp_path, {}, ("submit", 15)).next_iteration  # stopped inside it
    planned = BatchPlan.open(tmp_path).smiles(batch)
    assert len(planned) >= 4
    lineage = tmp_path / "lineage.csv"
    frame = pd.read_csv(lineage)
    frame["training_hash"] = "0" * 64  # the records no longer give the version's training set
    frame.to_csv(lineage, index=False)
    _session(tmp_path, {})
    assert "no longer give model version" in capsys.readouterr().err
    sims = rec.read_simulations(tmp_path)
    in_batch = set(sims.loc[sims["batch"] == batch, "smiles"])
    assert set(planned) <= in_batch  # what was planned is simulated in its batch all the same
    assert sims["smiles"].is_unique and (sims["status"] == "ok").sum() == 28


def test_a_garbage_batches_row_is_quarantined_and_the_run_resumed(tmp_path, capsys):
    _session(tmp_path, {}, ("submit", 15))  # stopped inside a batch
    path = tmp_path / PLAN_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines) + "b?,7,C,,,planned,\n")
    capsys.readouterr()
    _session(tmp_path, {})
    err = capsys.readouterr().err
    assert f"{path}: moved 1 row" in err and f"line {len(lines) + 1}" in err
    sims = rec.read_simulations(tmp_path)
    assert (sims["status"] == "ok").sum() == 28 and sims["smiles"].is_unique
    assert "b?,7,C" in (tmp_path / "batches.rejected.csv").read_text()
