"""What a campaign leaves behind: simulation and iteration records, and its results file.

Rows are appended and flushed the moment a result arrives, so a killed run loses nothing and a
re-run with the same output folder can resume without recomputing finished simulations.

Files in an output folder:
  simulations.csv  one row per simulation attempt (SMILES, IE in eV, status, error, batch, times)
  iterations.csv   one row per model generation (training size, timings, model error)
  parameters.json  the parameters the folder was started with (checked when resuming)
  results.json     parameters, environment, totals, best *simulated* molecule (rewritten as it goes)
  .run.lock        held by the run writing into the folder: host, PID, start time

A writer killed mid-row leaves a torn last line; :meth:`CampaignRecorder.open` cuts it off (it
was never a finished result) before anything is appended, so one crash cannot corrupt the file.
A row that does not parse (see :func:`row_problem`, the one check every reader uses) is moved to
``NAME.rejected.csv`` beside its file with a note: it is never counted, and never blocks a resume.
Temporary files of an atomic save a kill interrupted (``*.tmp``) are removed on resume.
Every JSON file is written by :func:`dumps_json`: ``null``, never ``NaN`` or ``Infinity``.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import functools
import io
import json
import math
import os
import platform
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course_utils.resilience import error_message
from course_utils.search_space import identify_smiles, quiet_rdkit

SIMULATION_FIELDS = [
    "smiles", "ie", "status", "error", "batch", "submit_time", "start_time", "end_time",
    "elapsed_s", "host", "manager", "worker", "pid", "wave",
]
ITERATION_FIELDS = [
    "iteration", "training_size", "n_new", "best_ie", "model_time_s", "select_time_s",
    "simulate_time_s", "mae_ev", "mape_pct", "elapsed_s", "model_version", "valid_mae_ev",
    "valid_r2", "r2", "within_1sd", "within_2sd",  # added later: new columns go at the end
    "heldout_mae_ev",
]
SIMULATIONS_FILE = "simulations.csv"
ITERATIONS_FILE = "iterations.csv"
PARAMETERS_FILE = "parameters.json"
RESULTS_FILE = "results.json"
PLOT_FILE = "ml_in_the_loop.png"
LOCK_FILE = ".run.lock"

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_TIMEOUT = "timeout"
STATUS_LOST = "lost"  # the worker died or the task could not run


class ResumeMismatchError(ValueError):
    """The output folder holds a run whose parameters do not match this one."""


class FolderInUseError(ValueError):
    """Another live run writes into this output folder; two writers would interleave records."""


# --- one writer per folder -----------------------------------------------------------------
#: Locks this process holds, by lock-file path: a notebook re-running a cell takes its own over.
_HELD: dict[Path, RunLock] = {}


@dataclass(eq=False)
class RunLock:
    """The right to write into an output folder, held until :meth:`release` or process exit.

    ``fcntl.flock`` is released by the kernel when the holder dies, so a crashed run never
    blocks the folder; the holder's host, PID and start time are written into the file only
    to name it in the error a second run gets.
    """

    path: Path
    fd: int | None
    holder: dict[str, Any]
    flocked: bool = True

    @property
    def held(self) -> bool:
        return self.fd is not None and _HELD.get(self.path) is self

    def release(self) -> None:
        """Give the folder back (idempotent; a lock taken over in this process is left alone)."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if _HELD.get(self.path) is self:
                del _HELD[self.path]
                os.ftruncate(fd, 0)  # an empty file tells the next run nobody left it behind
        finally:
            os.close(fd)  # closing the last descriptor drops the flock


def _close_held_in_child() -> None:
    """A forked child (e.g. a Parsl process) must not keep the folder locked after its parent dies."""
    for lock in _HELD.values():
        if lock.fd is not None:
            try:
                os.close(lock.fd)  # close, never LOCK_UN: that would unlock the parent too
            except OSError:
                pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace")
        holder = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: Mapping[str, Any]) -> str:
    return (f"host {holder.get('host', '?')}, PID {holder.get('pid', '?')}, "
            f"started {holder.get('started', '?')}")


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, run by someone else
    except (TypeError, ValueError, OverflowError, OSError):
        return False
    return True


def acquire_run_lock(out_dir: str | os.PathLike, lock_name: str = LOCK_FILE) -> RunLock:
    """Make this process the only writer of ``out_dir`` (created if needed), or fail at once.

    ``lock_name`` locks one file's writers instead of the folder's (a ground-truth build file).

    Raises :class:`FolderInUseError` naming the live run that holds the folder. A lock file
    left by a dead run is taken over with a note on stderr; calling this again in the same
    process (a notebook cell run twice) hands the lock to the new caller.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / lock_name).resolve()
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.now().astimezone().isoformat(timespec="seconds")}
    previous = _HELD.get(path)
    if previous is not None and previous.fd is not None:
        lock = RunLock(path, previous.fd, me, previous.flocked)
        previous.fd = None  # the old handle's release() must not drop the new owner's lock
        _HELD[path] = lock
        _write_holder(lock.fd, me)
        return lock
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flocked = _flock(fd, folder)
        holder = _read_holder(fd)
        same_process = holder.get("host") == me["host"] and holder.get("pid") == me["pid"]
        if not flocked and holder and not same_process:
            if holder.get("host") != me["host"]:
                raise FolderInUseError(
                    f"{folder} may be in use by another run ({_describe(holder)}) and this "
                    f"filesystem cannot lock files; if that run is over, delete {path}")
            if _pid_alive(holder.get("pid")):
                raise FolderInUseError(_in_use(folder, holder))
        if holder and not same_process:
            print(f"note: {folder}: took over the lock of a run that is no longer running "
                  f"({_describe(holder)})", file=sys.stderr)
        _write_holder(fd, me)
    except BaseException:
        os.close(fd)
        raise
    lock = RunLock(path, fd, me, flocked)
    _HELD[path] = lock
    return lock


def _in_use(folder: Path, holder: Mapping[str, Any]) -> str:
    return (f"{folder} is in use by another run ({_describe(holder)}); wait for it to finish "
            "or use another --out folder")


def _flock(fd: int, folder: Path) -> bool:
    """True once the flock is held; False if the filesystem cannot lock (caller checks the PID)
    or this very process already holds it through another descriptor."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            holder = _read_holder(fd)
            if holder.get("host") == socket.gethostname() and holder.get("pid") == os.getpid():
                return False  # this process holds it through a lost handle (a reloaded module)
            raise FolderInUseError(_in_use(folder, holder)) from None
        return False
    return True


def _write_holder(fd: int, holder: Mapping[str, Any]) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (dumps_json(dict(holder)) + "\n").encode())
    os.fsync(fd)


# --- crash-safe CSV records ----------------------------------------------------------------
def repair_tail(path: Path, columns: list[str]) -> str | None:
    """Drop a torn last line of a CSV that a killed writer left behind; say what was done.

    A writer killed mid-row leaves a line without its newline. Appending after it would glue
    the next row onto it and corrupt the file for good, so it is cut off here (it was never
    a finished result). A file cut inside its header gets the full header back.
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return None
        cut = data.rfind(b"\n") + 1
        fh.seek(cut)
        fh.truncate()
        if cut == 0:
            fh.write((",".join(columns) + "\n").encode())
            return f"{path}: the header was cut off; rewrote it"
    return f"{path}: dropped a torn last line left by an interrupted writer (nothing finished is lost)"


def add_new_columns(path: Path, columns: list[str]) -> str | None:
    """Give a folder written by an older kit the columns added since, empty in its old rows.

    Without this, new rows would be appended under an old header and misread. Only a header
    that is a prefix of ``columns`` is extended (columns are only ever added at the end).
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        header = next(csv.reader(handle), [])
        if header == columns or header != columns[:len(header)]:
            return None
        handle.seek(0)
        rows = list(csv.reader(handle))  # rows csv cannot read were set aside before
    pad = [""] * (len(columns) - len(header))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        csv.writer(handle).writerows([columns, *(r + pad for r in rows[1:])])
    os.replace(tmp, path)
    return f"{path}: added the columns {', '.join(columns[len(header):])} (new in this kit)"


def append_row(path: Path, fields: list[str], row: Mapping[str, Any], durable: bool = True
                ) -> None:
    """Append one row to a run CSV (header first if new), fsynced when ``durable``: every
    run file (simulations, lineage, checks, batch plan) is written this one way."""
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: _csv_value(row.get(k)) for k in fields})
        handle.flush()
        if durable:  # on disk before the run goes on: a power cut loses no finished simulation
            os.fsync(handle.fileno())


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)  # full precision: results.json must match these values exactly
    return value


def read_simulations(out_dir: str | os.PathLike) -> pd.DataFrame:
    """The simulation records of a folder that parse (empty frame with the right columns if
    none); rows that do not are in ``frame.attrs["rejected"]``."""
    path = Path(out_dir) / SIMULATIONS_FILE
    frame = read_records(path, SIMULATION_FIELDS, keep_default_na=False, na_values=[""],
                         dtype={"smiles": str, "error": str, "status": str})
    missing = [c for c in ("smiles", "ie", "status", "error") if c not in frame.columns]
    if missing:
        raise ValueError(f"cannot read {path}: no column(s) {', '.join(missing)}")
    frame["error"] = frame["error"].fillna("")
    return frame


def read_iterations(out_dir: str | os.PathLike) -> pd.DataFrame:
    return read_records(Path(out_dir) / ITERATIONS_FILE, ITERATION_FIELDS)


def read_run_csv(path: Path, source: Any = None, **options: Any) -> pd.DataFrame:
    """pandas' reader, with the file named in the error: its own message omits it."""
    try:
        return pd.read_csv(path if source is None else source, **options)
    except ValueError as err:  # ParserError, EmptyDataError and UnicodeDecodeError included
        raise ValueError(f"cannot read {path}: {error_message(err)}") from None


# --- one check for every row the kit appends -------------------------------------------------
STATUSES = (STATUS_OK, STATUS_FAILED, STATUS_TIMEOUT, STATUS_LOST)

#: The physical range of a vertical ionization energy (eV), the one place it is stated. Taking
#: an electron from a neutral molecule always costs energy (IE > 0), and no neutral atom or
#: molecule holds its loosest electron tighter than helium (24.6 eV). GFN2-xTB overestimates IEs
#: by a few eV (water: 18.3 against 12.6 measured); QM9's highest is 20.2 eV (CF4). So 40 eV
#: leaves room for any user's space while a value beyond it (a typo, ``1e300``, a forged row)
#: can only be garbage: such a row is set aside like any row that does not parse.
IE_RANGE_EV = (0.0, 40.0)
#: Rows that do not parse are moved from ``NAME.csv`` to ``NAME.rejected.csv`` beside it.
REJECTED_SUFFIX = ".rejected.csv"
REJECTED_FIELDS = ["line", "reason", "row"]

#: What the columns of each appended file must hold (columns not named here are free text).
#: Kinds: smiles (RDKit parses it), status, float, int, bool, text, ie (a float within
#: :data:`IE_RANGE_EV`), ``a|b`` (one of these words); ``?``: may be empty.
#: lineage.csv, checks.csv and batches.csv belong to :mod:`course_utils.campaign.lineage`,
#: :mod:`course_utils.campaign.trust` and :mod:`course_utils.campaign.batch_plan`; their rules
#: are here so that every reader checks rows the same way.
ROW_RULES: dict[str, dict[str, str]] = {
    SIMULATIONS_FILE: {
        "smiles": "smiles", "ie": "ie?", "status": "status", "batch": "int?",
        "submit_time": "float?", "start_time": "float?", "end_time": "float?",
        "elapsed_s": "float?", "pid": "int?", "wave": "int?"},
    ITERATIONS_FILE: {
        "iteration": "int", "training_size": "int", "n_new": "int?", "best_ie": "ie?",
        "model_time_s": "float?", "select_time_s": "float?", "simulate_time_s": "float?",
        "mae_ev": "float?", "mape_pct": "float?", "elapsed_s": "float?", "model_version": "int?",
        "valid_mae_ev": "float?", "valid_r2": "float?", "r2": "float?", "within_1sd": "float?",
        "within_2sd": "float?", "heldout_mae_ev": "float?"},
    "lineage.csv": {
        "version": "int", "data_version": "int",  # what a resume reads back
        "train_size": "int?", "valid_size": "int?",
        "valid_mae_ev": "float?", "valid_r2": "float?", "failed_since_previous": "int?",
        "train_time_s": "float?", "model_file": "text?", "valid_within_1sd": "float?",
        "valid_within_2sd": "float?"},
    "checks.csv": {
        "iteration": "int", "smiles": "smiles", "model_ie": "float?", "model_spread": "float?",
        "cheap_ie": "ie?", "cheap_status": "text", "difference_ev": "float?",
        "trusted": "bool", "full_ie": "ie?", "full_status": "status?",
        "cheap_seconds": "float?", "model_version": "int?"},
    "batches.csv": {
        "batch": "int", "order": "int", "smiles": "smiles", "model_version": "int?",
        "predicted_ie": "float?", "kind": "planned|replacement", "predicted_std": "float?"},
}


@functools.lru_cache(maxsize=65536)
def _smiles_problem(smiles: str) -> str | None:
    """Why RDKit refuses a SMILES (the search-space check), or None; cached: files are re-read."""
    with quiet_rdkit():
        return identify_smiles(smiles, rdkit=True)[1]


def _value_problem(kind: str, text: str) -> str | None:
    if kind in _NUMBERS:  # most values (fast path: a build file has 130,000 rows)
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None and (not kind.startswith("int") or number.is_integer()):
            return ie_problem(number) if kind.startswith("ie") else None
    if kind.endswith("?"):
        if text == "":
            return None
        kind = kind[:-1]
    if text == "":
        return "is empty"
    if kind == "smiles":
        problem = _smiles_problem(text)
        return None if problem is None else f"{text!r} is not a molecule ({problem})"
    if kind == "status":
        return None if text in STATUSES else f"{text!r} is not one of {', '.join(STATUSES)}"
    if kind == "bool":
        return None if text.lower() in ("true", "false", "1", "0") else f"{text!r} is not True/False"
    if "|" in kind:
        words = kind.split("|")
        return None if text in words else f"{text!r} is not one of {', '.join(words)}"
    if kind in ("float", "int", "ie"):
        try:
            number = float(text)
        except ValueError:
            return f"{text!r} is not a number"
        if kind == "int" and not number.is_integer():
            return f"{text!r} is not a whole number"
        if kind == "ie":
            return ie_problem(number)
    return None


_NUMBERS = frozenset({"float", "float?", "int", "int?", "ie", "ie?"})


def ie_problem(ie: float) -> str | None:
    """Why ``ie`` (eV) cannot be an ionization energy (outside :data:`IE_RANGE_EV`), or None."""
    low, high = IE_RANGE_EV
    if math.isnan(ie) or low < ie <= high:
        return None
    return (f"{ie:g} eV is not a possible ionization energy (outside {low:g}-{high:g} eV)")


def possible_ie(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as written, or, if it claims an ``ok`` IE outside :data:`IE_RANGE_EV`, as a
    failure naming the value: a simulation that returns one failed, whatever it says, and a
    reader would set the row aside anyway."""
    try:
        ie = float(row.get("ie"))
    except (TypeError, ValueError):
        return row
    problem = ie_problem(ie)
    if row.get("status") != STATUS_OK or problem is None:
        return row
    return {**row, "ie": None, "status": STATUS_FAILED, "error": f"ImpossibleIE: {problem}"}


def row_problem(name: str, row: Mapping[str, str],
                rules: Mapping[str, str] | None = None) -> str | None:
    """Why a row of the appended file ``name`` cannot be used (one line), or None if it can.

    The one row check of the kit: readers skip such rows, :func:`set_aside` moves them out.
    ``rules`` replaces ``ROW_RULES[name]`` for a file whose name is the user's (a truth build).
    """
    rules = ROW_RULES.get(name, {}) if rules is None else rules
    for column, kind in rules.items():
        problem = _value_problem(kind, (row.get(column) or "").strip())
        if problem:
            return f"{column} {problem}"
    if "ie" in rules and row.get("status") == STATUS_OK:
        ie = float(row["ie"]) if row.get("ie") else math.nan
        if not math.isfinite(ie):
            return "status ok without a finite ie"
    return None


@dataclass
class CheckedRows:
    """A CSV record file split into the rows that parse and those that do not."""

    header: list[str]
    good: list[list[str]]
    #: (line number, fields, reason) of every row that does not parse.
    bad: list[tuple[int, list[str], str]]


def check_rows(path: Path, rules: Mapping[str, str] | None = None,
               data: bytes | None = None) -> CheckedRows:
    """Split ``path`` (or ``data``, its bytes as a reader holds them) into usable rows and
    rejected ones, by :func:`row_problem`.

    Raises ValueError (one line, naming the file) for a header without the columns its rules
    require: that is not a row to move aside but a file that is not this record.
    """
    # undecodable bytes are kept (surrogateescape): a garbage row is set aside, not fatal
    text = (path.read_bytes() if data is None else data).decode("utf-8", "surrogateescape")
    lines = text.splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
    except csv.Error as err:
        raise ValueError(f"cannot read {path}, line 1: {error_message(err)}") from None
    rows: list[tuple[int, list[str]]] = []
    unreadable: list[tuple[int, list[str], str]] = []  # csv itself refuses (a huge field)
    while True:
        before = reader.line_num
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # the reader goes on with the next line
            raw = "".join(lines[before:reader.line_num]).rstrip("\r\n")
            unreadable.append((before + 1, [raw], error_message(err)))
            continue
        rows.append((reader.line_num, fields))
    rules = ROW_RULES.get(path.name, {}) if rules is None else rules
    missing = [c for c, kind in rules.items() if not kind.endswith("?") and c not in header]
    if header and missing:
        raise ValueError(f"cannot read {path}: no column(s) {', '.join(missing)}")
    checked = CheckedRows(header, [], [])
    wanted = [c for c in header if c in rules or c in ("status", "ie")]  # what row_problem reads
    at = [(c, header.index(c)) for c in wanted]
    for line, fields in rows:
        if not fields:  # a blank line: nothing was written there
            continue
        if len(fields) != len(header):
            problem = f"{len(fields)} fields, the header has {len(header)}"
        elif not _is_text(fields):
            problem = "not UTF-8 text"
        else:
            problem = row_problem(path.name, {c: fields[i] for c, i in at}, rules)
        if problem:
            checked.bad.append((line, fields, problem))
        else:
            checked.good.append(fields)
    if unreadable:
        checked.bad = sorted(checked.bad + unreadable, key=lambda bad: bad[0])
    return checked


def _is_text(fields: list[str]) -> bool:
    try:
        "".join(fields).encode("utf-8")
    except UnicodeEncodeError:  # a byte surrogateescape kept
        return False
    return True


def read_records(path: Path, empty_columns: list[str], *,
                 rules: Mapping[str, str] | None = None, **options: Any) -> pd.DataFrame:
    """The rows of a record file that parse, as pandas reads them (``options``); rows that do
    not are skipped and listed in ``frame.attrs["rejected"]`` as (line, reason)."""
    if not path.exists() or path.stat().st_size == 0:
        frame = pd.DataFrame(columns=empty_columns)
        frame.attrs["rejected"] = []
        return frame
    checked = check_rows(path, rules)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([checked.header, *checked.good])
    text.seek(0)
    frame = read_run_csv(path, text, **options)
    frame.attrs["rejected"] = [(line, reason) for line, _fields, reason in checked.bad]
    return frame


def rejected_path(path: Path) -> Path:
    """``simulations.csv`` -> ``simulations.rejected.csv``: where its bad rows are kept."""
    return path.with_name(path.name.removesuffix(".csv") + REJECTED_SUFFIX)


def set_aside(path: Path, rules: Mapping[str, str] | None = None) -> str | None:
    """Move the rows of ``path`` that do not parse to its ``.rejected.csv`` file; one note.

    They are kept there (line, reason, the row as written), so nothing is lost, and they are
    never counted: a garbage row must not pass for a simulation nor block a resume.
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    checked = check_rows(path, rules)
    if not checked.bad:
        return None
    aside = rejected_path(path)
    new = not aside.exists() or aside.stat().st_size == 0
    with aside.open("a", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(REJECTED_FIELDS)
        for line, fields, reason in checked.bad:
            row = io.StringIO()
            csv.writer(row, lineterminator="").writerow(fields)
            writer.writerow([line, reason, row.getvalue()])
        handle.flush()
        os.fsync(handle.fileno())
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        csv.writer(handle).writerows([checked.header, *checked.good])
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    line, _fields, reason = checked.bad[0]
    n = len(checked.bad)
    return (f"{path}: moved {n} row{'s' if n > 1 else ''} that do{'' if n > 1 else 'es'} not "
            f"parse to {aside.name} (line {line}: {reason}); they are not counted: fix and "
            f"append them back to {path.name}, or delete {aside.name}")


def rejected_files(folder: str | os.PathLike) -> list[Path]:
    """The ``*.rejected.csv`` files of a folder that hold rows (what a grader must refuse)."""
    found = []
    for path in sorted(Path(folder).glob("*" + REJECTED_SUFFIX)):
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                if sum(1 for line in handle if line.strip()) > 1:  # more than its header
                    found.append(path)
        except OSError:
            found.append(path)
    return found


def tidy_records(path: Path, columns: list[str],
                 rules: Mapping[str, str] | None = None) -> list[str]:
    """Make an appended record file safe to read and append to; the notes on what was done.

    Torn last line cut, rows that do not parse set aside, columns of a newer kit added.
    """
    notes = [repair_tail(path, columns), set_aside(path, rules), add_new_columns(path, columns)]
    return [n for n in notes if n]


#: Where atomic saves leave ``*.tmp`` files when killed: the run folder and these inside it.
TEMPORARY_DIRS = (".", "models", "checks")


def remove_stale_temporaries(folder: str | os.PathLike,
                             subdirs: tuple[str, ...] = TEMPORARY_DIRS) -> str | None:
    """Delete ``*.tmp`` files a killed atomic save left (never a finished file); one note.

    Only call it holding the folder's lock: a live writer's temporary file must not vanish.
    """
    gone = []
    for sub in subdirs:
        directory = Path(folder) / sub
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.tmp")):
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)
                gone.append(str(path.relative_to(folder)))
    if not gone:
        return None
    return (f"{folder}: removed {len(gone)} temporary file{'s' if len(gone) > 1 else ''} of an "
            f"interrupted save: {', '.join(gone)}")


# --- strict JSON -----------------------------------------------------------------------------
def strict_json(value: Any) -> Any:
    """``value`` as plain JSON data: NaN, Infinity and pandas' NA become None (``null``); numpy
    scalars and arrays, tuples, sets and paths become numbers, lists and strings."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_json_key(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [strict_json(v) for v in value]
    import numpy as np

    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, np.generic):
        return strict_json(value.item())
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else value.isoformat()
    try:
        if pd.isna(value):  # pd.NA, pd.NaT
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _json_key(key: Any) -> Any:
    key = strict_json(key)
    return key if isinstance(key, str | int | bool | float) or key is None else str(key)


def dumps_json(data: Any, **options: Any) -> str:
    """The kit's one JSON writer: strict (``allow_nan=False``), so a NaN left anywhere raises
    here instead of writing a file other JSON readers refuse."""
    return json.dumps(strict_json(data), allow_nan=False, **options)


def atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps_json(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


@dataclass
class CampaignRecorder:
    """Appends records to an output folder and remembers what is already done there."""

    out_dir: Path
    simulations: list[dict] = field(default_factory=list)
    iterations: list[dict] = field(default_factory=list)
    elapsed_offset: float = 0.0
    #: fsync every row; a replay (recomputed in milliseconds) skips it.
    durable: bool = True

    @classmethod
    def open(cls, out_dir: str | os.PathLike) -> CampaignRecorder:
        """Open (creating if needed) a folder, loading records a previous run left there.

        Torn last lines of a killed run are cut off first, so new rows never glue onto them;
        rows that do not parse are set aside, and temporary files of a killed save removed.
        """
        path = Path(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        notes = [remove_stale_temporaries(path)]
        for name, columns in ((SIMULATIONS_FILE, SIMULATION_FIELDS),
                              (ITERATIONS_FILE, ITERATION_FIELDS)):
            notes += tidy_records(path / name, columns)
        for note in notes:
            if note:
                print(f"note: {note}", file=sys.stderr)
        sims = read_simulations(path)
        its = read_iterations(path)
        recorder = cls(path)
        recorder.simulations = sims.to_dict("records")
        recorder.iterations = its.to_dict("records")
        # Wall time carries on from where the previous session stopped.
        elapsed = [*sims["elapsed_s"].dropna().tolist(), *its["elapsed_s"].dropna().tolist()]
        recorder.elapsed_offset = float(max(elapsed)) if elapsed else 0.0
        return recorder

    # --- what is known -------------------------------------------------------------------
    @property
    def attempted(self) -> set[str]:
        """Molecules with an outcome; a task lost with its worker is tried again (on resume too)."""
        return {r["smiles"] for r in self.simulations if r["status"] != STATUS_LOST}

    @property
    def successes(self) -> list[dict]:
        return [r for r in self.simulations if r["status"] == STATUS_OK]

    def training_data(self) -> pd.DataFrame:
        """Successful simulations as (smiles, ie), sorted: training must not depend on arrival order."""
        rows = [(r["smiles"], float(r["ie"])) for r in self.successes]
        frame = pd.DataFrame(rows, columns=["smiles", "ie"])
        return frame.sort_values("smiles", kind="stable").reset_index(drop=True)

    def best(self) -> dict | None:
        ok = self.successes
        return max(ok, key=lambda r: float(r["ie"])) if ok else None

    # --- writing -------------------------------------------------------------------------
    def add_simulation(self, record: Mapping[str, Any]) -> dict:
        """Record one simulation (an impossible IE as the failure it is: :func:`possible_ie`)."""
        row = possible_ie({k: record.get(k) for k in SIMULATION_FIELDS})
        self.simulations.append(row)
        append_row(self.out_dir / SIMULATIONS_FILE, SIMULATION_FIELDS, row, self.durable)
        return row

    def add_iteration(self, record: Mapping[str, Any]) -> dict:
        row = {k: record.get(k) for k in ITERATION_FIELDS}
        self.iterations.append(row)
        append_row(self.out_dir / ITERATIONS_FILE, ITERATION_FIELDS, row, self.durable)
        return row

    def check_parameters(self, parameters: Mapping[str, Any], must_match: tuple[str, ...],
                         defaults: Mapping[str, Any] | None = None) -> None:
        """Refuse to mix two different campaigns in one folder; record the parameters otherwise.

        A key missing from an older folder's parameters counts as its default value.
        """
        path = self.out_dir / PARAMETERS_FILE
        previous = self.previous_parameters() if self.simulations else None
        if self.simulations and previous is None:
            print(f"note: {self.out_dir}: neither {PARAMETERS_FILE} nor {RESULTS_FILE} holds "
                  "readable parameters (a run was killed while writing them); resuming with the "
                  "current ones", file=sys.stderr)
        if previous is not None:
            before = {k: previous.get(k, (defaults or {}).get(k)) for k in must_match}
            diffs = [f"{k}: {before[k]!r} there, {parameters.get(k)!r} now"
                     for k in must_match if before[k] != parameters.get(k)]
            if diffs:
                raise ResumeMismatchError(
                    f"{self.out_dir} holds a run with other parameters ({'; '.join(diffs)}); "
                    "use a new output folder or the same parameters to resume"
                )
        atomic_write_json(path, dict(parameters))

    def previous_parameters(self) -> dict[str, Any] | None:
        """The parameters the folder was started with (:func:`run_parameters`)."""
        return run_parameters(self.out_dir)


# --- a run folder and its JSON files ----------------------------------------------------------
def is_run_folder(path: str | os.PathLike) -> bool:
    """A folder a campaign has written to: it holds its parameters, simulations or results
    (a run that has not finished a simulation yet is still a run, with nothing to draw)."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists()
                                 for name in (RESULTS_FILE, SIMULATIONS_FILE, PARAMETERS_FILE))


def load_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """A run's JSON file as a dict; OSError if unreadable, ValueError if torn or not an object."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def read_json_object(path: str | os.PathLike) -> dict[str, Any] | None:
    """:func:`load_json_object`, or None if the file is missing, torn, empty or not an object."""
    try:
        return load_json_object(path)
    except (OSError, ValueError):
        return None


def run_parameters(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The parameters a run folder was started with, or None if no file holds them readably.

    A run killed while writing leaves a torn or empty JSON file; results.json repeats the
    parameters, so either one is enough.
    """
    saved = read_json_object(Path(out_dir) / PARAMETERS_FILE)
    if saved is not None:
        return saved
    block = (read_json_object(Path(out_dir) / RESULTS_FILE) or {}).get("parameters")
    return block if isinstance(block, dict) else None


def environment_info(engine: str | None = None) -> dict[str, Any]:
    """Where and with what a run happened, for the results file and for graders."""
    import copy

    return copy.deepcopy(_environment_info(engine))


@functools.cache
def _environment_info(engine: str | None) -> dict[str, Any]:
    # Reading package metadata costs milliseconds; results.json is rewritten every iteration.
    versions = {}
    for package in ("course-utils", "parsl", "rdkit", "scikit-learn", "numpy", "pandas",
                    "ase", "xtb", "tblite"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "engine": engine,
        "packages": versions,
    }


def summarize(
    recorder: CampaignRecorder,
    parameters: Mapping[str, Any],
    *,
    status: str,
    environment: Mapping[str, Any],
    wall_time_s: float,
    message: str = "",
    top: int = 10,
) -> dict[str, Any]:
    """The results file's content: everything is derived from the simulation records."""
    sims = recorder.simulations
    ok = sorted(recorder.successes, key=lambda r: -float(r["ie"]))
    best = ok[0] if ok else None
    best_info = None
    if best is not None:
        order = [r["smiles"] for r in recorder.successes]
        best_info = {
            "smiles": best["smiles"],
            "ie": float(best["ie"]),
            "time_to_best_s": _float(best.get("elapsed_s")),
            "simulations_to_best": order.index(best["smiles"]) + 1,
        }
    counts: dict[str, int] = {}
    for r in sims:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lost = counts.get(STATUS_LOST, 0)  # infrastructure events, retried: not failed molecules
    return {
        "status": status,
        "message": message,
        "parameters": dict(parameters),
        "environment": dict(environment),
        "totals": {
            "simulations": len(sims) - lost,
            "successful": counts.get(STATUS_OK, 0),
            "failed": len(sims) - lost - counts.get(STATUS_OK, 0),
            "lost_and_retried": lost,
            "by_status": counts,
            "iterations": len(recorder.iterations),
            "wall_time_s": wall_time_s,
        },
        "best": best_info,
        "top_simulated": [{"smiles": r["smiles"], "ie": float(r["ie"])} for r in ok[:top]],
        "failures": [{"smiles": r["smiles"], "status": r["status"], "error": r["error"]}
                     for r in sims if r["status"] not in (STATUS_OK, STATUS_LOST)],
        "units": {"ie": "eV", "time": "s"},
    }


def running_best(values: Any) -> np.ndarray:
    """Best value so far at each position; a NaN never hides an earlier best (eV in, eV out).

    The one running maximum of the kit: campaign figures, the leaderboard, sweeps, strategy
    comparisons and the stopping rules all take their best-so-far from here.
    """
    values = np.asarray(values, dtype=float)
    return np.fmax.accumulate(values) if len(values) else values


def best_so_far(simulations: pd.DataFrame) -> pd.DataFrame:
    """Successful simulations in arrival (record) order, with the best IE so far (eV).

    Columns ``n_simulations`` (1, 2, ...), ``elapsed_s``, ``smiles``, ``ie`` and ``best_ie``;
    ``ie`` and ``elapsed_s`` as numbers (an unreadable value is NaN). Records are appended as
    simulations arrive, so their order is the campaign's own, whatever the clock column says.
    """
    ok = simulations[simulations["status"] == STATUS_OK]
    ie = pd.to_numeric(ok["ie"], errors="coerce").to_numpy(dtype=float)
    elapsed = pd.to_numeric(ok["elapsed_s"], errors="coerce").to_numpy(dtype=float)
    return pd.DataFrame({"n_simulations": np.arange(1, len(ok) + 1), "elapsed_s": elapsed,
                         "smiles": ok["smiles"].astype(str).to_numpy(), "ie": ie,
                         "best_ie": running_best(ie)})


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out
