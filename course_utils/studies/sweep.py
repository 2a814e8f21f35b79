"""A sweep of homework configurations that stops the hopeless ones early (successive halving).

Running every configuration of a sweep to the full budget spends most of the compute on
configurations that were clearly behind long before the end. Successive halving (the early
termination of hyperparameter and architecture searches) runs every configuration to a first
*rung* budget, keeps the best 1/eta of them (best IE found, ties broken by the time to reach
it), resumes the survivors in their own run folders with the next, larger budget, and so on
until the last survivors reach the full budget. A resumed campaign reuses its records: no
simulation is ever run twice. (It is not always the campaign a straight run to the full
budget would be: a rung that ends inside a batch cuts that batch short, so the model retrains
at other points.)

Layout of the sweep's folder::

    configs/config-NN/   one campaign per configuration (simulations.csv, results.json, ...)
    sweep.csv            one row per configuration: parameters, folder, rung reached, status
                         (kept, stopped or failed), when and why it stopped, its best IE
    sweep.json           the settings, every rung's decisions, the winner, what was saved

Both files are rewritten atomically after every rung. Running the same sweep again into the
same folder goes on from the last rung decided (a sweep interrupted by a job's walltime
resumes); other settings in that folder are refused with one line.

Configurations are written as in ``submit/example_sweep.txt``: one per line, campaign
parameters as ``name=value`` words, ``#`` starts a comment. What a sweep checks before it runs
(the configurations, the rung budgets) is :mod:`course_utils.studies.sweep_plan`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils import records as rec
from course_utils.figures import style as figure_style
from course_utils.resilience import error_message, fail
from course_utils.status import is_finished_status
from course_utils.studies.comparison import warm
from course_utils.studies.sweep_plan import (
    SWEEP_KEYS,
    SweepError,
    campaign_parameters,
    check_sweep,
    parse_rungs,
    plan_rungs,
    read_configs,
)

#: The plan's names (sweep_plan) are importable from here too, as before the split.
__all__ = ["CONFIGS_DIR", "SWEEP_CSV", "SWEEP_JSON", "SWEEP_KEYS", "SweepError", "SweepResult",
           "campaign_parameters", "check_sweep", "parse_rungs", "plan_rungs", "plot_sweep",
           "read_configs", "read_sweep_table", "run_sweep", "sweep_main"]

SWEEP_CSV = "sweep.csv"
SWEEP_JSON = "sweep.json"
CONFIGS_DIR = "configs"


# --------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    out_dir: Path
    table: pd.DataFrame  # sweep.csv
    summary: dict[str, Any]  # sweep.json

    @property
    def winner(self) -> dict[str, Any] | None:
        return self.summary.get("winner")


def run_sweep(
    configs: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    *,
    eta: int = 3,
    rungs: Sequence[int] | None = None,
    min_budget: int | None = None,
    budget: int | None = None,
    common: Mapping[str, Any] | None = None,
    config_options: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] | None = print,
) -> SweepResult:
    """Run the sweep with early termination into ``out_dir`` (or go on with one there).

    ``common``: the sweep's settings for every campaign (``simulator``, ``search_space``,
    ``workers``, ``config``, ``ground_truth``; replay defaults to ``truth:qm9``). Real
    simulations share one Parsl configuration (``config`` with ``config_options``), loaded
    here unless one is loaded already. ``echo`` gets one line per campaign run (None: quiet).
    """
    parameters, plan = check_sweep(configs, eta=eta, rungs=rungs, min_budget=min_budget,
                                   budget=budget, common=common)
    out = Path(out_dir)
    settings = {"eta": eta, "rungs": list(plan), "budget": plan[-1],
                "configurations": [dict(c) for c in configs], "common": _jsonable(common or {})}
    log = _open_log(out, settings)
    say = echo or (lambda _line: None)
    started = time.perf_counter()
    _write(out, settings, parameters, log, plan, 0.0)  # a sweep stopped in rung 1 can go on
    with _parsl_for(parameters, out, config_options):
        alive = _alive(log, len(parameters))
        for k, rung_budget in enumerate(plan, start=1):
            if k <= len(log):
                continue  # decided in an earlier session
            results = []
            for i in alive:
                result = _run_to(parameters[i], rung_budget, out / _folder(i, len(parameters)))
                results.append({"config": i + 1, **result})
                best = result["best_ie"]
                say(f"rung {k}/{len(plan)} ({rung_budget} simulations): config {i + 1}: "
                    + (f"best {best:.3f} eV" if best is not None else "no best")
                    + f" ({result['campaign_status']})")
            log.append(_decide(k, rung_budget, results, eta, final=k == len(plan)))
            alive = _alive(log, len(parameters))
            _write(out, settings, parameters, log, plan, time.perf_counter() - started)
    table, summary = _write(out, settings, parameters, log, plan, time.perf_counter() - started)
    return SweepResult(out, table, summary)


def _folder(index: int, n: int) -> str:
    return f"{CONFIGS_DIR}/config-{index + 1:0{max(2, len(str(n)))}d}"


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(rec.dumps_json(dict(values)))


def _open_log(out: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The rungs already decided in ``out`` (empty for a new sweep); refuses other settings."""
    path = out / SWEEP_JSON
    if not path.exists():  # other files (a job's log) may be there, campaigns may not
        if (out / CONFIGS_DIR).exists() and any((out / CONFIGS_DIR).iterdir()):
            raise SweepError(f"{out} holds campaigns but no {SWEEP_JSON}: choose another folder")
        out.mkdir(parents=True, exist_ok=True)
        return []
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SweepError(f"cannot read {path}: {err}") from None
    if earlier.get("settings") != _jsonable(settings):
        raise SweepError(f"{out} holds a sweep with other settings (eta, rungs, budget or "
                         "configurations differ): choose another folder")
    note = rec.remove_stale_temporaries(out, (".",))  # sweep.csv.tmp, sweep.json.tmp of a kill
    if note:
        print(f"note: {note}", file=sys.stderr)
    return list(earlier.get("rungs_log", []))


def _alive(log: Sequence[Mapping[str, Any]], n: int) -> list[int]:
    """Indices of the configurations the last decided rung kept (all before the first)."""
    if not log:
        return list(range(n))
    return [r["config"] - 1 for r in log[-1]["results"] if r["decision"] == "kept"]


@contextlib.contextmanager
def _parsl_for(parameters: Sequence[Mapping[str, Any]], out: Path,
               options: Mapping[str, Any] | None):
    """One Parsl configuration for all real campaigns of the sweep (none for replay)."""
    if all(p.get("simulator") == "replay" for p in parameters):
        # Loaded once before the clocks start: the first campaign must not pay for it alone.
        for space, table in {(str(p["search_space"]), p.get("ground_truth")) for p in parameters}:
            warm(space, table)
        yield
        return
    import parsl
    from parsl.errors import NoDataFlowKernelError

    # deferred: configs imports Parsl (+0.8 s, measured)
    from course_utils.configs import make_config

    try:
        parsl.dfk()
    except NoDataFlowKernelError:
        first = parameters[0]
        kwargs = {"run_dir": str(out / "runinfo"), **dict(options or {})}
        if first.get("workers") is not None:
            kwargs.setdefault("workers", first["workers"])
        with parsl.load(make_config(first.get("config", "local"), **kwargs)):
            yield
        return
    yield


def _run_to(parameters: Mapping[str, Any], budget: int, folder: Path) -> dict[str, Any]:
    """Run (or resume) one configuration's campaign up to ``budget``; what it found."""
    # deferred: parameters imports Parsl through configs (+0.7 s, measured)
    from course_utils.campaign.parameters import CampaignNote

    # deferred: the runner imports Parsl (+0.7 s, measured)
    from course_utils.campaign.runner import run_campaign

    values = {**parameters, "max_training_count": budget}
    try:
        with warnings.catch_warnings():  # a rung budget below one batch is the sweep's doing
            warnings.simplefilter("ignore", CampaignNote)
            result = run_campaign(values, folder, progress=False,
                                  plot=values.get("simulator") != "replay")
    except (ValueError, LookupError, OSError) as err:  # a mismatching folder, replay gaps, ...
        return {"best_ie": None, "best_smiles": None, "time_to_best_s": None, "simulations": 0,
                "campaign_status": "failed", "message": error_message(err)[:300]}
    results = result.results
    best = results.get("best") or {}
    return {"best_ie": best.get("ie"), "best_smiles": best.get("smiles"),
            "time_to_best_s": best.get("time_to_best_s"),
            "simulations": int(results["totals"]["successful"]),
            "campaign_status": results["status"],
            "message": "" if is_finished_status(results["status"]) else results["message"][:300]}


def _rank_key(result: Mapping[str, Any]) -> tuple[float, float, int]:
    best, time_to = result["best_ie"], result["time_to_best_s"]
    return (-best if best is not None else math.inf,
            time_to if time_to is not None else math.inf, result["config"])


def _decide(rung: int, budget: int, results: list[dict[str, Any]], eta: int, final: bool
            ) -> dict[str, Any]:
    """Keep the best 1/eta of the rung (all at the last rung); say why each was stopped."""
    ok = sorted((r for r in results if is_finished_status(r["campaign_status"])
                 and r["best_ie"] is not None), key=_rank_key)
    keep = len(ok) if final else max(1, math.ceil(len(ok) / eta)) if ok else 0
    cut = ok[keep - 1] if keep else None
    for r in (r for r in results if r not in ok):
        r["decision"], r["rank"] = "failed", None
        r["why"] = (f"rung {rung}: campaign {r['campaign_status']}: {r['message']}"
                    if r["message"] else f"rung {rung}: no successful simulation")
    for rank, r in enumerate(ok, start=1):
        r["rank"] = rank
        of = f"the top {keep} of {len(ok)}"
        if rank <= keep:
            r["decision"] = "kept"
            r["why"] = (f"reached the full budget ({budget}): rank {rank} of {len(ok)}"
                        if final else f"rung {rung}: best {r['best_ie']:.3f} eV, rank {rank}, "
                        f"within {of}")
            continue
        r["decision"] = "stopped"
        if r["best_ie"] < cut["best_ie"]:
            r["why"] = (f"rung {rung}: best {r['best_ie']:.3f} eV, below the cut "
                        f"{cut['best_ie']:.3f} eV of {of}")
        else:
            r["why"] = (f"rung {rung}: best {r['best_ie']:.3f} eV ties the cut of {of} but was "
                        f"reached later ({r['time_to_best_s']:.1f} s vs "
                        f"{cut['time_to_best_s']:.1f} s)")
    return {"rung": rung, "budget": budget, "ran": len(results), "kept": keep,
            "cut_ev": cut["best_ie"] if cut is not None and not final else None,
            "results": results}


# --------------------------------------------------------------------------- bookkeeping


def _table(parameters: Sequence[Mapping[str, Any]], configs_log: list[dict[str, Any]],
           n: int) -> pd.DataFrame:
    """sweep.csv: each configuration's last rung."""
    last: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for rung in configs_log:
        for r in rung["results"]:
            last[r["config"]] = (rung, r)
    names = list(dict.fromkeys(k for p in parameters for k in p if k not in SWEEP_KEYS))
    rows = []
    for i in range(n):
        rung, r = last.get(i + 1, ({}, {}))
        stopped = r.get("decision") == "stopped"
        rows.append({
            "config": i + 1, **{k: parameters[i].get(k) for k in names},
            "folder": _folder(i, n), "rung": rung.get("rung", 0),
            "rung_budget": rung.get("budget"), "status": r.get("decision", "waiting"),
            "stopped_at_rung": rung.get("rung") if stopped else None,
            "stopped_at_simulations": r.get("simulations") if stopped else None,
            "why": r.get("why", ""), "best_ie": r.get("best_ie"),
            "best_smiles": r.get("best_smiles"), "time_to_best_s": r.get("time_to_best_s"),
            "simulations": r.get("simulations", 0), "campaign_status": r.get("campaign_status"),
        })
    table = pd.DataFrame(rows)
    for column in ("rung_budget", "stopped_at_rung", "stopped_at_simulations"):
        table[column] = table[column].astype("Int64")
    return table


def _write(out: Path, settings: dict[str, Any], parameters: Sequence[Mapping[str, Any]],
           log: list[dict[str, Any]], plan: Sequence[int], seconds: float
           ) -> tuple[pd.DataFrame, dict[str, Any]]:
    table = _table(parameters, log, len(parameters))
    complete = len(log) == len(plan)
    final = [r for r in log[-1]["results"] if r["decision"] == "kept"] if complete else []
    winner = min(final, key=_rank_key) if final else None
    used, full = int(table["simulations"].sum()), len(parameters) * settings["budget"]
    summary = {
        "status": "complete" if complete else "running",
        "settings": _jsonable(settings),
        "rungs_decided": len(log),
        "winner": None if winner is None else {
            "config": winner["config"], "folder": _folder(winner["config"] - 1, len(parameters)),
            "best_ie": winner["best_ie"], "best_smiles": winner["best_smiles"],
            "time_to_best_s": winner["time_to_best_s"],
            "parameters": _jsonable(parameters[winner["config"] - 1])},
        "counts": {str(k): int(v) for k, v in table["status"].value_counts().items()},
        "simulations": {"used": used, "all_to_full_budget": full, "saved": full - used,
                        "saved_share": (full - used) / full if full else 0.0},
        "seconds_this_session": seconds,
        "units": {"ie": "eV", "time": "s"},
        "rungs_log": log,
    }
    tmp = out / (SWEEP_CSV + ".tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, out / SWEEP_CSV)
    rec.atomic_write_json(out / SWEEP_JSON, summary)
    return table, summary


def read_sweep_table(out_dir: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(Path(out_dir) / SWEEP_CSV)


# --------------------------------------------------------------------------- the figure


def plot_sweep(out_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Best IE found so far against successful simulations for every configuration, each
    line ending where the sweep stopped it; the rung budgets as vertical lines."""
    out = Path(out_dir)
    table = read_sweep_table(out)
    summary = json.loads((out / SWEEP_JSON).read_text())
    plt = figure_style.pyplot()
    with figure_style.style():
        fig, ax = plt.subplots(figsize=(9, 4.8), constrained_layout=True)
        for rung in summary["settings"]["rungs"]:
            ax.axvline(rung, color="0.6", ls=":", lw=1)
        for _, row in table.iterrows():
            sims = rec.read_simulations(out / row["folder"]) if (
                out / row["folder"] / rec.SIMULATIONS_FILE).exists() else None
            if sims is None or not (sims["status"] == rec.STATUS_OK).any():
                continue
            curve = rec.best_so_far(sims)
            kept = row["status"] == "kept"
            ax.step(curve["n_simulations"], curve["best_ie"], where="post",
                    lw=2 if kept else 1, ls="-" if kept else "--",
                    label=f"config {row['config']}: {row['status']} at rung {row['rung']}, "
                          f"best {row['best_ie']:.2f} eV")
        ax.set_xlabel("successful simulations of the configuration")
        ax.set_ylabel("best IE found so far (eV)")
        ax.set_title(f"Successive halving (eta={summary['settings']['eta']}): rungs at "
                     f"{summary['settings']['rungs']} simulations (dotted)", fontsize=10)
        ax.legend(loc="lower right", fontsize=7)
        return figure_style.save(fig, path)


# --------------------------------------------------------------------------- command line


def sweep_main(args: Any) -> int:
    """``python -m course_utils sweep``: one line and exit 2 for a sweep that cannot run."""
    common = {k: v for k, v in (("simulator", args.simulator), ("search_space", args.search_space),
                                ("ground_truth", args.ground_truth), ("workers", args.workers),
                                ("config", args.config)) if v is not None}
    options = {"workers_per_node": args.workers} if (
        args.config == "polaris" and args.workers is not None) else {}
    try:
        configs = read_configs(args.configs)
        result = run_sweep(configs, args.out, eta=args.eta, rungs=parse_rungs(args.rungs),
                           min_budget=args.min_budget, budget=args.budget, common=common,
                           config_options=options or None, echo=None if args.quiet else print)
    except SweepError as err:
        return fail(err)
    except KeyboardInterrupt:  # CampaignInterrupted too: every finished simulation is kept
        print(f"interrupted: records kept in {args.out}; run the same command again to go on",
              file=sys.stderr)
        return 130
    summary, winner = result.summary, result.winner
    saved = summary["simulations"]
    print(f"sweep {summary['status']}: {summary['counts']}; {saved['used']} simulations instead "
          f"of {saved['all_to_full_budget']} ({100 * saved['saved_share']:.0f}% saved)")
    if winner:
        line = summary["settings"]["configurations"][winner["config"] - 1]
        print(f"best configuration: {winner['folder']} ({line}): "
              f"{winner['best_smiles']}  IE = {winner['best_ie']:.3f} eV")
    print(f"records in {result.out_dir}/: {SWEEP_CSV}, {SWEEP_JSON}, {CONFIGS_DIR}/")
    return 0 if winner else 1
