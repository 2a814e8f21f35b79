"""Replay against real campaigns, side by side: what the ground-truth table buys a class.

Runs, in one process and one go:
  1. the real 8/24/4 campaign (GFN2-xTB on a local Parsl executor, 2 workers), through
     ``run_campaign``, executor start-up included, as a student runs it;
  2. the same campaign replayed from the ground-truth table (in this process, no executor),
     cold (first call: table and fingerprints loaded) and warm (second call), with and without
     the end-of-run plot;
  3. optionally notebook 5's default grid of replays (``--grid``).

While the table is partial, the replays use the space it covers (``truth:qm9``) and say so; the
real campaign uses all of QM9, and so does a timing of the model's share of a replay (scoring
rounds on all 130,831 molecules, incremental as in a replay against from scratch).

Usage: python benchmarks/bench_replay.py [--grid] [--skip-real]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", action="store_true", help="also time notebook 5's default grid")
    parser.add_argument("--skip-real", action="store_true", help="no real xTB campaign")
    args = parser.parse_args(argv)

    from course_utils.campaign import run_campaign
    from course_utils.ground_truth import load_ground_truth

    coverage = load_ground_truth("qm9").attrs["coverage"]
    space = "qm9" if coverage.complete else "truth:qm9"
    params = {"initial_training_count": 8, "max_training_count": 24, "batch_size": 4, "seed": 0,
              "workers": 2}
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_real:
            out["real"], _ = _timed(lambda: run_campaign(params, root / "real", progress=False))
        replay = {**params, "simulator": "replay", "search_space": space}
        out["replay_cold"], _ = _timed(lambda: run_campaign(replay, root / "r1", progress=False,
                                                           plot=False))
        out["replay_warm"], result = _timed(lambda: run_campaign(replay, root / "r2",
                                                                progress=False, plot=False))
        out["replay_warm_plot"], _ = _timed(lambda: run_campaign(replay, root / "r3",
                                                                progress=False))
        print(f"{coverage}; replays use search space {space!r}")
        if "real" in out:
            print(f"real 8/24/4 campaign (xTB, 2 workers, Parsl start-up included): "
                  f"{out['real']:7.2f} s")
        print(f"replayed 8/24/4, cold (table + fingerprints loaded):       {out['replay_cold']:7.3f} s")
        print(f"replayed 8/24/4, warm, no plot:                            {out['replay_warm']:7.3f} s"
              f"  (target < 0.5 s)")
        print(f"replayed 8/24/4, warm, with the plot:                      "
              f"{out['replay_warm_plot']:7.3f} s")
        print(f"  its simulated clock: {result.results['totals']['wall_time_s']:.1f} s")
        if "real" in out:
            print(f"real / warm replay: {out['real'] / out['replay_warm']:.0f}x")
        _full_space_scoring(out)
        if args.grid:
            from course_utils.comparison import DEFAULT_STRATEGIES, replay_grid

            seeds = list(range(20))
            out["grid"], _ = _timed(lambda: replay_grid(
                DEFAULT_STRATEGIES, seeds, budget=200, initial=20, batch_size=20,
                search_space=space, out_dir=root / "grid", processes=2))
            print(f"notebook 5 grid ({len(DEFAULT_STRATEGIES)} strategies x {len(seeds)} seeds x "
                  f"budget 200, 2 processes): {out['grid']:.1f} s  (target < 60 s)")
    return out


def _full_space_scoring(out: dict[str, float]) -> None:
    """The model's share of a replay on all of QM9, which the table does not limit: the scoring
    rounds of a grid run (training set 20, 40, ... 200), searched incrementally as a replay
    does and from scratch as a real campaign's workers do, side by side."""
    import numpy as np

    from course_utils.ml import fingerprints
    from course_utils.neighbours import IncrementalNeighbours, nearest
    from course_utils.search_space import load_search_space

    smiles = load_search_space("qm9")["smiles"].tolist()
    fps = fingerprints(smiles)
    picks = np.random.default_rng(0).choice(len(fps), 200, replace=False)
    rounds = [sorted(picks[:n].tolist(), key=smiles.__getitem__) for n in range(20, 201, 20)]
    start = time.perf_counter()
    incremental = IncrementalNeighbours(fps, 4)
    for rows in rounds:
        incremental.update(fps[rows], [smiles[i] for i in rows])
    out["rounds_incremental"] = time.perf_counter() - start
    start = time.perf_counter()
    for rows in rounds:
        nearest(fps, fps[rows], 4)
    out["rounds_scratch"] = time.perf_counter() - start
    print(f"neighbours of all {len(fps):,} QM9 molecules for 10 training sets (20..200): "
          f"incremental {out['rounds_incremental']:.2f} s, from scratch "
          f"{out['rounds_scratch']:.2f} s ({out['rounds_scratch'] / out['rounds_incremental']:.1f}x)")


if __name__ == "__main__":
    main()
