"""Morgan fingerprints of SMILES, bit-packed and cached in memory and on disk.

The original tutorial fitted ``Pipeline([MorganFingerprintTransformer(256, 4),
KNeighborsRegressor(4, weights="distance", metric="jaccard")])`` and recomputed the
fingerprints of every QM9 molecule on each active-learning iteration, which was ~90% of
the ML step. Here fingerprints are computed once, bit-packed, and cached in memory and on
disk, and the neighbour search runs on the packed words with ``np.bitwise_count``.

The models (:mod:`course_utils.ml.knn` and the others) all read fingerprints from here, and
each names the kinds it reads (:class:`FingerprintKind`: bits or counts, radius, length). A
campaign prepares those of its search space once, before its first round
(:func:`prepare_fingerprints`): every missing kind in one RDKit pass, over forked processes on
Linux (a pool made and closed per call; ``COURSE_UTILS_FINGERPRINT_PROCESSES=1`` keeps it
serial), with a progress bar saying what happens. Fingerprinting all of QM9 is a few seconds of
CPU per kind, so on a machine whose cores are shared the parallel pass gains less than their
number.

Packed layout: fingerprint bit ``i`` is bit ``i % 64`` (least significant first) of word
``i // 64``; arrays have shape ``(n, length // 64)`` and dtype ``uint64``.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from course_utils.cache import default_cache_dir
from course_utils.chemistry import InvalidSmilesError

__all__ = [
    "FingerprintError",
    "FingerprintKind",
    "InvalidSmilesError",
    "cache_parts",
    "clear_memory_cache",
    "count_fingerprints",
    "dense_counts",
    "default_cache_dir",
    "fingerprint_processes",
    "fingerprints",
    "phase_text",
    "prepare_fingerprints",
    "validate_fingerprint_params",
]

#: Bumped whenever the packed layout changes so stale disk caches are never reused.
_FORMAT_VERSION = "morgan-packed-u64-v1"
_COUNT_FORMAT_VERSION = "morgan-count-entries-u32-v1"

#: Inputs shorter than this skip both caches: they take milliseconds to compute, and caching
#: them would leave one file per active-learning training set in the cache directory.
CACHE_MIN_SIZE = 1000

#: Number of fingerprint arrays kept in memory (the search space plus a few others).
MEMORY_CACHE_SIZE = 4

#: SMILES per chunk when fingerprinting; bounds the temporary unpacked bit matrix.
_CHUNK = 4096

_memory_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_memory_lock = threading.Lock()
_warned_dirs: set[str] = set()


#: The only error fingerprinting raises (a ValueError); the name stays for ``except`` clauses
#: written against it.
FingerprintError = InvalidSmilesError


def invalid_smiles(smiles: object, position: int) -> InvalidSmilesError:
    """The error for ``smiles``, the entry at ``position`` of the list being fingerprinted."""
    reason = "RDKit could not parse it" if isinstance(smiles, str) else "not a string"
    return InvalidSmilesError(smiles, reason, position)


# ----------------------------------------------------------------------------- caching


def clear_memory_cache() -> None:
    """Drop in-memory fingerprints, e.g. to simulate a fresh process or free RAM."""
    with _memory_lock:
        _memory_cache.clear()


def _cache_key(smiles: Sequence[str], radius: int, length: int,
               version: str = _FORMAT_VERSION) -> str:
    """Content hash, so identical inputs share a cache entry across processes."""
    h = hashlib.sha256()
    h.update(f"{version}\nradius={radius}\nlength={length}\n".encode())
    try:
        joined = "\n".join(smiles)
    except TypeError:  # a non-string entry (e.g. NaN from a CSV): report it like bad SMILES
        position = next(i for i, smi in enumerate(smiles) if not isinstance(smi, str))
        raise invalid_smiles(smiles[position], position) from None
    h.update(joined.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _memory_get(key: str) -> np.ndarray | None:
    with _memory_lock:
        arr = _memory_cache.get(key)
        if arr is not None:
            _memory_cache.move_to_end(key)
        return arr


def _memory_put(key: str, arr: np.ndarray) -> None:
    with _memory_lock:
        _memory_cache[key] = arr
        _memory_cache.move_to_end(key)
        while len(_memory_cache) > MEMORY_CACHE_SIZE:
            _memory_cache.popitem(last=False)


def _warn_once(directory: Path, exc: OSError) -> None:
    """Caching is an optimisation, so problems are reported once and never raised."""
    name = str(directory)
    if name not in _warned_dirs:
        _warned_dirs.add(name)
        warnings.warn(
            f"fingerprint disk cache disabled for {name}: {exc}", RuntimeWarning, stacklevel=3
        )


def _disk_load(path: Path, n: int, words: int | None, dtype: type = np.uint64) -> np.ndarray | None:
    """Return the cached array, or None if absent, unreadable or of the wrong shape.

    ``words=None`` accepts any number of columns (count fingerprints are as wide as the
    molecule with the most distinct environments)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if arr.dtype != dtype or arr.ndim != 2 or arr.shape[0] != n or words not in (None, arr.shape[1]):
        return None
    return arr


def _disk_save(directory: Path, path: Path, arr: np.ndarray) -> None:
    """Write via a temp file + os.replace so concurrent readers never see a partial file."""
    tmp_name: str | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=directory, prefix=path.stem + ".", suffix=".tmp", delete=False
        ) as fh:
            tmp_name = fh.name
            np.save(fh, arr, allow_pickle=False)
        os.chmod(tmp_name, 0o644)  # mkstemp's 0600 would hide a shared (class-wide) cache
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        _warn_once(directory, exc)
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


# ---------------------------------------------------------------------- what to compute


@dataclass(frozen=True)
class FingerprintKind:
    """One kind of Morgan fingerprint a model reads: packed ``"bits"`` (:func:`fingerprints`) or
    sparse ``"counts"`` (:func:`count_fingerprints`), of a radius and a length in bits."""

    form: str
    radius: int
    length: int

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"fingerprint form must be one of {', '.join(FORMS)}, got {self.form!r}")
        validate_fingerprint_params(self.radius, self.length)


#: The forms a :class:`FingerprintKind` can take.
FORMS = ("bits", "counts")


def describe_kinds(kinds: Sequence[FingerprintKind]) -> str:
    """``Morgan r=2, 2,048 bits`` (and ``... bits and counts`` when one pass gives both)."""
    groups: dict[tuple[int, int], set[str]] = {}
    for kind in kinds:
        groups.setdefault((kind.radius, kind.length), set()).add(kind.form)
    sizes = {frozenset({"bits"}): "{:,} bits", frozenset({"counts"}): "{:,}-bit counts",
             frozenset(FORMS): "{:,} bits and counts"}
    return "; ".join(f"Morgan r={radius}, " + sizes[frozenset(forms)].format(length)
                     for (radius, length), forms in groups.items())


def phase_text(kinds: Sequence[FingerprintKind], what: str = "the search space") -> str:
    """What the progress bar and the campaign's ``phase`` event say while fingerprinting."""
    return f"fingerprinting {what} once ({describe_kinds(kinds)}; cached afterwards)"


# ------------------------------------------------------------------------ computing

#: Below this many SMILES the automatic choice stays serial: starting processes costs more.
PARALLEL_MIN_SIZE = 20_000

#: At most this many processes (a shared login node has many cores that are not ours).
MAX_PROCESSES = 8

#: Environment variable that fixes the number of processes (1: serial).
PROCESSES_ENV = "COURSE_UTILS_FINGERPRINT_PROCESSES"


def fingerprint_processes(n: int, requested: int | None = None) -> int:
    """Processes to fingerprint ``n`` SMILES with: ``requested`` (or the environment variable
    :data:`PROCESSES_ENV`) if given, else the usable cores, at most :data:`MAX_PROCESSES`.

    Serial (1) for small inputs, in a child process (a Parsl worker, a replay grid's worker:
    they already run side by side) and where ``fork`` is not the platform's way to start a
    process: forking reruns nothing of a user's script, spawning re-imports it.
    """
    if requested is None:
        env = os.environ.get(PROCESSES_ENV, "").strip()
        if env:
            try:
                requested = int(env)
            except ValueError:
                raise ValueError(f"{PROCESSES_ENV} must be a whole number, got {env!r}") from None
    if requested is not None:
        chosen = max(1, int(requested))
    elif n < PARALLEL_MIN_SIZE or multiprocessing.parent_process() is not None:
        return 1
    else:
        cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count() or 1)
        chosen = max(1, min(cores, MAX_PROCESSES, n // (PARALLEL_MIN_SIZE // 2)))
    if sys.platform != "linux" or "fork" not in multiprocessing.get_all_start_methods():
        return 1  # elsewhere processes are spawned, which re-imports a user's script
    return chosen


def _compute_chunk(smiles: Sequence[object], offset: int,
                   kinds: Sequence[FingerprintKind]) -> list[np.ndarray]:
    """Every kind of a run of SMILES in one RDKit pass (each molecule parsed once); one array
    per kind. ``offset``: the position of ``smiles[0]`` in the whole list (for errors).

    Serial and parallel runs both call this on the same chunks, so they agree bit for bit.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdFingerprintGenerator

    generators = {(k.radius, k.length): rdFingerprintGenerator.GetMorganGenerator(
        radius=k.radius, fpSize=k.length) for k in kinds}
    bit_strings: list[list[str]] = [[] for _ in kinds]
    count_rows: list[list[dict]] = [[] for _ in kinds]
    with rdBase.BlockLogs():  # otherwise RDKit prints one line per bad/odd molecule
        for i, smi in enumerate(smiles):
            mol = Chem.MolFromSmiles(smi) if isinstance(smi, str) else None
            if mol is None:
                raise invalid_smiles(smi, offset + i)
            for j, kind in enumerate(kinds):
                generator = generators[kind.radius, kind.length]
                if kind.form == "bits":
                    bit_strings[j].append(generator.GetFingerprint(mol).ToBitString())
                else:
                    count_rows[j].append(generator.GetCountFingerprint(mol).GetNonzeroElements())
    out = []
    for j, kind in enumerate(kinds):
        if kind.form == "bits":
            chars = np.frombuffer("".join(bit_strings[j]).encode("ascii"), dtype=np.uint8)
            bits = chars.reshape(len(smiles), kind.length) == ord("1")
            out.append(np.packbits(bits, axis=1, bitorder="little").view("<u8")
                       .astype(np.uint64, copy=False))
        else:
            out.append(_count_entries(count_rows[j]))
    return out


def _count_entries(rows: list[dict]) -> np.ndarray:
    """Nonzero (bit, count) entries per molecule, padded with zeros to the widest molecule."""
    out = np.zeros((len(rows), max((len(r) for r in rows), default=0)), dtype=np.uint32)
    for i, row in enumerate(rows):
        entries = sorted((bit << 8) | min(count, 255) for bit, count in row.items())
        out[i, : len(entries)] = entries
    return out


def _stack(parts: list[np.ndarray], kind: FingerprintKind) -> np.ndarray:
    """Chunks' arrays of one kind as one; count chunks are padded to the widest."""
    if kind.form == "bits":
        return (np.concatenate(parts, axis=0) if parts
                else np.empty((0, kind.length // 64), dtype=np.uint64))
    width = max((p.shape[1] for p in parts), default=0)
    out = np.zeros((sum(len(p) for p in parts), width), dtype=np.uint32)
    start = 0
    for part in parts:
        out[start:start + len(part), : part.shape[1]] = part
        start += len(part)
    return out


def _chunk_bounds(n: int, processes: int) -> list[tuple[int, int]]:
    """Chunks of at most ``_CHUNK`` SMILES, at least ~4 per process so the bar moves and the
    processes finish together."""
    size = max(1, min(_CHUNK, -(-n // (4 * processes)))) if processes > 1 else _CHUNK
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _compute_kinds(smiles: Sequence[object], kinds: Sequence[FingerprintKind], *,
                   progress: bool = False, processes: int = 1, desc: str = "") -> list[np.ndarray]:
    """All ``kinds`` of ``smiles`` in one pass, over ``processes`` processes (1: here).

    A process pool is made and closed here (forked, so nothing is re-imported); chunks are
    collected in order, so the first invalid SMILES is the one reported, as in a serial pass.
    """
    kinds = list(kinds)
    n = len(smiles)
    bounds = _chunk_bounds(n, processes)
    parts: list[list[np.ndarray]] = [[] for _ in kinds]
    bar = None
    if progress:
        from tqdm.auto import tqdm  # deferred: tqdm.auto looks for Jupyter widgets

        bar = tqdm(total=n, desc=desc or phase_text(kinds, f"{n:,} molecules"), unit="mol")

    def keep(chunk: list[np.ndarray], size: int) -> None:
        for j, array in enumerate(chunk):
            parts[j].append(array)
        if bar is not None:
            bar.update(size)

    try:
        if processes <= 1 or len(bounds) <= 1:
            for start, stop in bounds:
                keep(_compute_chunk(smiles[start:stop], start, kinds), stop - start)
        else:
            # imported once here, before the fork, not in every child
            from rdkit import Chem  # noqa: F401
            from rdkit.Chem import rdFingerprintGenerator  # noqa: F401

            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=min(processes, len(bounds)),
                                     mp_context=context) as pool:
                futures = [pool.submit(_compute_chunk, list(smiles[start:stop]), start, kinds)
                           for start, stop in bounds]
                try:
                    for future, (start, stop) in zip(futures, bounds, strict=True):
                        keep(future.result(), stop - start)
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        if bar is not None:
            bar.close()
    return [_stack(p, kind) for p, kind in zip(parts, kinds, strict=True)]


def _compute_fingerprints(smiles: Sequence[str], radius: int, length: int,
                          progress: bool = False) -> np.ndarray:
    """Packed bits of ``smiles`` in one serial pass (no cache): the reference path."""
    return _compute_kinds(smiles, [FingerprintKind("bits", radius, length)], progress=progress)[0]


def _compute_counts(smiles: Sequence[str], radius: int, length: int) -> np.ndarray:
    """Count entries of ``smiles`` in one serial pass (no cache): the reference path."""
    return _compute_kinds(smiles, [FingerprintKind("counts", radius, length)])[0]


def validate_fingerprint_params(radius: int, length: int) -> None:
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if length <= 0 or length % 64:
        raise ValueError(f"length must be a positive multiple of 64, got {length}")


def as_smiles_list(smiles: Sequence[str] | str) -> list[str]:
    """Accept lists, tuples, Series and arrays; a bare string means one molecule."""
    if isinstance(smiles, str):
        return [smiles]
    tolist = getattr(smiles, "tolist", None)  # Series/ndarray: ~20x faster than list()
    return tolist() if callable(tolist) else list(smiles)


# ---------------------------------------------------------------------- cached, by kind


def _cache_file(directory: Path, key: str, kind: FingerprintKind) -> Path:
    return directory / f"{'fp' if kind.form == 'bits' else 'fpcount'}-{key}.npy"


def _kind_key(smiles: Sequence[str], kind: FingerprintKind) -> str:
    version = _FORMAT_VERSION if kind.form == "bits" else _COUNT_FORMAT_VERSION
    return _cache_key(smiles, kind.radius, kind.length, version)


def _load_kind(path: Path, n: int, kind: FingerprintKind) -> np.ndarray | None:
    if kind.form == "bits":
        return _disk_load(path, n, kind.length // 64)
    return _disk_load(path, n, None, np.uint32)


def prepare_fingerprints(
    smiles: Sequence[str],
    kinds: Sequence[FingerprintKind],
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    processes: int | None = None,
    what: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> list[np.ndarray]:
    """Every kind of fingerprint of ``smiles``, each computed once and cached; one read-only
    array per kind, in the order of ``kinds``.

    The kinds found in neither cache are computed together, in one RDKit pass (each molecule
    parsed once), over :func:`fingerprint_processes` processes, with a progress bar saying
    :func:`phase_text` if ``progress``; ``announce(text)`` is called with that text first, only
    when something must be computed (a campaign shows it as its phase). Inputs with at least
    ``CACHE_MIN_SIZE`` SMILES are kept in memory and in ``<cache_dir>`` (written atomically);
    smaller ones are computed each time. Raises :class:`InvalidSmilesError` naming the position
    of the first SMILES RDKit cannot parse.
    """
    smiles = as_smiles_list(smiles)
    kinds = list(dict.fromkeys(kinds))
    n = len(smiles)
    arrays: list[np.ndarray | None] = [None] * len(kinds)
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cached = n >= CACHE_MIN_SIZE
    keys = [_kind_key(smiles, kind) for kind in kinds] if cached else []
    if cached:
        for j, (kind, key) in enumerate(zip(kinds, keys, strict=True)):
            arrays[j] = _memory_get(key)
            if arrays[j] is None:
                arrays[j] = _load_kind(_cache_file(directory, key, kind), n, kind)
                if arrays[j] is not None:
                    arrays[j].setflags(write=False)
                    _memory_put(key, arrays[j])
    missing = [j for j, array in enumerate(arrays) if array is None]
    if missing:
        todo = [kinds[j] for j in missing]
        text = phase_text(todo, what or f"{n:,} molecules")
        if announce is not None:
            announce(text)
        computed = _compute_kinds(smiles, todo, progress=progress, desc=text,
                                  processes=fingerprint_processes(n, processes))
        for j, array in zip(missing, computed, strict=True):
            if cached:
                _disk_save(directory, _cache_file(directory, keys[j], kinds[j]), array)
            array.setflags(write=False)
            if cached:
                _memory_put(keys[j], array)
            arrays[j] = array
    return arrays  # type: ignore[return-value]


def cache_parts(parts: Sequence[Sequence[str]], kinds: Sequence[FingerprintKind],
                arrays: Sequence[np.ndarray], *, cache_dir: str | Path | None = None) -> int:
    """Write the cache files of consecutive ``parts`` of a list whose fingerprints ``arrays``
    (one per kind, from :func:`prepare_fingerprints`) are known; the number written.

    A campaign scores its search space in blocks on Parsl workers, and each worker asks for
    its block's fingerprints: with these files it reads them instead of computing them again.
    A part's count entries are trimmed to its widest molecule, as computing it would give.
    """
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    written, start = 0, 0
    for part in parts:
        part = as_smiles_list(part)
        stop = start + len(part)
        if len(part) >= CACHE_MIN_SIZE:
            for kind, array in zip(kinds, arrays, strict=True):
                path = _cache_file(directory, _kind_key(part, kind), kind)
                if _load_kind(path, len(part), kind) is not None:
                    continue
                piece = array[start:stop]
                if kind.form == "counts":
                    piece = piece[:, : int(np.count_nonzero(piece, axis=1).max(initial=0))]
                _disk_save(directory, path, np.ascontiguousarray(piece))
                written += 1
        start = stop
    return written


def fingerprints(
    smiles: Sequence[str],
    *,
    radius: int = 4,
    length: int = 256,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    processes: int | None = None,
) -> np.ndarray:
    """Packed Morgan fingerprints, cached so each search space is fingerprinted once.

    Returns a read-only ``uint64`` array of shape ``(len(smiles), length // 64)``; see the
    module docstring for the bit layout. Inputs with at least ``CACHE_MIN_SIZE`` SMILES are
    kept in a small in-memory LRU and in ``<cache_dir>/fp-<sha256>.npy`` (shared between
    processes). ``cache_dir`` defaults to :func:`default_cache_dir`; an unusable cache
    directory only disables disk caching. Large inputs are computed over several processes
    (``processes``, see :func:`fingerprint_processes`). Raises :class:`InvalidSmilesError` for
    SMILES that RDKit cannot parse.
    """
    validate_fingerprint_params(radius, length)
    return prepare_fingerprints(smiles, [FingerprintKind("bits", radius, length)],
                                cache_dir=cache_dir, progress=progress, processes=processes)[0]


# ------------------------------------------------------------------ count fingerprints


def count_fingerprints(
    smiles: Sequence[str], *, radius: int = 2, length: int = 2048,
    cache_dir: str | Path | None = None, progress: bool = False, processes: int | None = None,
) -> np.ndarray:
    """Morgan count fingerprints as sparse entries, cached like :func:`fingerprints`.

    Returns a read-only ``uint32`` array ``(len(smiles), width)``: each nonzero entry is
    ``bit << 8 | count`` (counts capped at 255), sorted by bit, and zeros pad the rest. A dense
    ``(n, length)`` matrix of the whole search space (268 MB for QM9 at 2,048 bits) is never
    kept; QM9 molecules have at most a few dozen environments, so this is ~15 MB.
    """
    validate_fingerprint_params(radius, length)
    return prepare_fingerprints(smiles, [FingerprintKind("counts", radius, length)],
                                cache_dir=cache_dir, progress=progress, processes=processes)[0]


def dense_counts(entries: np.ndarray, length: int) -> np.ndarray:
    """The ``(n, length)`` float32 count matrix of :func:`count_fingerprints` entries."""
    dense = np.zeros((len(entries), length), dtype=np.float32)
    rows, cols = np.nonzero(entries)
    values = entries[rows, cols]
    dense[rows, (values >> 8).astype(np.intp)] = values & 0xFF
    return dense
