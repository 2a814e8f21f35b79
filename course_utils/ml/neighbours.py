"""Nearest training molecules by Jaccard distance on packed fingerprints, ties made portable.

Equidistant neighbours are common here: a distance is a ratio of two small bit counts, and
about 40 % of QM9 molecules have a tie among their five nearest in a 24-molecule training set.
So "the k nearest" needs a rule for ties. sklearn's brute-force search leaves it to
``np.argpartition``, whose choice among equal values depends on NumPy's SIMD dispatch
(x86-simd-sort's AVX2 and AVX-512 kernels), so one model could predict differently on a laptop
and on a Polaris node. Here a tie goes to the molecule earlier in the training data. That gives
the same answer on every machine, sklearn's answer wherever the k nearest are unambiguous, and
it lets :class:`IncrementalNeighbours` update the neighbours of a whole search space when
training molecules are appended, instead of searching again (what a replayed campaign does).

Packed layout (see :mod:`course_utils.ml.morgan`): ``uint64`` arrays of shape ``(n, bits // 64)``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["IncrementalNeighbours", "check_packed", "nearest", "popcounts", "tanimoto_distances"]

#: Elements of a (query chunk x train) temporary: ~2 MB per float64 temporary, which bounds
#: memory and measured fastest (it stays in cache).
MAX_BLOCK_ELEMENTS = 1 << 18


def check_packed(fp: np.ndarray, name: str) -> np.ndarray:
    """The array itself, or a ValueError that says what a packed fingerprint array is."""
    fp = np.asarray(fp)
    if fp.ndim != 2 or fp.dtype != np.uint64:
        raise ValueError(
            f"{name} must be a 2-D uint64 packed fingerprint array, "
            f"got {fp.dtype} with shape {fp.shape}"
        )
    return fp


def tanimoto_distances(query_fp: np.ndarray, train_fp: np.ndarray) -> np.ndarray:
    """Jaccard distances between packed fingerprints, identical to scipy's ``jaccard``.

    Computed as ``(|a|b| - |a&b|) / |a|b|`` (the same integer ratio scipy divides, so the
    float64 results match sklearn bit for bit) and 0 when both fingerprints are empty.
    The query is processed in chunks so temporaries stay a few MB whatever the input size.
    """
    query_fp = check_packed(query_fp, "query_fp")
    train_fp = check_packed(train_fp, "train_fp")
    if query_fp.shape[1] != train_fp.shape[1]:
        raise ValueError(
            f"fingerprint lengths differ: {query_fp.shape[1]} vs {train_fp.shape[1]} words"
        )
    n_query, n_train = query_fp.shape[0], train_fp.shape[0]
    out = np.empty((n_query, n_train), dtype=np.float64)
    if n_query == 0 or n_train == 0:
        return out
    train_count = np.bitwise_count(train_fp).sum(axis=1, dtype=np.int32)
    chunk = max(1, MAX_BLOCK_ELEMENTS // n_train)
    for start in range(0, n_query, chunk):
        q = query_fp[start : start + chunk]
        # Looping over the few words avoids a 3-D temporary and a slow short-axis sum.
        inter = np.zeros((q.shape[0], n_train), dtype=np.int32)
        for w in range(q.shape[1]):
            inter += np.bitwise_count(q[:, w, None] & train_fp[None, :, w])
        query_count = np.bitwise_count(q).sum(axis=1, dtype=np.int32)
        union = query_count[:, None] + train_count[None, :] - inter
        np.divide(
            (union - inter).astype(np.float64),
            union,
            out=out[start : start + chunk],
            where=union != 0,
        )
        out[start : start + chunk][union == 0] = 0.0
    return out


def _key_bits(words: int) -> tuple[int, int]:
    """Bits for the distance and for the training position in one int64 ordering key.

    Two different distances a/b and c/d with b, d <= n_bits differ by at least 1/n_bits**2, so
    ``floor(distance * 2**distance_bits)`` with ``2**distance_bits >= 4 * n_bits**2`` keeps
    every distinct distance distinct and every equal one equal.
    """
    distance_bits = 2 * (words * 64).bit_length() + 2
    return distance_bits, 62 - distance_bits  # the distance needs one more bit: it can be 1.0


def _order_keys(dist: np.ndarray, positions: np.ndarray, words: int) -> np.ndarray:
    """int64 keys that sort by distance, then by training position (one per column)."""
    distance_bits, index_bits = _key_bits(words)
    if len(positions) and positions.max() >= 1 << index_bits:
        raise ValueError(f"at most {1 << index_bits:,} training molecules are supported")
    keys = (dist * float(1 << distance_bits)).astype(np.int64)  # truncation: floor, as d >= 0
    keys <<= index_bits
    keys += positions.astype(np.int64)
    return keys


def _smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """The k smallest keys of each row, in order (keys are unique, so this is one answer)."""
    k = min(k, keys.shape[1])
    if keys.shape[1] > 32:  # a value partition first: much faster than sorting long rows
        keys = np.partition(keys, k - 1, axis=1)[:, :k]
    return np.sort(keys, axis=1)[:, :k]


def _search(query_fp: np.ndarray, train_fp: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Ordering keys and distances of each query's k nearest training rows, nearest first,
    chunked over queries so the (chunk x train) temporaries stay small."""
    n_query, words = query_fp.shape
    k = min(k, train_fp.shape[0])
    positions = np.arange(train_fp.shape[0])
    keys_out = np.empty((n_query, k), dtype=np.int64)
    dist_out = np.empty((n_query, k), dtype=np.float64)
    mask = (1 << _key_bits(words)[1]) - 1
    chunk = max(1, MAX_BLOCK_ELEMENTS // max(train_fp.shape[0], 1))
    for start in range(0, n_query, chunk):
        dist = tanimoto_distances(query_fp[start : start + chunk], train_fp)
        keys = _smallest(_order_keys(dist, positions, words), k)
        keys_out[start : start + chunk] = keys
        dist_out[start : start + chunk] = np.take_along_axis(dist, keys & mask, axis=1)
    return keys_out, dist_out


def _positions(keys: np.ndarray, words: int) -> np.ndarray:
    return (keys & ((1 << _key_bits(words)[1]) - 1)).astype(np.intp)


def popcounts(fp: np.ndarray) -> np.ndarray:
    """Set bits per packed fingerprint (row), the |a| of the Tanimoto ratio."""
    return np.bitwise_count(fp).sum(axis=1, dtype=np.int32)


def nearest(query_fp: np.ndarray, train_fp: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and training positions of each query's k nearest, nearest first.

    Ties go to the earlier training row, so the answer is the same on every machine.
    """
    query_fp = check_packed(query_fp, "query_fp")
    train_fp = check_packed(train_fp, "train_fp")
    if not 1 <= k <= train_fp.shape[0]:
        raise ValueError(f"k must be between 1 and {train_fp.shape[0]} (the training rows), "
                         f"got {k}")
    if query_fp.shape[1] != train_fp.shape[1]:
        raise ValueError(
            f"fingerprint lengths differ: {query_fp.shape[1]} vs {train_fp.shape[1]} words")
    keys, dist = _search(query_fp, train_fp, k)
    return dist, _positions(keys, query_fp.shape[1])


class IncrementalNeighbours:
    """The k nearest training rows of a fixed query set, kept up to date as training grows.

    When an :meth:`update`'s training data holds every earlier row (matched by ``ids``, with
    the same fingerprint and value) in the same relative order, with new rows anywhere in
    between (a campaign's training set sorted by SMILES grows like that), only the new rows are
    compared with the queries. The kept neighbours are renumbered (which keeps their order) and
    each new row is inserted into the lists it beats; that gives exactly what :func:`nearest`
    gives. Any other change starts the search over. ``changed`` marks the queries whose
    neighbours (or their values) changed in the last update, so a caller can reuse its
    predictions for the others. The loop itself is compiled
    (:mod:`course_utils.ml.neighbour_loop`).
    """

    def __init__(self, query_fp: np.ndarray, k: int):
        self._query = np.ascontiguousarray(check_packed(query_fp, "query_fp"))
        self.k = int(k)
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        n, words = self._query.shape
        self._train = np.empty((0, words), dtype=np.uint64)
        self._ids: list[Hashable] = []
        self._values: np.ndarray | None = None
        self._query_count = popcounts(self._query)
        self._distance_bits, self._index_bits = _key_bits(words)
        self._index_mask = (1 << self._index_bits) - 1
        self._empty_lists()
        self.changed = np.ones(n, dtype=bool)
        self.rows_searched = 0  # training rows compared with the queries so far (for tests)

    def _empty_lists(self) -> None:
        """Per query and slot: ordering key, distance, bits in common and in either."""
        # deferred: neighbour_loop imports numba (+0.35 s, measured)
        from course_utils.ml.neighbour_loop import EMPTY_KEY

        shape = (self._query.shape[0], self.k)
        self._keys = np.full(shape, EMPTY_KEY, dtype=np.int64)
        self._dist = np.full(shape, np.inf)
        self._common = np.zeros(shape, dtype=np.int32)
        self._either = np.ones(shape, dtype=np.int32)  # similarity 0: any row may enter

    def _kept_positions(self, train_fp: np.ndarray, ids: list[Hashable],
                        values: np.ndarray | None) -> np.ndarray | None:
        """Where each earlier row is now, if they all are there, unchanged and in order."""
        where = {row_id: i for i, row_id in enumerate(ids)}
        if len(where) != len(ids):
            return None  # repeated ids cannot be matched
        if (values is None) != (self._values is None):
            return None
        moved = [where.get(row_id) for row_id in self._ids]
        if None in moved:
            return None
        moved = np.asarray(moved, dtype=np.intp)
        if (np.diff(moved) <= 0).any() or not np.array_equal(train_fp[moved], self._train):
            return None
        if values is not None and not np.array_equal(values[moved], self._values):
            return None
        return moved

    def _merge(self, train_fp: np.ndarray, fresh: np.ndarray) -> None:
        """Insert the rows at positions ``fresh`` of ``train_fp`` into every query's list."""
        # deferred: neighbour_loop imports numba (+0.35 s, measured)
        from course_utils.ml.neighbour_loop import insert_rows

        rows = np.ascontiguousarray(train_fp[fresh])
        insert_rows(self._query, self._query_count, rows, popcounts(rows),
                    fresh.astype(np.int64), self._keys, self._dist, self._common, self._either,
                    self.changed, self._distance_bits, self._index_bits)

    def update(self, train_fp: np.ndarray, ids: Sequence[Hashable] | None = None,
               values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Distances and training positions of the k nearest, as :func:`nearest` returns.

        ``ids`` name the training rows (e.g. their SMILES); without them a row is its position,
        so only appended rows count as new. ``values`` (e.g. the rows' targets) make a row
        whose value changed count as a change of the training data.
        """
        train_fp = check_packed(train_fp, "train_fp")
        if not self.k <= train_fp.shape[0]:
            raise ValueError(f"need at least {self.k} training rows, got {train_fp.shape[0]}")
        if train_fp.shape[1] != self._query.shape[1]:
            raise ValueError(f"fingerprint lengths differ: {self._query.shape[1]} vs "
                             f"{train_fp.shape[1]} words")
        ids = list(range(len(train_fp))) if ids is None else list(ids)
        if len(ids) != len(train_fp):
            raise ValueError(f"{len(ids)} ids for {len(train_fp)} training rows")
        values = None if values is None else np.array(values, dtype=np.float64)
        try:
            self._update(train_fp, ids, values)
        except BaseException:
            self._train, self._ids = self._train[:0], []  # half-merged: the next starts over
            raise
        return self._dist.copy(), self._keys & self._index_mask

    def _update(self, train_fp: np.ndarray, ids: list[Hashable], values: np.ndarray | None
                ) -> None:
        moved = self._kept_positions(train_fp, ids, values)
        self.changed[:] = False
        if moved is None or not len(moved):  # a first or fresh search
            self._empty_lists()
            fresh = np.arange(len(train_fp))
            self.changed[:] = True
        else:
            # Renumber the kept neighbours: their order among themselves holds.
            self._keys = (self._keys & ~self._index_mask) + moved[self._keys & self._index_mask]
            fresh = np.setdiff1d(np.arange(len(train_fp)), moved)
        if len(fresh):
            self._merge(train_fp, fresh)
        self.rows_searched += len(fresh)
        self._train, self._ids, self._values = train_fp.copy(), ids, values
