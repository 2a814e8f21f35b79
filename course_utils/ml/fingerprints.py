"""Morgan fingerprints of SMILES, bit-packed and cached in memory and on disk.

The original tutorial fitted ``Pipeline([MorganFingerprintTransformer(256, 4),
KNeighborsRegressor(4, weights="distance", metric="jaccard")])`` and recomputed the
fingerprints of every QM9 molecule on each active-learning iteration, which was ~90% of
the ML step. Here fingerprints are computed once, bit-packed, and cached in memory and on
disk, and the neighbour search runs on the packed words with ``np.bitwise_count``.

The models (:mod:`course_utils.ml.knn` and the others) all read fingerprints from here.

Packed layout: fingerprint bit ``i`` is bit ``i % 64`` (least significant first) of word
``i // 64``; arrays have shape ``(n, length // 64)`` and dtype ``uint64``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from course_utils.chemistry import InvalidSmilesError

__all__ = [
    "FingerprintError",
    "InvalidSmilesError",
    "clear_memory_cache",
    "count_fingerprints",
    "dense_counts",
    "default_cache_dir",
    "fingerprints",
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


def default_cache_dir() -> Path:
    """Resolve the cache directory at call time so env changes (tests, notebooks) apply."""
    env = os.environ.get("COURSE_UTILS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "course_utils"


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


# ------------------------------------------------------------------------ fingerprints


def _compute_fingerprints(
    smiles: Sequence[str], radius: int, length: int, progress: bool
) -> np.ndarray:
    """Single pass over the SMILES in chunks, so memory stays ~1 MB beyond the output."""
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=length)
    n = len(smiles)
    out = np.empty((n, length // 64), dtype=np.uint64)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="Morgan fingerprints", unit="mol")
    try:
        with rdBase.BlockLogs():  # otherwise RDKit prints one line per bad/odd molecule
            for start in range(0, n, _CHUNK):
                stop = min(start + _CHUNK, n)
                bit_strings = []
                for i in range(start, stop):
                    smi = smiles[i]
                    mol = Chem.MolFromSmiles(smi) if isinstance(smi, str) else None
                    if mol is None:
                        raise invalid_smiles(smi, i)
                    bit_strings.append(generator.GetFingerprint(mol).ToBitString())
                chars = np.frombuffer("".join(bit_strings).encode("ascii"), dtype=np.uint8)
                bits = chars.reshape(stop - start, length) == ord("1")
                packed = np.packbits(bits, axis=1, bitorder="little")
                out[start:stop] = packed.view("<u8")
                if bar is not None:
                    bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()
    return out


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


def fingerprints(
    smiles: Sequence[str],
    *,
    radius: int = 4,
    length: int = 256,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Packed Morgan fingerprints, cached so each search space is fingerprinted once.

    Returns a read-only ``uint64`` array of shape ``(len(smiles), length // 64)``; see the
    module docstring for the bit layout. Inputs with at least ``CACHE_MIN_SIZE`` SMILES are
    kept in a small in-memory LRU and in ``<cache_dir>/fp-<sha256>.npy`` (shared between
    processes). ``cache_dir`` defaults to :func:`default_cache_dir`; an unusable cache
    directory only disables disk caching. Raises :class:`InvalidSmilesError` for SMILES
    that RDKit cannot parse.
    """
    validate_fingerprint_params(radius, length)
    smiles = as_smiles_list(smiles)
    n, words = len(smiles), length // 64
    if n < CACHE_MIN_SIZE:
        arr = _compute_fingerprints(smiles, radius, length, progress)
        arr.setflags(write=False)
        return arr

    key = _cache_key(smiles, radius, length)
    arr = _memory_get(key)
    if arr is not None:
        return arr

    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = directory / f"fp-{key}.npy"
    arr = _disk_load(path, n, words)
    if arr is None:
        arr = _compute_fingerprints(smiles, radius, length, progress)
        _disk_save(directory, path, arr)
    arr.setflags(write=False)
    _memory_put(key, arr)
    return arr


# ------------------------------------------------------------------ count fingerprints


def _compute_counts(smiles: Sequence[str], radius: int, length: int) -> np.ndarray:
    """Nonzero (bit, count) entries per molecule, padded with zeros to the widest molecule."""
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=length)
    rows = []
    with rdBase.BlockLogs():
        for i, smi in enumerate(smiles):
            mol = Chem.MolFromSmiles(smi) if isinstance(smi, str) else None
            if mol is None:
                raise InvalidSmilesError(smi, i)
            rows.append(generator.GetCountFingerprint(mol).GetNonzeroElements())
    out = np.zeros((len(rows), max((len(r) for r in rows), default=0)), dtype=np.uint32)
    for i, row in enumerate(rows):
        entries = sorted((bit << 8) | min(count, 255) for bit, count in row.items())
        out[i, : len(entries)] = entries
    return out


def count_fingerprints(
    smiles: Sequence[str], *, radius: int = 2, length: int = 2048,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """Morgan count fingerprints as sparse entries, cached like :func:`fingerprints`.

    Returns a read-only ``uint32`` array ``(len(smiles), width)``: each nonzero entry is
    ``bit << 8 | count`` (counts capped at 255), sorted by bit, and zeros pad the rest. A dense
    ``(n, length)`` matrix of the whole search space (268 MB for QM9 at 2,048 bits) is never
    kept; QM9 molecules have at most a few dozen environments, so this is ~15 MB.
    """
    validate_fingerprint_params(radius, length)
    smiles = as_smiles_list(smiles)
    if len(smiles) < CACHE_MIN_SIZE:
        arr = _compute_counts(smiles, radius, length)
        arr.setflags(write=False)
        return arr
    key = _cache_key(smiles, radius, length, _COUNT_FORMAT_VERSION)
    arr = _memory_get(key)
    if arr is not None:
        return arr
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = directory / f"fpcount-{key}.npy"
    arr = _disk_load(path, len(smiles), None, np.uint32)
    if arr is None:
        arr = _compute_counts(smiles, radius, length)
        _disk_save(directory, path, arr)
    arr.setflags(write=False)
    _memory_put(key, arr)
    return arr


def dense_counts(entries: np.ndarray, length: int) -> np.ndarray:
    """The ``(n, length)`` float32 count matrix of :func:`count_fingerprints` entries."""
    dense = np.zeros((len(entries), length), dtype=np.float32)
    rows, cols = np.nonzero(entries)
    values = entries[rows, cols]
    dense[rows, (values >> 8).astype(np.intp)] = values & 0xFF
    return dense
