"""Model versions and lineage: saved versions, checks on load, predict, and resume after an
interrupt (replayed campaigns on the part of QM9 the shipped table covers)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from course_utils.campaign.lineage import (
    LINEAGE_FIELDS,
    LineageError,
    ModelLineage,
    load_model_version,
    predict_with_version,
    read_lineage,
    training_hash,
)
from course_utils.campaign.runner import Campaign, CampaignInterrupted, CampaignParameters, run_campaign
from course_utils.ml.knn import train_model

REPO = Path(__file__).resolve().parents[1]
TRAINING = pd.DataFrame({"smiles": ["C", "CC", "CCC", "CCO", "CO", "C#N"],
                         "ie": [13.1, 12.0, 11.5, 11.2, 11.6, 14.2]})


def _params(**extra) -> CampaignParameters:
    return CampaignParameters(**{"initial_training_count": 8, "max_training_count": 32,
                                 "batch_size": 4, "seed": 7, "search_space": "truth:qm9:4000",
                                 "simulator": "replay", "workers": 2, **extra})


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lineage") / "run"
    run_campaign(_params(valid_fraction=0.2), out, progress=False, plot=False)
    return out


# --- versions on disk --------------------------------------------------------------------------
def test_every_version_has_model_json_and_lineage_row(finished):
    lineage = read_lineage(finished)
    assert lineage.columns.tolist() == LINEAGE_FIELDS
    assert lineage["version"].tolist() == list(range(1, len(lineage) + 1))
    assert len(lineage) == len(pd.read_csv(finished / "iterations.csv"))  # every batch
    for row in lineage.itertuples():
        model, info = load_model_version(finished / "models" / f"v{row.version:04d}")
        assert info["version"] == row.version and info["trigger"] == row.trigger
        assert info["train_size"] == len(model.fitted.train_smiles) == row.train_size
        assert info["model"] == model.describe()  # the model part says what it is
        assert info["model"]["options"] == {"n_neighbors": 4, "radius": 4, "length": 256}
        assert info["training_hash"] == row.training_hash
        assert info["parameters"]["valid_fraction"] == 0.2
        assert "rdkit" in info["packages"] and info["data_version"] == row.data_version
    assert lineage["data_version"].is_monotonic_increasing


def test_training_hash_is_the_content_of_the_training_set():
    assert training_hash(TRAINING) == training_hash(TRAINING.iloc[::-1])
    changed = TRAINING.assign(ie=TRAINING["ie"] + [0, 0, 0, 0, 0, 0.001])
    assert training_hash(TRAINING) != training_hash(changed)


def test_failed_labels_since_the_previous_version_are_kept(tmp_path):
    registry = ModelLineage.open(tmp_path)
    failed = [{"smiles": "C1C#C1", "status": "failed", "error": "EmbeddingError: no 3D"}]
    info = registry.save(train_model(TRAINING), {"failed_since_previous": failed,
                                                "data_version": 7})
    assert json.loads((tmp_path / "models" / "v0001.json").read_text())[
        "failed_since_previous"] == failed
    assert info["name"] == "v0001"
    assert read_lineage(tmp_path)["failed_since_previous"].tolist() == [1]



# --- calibration is measured, not assumed ------------------------------------------------------
def test_a_gp_campaign_records_its_calibration_per_version_and_per_iteration(tmp_path):
    result = run_campaign(_params(valid_fraction=0.2, model="gp"), tmp_path, progress=False,
                          plot=False)
    lineage = read_lineage(tmp_path)
    validated = lineage[lineage["valid_size"] > 0]
    assert len(validated) >= 2
    assert lineage.loc[lineage["valid_size"] == 0, "valid_within_1sd"].isna().all()
    for column in ("valid_within_1sd", "valid_within_2sd"):
        values = validated[column].astype(float)
        assert values.notna().all() and values.between(0, 1).all(), column
    assert (validated["valid_within_2sd"] >= validated["valid_within_1sd"]).all()
    last = json.loads((tmp_path / "models" / f"v{len(lineage):04d}.json").read_text())
    assert 0 <= last["valid_within_1sd"] <= last["valid_within_2sd"] <= 1
    assert last["model"]["name"] == "gp"
    its = result.iterations
    for column in ("within_1sd", "within_2sd"):
        assert its[column].notna().all() and its[column].between(0, 1).all(), column
    assert its["r2"].notna().all() and (its["r2"] <= 1).all()
    plan = pd.read_csv(tmp_path / "batches.csv")
    later = plan[plan["batch"] > 0]
    assert later["predicted_std"].notna().all() and (later["predicted_std"] > 0).all()


def test_an_old_folder_without_calibration_columns_resumes(tmp_path):
    _interrupted(tmp_path, after_iterations=2)
    dropped = {"iterations.csv": ["r2", "within_1sd", "within_2sd", "heldout_mae_ev"],
               "lineage.csv": ["valid_within_1sd", "valid_within_2sd"],
               "batches.csv": ["predicted_std"]}
    for name, columns in dropped.items():  # as an older kit wrote them
        frame = pd.read_csv(tmp_path / name, keep_default_na=False, dtype=str)
        frame.drop(columns=columns).to_csv(tmp_path / name, index=False)
    n_before = len(pd.read_csv(tmp_path / "iterations.csv"))
    result = run_campaign(_params(retrain="count:4"), tmp_path, progress=False, plot=False)
    assert result.results["status"] == "complete"
    its = result.iterations
    assert its["within_1sd"].iloc[:n_before].isna().all()  # not known then
    assert its["within_1sd"].iloc[n_before:].notna().all()
    assert its.attrs["rejected"] == [] and read_lineage(tmp_path).attrs["rejected"] == []
    _check_consistent(tmp_path)

# --- resume keeps lineage consistent -----------------------------------------------------------
def _interrupted(out: Path, after_iterations: int) -> None:
    seen = []

    def stop_after(event):
        if event["event"] == "iteration":
            seen.append(event)
            if len(seen) == after_iterations:
                campaign.stop_request.ask("stopped by SIGINT")

    campaign = Campaign(_params(retrain="count:4"), out, progress=False, on_update=stop_after)
    with pytest.raises(CampaignInterrupted):
        campaign.run()


def _check_consistent(out: Path, skipped: tuple[int, ...] = ()) -> pd.DataFrame:
    lineage = read_lineage(out)
    versions = lineage["version"].tolist()
    expected = [v for v in range(1, len(versions) + len(skipped) + 1) if v not in skipped]
    assert versions == expected, "no duplicates, no gaps but the skipped numbers"
    on_disk = sorted(p.name for p in (out / "models").iterdir())
    assert on_disk == sorted(f"v{v:04d}.{ext}" for v in versions for ext in ("joblib", "json"))
    return lineage


def test_an_interrupted_run_resumes_numbering_without_duplicates_or_orphans(tmp_path):
    _interrupted(tmp_path, after_iterations=2)
    before = _check_consistent(tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "interrupted"
    result = run_campaign(_params(retrain="count:4"), tmp_path, progress=False, plot=False)
    after = _check_consistent(tmp_path)
    assert len(after) > len(before)
    assert after.iloc[:len(before)].equals(before)  # old versions untouched
    # the stopped session's model goes on: the policy, not the restart, trains the next one
    assert after["trigger"].iloc[len(before)].startswith("count:4: ")
    assert result.results["models"]["notes"] == []
    assert result.results["status"] == "complete"


@pytest.mark.parametrize(("damage", "said"), [
    ("99,2026-12-03T10:00:00+00:00,batch,40", "dropped a torn last line"),
    ("99,2026-12-03T10:00:00+00:00,batch,forty,x,8,0,,,0,0.1,models/v0099.joblib\n",
     "moved 1 row that does not parse to lineage.rejected.csv"),
], ids=["torn", "garbage"])
def test_a_broken_last_lineage_row_does_not_block_the_resume(finished, tmp_path, capsys, damage,
                                                             said):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    n = len(read_lineage(run))
    with (run / "lineage.csv").open("a") as fh:
        fh.write(damage)  # a kill mid-append, or a row that is not one
    capsys.readouterr()

    result = run_campaign(_params(valid_fraction=0.2, max_training_count=40), run,
                          progress=False, plot=False)
    err = capsys.readouterr().err
    assert result.results["status"] == "complete"
    assert said in err and "v0099" not in err  # no note about its (never written) model
    lineage = read_lineage(run)
    assert lineage["version"].tolist() == list(range(1, len(lineage) + 1)) and len(lineage) > n
    assert lineage.attrs["rejected"] == []


def test_a_save_cut_short_is_repaired_and_reported_on_resume(tmp_path, capsys):
    _interrupted(tmp_path, after_iterations=3)
    models = tmp_path / "models"
    n = len(read_lineage(tmp_path))
    # crash between the model and its JSON: the model was never used
    (models / f"v{n:04d}.json").unlink()
    # crash between the JSON and its lineage row, one version earlier
    lines = (tmp_path / "lineage.csv").read_text().splitlines(keepends=True)
    (tmp_path / "lineage.csv").write_text("".join(lines[:-2]))
    result = run_campaign(_params(retrain="count:4"), tmp_path, progress=False, plot=False)
    notes = result.results["models"]["notes"]
    assert any(f"v{n:04d}.joblib had no JSON" in note for note in notes)
    assert any(f"lacked v{n - 1:04d}" in note for note in notes)
    assert "note:" in capsys.readouterr().err
    # the unfinished save's number is never used again: no two models ever share one
    lineage = _check_consistent(tmp_path, skipped=(n,))
    assert lineage["trigger"].iloc[n - 1].startswith("count:4: ")  # after v{n-1}, as it was


def test_lineage_that_lists_missing_files_is_reported_and_never_reused(tmp_path):
    _interrupted(tmp_path, after_iterations=2)
    n = len(read_lineage(tmp_path))
    for ext in ("joblib", "json"):
        (tmp_path / "models" / f"v{n:04d}.{ext}").unlink()
    registry = ModelLineage.open(tmp_path)
    assert any(f"lists v{n:04d} but its model files" in note for note in registry.notes)
    assert registry.next_version == n + 1


# --- predict -----------------------------------------------------------------------------------
def test_predict_matches_the_model_and_reports_bad_smiles_by_row(finished):
    path = finished / "models" / "v0002"
    frame, info = predict_with_version(path, ["CCO", "not a smiles", "C#N", ""])
    model, _ = load_model_version(path)
    ie, spread = model.predict(["CCO", "C#N"])
    assert frame["ie"].iloc[[0, 2]].tolist() == pytest.approx(ie.tolist())
    assert frame["ie_spread"].iloc[[0, 2]].tolist() == pytest.approx(spread.tolist())
    assert frame["error"].iloc[[1, 3]].str.contains("invalid SMILES").all()
    assert frame["row"].tolist() == [1, 2, 3, 4] and frame["ie"].iloc[[1, 3]].isna().all()
    assert info["version"] == 2


def test_a_model_that_disagrees_with_its_json_is_refused(finished, tmp_path):
    import shutil

    for ext in ("joblib", "json"):
        shutil.copy(finished / "models" / f"v0002.{ext}", tmp_path / f"v0002.{ext}")
    shutil.copy(finished / "models" / "v0001.joblib", tmp_path / "v0002.joblib")
    with pytest.raises(LineageError, match="SHA-256 differs"):
        predict_with_version(tmp_path / "v0002", ["CCO"])
    shutil.copy(finished / "models" / "v0001.json", tmp_path / "v0002.json")
    with pytest.raises(LineageError, match="describes v0001, not v0002"):
        load_model_version(tmp_path / "v0002.joblib")
    with pytest.raises(LineageError, match="v0009.json is missing"):
        load_model_version(tmp_path / "v0009")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_utils", "predict", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_predict_command(finished, tmp_path):
    lineage = read_lineage(finished)
    version = int(lineage.loc[lineage["valid_size"] > 0, "version"].iloc[0])
    model = str(finished / "models" / f"v{version:04d}")
    good = _cli("--version", model, "CCO", "C#N")
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"model v{version:04d} (data version ")
    assert "validation MAE" in good.stdout and good.stdout.count(" eV\t± ") == 2
    source = tmp_path / "in.csv"
    source.write_text("smiles\nCCO\nbad((\nC#N\n")
    out = tmp_path / "pred.csv"
    mixed = _cli("--version", model, "--input", str(source), "--out", str(out))
    assert mixed.returncode == 1 and "row 2: 'bad(('" in mixed.stderr
    written = pd.read_csv(out)
    assert written.columns.tolist() == ["row", "smiles", "ie_ev", "ie_spread_ev", "error"]
    assert written["ie_ev"].notna().tolist() == [True, False, True]
    missing = _cli("--version", str(finished / "models" / "v0999"), "CCO")
    assert missing.returncode == 2 and "error:" in missing.stderr and missing.stdout == ""
    older = _cli("--model", model, "CCO", "C#N")  # the older spelling of --version still works
    assert older.returncode == 0 and older.stdout == good.stdout, older.stderr
    both = _cli("--version", model, "--model", model, "CCO")
    assert both.returncode == 2 and "not allowed with" in both.stderr
