"""16 GFN2-xTB simulations through a local 2-worker Parsl executor vs. the ideal, side by side.

The ideal is the same simulations run standalone, one at a time in this process, divided by the
number of workers. The original tutorial's Parsl runs were 6-20x slower than that because each
simulation paid a fresh Python process and OpenMP oversubscription.

Usage: python benchmarks/bench_simulations.py [--n 16] [--workers 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def _warm_worker() -> str:
    """Import the simulation stack on a worker, as every worker does once in a real run."""
    import os

    import course_utils.chemistry as chem

    chem.compute_vertical("O")
    return str(os.getpid())


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="number of simulations")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the QM9 sample")
    args = parser.parse_args(argv)

    import parsl
    from parsl import python_app

    from course_utils.apps import simulate_app
    from course_utils.chemistry import compute_vertical, resolve_engine
    from course_utils.configs import make_local_config
    from course_utils.search_space import load_search_space, sample_smiles

    molecules = sample_smiles(load_search_space("qm9"), args.n, seed=args.seed)
    print(f"{args.n} QM9 molecules (seed {args.seed}), engine {resolve_engine()}, "
          f"{args.workers} workers")

    compute_vertical("O")  # imports outside the timing, as on a warm worker
    standalone = []
    for smiles in molecules:
        start = time.perf_counter()
        compute_vertical(smiles)
        standalone.append(time.perf_counter() - start)
    serial = sum(standalone)
    ideal = serial / args.workers

    warm_app = python_app(_warm_worker)
    with tempfile.TemporaryDirectory() as run_dir:
        cold_start = time.perf_counter()
        with parsl.load(make_local_config(workers=args.workers, run_dir=run_dir)):
            pids = {f.result() for f in [warm_app() for _ in range(4 * args.workers)]}
            startup = time.perf_counter() - cold_start
            start = time.perf_counter()
            results = [f.result() for f in [simulate_app(s) for s in molecules]]
            parsl_wall = time.perf_counter() - start
    assert all(r > 0 for r in results)

    ratio = parsl_wall / ideal
    print(f"{'standalone, one at a time':38s} {serial:7.2f} s  "
          f"(per molecule: mean {statistics.mean(standalone):.2f} s, max {max(standalone):.2f} s)")
    print(f"{'ideal (standalone / workers)':38s} {ideal:7.2f} s")
    print(f"{'Parsl HTEx, warm workers':38s} {parsl_wall:7.2f} s")
    print(f"{'(one-time executor start + imports)':38s} {startup:7.2f} s  ({len(pids)} workers warmed)")
    print(f"Parsl wall time / ideal: {ratio:.2f}x  [target <= 1.3x]")
    return {"serial": serial, "ideal": ideal, "parsl": parsl_wall, "startup": startup, "ratio": ratio}


if __name__ == "__main__":
    main()
