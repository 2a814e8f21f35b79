"""Building a ground-truth table: simulate every molecule of a space once, through Parsl.

It costs 15-25 core-hours for QM9, so the build is resumable: each result is appended to a
plain CSV the moment it finishes, a restarted build skips what is settled (in the build file or
the shipped table), and shards (``--shard 2/8``) split the work across jobs. Stopping it (Ctrl-C,
SIGTERM, a job's end) loses at most the molecules in flight.
"""

from __future__ import annotations

import csv
import math
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from course_utils.chemistry import resolve_engine
from course_utils.ground_truth.table import (
    FINAL_STATUSES,
    LOST,
    TRUTH_COLUMNS,
    TRUTH_ROW_RULES,
    build_order,
    default_build_file,
    packaged_table_path,
    read_table,
)
from course_utils.records.jsonfiles import dumps_json
from course_utils.records.ledger import repair_tail, set_aside
from course_utils.records.lock import acquire_run_lock
from course_utils.records.rows import possible_ie
from course_utils.records.summary import environment_info
from course_utils.resilience import is_timeout, one_line
from course_utils.search_space import load_search_space

TRUTH_WALLTIME = 120.0  # s; a typical molecule takes 0.4-0.7 s, the slowest seen ~3 s


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return (1, 1)
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like 2/8 (part 2 of 8), got {text!r}") from None
    build_order([], (index, count))  # validates
    return index, count


def settled_smiles(space: str, build_file: Path) -> set[str]:
    """Molecules already in the shipped table or the build file (with a final status)."""
    done: set[str] = set()
    frames = [read_table(build_file)]
    if packaged_table_path(space).exists():
        frames.append(read_table(packaged_table_path(space)))
    for df in frames:
        done.update(df.loc[df["status"].isin(FINAL_STATUSES), "smiles"])
    return done


class _Appender:
    """Appends rows to the build CSV, flushed at once and fsynced every few seconds."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        note = repair_tail(path, TRUTH_COLUMNS)
        if note:
            print(note, file=sys.stderr)
        new = not path.exists() or path.stat().st_size == 0
        self._fh = open(path, "a", newline="")  # noqa: SIM115 - closed in close()
        self._writer = csv.DictWriter(self._fh, fieldnames=TRUTH_COLUMNS, extrasaction="ignore")
        if new:
            self._writer.writeheader()
        self._synced = time.monotonic()

    def write(self, row: dict[str, Any]) -> None:
        row = dict(row)
        row["ie"] = "" if row["ie"] is None or math.isnan(row["ie"]) else f"{row['ie']:.6f}"
        row["seconds"] = f"{row['seconds']:.3f}" if row.get("seconds") is not None else ""
        self._writer.writerow(row)
        self._fh.flush()
        if time.monotonic() - self._synced > 5:
            os.fsync(self._fh.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


@dataclass
class BuildReport:
    build_file: Path
    todo: int
    computed: int = 0
    statuses: Counter = field(default_factory=Counter)
    compute_seconds: float = 0.0
    wall_seconds: float = 0.0
    interrupted: bool = False


def _failure_row(smiles: str, err: BaseException, engine: str) -> dict[str, Any]:
    """A task that raised instead of returning: a hang (walltime) or a worker that died."""
    status = "timeout" if is_timeout(err) else LOST  # the campaign's classification, too
    return {"smiles": smiles, "ie": math.nan, "status": status,
            "error": one_line(err, 500),  # as the campaign records the same failure
            "seconds": math.nan, "engine": engine}


def build_ground_truth(
    space: str = "qm9",
    *,
    out: str | os.PathLike | None = None,
    config: str = "local",
    workers: int | None = None,
    shard: tuple[int, int] = (1, 1),
    limit: int | None = None,
    engine: str | None = None,
    walltime: float = TRUTH_WALLTIME,
    progress: bool = True,
    config_options: dict[str, Any] | None = None,
) -> BuildReport:
    """Simulate every not-yet-settled molecule of ``space`` through Parsl, appending each result.

    Stopping (Ctrl-C, SIGTERM, a job's walltime) loses at most the molecules in flight; run it
    again to continue. ``limit`` caps how many molecules this call simulates.
    """
    build_file = Path(out) if out is not None else default_build_file(space)
    name = resolve_engine(engine)
    # One builder per file: a second one would simulate the same molecules at the same time.
    lock = acquire_run_lock(build_file.parent, lock_name=f".{build_file.name}.lock")
    try:
        with _stops_as_interrupts():
            return _build(space, build_file, name, config=config, workers=workers, shard=shard,
                          limit=limit, walltime=walltime, progress=progress,
                          config_options=config_options)
    finally:
        lock.release()


def lower_priority() -> None:
    """Let tests and notebooks beside a long build run at full speed.

    ``nice`` alone is not enough on Linux with autogroup scheduling: CPU is shared between
    sessions first, so a niced build started in its own session (``setsid``, as a background
    job should be) still takes half of a 2-core machine from a terminal's tests. Lowering the
    session's group too makes the build take only what the others leave. The workers Parsl
    starts inherit both.
    """
    os.nice(19 - os.nice(0))
    autogroup = Path("/proc/self/autogroup")
    if autogroup.exists():
        try:
            autogroup.write_text("19")
        except OSError:  # not permitted here: plain nice is the best we can do
            pass


@contextmanager
def _stops_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP (a job's end, a closed terminal) stop a build like Ctrl-C: what
    finished is written, then it ends. SIGINT works even when the build was started in the
    background by a non-interactive shell, which starts it with SIGINT ignored."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    saved = {sig: signal.signal(sig, interrupt)
             for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _build(space: str, build_file: Path, name: str, *, config: str, workers: int | None,
           shard: tuple[int, int], limit: int | None, walltime: float, progress: bool,
           config_options: dict[str, Any] | None) -> BuildReport:
    from concurrent.futures import FIRST_COMPLETED, wait

    # deferred: apps imports Parsl (+0.35 s, measured); a status or shard check needs none
    from course_utils.apps import truth_record_app

    smiles = load_search_space(space)["smiles"].tolist()
    # before reading, holding the file's lock: a torn row is not a result, a garbage row none
    for note in (repair_tail(build_file, TRUTH_COLUMNS), set_aside(build_file, TRUTH_ROW_RULES)):
        if note:
            print(f"note: {note}", file=sys.stderr)
    done = settled_smiles(space, build_file)
    todo = [s for s in build_order(smiles, shard) if s not in done]
    if limit is not None:
        todo = todo[:limit]
    report = BuildReport(build_file=build_file, todo=len(todo))
    if not todo:
        return report
    options = dict(config_options or {})
    options.setdefault("workers", workers)
    options.setdefault("run_dir", str(build_file.parent / "runinfo"))
    options.setdefault("retries", 1)  # a worker that died: once more on a healthy one
    n_slots = max(4 * (workers or os.cpu_count() or 1), 8)
    bar = _progress(len(todo), progress)
    appender = _Appender(build_file)
    started = time.monotonic()
    log_entry = {"started": utc_now(), "host": socket.gethostname(), "engine": name,
                 "shard": f"{shard[0]}/{shard[1]}", "config": config}
    try:
        with _parsl_loaded(config, options):
            queue: Iterator[str] = iter(todo)
            pending: dict[Any, str] = {}

            def top_up() -> None:
                while len(pending) < n_slots:
                    smi = next(queue, None)
                    if smi is None:
                        return
                    pending[truth_record_app(smi, engine=name, walltime=walltime)] = smi

            top_up()
            while pending:
                finished, _ = wait(list(pending), timeout=walltime * 3, return_when=FIRST_COMPLETED)
                for fut in finished:
                    smi = pending.pop(fut)
                    try:
                        row = fut.result()
                    except Exception as err:  # noqa: BLE001 - hang or dead worker: keep going
                        row = _failure_row(smi, err, name)
                    row = possible_ie(row)  # an impossible IE is a failure, never a table value
                    appender.write(row)
                    report.computed += 1
                    report.statuses[row["status"]] += 1
                    if isinstance(row["seconds"], float) and not math.isnan(row["seconds"]):
                        report.compute_seconds += row["seconds"]
                    bar.update(1)
                top_up()
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        appender.close()
        bar.close()
        report.wall_seconds = time.monotonic() - started
        log_entry.update(finished=utc_now(), computed=report.computed,
                         compute_seconds=round(report.compute_seconds, 1),
                         wall_seconds=round(report.wall_seconds, 1),
                         statuses=dict(report.statuses), interrupted=report.interrupted,
                         versions=_versions(name))
        with open(build_log_path(build_file), "a") as fh:
            fh.write(dumps_json(log_entry) + "\n")
    return report


def _parsl_loaded(config: str, options: dict[str, Any]) -> AbstractContextManager[Any]:
    """Load ``config`` for this build, or use the DataFlowKernel already loaded (a notebook's, a
    test session's) as it is: Parsl runs one at a time, and the build must not shut it down."""
    import parsl
    from parsl.errors import NoDataFlowKernelError

    # deferred: configs imports Parsl (+0.35 s, measured)
    from course_utils.configs import make_config

    try:
        parsl.dfk()
    except NoDataFlowKernelError:
        return parsl.load(make_config(config, **options))
    return nullcontext()


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(total=total, disable=not enabled, unit="mol", desc="ground truth",
                mininterval=0.5 if interactive else 60, file=sys.stderr)


def build_log_path(build_file: Path) -> Path:
    """One JSON line per build beside its file: packing gathers them into the provenance."""
    return build_file.with_name(build_file.name + ".builds.jsonl")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _versions(engine: str) -> dict[str, str]:
    """Python, the packages and the engine of a build (the same reader as a campaign's)."""
    info = environment_info(engine)
    return {"python": info["python"], **info["packages"], "engine": engine}
