"""Computing Morgan fingerprints: the kinds a model reads and the RDKit pass that makes them.

Only the computation, with no cache: :mod:`course_utils.ml.fingerprints` (what the models
call) asks :mod:`course_utils.ml.fingerprint_cache` first and computes here what is missing.
Every kind of a list of SMILES is computed in one RDKit pass (each molecule parsed once), over
forked processes on Linux for large inputs (a pool made and closed per call;
``COURSE_UTILS_FINGERPRINT_PROCESSES=1`` keeps it serial). Serial and parallel passes work on
the same chunks, so they agree bit for bit. Fingerprinting all of QM9 is a few seconds of CPU
per kind, so on a machine whose cores are shared the parallel pass gains less than their number.

Packed layout: fingerprint bit ``i`` is bit ``i % 64`` (least significant first) of word
``i // 64``; arrays have shape ``(n, length // 64)`` and dtype ``uint64``. Count fingerprints are
sparse entries ``bit << 8 | count`` (:func:`dense_counts` unpacks them).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from course_utils.chemistry import InvalidSmilesError

__all__ = [
    "FORMS",
    "FingerprintError",
    "FingerprintKind",
    "InvalidSmilesError",
    "as_smiles_list",
    "compute_kinds",
    "dense_counts",
    "describe_kinds",
    "fingerprint_processes",
    "invalid_smiles",
    "phase_text",
    "validate_fingerprint_params",
]

#: SMILES per chunk when fingerprinting; bounds the temporary unpacked bit matrix.
_CHUNK = 4096

#: The only error fingerprinting raises (a ValueError); the name stays for ``except`` clauses
#: written against it.
FingerprintError = InvalidSmilesError


def invalid_smiles(smiles: object, position: int) -> InvalidSmilesError:
    """The error for ``smiles``, the entry at ``position`` of the list being fingerprinted."""
    reason = "RDKit could not parse it" if isinstance(smiles, str) else "not a string"
    return InvalidSmilesError(smiles, reason, position)


# ---------------------------------------------------------------------- what to compute


@dataclass(frozen=True)
class FingerprintKind:
    """One kind of Morgan fingerprint a model reads: packed ``"bits"``
    (:func:`~course_utils.ml.fingerprints.fingerprints`) or sparse ``"counts"``
    (:func:`~course_utils.ml.fingerprints.count_fingerprints`), of a radius and a length in bits."""

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


def compute_kinds(smiles: Sequence[object], kinds: Sequence[FingerprintKind], *,
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
    return compute_kinds(smiles, [FingerprintKind("bits", radius, length)], progress=progress)[0]


def _compute_counts(smiles: Sequence[str], radius: int, length: int) -> np.ndarray:
    """Count entries of ``smiles`` in one serial pass (no cache): the reference path."""
    return compute_kinds(smiles, [FingerprintKind("counts", radius, length)])[0]


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


def dense_counts(entries: np.ndarray, length: int) -> np.ndarray:
    """The ``(n, length)`` float32 count matrix of
    :func:`~course_utils.ml.fingerprints.count_fingerprints` entries."""
    dense = np.zeros((len(entries), length), dtype=np.float32)
    rows, cols = np.nonzero(entries)
    values = entries[rows, cols]
    dense[rows, (values >> 8).astype(np.intp)] = values & 0xFF
    return dense
