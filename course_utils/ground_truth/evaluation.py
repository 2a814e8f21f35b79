"""Yardsticks of a campaign against a ground-truth table: how good is a run, not just who won.

A run's records say what it found; only a table of every molecule's true value says how far that
is from the best possible (regret), where it stands among all molecules (rank, percentile), and
how much of the true top of the space it saw (top-k recall, simulations to reach the top k).

Honesty rules. The run's best is its own simulated value. Everything compared with the space is
read from the table, and a molecule the table lacks is counted and named, never estimated: a
number that cannot be computed is None and ``note`` says why. A partial table makes every
number relative to the molecules it covers, which ``coverage`` states.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils.ground_truth.shipped import load_ground_truth
from course_utils.ground_truth.table import LOST, Coverage, GroundTruthError, derived
from course_utils.records.jsonfiles import load_json_object
from course_utils.records.recorder import PARAMETERS_FILE, RESULTS_FILE, read_simulations

DEFAULT_KS = (1, 10, 100)
MAX_MISSING_EXAMPLES = 5
#: How far a run's IE of a molecule may lie from the table's (eV). The table was computed with
#: the kit's own protocol (fixed embedding seeds, one xTB thread): a real run reproduced it to
#: 5e-7 eV on every molecule we compared, and the two engines (xtb, tblite) agree to 1e-3.
TABLE_TOLERANCE_EV = 0.01
#: Molecules a model is checked on each round (random ones, so its error there is what it would
#: make on the search space at large), and the fixed seed that draws them: every run on the same
#: space is checked on the same molecules, so the numbers compare across runs.
HELDOUT_SIZE = 1000
HELDOUT_SEED = 2024


@dataclass(frozen=True)
class HeldOutSample:
    """Random molecules of the search space with their tabulated IEs: what a model's error is
    on molecules nobody picked for it (its error on the batch it picks is another matter)."""

    #: Rows of the search space (the order of a model's scores).
    positions: np.ndarray
    smiles: np.ndarray
    ie: np.ndarray

    def mae(self, predicted_ie: np.ndarray, training: Iterable[str] = ()) -> float:
        """Mean absolute error (eV) of ``predicted_ie`` (the whole space's, in its order) on the
        sample's molecules that are not in ``training``; NaN if none is left."""
        trained = set(training)
        keep = np.fromiter((s not in trained for s in self.smiles), bool, len(self.smiles))
        if not keep.any():
            return math.nan
        predicted = np.asarray(predicted_ie, dtype=float)[self.positions[keep]]
        return float(np.mean(np.abs(predicted - self.ie[keep])))


def heldout_sample(space: Sequence[str], truth: pd.DataFrame, size: int = HELDOUT_SIZE,
                   seed: int = HELDOUT_SEED) -> HeldOutSample | None:
    """``size`` molecules of ``space`` drawn at random among those ``truth`` has an IE for;
    None if it has none."""
    known = truth.loc[np.isfinite(truth["ie"].to_numpy(dtype=float)), ["smiles", "ie"]]
    rows = np.flatnonzero(pd.Series(space, dtype=object).isin(known["smiles"]).to_numpy())
    if not len(rows):
        return None
    rows = np.sort(np.random.default_rng(seed).choice(rows, min(size, len(rows)), replace=False))
    smiles = np.array([space[i] for i in rows], dtype=object)
    ie_of = known.set_index("smiles")["ie"]  # one row a molecule (read_table keeps the last)
    return HeldOutSample(rows, smiles, ie_of.reindex(smiles).to_numpy(dtype=float))


def evaluate_run(
    simulations: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    space_size: int | None = None,
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[str, Any]:
    """The ``evaluation`` block of results.json: the run's records measured against ``truth``.

    ``simulations`` holds one row per attempt in record order (``smiles``, ``ie``, ``status``);
    ``truth`` is a ground-truth table (``smiles``, ``ie``, ``status``). The space's size comes
    from ``truth.attrs["coverage"]`` if set, else ``space_size``, else the table's length.

    Definitions (the table's molecules with an IE, sorted by IE descending then SMILES):
      regret_ev        global best IE minus the run's best simulated IE (eV)
      best_rank        1 + number of table molecules with an IE strictly above the table's IE of
                       the run's best molecule (competition ranking: ties share a rank)
      best_percentile  100 * (1 - (best_rank - 1) / ranked_among): the share of the table's
                       molecules the best found equals or beats; 100 = the global best
      top_k_recall     share of the table's top k that the run simulated successfully
      simulations_to_top_k  1-based count of successful simulations, in record order, until the
                       first whose table IE is >= the k-th best IE; None if never reached
    """
    ks = _check_ks(ks)
    sims = _successes(simulations)
    table, ranked, true_ie, in_table = derived(truth, "evaluation", _prepare)
    notes: list[str] = []
    n_ranked = len(ranked)

    attempted = _attempted(simulations)
    missing = [s for s in attempted if s not in in_table]
    if missing:
        notes.append(f"{len(missing)} simulated molecule(s) are not in the table and are never "
                     "compared with it")
    no_value = [s for s in dict.fromkeys(sims["smiles"]) if s in in_table and s not in true_ie]
    if no_value:
        notes.append(f"{len(no_value)} molecule(s) simulated successfully failed in the table "
                     "(no true IE)")

    global_best = None
    if n_ranked:
        top = ranked.iloc[0]
        global_best = {"smiles": str(top["smiles"]), "ie": float(top["ie"])}
    else:
        notes.append("the table holds no molecule with an IE: nothing can be compared")

    best_found = None
    regret = rank = percentile = None
    if len(sims):
        row = sims.loc[sims["ie"].idxmax()]  # first of equal values: the earliest found
        best_found = {"smiles": str(row["smiles"]), "ie": float(row["ie"]),
                      "table_ie": _float_or_none(true_ie.get(row["smiles"]))}
        if global_best is not None:
            regret = round(global_best["ie"] - best_found["ie"], 6) + 0.0  # no "-0.0"
            if regret < 0:
                notes.append("the run found a higher IE than any molecule the table covers")
        if best_found["table_ie"] is not None:
            rank = 1 + int((ranked["ie"] > best_found["table_ie"]).sum())
            percentile = round(100.0 * (1 - (rank - 1) / n_ranked), 4)
        else:
            why = "is not in the table" if row["smiles"] not in in_table else "has no IE in the table"
            notes.append(f"rank and percentile unknown: the best found, {row['smiles']}, {why}")
    else:
        notes.append("the run has no successful simulation")

    recall: dict[str, float | None] = {}
    to_top: dict[str, int | None] = {}
    thresholds: dict[str, float | None] = {}
    found = set(sims["smiles"])
    table_ie_in_order = [true_ie.get(s) for s in sims["smiles"]]
    for k in ks:
        key = str(k)
        if not n_ranked:
            recall[key] = to_top[key] = thresholds[key] = None
            continue
        top_k = ranked["smiles"].iloc[:k]
        recall[key] = round(sum(s in found for s in top_k) / len(top_k), 6)
        threshold = float(ranked["ie"].iloc[min(k, n_ranked) - 1])
        thresholds[key] = threshold
        to_top[key] = next((i for i, v in enumerate(table_ie_in_order, 1)
                            if v is not None and v >= threshold), None)
    if ks and n_ranked and max(ks) > n_ranked:
        notes.append(f"the table ranks only {n_ranked:,} molecules: a larger top k uses them all")

    coverage = _coverage(truth, table, space_size)
    return {
        "coverage": {"covered": coverage.covered, "total": coverage.total,
                     "complete": coverage.complete, "text": str(coverage)},
        "global_best": global_best,
        "best_found": best_found,
        "regret_ev": regret,
        "best_rank": rank,
        "ranked_among": n_ranked,
        "best_percentile": percentile,
        "top_k_recall": recall,
        "simulations_to_top_k": to_top,
        "top_k_threshold_ev": thresholds,
        "missing": len(missing),
        "missing_examples": missing[:MAX_MISSING_EXAMPLES],
        "note": "; ".join(notes) or None,
    }


def evaluate_folder(out_dir: str | os.PathLike, truth: pd.DataFrame | None = None) -> dict[str, Any]:
    """:func:`evaluate_run` on a run folder, against the shipped table of its search space."""
    out = Path(out_dir)
    if truth is None:
        space = _search_space_of(out)
        if space != "qm9":
            raise GroundTruthError(f"no ground-truth table ships for search space {space!r}; "
                                   "pass truth= (e.g. ground_truth.read_table(FILE))")

        truth = load_ground_truth(space)
    return evaluate_run(read_simulations(out), truth)


def format_evaluation(ev: Mapping[str, Any]) -> str:
    """One paragraph for a notebook or a terminal; every number keeps its coverage beside it."""
    parts: list[str] = []
    if ev.get("regret_ev") is not None:
        parts.append(f"regret {ev['regret_ev']:.2f} eV")
    elif ev.get("best_found") is None:
        parts.append("no successful simulation")
    rank, n = ev.get("best_rank"), ev.get("ranked_among") or 0
    if rank is not None and n:
        parts.append(f"best found ranks {_ordinal(rank)} of {n:,} (top {_percent(100 * rank / n)} %)")
    recall = ev.get("top_k_recall") or {}
    if any(v is not None for v in recall.values()):
        parts.append(", ".join(f"top-{k} recall {v:.2f}" for k, v in recall.items() if v is not None))
    reached = ev.get("simulations_to_top_k") or {}
    if reached and ev.get("best_found") is not None and ev.get("global_best") is not None:
        parts.append("simulations to reach the " + ", ".join(
            f"top-{k}: {'never' if v is None else f'{v:,}'}" for k, v in reached.items()))
    parts.append(ev["coverage"]["text"])
    text = "; ".join(parts)
    if ev.get("note"):
        text += f" (note: {ev['note']})"
    return text


# --------------------------------------------------------------------------- helpers


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    out = tuple(sorted({int(k) for k in ks}))
    if any(k < 1 for k in out):
        raise ValueError(f"top-k sizes must be >= 1, got {list(out)}")
    return out


def _require(frame: pd.DataFrame, what: str) -> None:
    missing = [c for c in ("smiles", "ie", "status") if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")


def _successes(simulations: pd.DataFrame) -> pd.DataFrame:
    """Successful simulations in record order, with numeric IEs (the run's own values)."""
    _require(simulations, "simulations")
    sims = simulations.loc[:, ["smiles", "ie", "status"]].copy()
    sims["ie"] = pd.to_numeric(sims["ie"], errors="coerce")
    sims = sims[(sims["status"] == "ok") & sims["ie"].notna()]
    sims["smiles"] = sims["smiles"].astype(str)
    return sims.reset_index(drop=True)


def _attempted(simulations: pd.DataFrame) -> list[str]:
    """Distinct molecules the run simulated (lost attempts were retried: they are not results)."""
    rows = simulations[simulations["status"] != LOST]
    return list(dict.fromkeys(rows["smiles"].astype(str)))


def table_lookups(truth: pd.DataFrame) -> tuple[dict[str, float], dict[str, float], set[str]]:
    """A table's IE by SMILES (``ok`` rows), its measured ``seconds`` by SMILES (every settled
    row: a failure took time too) and its SMILES; built once per table content."""
    return derived(truth, "lookups", _lookups)


def _lookups(truth: pd.DataFrame) -> tuple[dict[str, float], dict[str, float], set[str]]:
    table, _, true_ie, in_table = derived(truth, "evaluation", _prepare)
    seconds: dict[str, float] = {}
    if "seconds" in truth.columns:
        rows = truth[truth["status"] != LOST].drop_duplicates("smiles", keep="last")
        values = pd.to_numeric(rows["seconds"], errors="coerce")
        seconds = {s: float(v) for s, v in zip(rows["smiles"].astype(str), values, strict=True)
                   if v == v}
    return true_ie, seconds, in_table


def ranked_molecules(truth: pd.DataFrame) -> pd.DataFrame:
    """The one ranking rule of a ground-truth table: its settled molecules with an IE (``ok``
    rows, the last row of a molecule wins), by IE descending, then SMILES. Columns ``smiles``,
    ``ie``, ``status``; computed once per table content."""
    return derived(truth, "evaluation", _prepare)[1]


def _prepare(truth: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float], set[str]]:
    """What every evaluation against one table needs: its settled rows, those with an IE
    ranked (IE descending, then SMILES), their IE by SMILES, and the set of its SMILES."""
    table = _table(truth)
    ranked = table[table["ie"].notna()].sort_values(["ie", "smiles"], ascending=[False, True],
                                                    kind="stable")
    return table, ranked, dict(zip(ranked["smiles"], ranked["ie"], strict=True)), \
        set(table["smiles"])


def _table(truth: pd.DataFrame) -> pd.DataFrame:
    """Settled table rows; only ``ok`` rows carry an IE that can be compared."""
    _require(truth, "the ground-truth table")
    table = truth.loc[truth["status"] != LOST, ["smiles", "ie", "status"]].copy()
    table["smiles"] = table["smiles"].astype(str)
    table["ie"] = pd.to_numeric(table["ie"], errors="coerce").where(table["status"] == "ok")
    return table.drop_duplicates("smiles", keep="last").reset_index(drop=True)


def _coverage(truth: pd.DataFrame, table: pd.DataFrame, space_size: int | None) -> Coverage:
    given = truth.attrs.get("coverage")
    if isinstance(given, Coverage):
        return given
    return Coverage(len(table), space_size if space_size is not None else len(table),
                    space="custom")


def _search_space_of(out: Path) -> str:
    for name in (RESULTS_FILE, PARAMETERS_FILE):
        path = out / name
        if not path.exists():
            continue
        try:
            data = load_json_object(path)
        except (OSError, ValueError) as err:
            raise GroundTruthError(f"cannot read {path}: {err}") from None
        params = data.get("parameters", data) if name == RESULTS_FILE else data
        if isinstance(params, dict) and params.get("search_space"):
            return str(params["search_space"])
    raise GroundTruthError(f"cannot tell the search space of {out}: no results.json or "
                           "parameters.json names it; pass truth=")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def _percent(x: float) -> str:
    """Two decimals, or two significant digits below 0.01 (the global best of a big space)."""
    if x >= 0.01 or x == 0:
        return f"{x:.2f}"
    return f"{x:.2g}"


def _float_or_none(value: Any) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
