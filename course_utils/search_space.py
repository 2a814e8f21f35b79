"""The molecules a campaign may choose from, and seeded ways to draw from them.

The default search space is QM9 (130,831 molecules) bundled as a small
``qm9_search_space.csv.gz``; see ``data/QM9_PROVENANCE.md`` and
``scripts/build_qm9_search_space.py``. Students may bring their own CSV/TSV
of SMILES instead. Bad rows in such files are a classic silent failure (a
simulation task that crashes an hour into a run, or a molecule counted twice),
so they are removed, but *always* reported: attached to the result as
``df.attrs["report"]`` and emitted as a :class:`SearchSpaceWarning`.

What a molecule is, for the whole kit: **a search-space row, identified by its SMILES string**
as the space spells it (surrounding whitespace stripped). The records, the ground-truth table,
replays and the grader all key on that string, and the kit simulates from it. QM9 itself holds
87 pairs of rows that RDKit reads as one molecule (``NC1=C(F)N=NC=C1F`` and
``NC1=C(F)C=NN=C1F``): each is its own dataset entry with its own QM9 index and table row, so
the built-in space keeps all 130,831. A user file follows the same rule: a repeated string is
removed; a second spelling of a molecule RDKit already saw is kept and named in the report
(``same_molecule``), so the same rows give the same space, whichever file they come from.

Importing this module is cheap: pandas, numpy and RDKit are imported on first use.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import nullcontext
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple

from course_utils.chemistry import identify_smiles, quiet_rdkit

if TYPE_CHECKING:
    import pandas

__all__ = [
    "QM9_SIZE",
    "RowIssue",
    "SearchSpaceError",
    "SearchSpaceReport",
    "SearchSpaceWarning",
    "iter_unseen",
    "load_search_space",
    "register_space_source",
    "sample_smiles",
]

QM9_SIZE = 130_831
_QM9_RESOURCE = "qm9_search_space.csv.gz"
_TAB_SUFFIXES = {".tsv", ".tab"}
_SNIFF_DELIMITERS = ",\t;|"
_MAX_EXAMPLES = 5

#: Spaces spelled ``<prefix>:<spec>`` that a module above this one reads (``truth:`` from
#: :mod:`course_utils.ground_truth.shipped`, which registers it on import): the search space
#: stays on the ground floor and never imports the ground truth.
_SPACE_SOURCES: dict[str, Callable[[str], tuple[pandas.DataFrame, SearchSpaceReport]]] = {}
_SPACE_SOURCE_HOMES = {"truth": "course_utils.ground_truth.shipped"}


def register_space_source(prefix: str,
                          loader: Callable[[str], tuple[pandas.DataFrame, SearchSpaceReport]]) -> None:
    """``load_search_space("<prefix>:<spec>")`` calls ``loader(spec)`` for (frame, report)."""
    _SPACE_SOURCES[prefix] = loader

_qm9_cache: pandas.DataFrame | None = None
_qm9_lock = threading.Lock()
_positions_lock = threading.Lock()
_positions_cache: dict[tuple[int, int], tuple[list[str], dict[str, int]]] = {}


class SearchSpaceError(ValueError):
    """A search space could not be loaded, or contained rows the caller refused to accept."""

    def __init__(self, message: str, report: SearchSpaceReport | None = None) -> None:
        super().__init__(message)
        # Kept so callers (and notebooks) can inspect exactly which rows were at fault.
        self.report = report


class SearchSpaceFileNotFoundError(SearchSpaceError, FileNotFoundError):
    """The search-space file does not exist; catchable as either parent class."""


class SearchSpaceWarning(UserWarning):
    """Rows were removed from a user search space; the message says which and why."""


class RowIssue(NamedTuple):
    """One rejected row; ``line`` is the 1-based line in the file, header included."""

    line: int
    smiles: str
    reason: str


@dataclass
class SearchSpaceReport:
    """What happened to every row read, so nothing is dropped without a trace."""

    source: str
    n_rows_read: int
    n_valid: int
    invalid: list[RowIssue] = field(default_factory=list)
    empty: list[RowIssue] = field(default_factory=list)
    duplicates: list[RowIssue] = field(default_factory=list)
    #: Rows kept although RDKit reads them as an earlier row's molecule (another spelling).
    same_molecule: list[RowIssue] = field(default_factory=list)
    validated: bool = True

    @property
    def n_removed(self) -> int:
        return len(self.invalid) + len(self.empty) + len(self.duplicates)

    @property
    def has_issues(self) -> bool:
        return self.n_removed > 0

    def summary(self, max_examples: int = _MAX_EXAMPLES) -> str:
        """Human-readable account, short enough for a warning but naming line numbers."""
        lines = [
            f"Search space {self.source}: read {self.n_rows_read} rows, "
            f"kept {self.n_valid} valid unique SMILES, removed {self.n_removed}."
        ]
        if not self.validated:
            lines.append("  (SMILES were not checked with RDKit; pass validate=True to check.)")
        groups = (
            ("invalid row(s)", self.invalid),
            ("empty SMILES", self.empty),
            ("duplicate(s) of an earlier row", self.duplicates),
        )
        for title, issues in groups:
            if not issues:
                continue
            lines.append(f"  {len(issues)} {title}:")
            for issue in issues[:max_examples]:
                if issue.smiles.strip():
                    lines.append(f"    line {issue.line}: {issue.smiles!r} ({issue.reason})")
                else:
                    lines.append(f"    line {issue.line}: {issue.reason}")
            if len(issues) > max_examples:
                lines.append(f"    ... and {len(issues) - max_examples} more")
        if self.same_molecule:
            lines.append(f"  kept {len(self.same_molecule)} row(s) that spell an earlier row's "
                         "molecule differently (a row is its own entry, as in QM9):")
            for issue in self.same_molecule[:max_examples]:
                lines.append(f"    line {issue.line}: {issue.smiles!r} ({issue.reason})")
            if len(self.same_molecule) > max_examples:
                lines.append(f"    ... and {len(self.same_molecule) - max_examples} more")
        return "\n".join(lines)


def load_search_space(
    source: str | os.PathLike[str] = "qm9",
    *,
    validate: bool | None = None,
    on_invalid: str = "report",
) -> pandas.DataFrame:
    """Load the bundled QM9 set (``"qm9"``) or a user CSV/TSV with a ``smiles`` column.

    ``validate`` defaults to False for QM9 (checked when the file was built, so loading
    stays fast) and True for user files. Removed rows are listed in
    ``df.attrs["report"]`` and warned about; ``on_invalid="raise"`` raises
    :class:`SearchSpaceError` instead. Without RDKit validation, empty rows and exact
    duplicate strings are still removed and reported, since they are never usable.
    """
    if on_invalid not in ("report", "raise"):
        raise ValueError(f"on_invalid must be 'report' or 'raise', not {on_invalid!r}")

    if isinstance(source, str) and source.partition(":")[0] in _SPACE_SOURCE_HOMES:
        df, report = _from_source(source)
    elif isinstance(source, str) and source == "qm9":
        df = _load_qm9().copy()
        if validate:
            df, report = _validate(df, [i + 2 for i in range(len(df))], "'qm9'", rdkit=True)
        else:
            report = SearchSpaceReport("'qm9'", len(df), len(df), validated=False)
    else:
        path = Path(source).expanduser()
        df, line_numbers, bad_shape = _read_table(path)
        df, report = _validate(
            df, line_numbers, f"'{path}'", rdkit=True if validate is None else validate
        )
        if bad_shape:
            report.invalid = sorted(report.invalid + bad_shape)
            report.n_rows_read += len(bad_shape)

    if report.n_valid == 0:
        raise SearchSpaceError(
            f"No valid SMILES left in {report.source}.\n{report.summary()}", report
        )
    if report.has_issues:
        if on_invalid == "raise":
            raise SearchSpaceError(report.summary(), report)
        warnings.warn(report.summary(), SearchSpaceWarning, stacklevel=2)
    elif report.same_molecule:  # kept rows: said, never refused
        warnings.warn(report.summary(), SearchSpaceWarning, stacklevel=2)
    df.attrs["report"] = report
    return df


def sample_smiles(
    search_space: pandas.DataFrame | Sequence[str],
    n: int,
    *,
    seed: int,
    exclude: Iterable[str] = (),
) -> list[str]:
    """Draw ``n`` distinct SMILES, reproducibly, never returning any in ``exclude``.

    The result is the first ``n`` items of ``iter_unseen(search_space, seed=seed,
    exclude=exclude)``, so a larger ``n`` extends a smaller sample with the same seed.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    pool = _smiles_pool(search_space)
    excluded = set(exclude)
    available = len(pool) - len(excluded.intersection(pool))
    if n > available:
        raise ValueError(
            f"Cannot sample {n} SMILES: only {available} available "
            f"({len(pool)} distinct in the search space, {len(pool) - available} excluded)."
        )
    stream = _unseen(pool, seed, excluded)
    return [next(stream) for _ in range(n)]


def iter_unseen(
    search_space: pandas.DataFrame | Sequence[str],
    *,
    seed: int,
    exclude: Iterable[str] = (),
) -> Iterator[str]:
    """Yield never-seen SMILES in a seeded random order, e.g. to replace failed simulations.

    The order is a fixed permutation of the search space for a given seed; excluded
    SMILES are skipped. If ``exclude`` is a set it is consulted lazily, so SMILES added
    to it while iterating (say, molecules submitted elsewhere) are skipped too.
    """
    excluded = exclude if isinstance(exclude, AbstractSet) else frozenset(exclude)
    return _unseen(_smiles_pool(search_space), seed, excluded)


def _unseen(pool: list[str], seed: int, excluded: AbstractSet[str]) -> Iterator[str]:
    """:func:`iter_unseen` on distinct SMILES (deduplicating 130,831 twice was most of a
    replay's start)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(pool))

    def generate() -> Iterator[str]:
        for i in order.tolist():
            smi = pool[i]
            if smi not in excluded:
                yield smi

    return generate()


def position_index(smiles: list[str]) -> dict[str, int]:
    """Each SMILES' position in ``smiles``, shared by everyone asking about the same list.

    A replayed campaign needs it twice (its model's scores, its simulator's fingerprints), and a
    grid of replays needs it once per run: for all of QM9 that was 0.1 s a run. The key hashes
    the strings, whose hashes Python keeps, so a hit costs milliseconds.
    """
    key = (len(smiles), hash(tuple(smiles)))
    with _positions_lock:
        found = _positions_cache.get(key)
        if found is None or found[0] != smiles:
            found = (list(smiles), {s: i for i, s in enumerate(smiles)})
            _positions_cache[key] = found
            while len(_positions_cache) > 4:
                _positions_cache.pop(next(iter(_positions_cache)))
        return found[1]


# --------------------------------------------------------------------------- internals


def _load_qm9() -> pandas.DataFrame:
    """Parse the bundled file once per process; callers get copies of the cached frame."""
    global _qm9_cache
    with _qm9_lock:
        if _qm9_cache is None:
            import pandas as pd

            ref = resources.files("course_utils").joinpath("data", _QM9_RESOURCE)
            with ref.open("rb") as raw:
                df = pd.read_csv(
                    raw,
                    compression="gzip",
                    dtype={"qm9_index": "int64", "smiles": str},
                    na_filter=False,
                )
            if len(df) != QM9_SIZE or list(df.columns) != ["qm9_index", "smiles"]:
                raise SearchSpaceError(
                    f"Bundled {_QM9_RESOURCE} looks corrupted ({len(df)} rows, columns "
                    f"{list(df.columns)}); rebuild it with scripts/build_qm9_search_space.py."
                )
            _qm9_cache = df
        return _qm9_cache


def _from_source(source: str) -> tuple[pandas.DataFrame, SearchSpaceReport]:
    prefix, _, spec = source.partition(":")
    if prefix not in _SPACE_SOURCES:
        raise SearchSpaceError(f"{source!r}: {prefix}: spaces are read by "
                               f"{_SPACE_SOURCE_HOMES[prefix]}; import it first")
    return _SPACE_SOURCES[prefix](spec)


def _smiles_pool(search_space: pandas.DataFrame | Sequence[str]) -> list[str]:
    """Distinct SMILES in first-seen order: the order fixes what a seed means."""
    if isinstance(search_space, str):
        raise TypeError("search_space must be a DataFrame or a sequence of SMILES, not a str")
    columns = getattr(search_space, "columns", None)
    if columns is not None:
        if "smiles" not in columns:
            raise SearchSpaceError(
                f"search_space DataFrame has no 'smiles' column (columns: {list(columns)})"
            )
        values = search_space["smiles"].tolist()  # type: ignore[index]
    else:
        values = list(search_space)
    return list(dict.fromkeys(values))


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _delimiter(path: Path, sample: str) -> str:
    """Trust .tsv/.tab; otherwise sniff, since ';'-separated "CSV" is common."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    if suffixes and suffixes[-1] in _TAB_SUFFIXES:
        return "\t"
    try:
        return csv.Sniffer().sniff(sample, delimiters=_SNIFF_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _read_table(path: Path) -> tuple[pandas.DataFrame, list[int], list[RowIssue]]:
    """Read with the csv module, not pandas, to keep exact line numbers and blank rows."""
    import pandas as pd

    if not path.exists():
        raise SearchSpaceFileNotFoundError(f"Search-space file not found: {path}")
    if not path.is_file():
        raise SearchSpaceError(f"Search-space path is not a file: {path}")
    try:
        with _open_text(path) as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SearchSpaceError(f"Could not read search-space file {path}: {exc}") from exc
    if not text.strip():
        raise SearchSpaceError(f"Search-space file is empty: {path}")

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(path, text[:65536]))
    header = [name.strip() for name in next(reader)]
    names = _column_names(header)
    smiles_col = _find_smiles_column(names, path)

    rows: list[list[str]] = []
    line_numbers: list[int] = []
    bad_shape: list[RowIssue] = []
    next_line = reader.line_num + 1
    for record in reader:
        # Report the first physical line of a record; quoted fields may span lines.
        line, next_line = next_line, reader.line_num + 1
        if len(record) > len(names):
            if any(value.strip() for value in record[len(names) :]):
                smi = record[smiles_col] if smiles_col < len(record) else ""
                reason = f"{len(record)} fields but the header has {len(names)}"
                bad_shape.append(RowIssue(line, smi, reason))
                continue
            record = record[: len(names)]
        rows.append(record + [""] * (len(names) - len(record)))
        line_numbers.append(line)

    df = pd.DataFrame(rows, columns=names, dtype=object)
    for name in names:
        if name != names[smiles_col]:
            df[name] = _infer_column(df[name])
    df = df.rename(columns={names[smiles_col]: "smiles"})
    df["smiles"] = df["smiles"].astype(str)
    return df, line_numbers, bad_shape


def _column_names(header: list[str]) -> list[str]:
    """Name blank headers and de-duplicate repeats, as pandas would, so no column is lost."""
    names: list[str] = []
    for i, name in enumerate(header):
        base = name or f"Unnamed: {i}"
        candidate, k = base, 1
        while candidate in names:
            candidate, k = f"{base}.{k}", k + 1
        names.append(candidate)
    return names


def _find_smiles_column(names: list[str], path: Path) -> int:
    if "smiles" in names:
        return names.index("smiles")
    matches = [i for i, name in enumerate(names) if name.lower() == "smiles"]
    if len(matches) == 1:
        return matches[0]
    if matches:
        found = [names[i] for i in matches]
        raise SearchSpaceError(f"{path} has several SMILES columns {found}; keep only one.")
    raise SearchSpaceError(
        f"{path} has no 'smiles' column (matched case-insensitively). "
        f"Columns found: {names}. Rename the column holding the SMILES to 'smiles'."
    )


def _infer_column(values: pandas.Series) -> pandas.Series:
    """Give numeric side columns (e.g. known energies) numeric dtypes, like read_csv would."""
    import pandas as pd

    stripped = values.str.strip()
    try:
        return pd.to_numeric(stripped.mask(stripped == ""))
    except (ValueError, TypeError):
        return values.astype(str)


def _validate(
    df: pandas.DataFrame, line_numbers: list[int], source: str, *, rdkit: bool
) -> tuple[pandas.DataFrame, SearchSpaceReport]:
    """Split rows into kept and rejected; the first occurrence of a SMILES is the one kept
    (the module's rule: a molecule is its string; RDKit-equal spellings are kept and noted)."""
    report = SearchSpaceReport(source, len(df), 0, validated=rdkit)
    keep: list[bool] = []
    first_seen: dict[str, int] = {}
    first_form: dict[str, tuple[int, str]] = {}  # RDKit's canonical form -> first line, SMILES
    with quiet_rdkit() if rdkit else nullcontext():
        for line, raw in zip(line_numbers, df["smiles"].tolist(), strict=True):
            smi = raw.strip()
            if not smi:
                report.empty.append(RowIssue(line, raw, "empty SMILES"))
                keep.append(False)
                continue
            if smi in first_seen:
                reason = f"same SMILES as line {first_seen[smi]}"
                report.duplicates.append(RowIssue(line, raw, reason))
                keep.append(False)
                continue
            form, problem = identify_smiles(smi, rdkit)
            if problem is not None:
                report.invalid.append(RowIssue(line, raw, problem))
                keep.append(False)
                continue
            first_seen[smi] = line
            if form in first_form and rdkit:
                first_line, first_smi = first_form[form]
                report.same_molecule.append(RowIssue(
                    line, raw, f"RDKit reads it as line {first_line}'s {first_smi!r}"))
            first_form.setdefault(form, (line, smi))
            keep.append(True)
    if report.has_issues:
        df = df.loc[keep].reset_index(drop=True)
    # Surrounding whitespace would otherwise reach the simulation tools verbatim.
    df["smiles"] = df["smiles"].str.strip()
    report.n_valid = len(df)
    return df, report
