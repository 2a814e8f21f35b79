"""The 8/24/4 ML-in-the-loop campaign end to end: this kit vs. the original algorithm, side by side.

Ours is the real command students run (``python -m course_utils run``, a new process that loads
Parsl with 2 local workers), timed twice: with an empty fingerprint cache (first run on a
machine) and with the cache warm. The original is re-implemented faithfully in
``benchmarks/original_tutorial.py`` (fresh process per simulation, unlimited xTB threads,
fingerprints recomputed every iteration). All runs use the full QM9 search space.

Usage: python benchmarks/bench_loop.py [--initial 8 --max 24 --batch 4 --seed 0 --workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _ours(args: argparse.Namespace, out: Path, cache: Path) -> tuple[float, dict]:
    env = {**os.environ, "COURSE_UTILS_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "course_utils", "run", "--initial-training-count",
           str(args.initial), "--max-training-count", str(args.max), "--batch-size",
           str(args.batch), "--seed", str(args.seed), "--workers", str(args.workers),
           "--out", str(out), "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, json.loads((out / "results.json").read_text())


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--initial", type=int, default=8)
    parser.add_argument("--max", type=int, default=24)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-original", action="store_true", help="only time this kit")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from original_tutorial import run_original_loop

    from course_utils.search_space import load_search_space

    label = f"{args.initial}/{args.max}/{args.batch}, seed {args.seed}, {args.workers} workers"
    print(f"ML-in-the-loop campaign {label}, full QM9 search space")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cold, cold_res = _ours(args, tmp_path / "cold", tmp_path / "cache")
        warm, warm_res = _ours(args, tmp_path / "warm", tmp_path / "cache")
        original = float("nan")
        if not args.skip_original:
            space = load_search_space("qm9")["smiles"].tolist()
            start = time.perf_counter()
            found = run_original_loop(space, args.initial, args.max, args.batch, args.seed,
                                      args.workers)
            original = time.perf_counter() - start
            print(f"{'original algorithm (re-implemented)':44s} {original:7.1f} s  "
                  f"({len(found)} simulations, best simulated {found['ie'].max():.3f} eV)")
    for name, wall, res in (("this kit, cold fingerprint cache", cold, cold_res),
                            ("this kit, warm fingerprint cache", warm, warm_res)):
        print(f"{name:44s} {wall:7.1f} s  ({res['totals']['successful']} simulations, "
              f"best simulated {res['best']['ie']:.3f} eV)")
    ratios = {"cold": original / cold, "warm": original / warm}
    if not args.skip_original:
        print(f"speed-up, original / this kit: {ratios['cold']:.1f}x cold cache, "
              f"{ratios['warm']:.1f}x warm cache  [target >= 5x]")
    return {"original": original, "cold": cold, "warm": warm, **ratios}


if __name__ == "__main__":
    main()
