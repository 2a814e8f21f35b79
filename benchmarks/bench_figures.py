"""What each run figure costs beside the warm replayed campaign it shows, in one run.

Replays the 8/24/4 campaign twice (the first call loads the table and the fingerprints), then
draws every run figure of the second run from its records, ``--repeat`` times each, and prints
the best and the median wall seconds of each, and the median CPU seconds of this process (less
sensitive to a machine shared with others), beside the target of 0.15 s per figure, and their
sum beside the warm replay's seconds. The first figure drawn also pays for importing matplotlib
and its font cache; that one-off cost is printed on its own line.

Usage: python benchmarks/bench_figures.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TARGET_S = 0.15


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="draws per figure (default 5)")
    args = parser.parse_args(argv)

    from course_utils.campaign.runner import run_campaign
    from course_utils.figures import campaign as figures
    from course_utils.ground_truth.shipped import load_ground_truth

    table = load_ground_truth("qm9")
    space = "qm9" if table.attrs["coverage"].complete else "truth:qm9"
    params = {"initial_training_count": 8, "max_training_count": 24, "batch_size": 4, "seed": 0,
              "workers": 2, "simulator": "replay", "search_space": space}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_campaign(params, root / "cold", progress=False, plot=False)
        warm = _timed(lambda: run_campaign(params, root / "run", progress=False, plot=False))
        run, out = root / "run", root / "figures"
        draws: dict[str, Callable[[Path], object]] = {
            figures.CAMPAIGN_PNG: lambda path: figures.plot_campaign(run, filename=path),
            figures.UTILIZATION_PNG: lambda path: figures.plot_utilization(run, path),
            figures.MODEL_ERROR_PNG: lambda path: figures.plot_model_error(run, path),
            figures.IE_DISTRIBUTION_PNG: lambda path: figures.plot_ie_distribution(run, path,
                                                                                    table),
        }
        first = _timed(lambda: figures.plot_campaign(run, filename=out / "first.png"))
        timings = {name: [_cpu(lambda d=draw, n=name, i=i: d(out / f"{i}-{n}"))
                          for i in range(args.repeat)] for name, draw in draws.items()}
        seconds = {name: [wall for wall, _ in values] for name, values in timings.items()}
        cpu = {name: [c for _, c in values] for name, values in timings.items()}
        end_of_run = _timed(lambda: run_campaign(params, root / "plotted", progress=False))
    print(f"{table.attrs['coverage']}; replays use search space {space!r}")
    print(f"replayed 8/24/4, warm, no figures:        {warm:7.3f} s")
    print(f"first figure (imports matplotlib, fonts):  {first:7.3f} s  (once per process)")
    # On a shared machine both sides slow down alike: the share of the warm replay is the
    # steadier number (the target, 0.15 s beside a 0.25 s warm replay, is 0.6 of it).
    print(f"{'figure':<22}{'best s':>9}{'median s':>10}{'CPU s':>8}{'target s':>10}"
          f"{'median/target':>15}{'median/warm':>13}")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:<22}{min(values):9.3f}{median:10.3f}{statistics.median(cpu[name]):8.3f}"
              f"{TARGET_S:10.2f}{median / TARGET_S:14.2f}x{median / warm:12.2f}x")
    total = sum(statistics.median(v) for v in seconds.values())
    print(f"all four run figures (medians):            {total:7.3f} s  "
          f"= {total / warm:.1f}x the warm replay")
    print(f"replayed 8/24/4, warm, with its two figures: {end_of_run:7.3f} s")
    return {"warm_replay": [warm], **seconds}


if __name__ == "__main__":
    main()
