"""The compiled inner loop of :class:`course_utils.ml.neighbours.IncrementalNeighbours`.

A replay merges each round's new training molecules into the k-nearest lists of every molecule
of the search space. In NumPy that is a dozen passes over the space per new molecule plus
gathers and sorts of the lists it changes; one fused loop (numba) does it in a single pass,
with the same arithmetic, so the answer is the same bit for bit (tests compare it with
:func:`course_utils.ml.neighbours.nearest`).

Imported only when a replay needs it: numba's import and the compilation (about a second,
once per process) are not paid by simulations or real campaigns. Compiled code is not cached
on disk, because numba's on-disk cache is not safe when several processes write it at once.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit, types
    from numba.extending import intrinsic
except ImportError as err:  # pragma: no cover - numba is a dependency of the package
    raise ImportError(
        "replaying campaigns needs numba, a dependency of course_utils: reinstall the "
        "environment (`source activate_env.sh`, or `pip install numba`)"
    ) from err

#: Key of an empty slot of a neighbour list: larger than any real key.
EMPTY_KEY = np.iinfo(np.int64).max


@intrinsic
def popcount(typingctx, word):
    """Set bits of a uint64, as one machine instruction (LLVM's ctpop)."""
    signature = types.uint64(types.uint64)

    def codegen(context, builder, sig, args):
        return builder.ctpop(args[0])

    return signature, codegen


@njit(cache=False)
def insert_rows(query, query_count, rows, row_count, positions, keys, dist, common, either,
                changed, distance_bits, index_bits):  # pragma: no cover - compiled
    """Insert training ``rows`` (at training ``positions``) into every query's sorted k-list.

    Per query and slot: the ordering key (distance, then position), the distance, and the bits
    in common and in either with that neighbour. A row is ranked only when its similarity
    ``common / either`` is at least the k-th neighbour's, compared exactly as integers; its
    distance and key are then computed as :func:`course_utils.ml.neighbours.tanimoto_distances`
    and ``_order_keys`` compute them. ``changed[q]`` is set where a row entered the list.
    """
    n_query, words = query.shape
    k = keys.shape[1]
    scale = float(1 << distance_bits)
    for q in range(n_query):
        kth_common = np.int64(common[q, k - 1])
        kth_either = np.int64(either[q, k - 1])
        for j in range(rows.shape[0]):
            inter = np.int64(0)
            for w in range(words):
                inter += np.int64(popcount(query[q, w] & rows[j, w]))
            union = np.int64(query_count[q]) + np.int64(row_count[j]) - inter
            if union == 0:  # two empty fingerprints: identical, distance 0
                inter = np.int64(1)
                union = np.int64(1)
            if inter * kth_either < kth_common * union:
                continue  # less similar than the k-th: cannot enter
            distance = (union - inter) / union
            key = (np.int64(distance * scale) << index_bits) + positions[j]
            if key >= keys[q, k - 1]:
                continue  # as similar as the k-th, but a later row: the earlier one stays
            slot = k - 1
            while slot > 0 and keys[q, slot - 1] > key:
                keys[q, slot] = keys[q, slot - 1]
                dist[q, slot] = dist[q, slot - 1]
                common[q, slot] = common[q, slot - 1]
                either[q, slot] = either[q, slot - 1]
                slot -= 1
            keys[q, slot] = key
            dist[q, slot] = distance
            common[q, slot] = inter
            either[q, slot] = union
            changed[q] = True
            kth_common = np.int64(common[q, k - 1])
            kth_either = np.int64(either[q, k - 1])
