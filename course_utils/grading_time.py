"""Is a run's claimed time possible? The grader's time check, against the compute it needed.

Time only breaks ties between equal best IEs, and it is measured on the student's own machine:
no file the student hands in can prove it. What can be checked is that it is *possible*:

1. the shipped ground-truth table measured how long each molecule takes to simulate
   (``seconds``, one thread, on the 2-core machine that built it). A run that simulated those
   molecules on W workers needed at least their sum / W, even on a machine
   ``MAX_SPEEDUP`` times faster. Neither the table nor this bound can be edited by a student.
2. the run's own records measured each simulation on its worker (``start_time``, ``end_time``):
   their sum / W is a floor for the claimed times too, and while a simulation was running
   the run's clock (``elapsed_s``) must advance as fast as those timestamps do. Files that
   disagree here were edited after the run.

A claim below a floor is implausible: the run is not ranked, with the numbers. What it cannot
catch: records whose every clock was rewritten consistently on a scale no faster than
``MAX_SPEEDUP`` allows; docs/grading.md says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

#: How much faster than the table's build machine (a 2-core cloud VM, 0.9 s a molecule with
#: one xTB thread each) a student's machine may run one simulation. Desktop cores of 2026 run
#: xTB at most about twice as fast; 3 leaves room for noise in the table's timings, so an
#: honest run on any machine is never flagged (real runs also spend time starting workers and
#: training models, which no bound counts).
MAX_SPEEDUP = 3.0
#: Seconds a claimed time may fall short of a floor derived from the run's own timestamps
#: (clock reads in two processes, the result collected a moment after its worker finished).
CLOCK_SLACK_S = 0.5
#: While simulations run, the run's clock (``elapsed_s``) must advance at least this fast
#: relative to the workers' timestamps; an honest run advances at 1.0, minus collection delays.
MIN_CLOCK_RATE = 0.9


class ImplausibleTime(ValueError):
    """A claimed time is below what the run's compute needed, in one line with the numbers."""


@dataclass(frozen=True)
class TimeCheck:
    """What the time check found: the parallelism it assumed, the floors, and one line."""

    workers: int | None
    machine: str
    #: Least time to best the table allows (its seconds, ``MAX_SPEEDUP`` faster), if it was used.
    table_floor_s: float | None
    #: Least time to best the run's own start/end times allow, if it recorded them.
    records_floor_s: float | None
    note: str

    def describe(self, time_to_best_s: float) -> str:
        if self.workers is None:
            return f"not checked{self.note}"
        floors = []
        if self.table_floor_s is not None:
            floors.append(f"{self.table_floor_s:.1f} s by the table's seconds")
        if self.records_floor_s is not None:
            floors.append(f"{self.records_floor_s:.1f} s by its own start/end times")
        return (f"plausible: time to best {time_to_best_s:.1f} s on {self.workers} worker(s), "
                f"at least {' and '.join(floors) or 'nothing known'}{self.note}")


def machine_text(results: Mapping[str, Any]) -> str:
    """The machine a run reports (``machine``; older runs: their environment block)."""
    machine = results.get("machine")
    if isinstance(machine, Mapping):
        return ", ".join(f"{k} {v}" for k, v in machine.items() if v not in (None, ""))
    if machine:
        return str(machine)
    env = results.get("environment") or {}
    if isinstance(env, Mapping) and (env.get("hostname") or env.get("cpu_count")):
        return f"{env.get('hostname') or '?'}, {env.get('cpu_count') or '?'} cores (environment)"
    return "not recorded"


def run_workers(results: Mapping[str, Any], sims: pd.DataFrame) -> tuple[int | None, str]:
    """Simulations the run could run at once, and a note if it had to be inferred.

    ``workers`` as the run recorded it (per node on Polaris, times the nodes its records
    show); an older run without it: the worker slots its records name (never fewer than
    really ran at once, so the floors stay fair).
    """
    params = results.get("parameters") or {}
    claimed = results.get("workers", params.get("workers"))
    slots = _worker_slots(sims)
    if isinstance(claimed, int) and not isinstance(claimed, bool) and claimed >= 1:
        nodes = 1
        if str(params.get("config", "")).startswith("polaris") and "manager" in sims:
            nodes = max(1, sims["manager"].dropna().nunique())
        return claimed * nodes, ""
    if slots:
        return slots, f"; workers not recorded (older run): {slots} worker slot(s) in its records"
    return None, "; workers not recorded (older run) and no worker in its records: time not checked"


def _worker_slots(sims: pd.DataFrame) -> int:
    if not {"manager", "worker"} <= set(sims.columns):
        return 0
    rows = sims[["manager", "worker"]].dropna()
    return int(len(rows.drop_duplicates()))


def check_time(results: Mapping[str, Any], sims: pd.DataFrame, best_index: int,
               time_to_best: float, total_time: float,
               table_seconds: Mapping[str, float] | None) -> TimeCheck:
    """Raise :class:`ImplausibleTime` if the claimed times are below what the run needed.

    ``sims``: the run's records in file order (lost attempts included, they are skipped);
    ``best_index``: position of the best molecule's row in ``sims``.
    """
    workers, note = run_workers(results, sims)
    machine = machine_text(results)
    done = sims["status"] != "lost"
    if workers is None:
        return TimeCheck(None, machine, None, None, note)
    upto = done & (sims.index <= best_index)
    where = f"on {workers} worker(s), machine: {machine}"

    table_floor_best = records_floor_best = None
    if table_seconds:
        seconds = sims["smiles"].map(table_seconds)
        known = seconds.notna() & done
        table_floor = float(seconds[known].sum()) / (workers * MAX_SPEEDUP)
        table_floor_best = float(seconds[known & upto].sum()) / (workers * MAX_SPEEDUP)
        if known.sum() < done.sum():
            note += f"; {int(done.sum() - known.sum())} molecule(s) not in the table, not counted"
        for what, claimed, floor, n in (("time to best", time_to_best, table_floor_best,
                                         int((known & upto).sum())),
                                        ("total time", total_time, table_floor, int(known.sum()))):
            if claimed < floor:
                raise ImplausibleTime(
                    f"implausible {what}: {claimed:.1f} s claimed {where}, but its {n} "
                    f"simulations took {floor * workers * MAX_SPEEDUP:.1f} s in the ground-truth "
                    f"table: at least {floor:.1f} s even {MAX_SPEEDUP:g}x faster")

    durations = _durations(sims)
    if durations.notna().any():
        records_floor = float(durations[done].sum()) / workers
        records_floor_best = float(durations[upto].sum()) / workers
        for what, claimed, floor in (("time to best", time_to_best, records_floor_best),
                                     ("total time", total_time, records_floor)):
            if claimed < floor - CLOCK_SLACK_S:
                raise ImplausibleTime(
                    f"implausible {what}: {claimed:.1f} s claimed {where}, but simulations.csv's "
                    f"own start/end times add up to {floor * workers:.1f} s of simulation: at "
                    f"least {floor:.1f} s")
        _check_clock_rate(sims[done], durations[done])
    else:
        note += "; no start/end times in its records"
    return TimeCheck(workers, machine, table_floor_best, records_floor_best, note)


def _durations(sims: pd.DataFrame) -> pd.Series:
    if not {"start_time", "end_time"} <= set(sims.columns):
        return pd.Series(math.nan, index=sims.index)
    start = pd.to_numeric(sims["start_time"], errors="coerce")
    end = pd.to_numeric(sims["end_time"], errors="coerce")
    span = end - start
    return span.where(span >= 0)


def _check_clock_rate(sims: pd.DataFrame, durations: pd.Series) -> None:
    """While some simulation was running the run cannot have been paused, so its clock
    (``elapsed_s``) advanced as far as the workers' timestamps did (a resumed run's clock
    skips only the pause, when nothing ran)."""
    rows = pd.DataFrame({"start": pd.to_numeric(sims["start_time"], errors="coerce"),
                         "end": pd.to_numeric(sims["end_time"], errors="coerce"),
                         "elapsed": pd.to_numeric(sims["elapsed_s"], errors="coerce")})
    rows = rows[durations.notna() & rows["elapsed"].notna()].sort_values("start", kind="stable")
    if len(rows) < 2:
        return
    # Busy stretches: the union of the [start, end] intervals, split wherever nothing ran.
    stretch = (rows["start"] > rows["end"].cummax().shift(fill_value=-math.inf)).cumsum()
    real = claimed = 0.0
    for _, part in rows.groupby(stretch):
        by_end = part.sort_values("end", kind="stable")
        real += float(by_end["end"].iloc[-1] - by_end["end"].iloc[0])
        claimed += float(by_end["elapsed"].iloc[-1] - by_end["elapsed"].iloc[0])
    if real > 0 and claimed < MIN_CLOCK_RATE * real - CLOCK_SLACK_S:
        raise ImplausibleTime(
            f"simulations.csv disagrees with itself: while simulations ran, its elapsed_s clock "
            f"advanced {claimed:.1f} s where their start/end times advanced {real:.1f} s "
            f"({claimed / real:.2f}x); times were edited after the run")


def check_submissions_after_models(sims: pd.DataFrame, plan: pd.DataFrame,
                                   lineage: pd.DataFrame) -> None:
    """A molecule a model picked was submitted after that model was saved: lineage.csv dates
    each version (wall clock, to the millisecond; older kits: whole seconds), batches.csv names
    the version that picked each molecule, simulations.csv says when it was submitted. A clock
    rescaled in one file only puts submissions before the models that chose them."""
    if plan.empty or "submit_time" not in sims.columns:
        return
    saved = {}
    dated = lineage if {"version", "time"} <= set(lineage.columns) else pd.DataFrame(
        columns=["version", "time"])
    for version, when in zip(dated["version"], dated["time"], strict=True):
        stamp = pd.to_datetime(when, errors="coerce", utc=True)
        number = pd.to_numeric(version, errors="coerce")
        if pd.notna(stamp) and pd.notna(number):
            saved[int(number)] = stamp.timestamp()
    picked = {}
    for smiles, version in zip(plan["smiles"], pd.to_numeric(plan["model_version"], errors="coerce"),
                               strict=True):
        if pd.notna(version) and int(version) not in saved:
            raise ImplausibleTime(f"batches.csv names model version {int(version)}, which "
                                  "lineage.csv does not date: the files disagree")
        if pd.notna(version):
            picked.setdefault(str(smiles), int(version))
    rows = sims[(sims["status"] != "lost") & sims["smiles"].isin(picked)]
    worst = None
    for smiles, submitted in zip(rows["smiles"], pd.to_numeric(rows["submit_time"], errors="coerce"),
                                 strict=True):
        version = picked[smiles]
        early = saved[version] - submitted
        if pd.notna(submitted) and early > CLOCK_SLACK_S and (worst is None or early > worst[0]):
            worst = (early, smiles, version, submitted)
    if worst is not None:
        early, smiles, version, submitted = worst
        raise ImplausibleTime(
            f"simulations.csv says {smiles} was submitted at {_clock(submitted)}, {early:.1f} s "
            f"before model version {version} that picked it was saved ({_clock(saved[version])} "
            "in lineage.csv); times were edited after the run")


def _clock(epoch: float) -> str:
    return pd.Timestamp(epoch, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")
