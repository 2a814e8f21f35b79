"""The ground-truth table: every molecule of a search space simulated once, with the kit's protocol.

A table of true values lets any campaign be measured against the real optimum and replayed in
milliseconds. This module reads its files: the shipped table (``shipped_table``), build files,
the coverage every derived number must state, and the lookups replays build from it. It knows
no search space (``search_space`` reads the table for its ``truth:`` spaces); the shipped table
of a search space with its coverage is :mod:`course_utils.ground_truth.shipped`. Building it
(resumable, sharded) is :mod:`course_utils.ground_truth.build`; merging finished parts into the shipped
table and reporting progress is :mod:`course_utils.ground_truth.pack`.

Molecules are built in a fixed seeded random order (``build_order``), so a partial table is an
unbiased sample of the space. Anything that uses a partial table states its coverage and never
guesses a value.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

TRUTH_COLUMNS = ["smiles", "ie", "status", "error", "seconds", "engine"]
#: A molecule with one of these statuses is settled: a rebuild does not simulate it again.
FINAL_STATUSES = ("ok", "failed", "timeout")
#: Status of a molecule whose worker died twice: infrastructure, so a resumed build retries it.
LOST = "lost"
#: What a build file's rows must hold (``records.row_problem`` kinds): a row that does not is
#: skipped by readers and set aside by the next build, like a campaign's records. The SMILES is
#: not parsed here (a build file has 130,000 rows); ``pack`` checks it belongs to the space.
TRUTH_ROW_RULES = {"smiles": "text", "ie": "ie?", "status": "|".join((*FINAL_STATUSES, LOST)),
                   "seconds": "float?"}
BUILD_ORDER_SEED = 20241
_DATA = "data"


def packaged_table_name(space: str) -> str:
    # a user space is a path: joined whole, an absolute one would escape the destination folder
    return f"{Path(space).name}_ground_truth.csv.gz"


def packaged_provenance_name(space: str) -> str:
    return f"{Path(space).name}_ground_truth.provenance.json"


def package_data_dir() -> Path:
    return Path(str(resources.files("course_utils").joinpath(_DATA)))


def default_build_file(space: str = "qm9") -> Path:
    """Where a build appends its results unless told otherwise: never inside the package, nor
    the user's own space file (a path-named space joined whole would name that very file)."""
    return Path("outputs") / "ground_truth" / f"{Path(space).stem}.csv"


def default_pack_dir() -> Path:
    """Where ``truth pack`` writes the merged table unless told otherwise: beside the builds."""
    return Path("outputs") / "ground_truth"


class GroundTruthError(ValueError):
    """A ground-truth table is missing, unreadable, or lacks a molecule that was asked for."""



def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A ground-truth CSV (plain or gzip) with the right dtypes; later rows win for a molecule."""
    import pandas as pd

    path = Path(path)
    source = _complete_rows(path) if path.exists() else None
    if source is None:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("ie", "seconds") else str)
                             for c in TRUTH_COLUMNS})
    rejected: list[tuple[int, str]] = []
    if path.suffix != ".gz":  # a build file anyone can edit (a packed table was checked)
        source, rejected = _parsed_rows(path, source)
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
    df = df.reset_index(drop=True)
    df.attrs["rejected"] = rejected
    return df


def _parsed_rows(path: Path, source: Path | io.BytesIO) -> tuple[io.BytesIO, list[tuple[int, str]]]:
    """The rows of a build file that parse (:data:`TRUTH_ROW_RULES`), and (line, reason) of
    those that do not, with one note on stderr: a row such as ``C,1e300,ok`` would otherwise
    replace the molecule's real one (later rows win). The file is left alone (its writer may
    be running); ``truth build`` moves such rows to ``NAME.rejected.csv``."""
    import csv
    import sys

    # deferred: records imports search_space, which imports this module
    from course_utils.records.ledger import rejected_path
    from course_utils.records.rows import check_rows  # deferred: as the line above

    data = source.getvalue() if isinstance(source, io.BytesIO) else path.read_bytes()
    header = next(csv.reader(io.StringIO(data[:65536].decode("utf-8", "replace"))), [])
    missing = [c for c in TRUTH_COLUMNS if c not in header]
    if missing:
        raise GroundTruthError(f"{path} is not a ground-truth table: missing columns {missing}")
    try:
        checked = check_rows(path, TRUTH_ROW_RULES, data=data)
    except ValueError as err:
        raise GroundTruthError(str(err)) from None
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([checked.header, *checked.good])
    rejected = [(line, reason) for line, _fields, reason in checked.bad]
    if rejected:
        line, reason = rejected[0]
        n = len(rejected)
        print(f"note: {path}: skipped {n} row{'s' if n > 1 else ''} that do{'' if n > 1 else 'es'} "
              f"not parse (line {line}: {reason}); the next `truth build` of it moves them to "
              f"{rejected_path(path).name}", file=sys.stderr)
    return io.BytesIO(text.getvalue().encode("utf-8")), rejected


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
    return package_data_dir() / packaged_table_name(space)


def shipped_table(space: str = "qm9") -> pd.DataFrame:
    """The rows of the table shipped for ``space`` that can answer a replay, without its
    coverage (which needs the search space: :func:`course_utils.ground_truth.shipped.load_ground_truth`)."""
    path = packaged_table_path(space)
    if not path.exists():
        raise GroundTruthError(
            f"no ground-truth table is shipped for {space!r} (looked for {path.name}); "
            "build one with `python -m course_utils truth build`"
        )
    return read_answerable(path)


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

    @classmethod
    def of(cls, table: pd.DataFrame, space: Iterable[str], name: str) -> Coverage:
        """How many molecules of ``space`` (SMILES strings: the kit's identity of a molecule,
        see :mod:`course_utils.search_space`) have a row in ``table``: rows for molecules
        outside the space are not counted, so it never says more are covered than there are."""
        wanted = set(space)
        return cls(len(wanted.intersection(table["smiles"])), len(wanted), name)

    @property
    def complete(self) -> bool:
        return self.covered >= self.total

    @property
    def fraction(self) -> float:
        return self.covered / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"ground truth covers {self.covered:,} of {self.total:,} molecules"


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
