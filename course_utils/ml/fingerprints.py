"""The fingerprints the models read, each kind computed once per search space and cached.

The original tutorial fitted ``Pipeline([MorganFingerprintTransformer(256, 4),
KNeighborsRegressor(4, weights="distance", metric="jaccard")])`` and recomputed the
fingerprints of every QM9 molecule on each active-learning iteration, which was ~90% of
the ML step. Here fingerprints are computed once, bit-packed, and cached in memory and on
disk, and the neighbour search runs on the packed words with ``np.bitwise_count``.

This module is what the models and the campaign call: it asks the cache
(:mod:`course_utils.ml.fingerprint_cache`) and computes only what is missing
(:mod:`course_utils.ml.morgan`: the kinds, the RDKit pass, the packed layout). The models
(:mod:`course_utils.ml.knn` and the others) each name the kinds they read
(:class:`~course_utils.ml.morgan.FingerprintKind`: bits or counts, radius, length). A campaign
prepares those of its search space once, before its first round (:func:`prepare_fingerprints`):
every missing kind in one RDKit pass, over forked processes on Linux, with a progress bar saying
what happens, and writes the files its Parsl workers read for their blocks (:func:`cache_parts`).
The names of those two modules stay importable from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from course_utils.cache import default_cache_dir
from course_utils.ml.fingerprint_cache import (
    MEMORY_CACHE_SIZE,
    cache_directory,
    cache_key,
    cache_path,
    clear_memory_cache,
    from_memory,
    keep_in_memory,
    read_cached,
    write_cached,
)
from course_utils.ml.morgan import (
    FORMS,
    MAX_PROCESSES,
    PARALLEL_MIN_SIZE,
    PROCESSES_ENV,
    FingerprintError,
    FingerprintKind,
    InvalidSmilesError,
    as_smiles_list,
    compute_kinds,
    dense_counts,
    describe_kinds,
    fingerprint_processes,
    invalid_smiles,
    phase_text,
    validate_fingerprint_params,
)

__all__ = [
    "CACHE_MIN_SIZE",
    "FORMS",
    "FingerprintError",
    "FingerprintKind",
    "InvalidSmilesError",
    "MAX_PROCESSES",
    "MEMORY_CACHE_SIZE",
    "PARALLEL_MIN_SIZE",
    "PROCESSES_ENV",
    "as_smiles_list",
    "cache_parts",
    "clear_memory_cache",
    "count_fingerprints",
    "default_cache_dir",
    "dense_counts",
    "describe_kinds",
    "fingerprint_processes",
    "fingerprints",
    "invalid_smiles",
    "phase_text",
    "prepare_fingerprints",
    "validate_fingerprint_params",
]

#: Inputs shorter than this skip both caches: they take milliseconds to compute, and caching
#: them would leave one file per active-learning training set in the cache directory.
CACHE_MIN_SIZE = 1000


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
    directory = cache_directory(cache_dir)
    cached = n >= CACHE_MIN_SIZE
    keys = [cache_key(smiles, kind) for kind in kinds] if cached else []
    if cached:
        for j, (kind, key) in enumerate(zip(kinds, keys, strict=True)):
            arrays[j] = from_memory(key)
            if arrays[j] is None:
                arrays[j] = read_cached(cache_path(directory, key, kind), n, kind)
                if arrays[j] is not None:
                    arrays[j].setflags(write=False)
                    keep_in_memory(key, arrays[j])
    missing = [j for j, array in enumerate(arrays) if array is None]
    if missing:
        todo = [kinds[j] for j in missing]
        text = phase_text(todo, what or f"{n:,} molecules")
        if announce is not None:
            announce(text)
        computed = compute_kinds(smiles, todo, progress=progress, desc=text,
                                 processes=fingerprint_processes(n, processes))
        for j, array in zip(missing, computed, strict=True):
            if cached:
                write_cached(directory, cache_path(directory, keys[j], kinds[j]), array)
            array.setflags(write=False)
            if cached:
                keep_in_memory(keys[j], array)
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
    directory = cache_directory(cache_dir)
    written, start = 0, 0
    for part in parts:
        part = as_smiles_list(part)
        stop = start + len(part)
        if len(part) >= CACHE_MIN_SIZE:
            for kind, array in zip(kinds, arrays, strict=True):
                path = cache_path(directory, cache_key(part, kind), kind)
                if read_cached(path, len(part), kind) is not None:
                    continue
                piece = array[start:stop]
                if kind.form == "counts":
                    piece = piece[:, : int(np.count_nonzero(piece, axis=1).max(initial=0))]
                write_cached(directory, path, np.ascontiguousarray(piece))
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

    Returns a read-only ``uint64`` array of shape ``(len(smiles), length // 64)``; see
    :mod:`course_utils.ml.morgan` for the bit layout. Inputs with at least ``CACHE_MIN_SIZE`` SMILES are
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

