"""The ground-truth table: every molecule of a search space simulated once, with the kit's protocol.

A table of true values lets any campaign be measured against the real optimum and replayed in
milliseconds. Building it for QM9 costs 15-25 core-hours, so the builder is resumable: each
result is appended to a plain CSV the moment it finishes, a restarted build skips what is done,
and shards (``--shard 2/8``) split the work across jobs. ``pack_ground_truth`` merges finished
parts into the compressed table shipped inside the package, with its provenance beside it.

Molecules are built in a fixed seeded random order, so a partial table is an unbiased sample of
the space. Anything that uses a partial table states its coverage and never guesses a value.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import platform
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from course_utils.records import acquire_run_lock, repair_tail

if TYPE_CHECKING:
    import pandas as pd

TRUTH_COLUMNS = ["smiles", "ie", "status", "error", "seconds", "engine"]
#: A molecule with one of these statuses is settled: a rebuild does not simulate it again.
FINAL_STATUSES = ("ok", "failed", "timeout")
#: Status of a molecule whose worker died twice: infrastructure, so a resumed build retries it.
LOST = "lost"
BUILD_ORDER_SEED = 20241
TRUTH_WALLTIME = 120.0  # s; a typical molecule takes 0.4-0.7 s, the slowest seen ~3 s
_DATA = "data"


def packaged_table_name(space: str) -> str:
    # a user space is a path: joined whole, an absolute one would escape the destination folder
    return f"{Path(space).name}_ground_truth.csv.gz"


def packaged_provenance_name(space: str) -> str:
    return f"{Path(space).name}_ground_truth.provenance.json"


def _data_dir() -> Path:
    return Path(str(resources.files("course_utils").joinpath(_DATA)))


def default_build_file(space: str = "qm9") -> Path:
    """Where a build appends its results unless told otherwise (not inside the package)."""
    return Path("outputs") / "ground_truth" / f"{space}.csv"


class GroundTruthError(ValueError):
    """A ground-truth table is missing, unreadable, or lacks a molecule that was asked for."""


# --------------------------------------------------------------------------- reading


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A ground-truth CSV (plain or gzip) with the right dtypes; later rows win for a molecule."""
    import pandas as pd

    path = Path(path)
    source = _complete_rows(path) if path.exists() else None
    if source is None:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("ie", "seconds") else str)
                             for c in TRUTH_COLUMNS})
    try:
        df = pd.read_csv(source, dtype={"smiles": str, "status": str, "error": str, "engine": str},
                         keep_default_na=False, na_values={"ie": [""], "seconds": [""]})
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as err:
        raise GroundTruthError(f"cannot read ground-truth table {path}: {err}") from None
    missing = [c for c in TRUTH_COLUMNS if c not in df.columns]
    if missing:
        raise GroundTruthError(f"{path} is not a ground-truth table: missing columns {missing}")
    df = df[TRUTH_COLUMNS].drop_duplicates("smiles", keep="last")
    df["ie"] = pd.to_numeric(df["ie"], errors="coerce")
    df["seconds"] = pd.to_numeric(df["seconds"], errors="coerce")
    return df.reset_index(drop=True)


def _complete_rows(path: Path) -> Path | io.BytesIO | None:
    """The file without a torn last row (a writer killed mid-row: no result, perhaps no valid CSV);
    None if not even the header is complete. The file is left alone: its writer may be running."""
    if path.suffix == ".gz":
        return path
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return path
    cut = data.rfind(b"\n") + 1
    return io.BytesIO(data[:cut]) if cut else None


def packaged_table_path(space: str = "qm9") -> Path:
    return _data_dir() / packaged_table_name(space)


def load_ground_truth(space: str = "qm9") -> pd.DataFrame:
    """The shipped table of ``space``: ``smiles``, ``ie`` (eV, NaN where the simulation failed),
    ``status``, ``error``, ``seconds``, ``engine``; one row per molecule simulated so far.

    ``df.attrs["coverage"]`` is a :class:`Coverage`: while the table is being built it covers
    only part of the space, and every number derived from it must say so.
    """
    path = packaged_table_path(space)
    if not path.exists():
        raise GroundTruthError(
            f"no ground-truth table is shipped for {space!r} (looked for {path.name}); "
            "build one with `python -m course_utils truth build`"
        )
    df = read_answerable(path)
    df.attrs["coverage"] = Coverage(len(df), _space_size(space), space)
    return df


def read_answerable(path: str | os.PathLike) -> pd.DataFrame:
    """The rows of a table file that can answer a replay (``lost`` ones dropped), parsed once
    per process and file version: replays and evaluations of a grid ask for it again and again."""
    path = Path(path)
    stat = path.stat() if path.exists() else None
    version = (stat.st_mtime_ns, stat.st_size) if stat else None
    return _read_answerable(str(path), version).copy()


@functools.lru_cache(maxsize=4)
def _read_answerable(path: str, version: tuple[int, int] | None) -> pd.DataFrame:
    df = read_table(path)
    return df[df["status"] != LOST].reset_index(drop=True)


@dataclass(frozen=True)
class Coverage:
    covered: int
    total: int
    space: str = "qm9"

    @property
    def complete(self) -> bool:
        return self.covered >= self.total

    @property
    def fraction(self) -> float:
        return self.covered / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"ground truth covers {self.covered:,} of {self.total:,} molecules"


def _space_size(space: str) -> int:
    from course_utils.search_space import QM9_SIZE, load_search_space

    return QM9_SIZE if space == "qm9" else len(load_search_space(space))


# --------------------------------------------------------------------------- building


def truth_record(smiles: str, engine: str | None = None, walltime: float | None = TRUTH_WALLTIME
                 ) -> dict[str, Any]:
    """One row of the table: the IE or the chemistry failure, its compute time and engine.

    ``walltime`` is consumed by Parsl (it stops a hung simulation); it is unused here.
    """
    from course_utils.chemistry import ChemistryError, compute_vertical, resolve_engine

    name = resolve_engine(engine)
    start = time.perf_counter()
    try:
        ie, status, error = compute_vertical(smiles, engine=name), "ok", ""
    except ChemistryError as err:
        ie, status, error = math.nan, "failed", err.record_text
    return {"smiles": smiles, "ie": ie, "status": status, "error": error,
            "seconds": time.perf_counter() - start, "engine": name}


_DERIVED: dict[tuple, Any] = {}


def derived(table: pd.DataFrame, name: str, build: Callable[[pd.DataFrame], Any]) -> Any:
    """``build(table)``, computed once per table *content*: replays and evaluations of many
    campaigns in one process get copies of the same table, and rebuilding lookups from its
    rows each time costs more than a replay itself. A hash of the rows (a few ms) keys it."""
    key = (name, _content_key(table))
    if key not in _DERIVED:
        if len(_DERIVED) >= 32:
            _DERIVED.clear()
        _DERIVED[key] = build(table)
    return _DERIVED[key]


def _content_key(table: pd.DataFrame) -> tuple:
    """A per-process fingerprint of a table's content, one hash per column.

    Python's str hashes are cached on the string objects, so hashing the columns again (every
    replayed campaign does) costs a few ms where pandas' content hash of all of QM9 took 0.1 s.
    """
    parts: list = [len(table), tuple(table.columns)]
    for column in table.columns:
        values = table[column].to_numpy()
        parts.append(hash(tuple(values)) if values.dtype == object else hash(values.tobytes()))
    return tuple(parts)


def truth_of_space(table: pd.DataFrame, search_space: str) -> pd.DataFrame:
    """The part of a shipped table that a run on ``search_space`` is measured against: for
    ``truth:qm9:N`` its N molecules (which the table covers completely), else the table."""
    if str(search_space).count(":") != 2:
        return table
    from course_utils.search_space import load_search_space

    space = load_search_space(str(search_space))["smiles"]
    subset = table[table["smiles"].isin(set(space))].reset_index(drop=True)
    subset.attrs["coverage"] = Coverage(len(subset), len(space), str(search_space))
    return subset


def table_name(search_space: str) -> str:
    """The shipped table a search space is answered and measured from: ``qm9`` for ``qm9``,
    ``truth:qm9`` and ``truth:qm9:N`` (anything else is returned as it is)."""
    return str(search_space).removeprefix("truth:").partition(":")[0]


def build_order(smiles: list[str], shard: tuple[int, int] = (1, 1)) -> list[str]:
    """The fixed seeded order of the build, restricted to shard ``i`` of ``n`` (1-based)."""
    import numpy as np

    index, count = shard
    if not (1 <= index <= count):
        raise ValueError(f"shard must be i/n with 1 <= i <= n, got {index}/{count}")
    order = np.random.default_rng(BUILD_ORDER_SEED).permutation(len(smiles))
    return [smiles[i] for i in order[index - 1::count].tolist()]


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
    from course_utils.resilience import is_timeout

    status = "timeout" if is_timeout(err) else LOST  # the campaign's classification, too
    return {"smiles": smiles, "ie": math.nan, "status": status,
            "error": f"{type(err).__name__}: {err}",
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
    from course_utils.chemistry import resolve_engine

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

    from course_utils.apps import truth_record_app
    from course_utils.search_space import load_search_space

    smiles = load_search_space(space)["smiles"].tolist()
    note = repair_tail(build_file, TRUTH_COLUMNS)  # before reading: a torn row is not a result
    if note:
        print(note, file=sys.stderr)
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
    log_entry = {"started": _now(), "host": socket.gethostname(), "engine": name,
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
        log_entry.update(finished=_now(), computed=report.computed,
                         compute_seconds=round(report.compute_seconds, 1),
                         wall_seconds=round(report.wall_seconds, 1),
                         statuses=dict(report.statuses), interrupted=report.interrupted,
                         versions=_versions(name))
        with open(_build_log(build_file), "a") as fh:
            fh.write(json.dumps(log_entry) + "\n")
    return report


def _parsl_loaded(config: str, options: dict[str, Any]) -> AbstractContextManager[Any]:
    """Load ``config`` for this build, or use the DataFlowKernel already loaded (a notebook's, a
    test session's) as it is: Parsl runs one at a time, and the build must not shut it down."""
    import parsl
    from parsl.errors import NoDataFlowKernelError

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


def _build_log(build_file: Path) -> Path:
    return build_file.with_name(build_file.name + ".builds.jsonl")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _versions(engine: str) -> dict[str, str]:
    """Python, the packages and the engine of a build (the same reader as a campaign's)."""
    from course_utils.records import environment_info

    info = environment_info(engine)
    return {"python": info["python"], **info["packages"], "engine": engine}


# --------------------------------------------------------------------------- packing and status


def pack_ground_truth(space: str = "qm9", build_files: Iterable[str | os.PathLike] = (),
                      dest_dir: str | os.PathLike | None = None) -> Path:
    """Merge build files into the shipped table (search-space order) and update its provenance.

    Settled rows win over ``lost`` ones; the shipped table keeps what earlier packs held.
    """
    import pandas as pd

    from course_utils.search_space import load_search_space

    dest = Path(dest_dir) if dest_dir is not None else _data_dir()
    table = dest / packaged_table_name(space)
    frames = [read_table(table)] + [read_table(Path(f)) for f in build_files]
    merged = pd.concat(frames, ignore_index=True)
    merged["_settled"] = merged["status"].isin(FINAL_STATUSES)
    merged = merged.sort_values("_settled", kind="stable").drop_duplicates("smiles", keep="last")
    merged = merged[merged["_settled"]].drop(columns="_settled")
    position = {s: i for i, s in enumerate(load_search_space(space)["smiles"])}
    unknown = [s for s in merged["smiles"] if s not in position]
    if unknown:
        raise GroundTruthError(f"{len(unknown)} molecules are not in {space!r}, e.g. {unknown[0]}")
    merged = merged.assign(_pos=merged["smiles"].map(position)).sort_values("_pos")
    merged = merged.drop(columns="_pos")
    tmp = table.with_suffix(".tmp")
    merged.to_csv(tmp, index=False, float_format="%.6f", compression={"method": "gzip", "mtime": 0})
    os.replace(tmp, table)
    _write_provenance(space, dest, merged, build_files)
    return table


def _write_provenance(space: str, dest: Path, table: pd.DataFrame,
                      build_files: Iterable[str | os.PathLike]) -> None:
    from course_utils import chemistry

    path = dest / packaged_provenance_name(space)
    old = json.loads(path.read_text()) if path.exists() else {}
    builds = old.get("builds", [])
    seen = {json.dumps(b, sort_keys=True) for b in builds}
    for f in build_files:
        log = _build_log(Path(f))
        if log.exists():
            for line in log.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                key = json.dumps(entry, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    builds.append(entry)
    total = _space_size(space)
    failures = table.loc[table["status"] != "ok"]
    provenance = {
        "table": packaged_table_name(space),
        "search_space": space,
        "molecules": total,
        "covered": int(len(table)),
        "complete": bool(len(table) >= total),
        "protocol": (
            "GFN2-xTB vertical ionization energy in eV: RDKit ETKDG embedding (randomSeed="
            f"{chemistry.EMBED_SEED}, retries with other seeds and random coordinates), MMFF "
            f"pre-optimization, GFN2-xTB relaxation of the neutral (accuracy {chemistry.ACCURACY}, "
            f"LBFGSLineSearch, fmax {chemistry.FMAX} eV/A, <= {chemistry.MAX_STEPS} steps), "
            "single point of the cation (+1, doublet); IE = E(cation) - E(neutral). "
            "One thread per simulation. course_utils.chemistry.compute_vertical."
        ),
        "build_order": f"seeded permutation (numpy default_rng({BUILD_ORDER_SEED})) of the space",
        "engines": dict(Counter(table["engine"])),
        "statuses": dict(Counter(table["status"])),
        "failures_by_error": dict(Counter(e.split(":")[0] for e in failures["error"])),
        "compute_core_hours": round(float(table["seconds"].sum()) / 3600, 2),
        "mean_seconds_per_molecule": round(float(table["seconds"].mean()), 3) if len(table) else None,
        "builds": builds,
        "machine_of_last_pack": {"host": socket.gethostname(), "platform": platform.platform(),
                                 "cpus": os.cpu_count()},
        "packed": _now(),
    }
    path.write_text(json.dumps(provenance, indent=1) + "\n")


def truth_status(space: str = "qm9", build_file: str | os.PathLike | None = None,
                 workers: int | None = None) -> str:
    """Coverage, failures by type and the compute still to do, as lines of text."""
    import pandas as pd

    build = Path(build_file) if build_file is not None else default_build_file(space)
    frames = [read_table(build)]
    if packaged_table_path(space).exists():
        frames.insert(0, read_table(packaged_table_path(space)))
    table = pd.concat(frames, ignore_index=True).drop_duplicates("smiles", keep="last")
    settled = table[table["status"].isin(FINAL_STATUSES)]
    total = _space_size(space)
    lines = [str(Coverage(len(settled), total, space)) + f" ({len(settled) / total:.1%})",
             f"  shipped table: {packaged_table_path(space)}"
             + ("" if packaged_table_path(space).exists() else " (none yet)"),
             f"  build file:    {build}" + ("" if build.exists() else " (none yet)")]
    counts = Counter(table["status"])
    lines.append("  statuses: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    failed = table[table["status"] != "ok"]
    if len(failed):
        kinds = Counter(e.split(":")[0] or "(no message)" for e in failed["error"])
        lines.append("  failures by type: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    mean = float(settled["seconds"].mean()) if len(settled) else 0.5
    remaining = max(total - len(settled), 0)
    core_hours = remaining * mean / 3600
    n = workers or os.cpu_count() or 1
    lines.append(f"  remaining: {remaining:,} molecules, about {core_hours:.1f} core-hours "
                 f"({mean:.2f} s each), {core_hours / n:.1f} h on {n} workers")
    return "\n".join(lines)
