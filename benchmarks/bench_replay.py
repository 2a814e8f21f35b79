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

``--stand-in`` times the replays on all of QM9 before the table is complete: molecules the table
does not cover get an IE and seconds drawn (seeded) from the covered ones, in a temporary file
that is deleted afterwards. That is for timing only: its picks and yardsticks mean nothing.

Usage: python benchmarks/bench_replay.py [--grid] [--skip-real] [--stand-in]
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
    parser.add_argument("--stand-in", action="store_true",
                        help="timing only: replay all of QM9, drawing the values the table lacks")
    args = parser.parse_args(argv)

    from course_utils.campaign.runner import run_campaign
    from course_utils.ground_truth.shipped import load_ground_truth

    table = load_ground_truth("qm9")
    coverage = table.attrs["coverage"]
    space = "qm9" if coverage.complete or args.stand_in else "truth:qm9"
    params = {"initial_training_count": 8, "max_training_count": 24, "batch_size": 4, "seed": 0,
              "workers": 2}
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        truth = _stand_in(table, root) if args.stand_in and not coverage.complete else None
        if not args.skip_real:
            out["real"], _ = _timed(lambda: run_campaign(params, root / "real", progress=False))
        replay = {**params, "simulator": "replay", "search_space": space, "ground_truth": truth}
        out["replay_cold"], _ = _timed(lambda: run_campaign(replay, root / "r1", progress=False,
                                                           plot=False))
        out["replay_warm"], result = _timed(lambda: run_campaign(replay, root / "r2",
                                                                progress=False, plot=False))
        out["replay_warm_plot"], _ = _timed(lambda: run_campaign(replay, root / "r3",
                                                                progress=False))
        print(f"{coverage}; replays use search space {space!r}"
              + ("; values it lacks are STAND-INS (timing only)" if truth else ""))
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
            from course_utils.studies.comparison import DEFAULT_STRATEGIES, replay_grid

            seeds = list(range(20))
            out["grid"], _ = _timed(lambda: replay_grid(
                DEFAULT_STRATEGIES, seeds, budget=200, initial=20, batch_size=20,
                search_space=space, ground_truth=truth, out_dir=root / "grid", processes=2))
            print(f"notebook 5 grid ({len(DEFAULT_STRATEGIES)} strategies x {len(seeds)} seeds x "
                  f"budget 200, 2 processes): {out['grid']:.1f} s  (target < 60 s)")
    return out


def _stand_in(table, root: Path) -> str:
    """A table of all of QM9 for timing: the real rows, and for each molecule they lack an IE and
    seconds drawn (seeded) from the real successful rows."""
    import numpy as np
    import pandas as pd

    from course_utils.search_space import load_search_space

    smiles = load_search_space("qm9")["smiles"]
    missing = smiles[~smiles.isin(set(table["smiles"]))].to_numpy()
    ok = table[table["status"] == "ok"]
    rng = np.random.default_rng(0)
    drawn = pd.DataFrame({"smiles": missing, "ie": rng.choice(ok["ie"].to_numpy(), len(missing)),
                          "status": "ok", "error": "",
                          "seconds": rng.choice(ok["seconds"].to_numpy(), len(missing)),
                          "engine": "stand-in"})
    path = root / "stand_in_truth.csv"
    pd.concat([table, drawn], ignore_index=True).to_csv(path, index=False, float_format="%.6f")
    return str(path)


def _full_space_scoring(out: dict[str, float]) -> None:
    """The model's share of a replay on all of QM9, which the table does not limit: the scoring
    rounds of a grid run (training set 20, 40, ... 200), searched incrementally as a replay
    does and from scratch as a real campaign's workers do, side by side."""
    import numpy as np

    from course_utils.ml.fingerprints import fingerprints
    from course_utils.ml.neighbours import IncrementalNeighbours, nearest
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
