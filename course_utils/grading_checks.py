"""Checking one graded run: its files agree with each other, and its numbers with what the
student cannot edit (the shipped ground-truth table, xTB, the compute its time needed).

Every check raises :class:`BrokenSubmission` (or
:class:`~course_utils.grading_time.ImplausibleTime`) with one line naming the numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils import records as rec
from course_utils.campaign.batch_plan import read_plan
from course_utils.campaign.lineage import read_lineage
from course_utils.chemistry import ChemistryError, EngineUnavailableError, compute_vertical
from course_utils.grading_board import PARAMETER_COLUMNS
from course_utils.grading_time import check_submissions_after_models, check_time, machine_text
from course_utils.ground_truth.evaluation import TABLE_TOLERANCE_EV, evaluate_run, table_lookups
from course_utils.ground_truth.shipped import load_ground_truth, truth_of_space
from course_utils.ground_truth.table import GroundTruthError, table_name
from course_utils.status import is_finished_status, is_stopped_early

#: Two IEs closer than this (eV) are the same number written twice (CSV and JSON round trips).
SAME_VALUE_EV = 1e-6
#: A recomputed IE must agree with the recorded one this well (eV): engines agree to 1e-3.
REPRODUCE_TOLERANCE_EV = 0.01
#: What a parameter was in runs of kits that did not record it (the KNN was the only model).
OLDER_RUN_PARAMETERS = {"model": "knn"}


class BrokenSubmission(Exception):
    """Why a submission cannot be ranked, in one line."""


def read_results(run_dir: Path, label: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """results.json and simulations.csv of a run folder, which must also hold parameters.json
    saying what results.json says; raises :class:`BrokenSubmission` with the reason."""
    results_path, sims_path = run_dir / rec.RESULTS_FILE, run_dir / rec.SIMULATIONS_FILE
    params_path = run_dir / rec.PARAMETERS_FILE
    missing = [p.name for p in (results_path, sims_path, params_path) if not p.exists()]
    if missing:
        raise BrokenSubmission(f"missing {' and '.join(missing)} in {label}")
    try:
        results = rec.load_json_object(results_path)
    except ValueError as err:
        raise BrokenSubmission(f"results.json is not valid JSON ({err})") from None
    try:
        parameters = rec.load_json_object(params_path)
    except ValueError as err:
        raise BrokenSubmission(f"parameters.json is not valid JSON ({err})") from None
    _same_parameters(parameters, results.get("parameters"))
    try:
        columns = set(pd.read_csv(sims_path, nrows=0).columns)
        needed = {"smiles", "ie", "status", "error", "elapsed_s"}
        if not needed <= columns:
            raise BrokenSubmission(f"simulations.csv lacks columns {sorted(needed - columns)}")
        sims = rec.read_simulations(run_dir)
    except (ValueError, pd.errors.ParserError) as err:
        raise BrokenSubmission(f"simulations.csv cannot be read ({err})") from None
    _refuse_rejected_rows(run_dir, sims)
    return results, sims


def _same_parameters(saved: dict[str, Any], claimed: Any) -> None:
    """parameters.json (written when the run started or resumed) and results.json's copy
    must say the same: a run graded on one set of parameters is the run that used them."""
    if not isinstance(claimed, dict):
        raise BrokenSubmission("results.json has no parameters block to compare with "
                               "parameters.json")
    diffs = [f"{k}: {saved[k]!r} in parameters.json, {claimed[k]!r} in results.json"
             for k in sorted(saved.keys() & claimed.keys()) if saved[k] != claimed[k]]
    if diffs:
        raise BrokenSubmission(f"parameters.json and results.json disagree ({'; '.join(diffs[:3])})")


def _refuse_rejected_rows(run_dir: Path, sims: pd.DataFrame) -> None:
    """A run whose records held rows that do not parse is not ranked until someone decides
    what they were: counting or dropping them silently would both grade a guess."""
    bad = sims.attrs.get("rejected") or []
    if bad:
        line, reason = bad[0]
        raise BrokenSubmission(
            f"simulations.csv holds {len(bad)} row(s) that do not parse (line {line}: {reason}); "
            "fix or delete them (a resume moves them to simulations.rejected.csv), then grade "
            "again")
    aside = [p.name for p in rec.rejected_files(run_dir)]
    if aside:
        raise BrokenSubmission(
            f"{', '.join(aside)} holds rows set aside because they do not parse; fix and append "
            f"them back to their file, or delete {', '.join(aside)}, then grade again")


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_records(results: dict[str, Any], sims: pd.DataFrame) -> dict[str, Any]:
    """The graded numbers, derived from the simulation records and checked against results.json.

    Raises :class:`BrokenSubmission` for unfinished runs and for claims the records do not back.
    """
    status = results.get("status")
    totals = results.get("totals") or {}
    params = results.get("parameters") or {}
    best = results.get("best") or {}
    ok = sims[sims["status"] == rec.STATUS_OK].copy()
    ok["ie"] = pd.to_numeric(ok["ie"], errors="coerce")
    ok["elapsed_s"] = pd.to_numeric(ok["elapsed_s"], errors="coerce")
    budget = params.get("max_training_count")
    if results.get("replayed") or params.get("simulator") == "replay":
        raise BrokenSubmission("replayed run: its simulations were answered from the ground-truth "
                               "table, not computed; hand in a real run")
    stopped_early = is_stopped_early(status)
    if not is_finished_status(status):
        raise BrokenSubmission(f"unfinished run (status {status!r}): {len(ok)} of {budget} "
                               "successful simulations")
    if stopped_early and not (results.get("stopping") or {}).get("fired"):
        raise BrokenSubmission(f"results.json says {status!r}, but its stopping block does not "
                               "record a rule that fired")
    if ok.empty or not best:
        raise BrokenSubmission("no successful simulation recorded")
    if ok["ie"].isna().any() or ok["elapsed_s"].isna().any():
        raise BrokenSubmission("simulations.csv has successful rows without an IE or a time")
    if isinstance(budget, int) and len(ok) < budget and not stopped_early:
        raise BrokenSubmission(f"results.json says complete, but simulations.csv holds {len(ok)} "
                               f"of {budget} successful simulations")
    if _number(totals.get("successful")) != len(ok):
        raise BrokenSubmission(f"results.json claims {totals.get('successful')} successful "
                               f"simulations; simulations.csv holds {len(ok)}")
    repeated = ok["smiles"][ok["smiles"].duplicated()].unique().tolist()
    if repeated:
        raise BrokenSubmission(f"simulations.csv repeats molecules: {', '.join(repeated[:3])}")
    ok = ok.sort_values("elapsed_s", kind="stable").reset_index(drop=True)
    top = ok.loc[ok["ie"].idxmax()]
    claimed = _number(best.get("ie"))
    if not abs(claimed - float(top["ie"])) <= SAME_VALUE_EV:
        raise BrokenSubmission(f"best IE {claimed:.3f} eV in results.json is not backed by "
                               f"simulations.csv (highest simulated: {float(top['ie']):.3f} eV)")
    backing = ok[(ok["smiles"] == best.get("smiles"))
                 & ((ok["ie"] - claimed).abs() <= SAME_VALUE_EV)]
    if backing.empty:
        raise BrokenSubmission(f"best molecule {best.get('smiles')!r} has no successful row with "
                               f"IE {claimed:.3f} eV in simulations.csv")
    time_to_best = float(backing["elapsed_s"].iloc[0])
    claimed_time = _number(best.get("time_to_best_s"))
    if not abs(claimed_time - time_to_best) <= 1e-3:
        raise BrokenSubmission(f"time to best {claimed_time:.1f} s in results.json does not match "
                               f"its simulation record ({time_to_best:.1f} s)")
    total_time = _number(totals.get("wall_time_s"))
    if not total_time >= time_to_best - 1e-3:
        raise BrokenSubmission(f"total time {total_time:.1f} s is shorter than the time to best")
    return {
        "best_ie_ev": float(top["ie"]),
        "best_smiles": str(top["smiles"]),
        "time_to_best_s": time_to_best,
        "simulations_to_best": int(backing.index[0]) + 1,
        "successful": len(ok),
        "failed": int((~sims["status"].isin([rec.STATUS_OK, rec.STATUS_LOST])).sum()),
        "simulations": int((sims["status"] != rec.STATUS_LOST).sum()),
        "total_time_s": total_time,
        **{name: params.get(name, OLDER_RUN_PARAMETERS.get(name)) for name in PARAMETER_COLUMNS},
    }


def check_best(row: dict[str, Any], truth: pd.DataFrame | None, verify: bool,
                engine: str | None) -> str:
    """The best IE against the shipped table (instant, always), or recomputed with xTB where
    the table has no IE for it (unless ``verify`` is off); returns how it was checked."""
    smiles, claimed = row["best_smiles"], row["best_ie_ev"]
    if truth is not None:
        true_ie, _, in_table = table_lookups(truth)
        tabulated = true_ie.get(smiles)
        if tabulated is not None:
            if abs(claimed - tabulated) > TABLE_TOLERANCE_EV:
                raise BrokenSubmission(
                    f"best IE {claimed:.3f} eV of {smiles} is not the ground-truth table's "
                    f"{tabulated:.3f} eV (shipped table, tolerance {TABLE_TOLERANCE_EV} eV)")
            return "matches the ground-truth table"
        why = "no IE in the table" if smiles in in_table else "not in the table"
    else:
        why = "no ground-truth table"
    if not verify:
        return f"not checked ({why}; --no-verify)"
    return _verify_best(row, engine)


def _verify_best(row: dict[str, Any], engine: str | None) -> str:
    """Recompute the best molecule's IE; returns how it went, raises if it does not reproduce."""
    try:
        value = compute_vertical(row["best_smiles"], engine=engine)
    except EngineUnavailableError:
        return "not checked (no xTB engine)"
    except ChemistryError as err:
        raise BrokenSubmission(f"best molecule {row['best_smiles']!r} cannot be simulated "
                               f"({type(err).__name__})") from None
    if abs(value - row["best_ie_ev"]) > REPRODUCE_TOLERANCE_EV:
        raise BrokenSubmission(f"best IE {row['best_ie_ev']:.3f} eV of {row['best_smiles']} does "
                               f"not reproduce (recomputed: {value:.3f} eV)")
    return "reproduced (xTB)"


def ground_truth_columns(results: dict[str, Any], sims: pd.DataFrame,
                truth: pd.DataFrame | None) -> dict[str, Any]:
    """The run against the ground truth, computed here from its records (never taken from its
    results.json); empty where no table covers its search space."""

    space = (results.get("parameters") or {}).get("search_space")
    if truth is None or space is None or table_name(space) != "qm9":
        return {}
    ev = evaluate_run(sims, truth_of_space(truth, space))
    recall, reach = ev["top_k_recall"], ev["simulations_to_top_k"]
    return {"regret_ev": ev["regret_ev"], "best_rank": ev["best_rank"],
            "best_percentile": ev["best_percentile"], "top1_recall": recall.get("1"),
            "top10_recall": recall.get("10"), "top100_recall": recall.get("100"),
            "simulations_to_top10": reach.get("10")}


def grading_truth() -> pd.DataFrame | None:
    try:
        return load_ground_truth("qm9")
    except GroundTruthError:
        return None


def time_columns(run_dir: Path, results: dict[str, Any], sims: pd.DataFrame,
                  row: dict[str, Any], truth: pd.DataFrame | None) -> dict[str, Any]:
    """The workers and machine the time was measured on, and whether it is plausible
    (raises :class:`ImplausibleTime` if not)."""
    sims = sims.reset_index(drop=True)
    best = sims.index[(sims["smiles"] == row["best_smiles"]) & (sims["status"] == rec.STATUS_OK)]
    seconds = table_lookups(truth)[1] if truth is not None else None
    check = check_time(results, sims, int(best[0]) if len(best) else 0,
                       row["time_to_best_s"], row["total_time_s"], seconds)
    try:
        plan, lineage = read_plan(run_dir), read_lineage(run_dir)
    except (OSError, ValueError) as err:
        raise BrokenSubmission(f"batches.csv or lineage.csv cannot be read ({err})") from None
    note = ""
    if plan.empty:
        note = "; no batches.csv: submissions not compared with model versions"
    check_submissions_after_models(sims, plan, lineage)
    return {"workers": check.workers, "machine": machine_text(results),
            "time_check": check.describe(row["time_to_best_s"]) + note}
