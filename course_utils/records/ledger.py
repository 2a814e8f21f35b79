"""The append-only ledger: how every record file of a run is written, tidied and read back.

Each record file (simulations, iterations, model lineage, batch plan, trust checks) is a CSV
its owner declares once as a :class:`RecordFile` (name, columns, row rules, how pandas reads
it). A :class:`Ledger` of a run folder appends its rows one at a time, flushed and, while it is
``durable``, fsynced, so a killed run loses nothing finished; opening a file with
:meth:`Ledger.tidy` makes what a crash left safe to append to:

- a writer killed mid-row leaves a torn last line: it is cut off (it was never a finished
  result) before anything is appended, so one crash cannot corrupt the file;
- a row that does not parse (:func:`course_utils.records.rows.row_problem`) is moved to
  ``NAME.rejected.csv`` beside its file with a note: it is never counted, and never blocks a
  resume;
- a file written by an older kit gets the columns added since.

One ledger is shared by all of a run's record files, so one ``durable`` flag says whether
rows are fsynced (a replay, recomputed in milliseconds, skips it).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from course_utils.records.rows import check_rows, register_row_rules
from course_utils.resilience import error_message

#: Rows that do not parse are moved from ``NAME.csv`` to ``NAME.rejected.csv`` beside it.
REJECTED_SUFFIX = ".rejected.csv"
REJECTED_FIELDS = ["line", "reason", "row"]


@dataclass(frozen=True, eq=False)
class RecordFile:
    """The schema of one append-only CSV, declared by the module that owns the file.

    ``fields`` are its columns in order (new ones only ever go at the end), ``rules`` what
    some of them must hold (:mod:`course_utils.records.rows` kinds), ``read_options`` how
    pandas reads it back. Declaring one registers its rules under its name.
    """

    name: str
    fields: Sequence[str]
    rules: Mapping[str, str]
    read_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        register_row_rules(self.name, self.rules)

    def read(self, folder: str | os.PathLike) -> pd.DataFrame:
        """The rows of this file in ``folder`` that parse (:func:`read_records`)."""
        return read_records(Path(folder) / self.name, list(self.fields), rules=self.rules,
                            **self.read_options)


@dataclass
class Ledger:
    """The record files of one run folder, appended to row by row."""

    folder: Path
    #: fsync every row; a replay (recomputed in milliseconds) skips it.
    durable: bool = True

    @classmethod
    def of(cls, folder: str | os.PathLike, shared: Ledger | None = None) -> Ledger:
        """``shared`` (the run's ledger, one ``durable`` flag for all its files), or a new one."""
        if shared is None:
            return cls(Path(folder))
        if shared.folder != Path(folder):
            raise ValueError(f"the ledger of {shared.folder} cannot record into {folder}")
        return shared

    def path(self, file: RecordFile) -> Path:
        return self.folder / file.name

    def tidy(self, file: RecordFile) -> list[str]:
        """Make ``file`` safe to read and append to (:func:`tidy_records`); the notes."""
        return tidy_records(self.path(file), list(file.fields), file.rules)

    def append(self, file: RecordFile, row: Mapping[str, Any]) -> None:
        """Append one row (its columns in ``file.fields``), on disk before this returns."""
        append_row(self.path(file), list(file.fields), row, self.durable)


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


def read_run_csv(path: Path, source: Any = None, **options: Any) -> pd.DataFrame:
    """pandas' reader, with the file named in the error: its own message omits it."""
    try:
        return pd.read_csv(path if source is None else source, **options)
    except ValueError as err:  # ParserError, EmptyDataError and UnicodeDecodeError included
        raise ValueError(f"cannot read {path}: {error_message(err)}") from None


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
