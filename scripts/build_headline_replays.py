"""Replay notebook 3's default campaign over 20 seeds, beside random search and the tutorial's KNN.

Notebook 3 (and the README's first command) draw the real run over these replays' bands, and
close with how often each strategy beat random search. Replaying them takes a minute or two on
2 cores, so they ship with the package: this script writes
``course_utils/data/headline_replays.csv.gz`` (the curves) and ``headline_replays.json`` (what
they were replayed with). ``tests/test_headline.py`` replays two of the seeds again and checks
that they match the shipped rows, so a change of the engine that changes them is caught.

Usage: python scripts/build_headline_replays.py [--processes 2]
"""

from __future__ import annotations

import argparse
import tempfile

from course_utils.ground_truth.table import package_data_dir
from course_utils.studies.headline import (
    DEFAULT_CAMPAIGN,
    SEEDS,
    beats_random,
    grid_settings,
    replay_bands,
    write_shipped_replays,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        curves = replay_bands(DEFAULT_CAMPAIGN, folder, processes=args.processes, shipped=False)
    for path in write_shipped_replays(curves, grid_settings(DEFAULT_CAMPAIGN, SEEDS),
                                      package_data_dir()):
        print(f"wrote {path}")
    print(beats_random(curves).to_string())


if __name__ == "__main__":
    main()
