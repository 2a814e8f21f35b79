"""Where computed fingerprints are kept: an in-memory LRU and ``.npy`` files on disk.

Fingerprinting a search space takes seconds; reading it back takes milliseconds, so
:mod:`course_utils.ml.fingerprints` asks here before computing (:mod:`course_utils.ml.morgan`).
Entries are keyed by a hash of the SMILES, the kind and a format version, so identical inputs
share an entry across processes (Parsl workers read the files a campaign writes) and a stale
layout is never reused. Files are written atomically; caching is an optimisation, so a problem
with the cache directory is one warning, never an error.
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

from course_utils.cache import default_cache_dir
from course_utils.ml.morgan import FingerprintKind, invalid_smiles

__all__ = [
    "MEMORY_CACHE_SIZE",
    "cache_directory",
    "cache_key",
    "cache_path",
    "clear_memory_cache",
    "from_memory",
    "keep_in_memory",
    "read_cached",
    "write_cached",
]

#: Bumped whenever the packed layout changes so stale disk caches are never reused.
_FORMAT_VERSION = "morgan-packed-u64-v1"
_COUNT_FORMAT_VERSION = "morgan-count-entries-u32-v1"

#: Number of fingerprint arrays kept in memory (the search space plus a few others).
MEMORY_CACHE_SIZE = 4

_memory_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_memory_lock = threading.Lock()
_warned_dirs: set[str] = set()


def cache_directory(cache_dir: str | Path | None) -> Path:
    """``cache_dir``, or :func:`~course_utils.cache.default_cache_dir` (read at call time)."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def clear_memory_cache() -> None:
    """Drop in-memory fingerprints, e.g. to simulate a fresh process or free RAM."""
    with _memory_lock:
        _memory_cache.clear()


def cache_key(smiles: Sequence[str], kind: FingerprintKind) -> str:
    """The entry of ``kind`` of ``smiles``, in memory and on disk; raises
    :class:`~course_utils.chemistry.InvalidSmilesError` for an entry that is not a string."""
    version = _FORMAT_VERSION if kind.form == "bits" else _COUNT_FORMAT_VERSION
    return _content_key(smiles, kind.radius, kind.length, version)


def _content_key(smiles: Sequence[str], radius: int, length: int,
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


def from_memory(key: str) -> np.ndarray | None:
    """The array kept under ``key`` in this process, or None (a hit makes it the newest)."""
    with _memory_lock:
        arr = _memory_cache.get(key)
        if arr is not None:
            _memory_cache.move_to_end(key)
        return arr


def keep_in_memory(key: str, arr: np.ndarray) -> None:
    """Keep ``arr`` under ``key``, dropping the oldest beyond :data:`MEMORY_CACHE_SIZE`."""
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


def write_cached(directory: Path, path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` to ``path`` in ``directory`` via a temp file + os.replace, so concurrent
    readers never see a partial file; a failure is one warning per directory."""
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


def cache_path(directory: Path, key: str, kind: FingerprintKind) -> Path:
    """The file of entry ``key`` of ``kind`` in ``directory``."""
    return directory / f"{'fp' if kind.form == 'bits' else 'fpcount'}-{key}.npy"


def read_cached(path: Path, n: int, kind: FingerprintKind) -> np.ndarray | None:
    """The cached array of ``n`` molecules of ``kind`` at ``path``, or None if absent,
    unreadable or of the wrong shape."""
    if kind.form == "bits":
        return _disk_load(path, n, kind.length // 64)
    return _disk_load(path, n, None, np.uint32)

