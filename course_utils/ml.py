"""Fast, cached reproduction of the tutorial's Morgan-fingerprint KNN surrogate.

The original tutorial fitted ``Pipeline([MorganFingerprintTransformer(256, 4),
KNeighborsRegressor(4, weights="distance", metric="jaccard")])`` and recomputed the
fingerprints of every QM9 molecule on each active-learning iteration, which was ~90% of
the ML step. Here fingerprints are computed once, bit-packed, and cached in memory and on
disk, and the neighbour search runs on the packed words with ``np.bitwise_count``.

The model is sklearn's brute-force ``KNeighborsRegressor``: the same Jaccard distances (bit
for bit), the same ``weights="distance"`` rule (including exact-match queries, as in
``sklearn.neighbors._base._get_weights``), so the same predictions wherever a molecule's k
nearest neighbours are unambiguous. Among equidistant neighbours sklearn's choice depends on
NumPy's SIMD dispatch; here the earlier training molecule wins (see
:mod:`course_utils.neighbours`), the same on every machine.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from course_utils.neighbours import check_packed, nearest, tanimoto_distances

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FingerprintError",
    "InvalidSmilesError",
    "KNNModel",
    "clear_memory_cache",
    "default_cache_dir",
    "fingerprints",
    "run_model",
    "tanimoto_distances",
    "train_model",
]

#: Bumped whenever the packed layout changes so stale disk caches are never reused.
_FORMAT_VERSION = "morgan-packed-u64-v1"

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


class FingerprintError(ValueError):
    """Base class for fingerprinting failures, a ValueError so generic handlers still work."""


class InvalidSmilesError(FingerprintError):
    """A SMILES string RDKit cannot parse; carries the string and its position."""

    def __init__(self, smiles: object, position: int) -> None:
        self.smiles = smiles
        self.position = position
        reason = "RDKit could not parse it" if isinstance(smiles, str) else "not a string"
        super().__init__(f"invalid SMILES at position {position}: {smiles!r} ({reason})")


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


def _cache_key(smiles: Sequence[str], radius: int, length: int) -> str:
    """Content hash, so identical inputs share a cache entry across processes."""
    h = hashlib.sha256()
    h.update(f"{_FORMAT_VERSION}\nradius={radius}\nlength={length}\n".encode())
    try:
        joined = "\n".join(smiles)
    except TypeError:  # a non-string entry (e.g. NaN from a CSV): report it like bad SMILES
        position = next(i for i, smi in enumerate(smiles) if not isinstance(smi, str))
        raise InvalidSmilesError(smiles[position], position) from None
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


def _disk_load(path: Path, n: int, words: int) -> np.ndarray | None:
    """Return the cached array, or None if absent, unreadable or of the wrong shape."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if arr.dtype != np.uint64 or arr.shape != (n, words):
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
                        raise InvalidSmilesError(smi, i)
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


def _validate_params(radius: int, length: int) -> None:
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if length <= 0 or length % 64:
        raise ValueError(f"length must be a positive multiple of 64, got {length}")


def _as_smiles_list(smiles: Sequence[str] | str) -> list[str]:
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
    _validate_params(radius, length)
    smiles = _as_smiles_list(smiles)
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


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True, eq=False)
class KNNModel:
    """Distance-weighted Jaccard KNN regressor over packed Morgan fingerprints.

    Plain data (tuple + NumPy arrays) so it pickles cheaply to Parsl workers.
    """

    train_smiles: tuple[str, ...]
    train_fps: np.ndarray
    train_ie: np.ndarray
    n_neighbors: int = 4
    radius: int = 4
    length: int = 256

    def __post_init__(self) -> None:
        _validate_params(self.radius, self.length)
        fps = check_packed(self.train_fps, "train_fps")
        ie = np.asarray(self.train_ie, dtype=np.float64)
        smiles = tuple(self.train_smiles)
        n = len(smiles)
        if fps.shape != (n, self.length // 64) or ie.shape != (n,):
            raise ValueError(
                f"inconsistent training data: {n} SMILES, fingerprints {fps.shape}, "
                f"targets {ie.shape} (expected ({n}, {self.length // 64}) and ({n},))"
            )
        if not 1 <= self.n_neighbors <= n:
            raise ValueError(
                f"need at least {self.n_neighbors} training molecules, got {n}"
                if self.n_neighbors >= 1
                else f"n_neighbors must be >= 1, got {self.n_neighbors}"
            )
        object.__setattr__(self, "train_smiles", smiles)
        object.__setattr__(self, "train_fps", fps)
        object.__setattr__(self, "train_ie", ie)

    def _query_fps(self, smiles_or_fps: Sequence[str] | str | np.ndarray) -> np.ndarray:
        if isinstance(smiles_or_fps, np.ndarray) and smiles_or_fps.dtype == np.uint64:
            fps = check_packed(smiles_or_fps, "query fingerprints")
            if fps.shape[1] != self.length // 64:
                raise ValueError(
                    f"query fingerprints have {fps.shape[1]} words, "
                    f"model expects {self.length // 64}"
                )
            return fps
        return fingerprints(_as_smiles_list(smiles_or_fps), radius=self.radius, length=self.length)

    def kneighbors(
        self, smiles_or_fps: Sequence[str] | str | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distances and training indices of the k nearest neighbours, nearest first; among
        equidistant neighbours the earlier training molecule wins."""
        return nearest(self._query_fps(smiles_or_fps), self.train_fps, self.n_neighbors)

    def predict_with_spread(
        self, smiles_or_fps: Sequence[str] | str | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictions plus the std of the k neighbours' targets, an uncertainty for UCB."""
        return self.predict_from_neighbours(*self.kneighbors(smiles_or_fps))

    def predict_from_neighbours(
        self, dist: np.ndarray, ind: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and spreads from :meth:`kneighbors`' answer (or an incremental one).

        Weights follow sklearn's ``weights="distance"``: ``1/d``, except that a query with
        any neighbour at distance 0 averages just those exact matches (weight 1, others 0).
        """
        with np.errstate(divide="ignore"):
            weights = 1.0 / dist
        inf_mask = np.isinf(weights)
        inf_row = np.any(inf_mask, axis=1)
        weights[inf_row] = inf_mask[inf_row]
        neighbour_ie = self.train_ie[ind]
        pred = np.sum(neighbour_ie * weights, axis=1) / np.sum(weights, axis=1)
        spread = np.std(neighbour_ie, axis=1)
        return pred, spread

    def predict(self, smiles_or_fps: Sequence[str] | str | np.ndarray) -> np.ndarray:
        """Predicted ionization energies (eV), same as the sklearn pipeline's ``predict``."""
        return self.predict_with_spread(smiles_or_fps)[0]


def train_model(
    train_data: pd.DataFrame, *, n_neighbors: int = 4, radius: int = 4, length: int = 256,
    fps: np.ndarray | None = None,
) -> KNNModel:
    """Fit the KNN surrogate; "fitting" is just fingerprinting and storing the data.

    ``fps``: the packed fingerprints of ``train_data``'s SMILES, in its order, when they are
    known already (a replay takes them from the search space's cached ones).
    """
    missing = [c for c in ("smiles", "ie") if c not in train_data.columns]
    if missing:
        raise ValueError(
            f"train_data is missing column(s) {missing}; need 'smiles' and 'ie', "
            f"got {list(train_data.columns)}"
        )
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
    if len(train_data) < n_neighbors:
        raise ValueError(f"need at least {n_neighbors} training molecules, got {len(train_data)}")
    try:
        ie = np.asarray(train_data["ie"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"train_data['ie'] must be numeric: {exc}") from exc
    bad = ~np.isfinite(ie)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"train_data['ie'] has {int(bad.sum())} NaN/infinite value(s), first at row "
            f"{first} ({train_data['smiles'].iloc[first]!r}); drop failed calculations first"
        )
    smiles = tuple(train_data["smiles"])
    if fps is None:
        fps = fingerprints(smiles, radius=radius, length=length)
    return KNNModel(
        train_smiles=smiles,
        train_fps=fps,
        train_ie=ie,
        n_neighbors=n_neighbors,
        radius=radius,
        length=length,
    )


def run_model(model: KNNModel, smiles: Sequence[str] | pd.Series) -> pd.DataFrame:
    """Score molecules; search-space fingerprints come from the cache after the first call.

    Returns columns ``smiles``, ``ie`` (predicted, eV) and ``ie_spread`` in input order;
    a Series input keeps its index, as the tutorial's ``pd.DataFrame`` construction did.
    """
    import pandas as pd

    smiles_list = _as_smiles_list(smiles)
    fps = fingerprints(smiles_list, radius=model.radius, length=model.length)
    pred, spread = model.predict_with_spread(fps)
    if isinstance(smiles, pd.Series):  # reuse its values and index: no string re-conversion
        frame = smiles.rename("smiles").to_frame()
        frame["ie"] = pred  # positional, so duplicate index labels are fine
        frame["ie_spread"] = spread
        return frame
    return pd.DataFrame({"smiles": smiles_list, "ie": pred, "ie_spread": spread})
