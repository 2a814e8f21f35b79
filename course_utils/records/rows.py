"""Row rules: the one check of every row the kit appends, and the one range of an IE.

A record file's owner states what each of its columns must hold (a *rule*, e.g. ``"int?"``);
:func:`row_problem` says why a row breaks one, and :func:`check_rows` splits a file into the
rows that parse and those that do not. Owners declare their rules with their file
(:class:`course_utils.records.ledger.RecordFile`), which registers them here by file name.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course_utils.chemistry import identify_smiles, quiet_rdkit
from course_utils.resilience import error_message

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_TIMEOUT = "timeout"
STATUS_LOST = "lost"  # the worker died or the task could not run
STATUSES = (STATUS_OK, STATUS_FAILED, STATUS_TIMEOUT, STATUS_LOST)

#: The physical range of a vertical ionization energy (eV), the one place it is stated. Taking
#: an electron from a neutral molecule always costs energy (IE > 0), and no neutral atom or
#: molecule holds its loosest electron tighter than helium (24.6 eV). GFN2-xTB overestimates IEs
#: by a few eV (water: 18.3 against 12.6 measured); QM9's highest is 20.2 eV (CF4). So 40 eV
#: leaves room for any user's space while a value beyond it (a typo, ``1e300``, a forged row)
#: can only be garbage: such a row is set aside like any row that does not parse.
IE_RANGE_EV = (0.0, 40.0)

#: What the columns of each appended file must hold (columns not named here are free text), by
#: file name, as each file's owner declared them (:func:`register_row_rules`).
#: Kinds: smiles (RDKit parses it), status, float, int, bool, text, ie (a float within
#: :data:`IE_RANGE_EV`), ``a|b`` (one of these words); ``?``: may be empty.
ROW_RULES: dict[str, Mapping[str, str]] = {}


def register_row_rules(name: str, rules: Mapping[str, str]) -> None:
    """Declare the rules of the appended file ``name`` (its owner's schema), once per name.

    Raises ValueError if another owner declared other rules for the same file name: two
    schemas for one file would check its rows two ways.
    """
    known = ROW_RULES.get(name)
    if known is not None and dict(known) != dict(rules):
        raise ValueError(f"{name}: row rules declared twice, differently")
    ROW_RULES[name] = dict(rules)


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


