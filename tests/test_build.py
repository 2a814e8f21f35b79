"""Parts built once (course_utils.campaign.build): the command line, the homework panel, sweeps and
the engine take the same objects from the same parameters, and the same one-line errors."""

from __future__ import annotations

import pickle
import warnings
from dataclasses import fields
from pathlib import Path

import pytest

from course_utils.campaign import build
from course_utils.campaign import parameters as parameters_module
from course_utils.campaign.build import Parts, SimulatorFactory, TrustSettings, build_parts
from course_utils.campaign.parameters import CampaignNote, CampaignParameterError, CampaignParameters
from course_utils.campaign.runner import Campaign
from course_utils.ml.contract import Model

REPLAY = {"simulator": "replay", "search_space": "truth:qm9:200"}
PART_NAMES = ("model", "acquisition", "retrain_policy", "stop_rule", "arrival")


@pytest.fixture
def builds(monkeypatch) -> list[CampaignParameters]:
    """Every build_parts call, by the parameters it built for."""
    calls: list[CampaignParameters] = []

    def counted(parameters, search_space_size=None):
        calls.append(parameters)
        return build_parts(parameters, search_space_size)

    monkeypatch.setattr(parameters_module, "build_parts", counted)
    return calls


def _campaign_parts(p: CampaignParameters, out: Path) -> Parts:
    """What the engine holds when made from ``p`` (the folder's lock released again)."""
    campaign = Campaign(p, out, progress=False)
    try:
        parts = p.parts()
        for name in PART_NAMES:
            assert getattr(campaign, name) is getattr(parts, name), name
        assert campaign.trust is None and parts.trust is None
        assert campaign.simulator.name == parts.simulator.name == "replay"
        return parts
    finally:
        campaign.release_lock()


def test_the_parts_and_what_each_is():
    p = CampaignParameters(model="gp", acquisition="ucb", ucb_kappa=2.0, stop="converged:window=3,delta=0.01",
                           retrain="count:2", arrival="waves:2,every:8", trust_tol=0.1,
                           config="local-mpi")
    parts = p.validate()
    assert isinstance(parts, Parts) and parts is p.parts()
    assert isinstance(parts.model, Model) and parts.model.name == "gp"
    assert parts.acquisition.name == "ucb" and parts.acquisition.kappa == 2.0
    assert parts.retrain_policy.text == "count:2" and parts.retrain_policy is p.retrain_policy()
    assert parts.stop_rule.text.startswith("converged") and parts.arrival.waves == 2
    assert parts.trust == TrustSettings(0.1, 3, 2)
    assert isinstance(parts.simulator, SimulatorFactory) and parts.simulator.name == "xtb"
    with pytest.raises(AttributeError):
        parts.model = None  # frozen: a campaign cannot swap another's part


def test_the_command_line_builds_once_and_the_engine_takes_those_parts(tmp_path, builds,
                                                                         monkeypatch):
    from course_utils import __main__ as cli

    seen: dict[str, Parts] = {}

    def engine(parameters, out, **_):
        seen["validated"] = parameters.parts()
        seen["engine"] = _campaign_parts(parameters, Path(out))
        raise KeyboardInterrupt  # the run itself is not the point here

    monkeypatch.setattr(cli, "run_campaign", engine)
    code = cli.main(["run", "--simulator", "replay", "--search-space", "truth:qm9:200",
                     "--model", "gp", "--quiet", "--out", str(tmp_path / "run")])
    assert code == 130
    assert seen["engine"] is seen["validated"] and len(builds) == 1


def test_the_panel_builds_once_per_run_and_the_engine_takes_those_parts(tmp_path, builds):
    from course_utils.widgets import HomeworkPanel

    seen: list[tuple[Parts, Parts]] = []

    class Made(Exception):
        """The engine was made; the run itself is not the point here."""

    def engine(parameters, _update):
        validated = parameters.parts()
        seen.append((validated, _campaign_parts(parameters, tmp_path / f"run{len(seen)}")))
        raise Made

    panel = HomeworkPanel(CampaignParameters(**REPLAY), engine)
    with pytest.raises(Made):
        panel.click()
    panel.model.value = "rf"
    with pytest.raises(Made):
        panel.click()
    assert [a is b for a, b in seen] == [True, True]
    assert len(builds) == 2  # one per Run, each for the parameters of that run
    assert seen[0][0].model.name == "knn" and seen[1][0].model.name == "rf"


def test_the_engine_alone_builds_once_and_a_sweep_checks_through_the_builder(tmp_path, builds):
    from course_utils.studies.sweep import campaign_parameters

    p = CampaignParameters(**REPLAY)
    first = _campaign_parts(p, tmp_path / "a")
    assert _campaign_parts(p, tmp_path / "b") is first and len(builds) == 1
    checked, budget = campaign_parameters([{"batch_size": 2}, {"model": "gp"}], REPLAY)
    assert len(builds) == 3 and budget == p.max_training_count
    assert [b.model for b in builds[1:]] == ["knn", "gp"] and checked[1]["model"] == "gp"


BAD_PARTS = {  # field: a spelling that makes no part
    "model": "knn:k=zero",
    "acquisition": "UCB",
    "stop": "converged:window=x",
    "retrain": "sometimes",
    "arrival": "waves:0",
    "simulator": "mopac",
}


@pytest.mark.parametrize("name", sorted(BAD_PARTS))
def test_a_bad_part_is_the_same_one_line_everywhere(tmp_path, capsys, name):
    from course_utils import __main__ as cli
    from course_utils.studies.sweep import SweepError, campaign_parameters
    from course_utils.widgets import HomeworkPanel

    values = {**REPLAY, name: BAD_PARTS[name]}
    with pytest.raises(CampaignParameterError) as validated:
        CampaignParameters(**values).validate()
    line = str(validated.value)
    assert line and "\n" not in line and BAD_PARTS[name] in line
    with pytest.raises(CampaignParameterError) as engine:
        Campaign(CampaignParameters(**values), tmp_path / "engine")
    assert str(engine.value) == line and not (tmp_path / "engine").exists()
    flag = f"--{name.replace('_', '-')}"
    code = cli.main(["run", "--simulator", "replay", "--search-space", "truth:qm9:200", flag,
                     values[name], "--quiet", "--out", str(tmp_path / "cli")])
    assert code == 2 and capsys.readouterr().err.splitlines() == [f"error: {line}"]
    lines, common = ([{}], values) if name == "simulator" else ([{name: values[name]}], REPLAY)
    with pytest.raises(SweepError) as swept:  # the sweep sets the simulator for every line
        campaign_parameters(lines, common)
    assert str(swept.value) == f"configuration 1: {line}"
    if name in ("model", "acquisition"):  # the panel's own controls
        panel = HomeworkPanel(CampaignParameters(**values), lambda p, u: None)
        panel.button.click()
        assert line.replace("'", "&#x27;") in panel.status.value and not panel.running


def test_a_changed_field_rebuilds_and_an_unchanged_one_does_not(builds):
    p = CampaignParameters()
    first = p.parts()
    assert p.validate() is first and p.parts(1000) is first and len(builds) == 1
    p.model = "gp"
    second = p.parts()
    assert second is not first and second.model.name == "gp" and len(builds) == 2
    p.model = "knn"  # back to the first values: built again, equal to the first
    third = p.parts()
    assert third is not first and third.model.describe() == first.model.describe()
    p.seed = 1
    assert p.parts() is not third and p.parts().stop_rule == first.stop_rule
    p.seed = True  # equal to 1 in Python, but not a seed: checked again, and refused
    with pytest.raises(CampaignParameterError, match="seed must be an integer"):
        p.parts()
    p.seed = 1
    assert p.parts() is not None
    with pytest.raises(CampaignParameterError, match="larger than the search space"):
        p.parts(10)  # kept parts still meet the search space's size check


def test_the_kept_parts_are_not_parameters():
    p = CampaignParameters()
    p.validate()
    assert set(p.to_dict()) == {f.name for f in fields(CampaignParameters)}
    assert p == CampaignParameters()  # equality is by field values only
    copy = pickle.loads(pickle.dumps(p))
    assert "_parts" not in copy.__dict__ and copy.parts() is not p.parts()


def test_a_budget_note_is_said_once_per_parameters_object(tmp_path):
    p = CampaignParameters(initial_training_count=8, max_training_count=10, batch_size=4,
                           **REPLAY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CampaignNote)
        p.validate()
        p.parts()
        _campaign_parts(p, tmp_path / "run")
    notes = [w for w in caught if issubclass(w.category, CampaignNote)]
    assert len(notes) == 1 and "batch_size 4 is more than the 2" in str(notes[0].message)


def test_one_part_from_its_text_outside_a_campaign():
    assert build.min_training_of("knn") == 4 and build.min_training_of("knn:k=6") == 6
    assert build.min_training_of("gp") == 2
    with pytest.raises(CampaignParameterError, match="model 'kNN' is unknown"):
        build.min_training_of("kNN")
    rule = build.stop_rule_of("converged:window=3,delta=0.01")
    assert build.stop_rule_of(rule) is rule and build.stop_rule_of(None).text == "budget"
