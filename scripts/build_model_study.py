"""Replay notebook 10's model x acquisition study and write its per-run records.

Every model (knn, gp, gp:mean=training, rf) with every acquisition (greedy, ucb, ei, thompson),
and random search, over 20 seeds with notebook 5's protocol (20 random molecules, batches of
20, budget 200), replayed against the shipped ground-truth table. Writes
``notebooks/data/10_model_study.csv.gz`` (strategy, seed, n, smiles) and
``10_model_study.provenance.json`` beside it (the code's commit, the settings, the coverage).
Notebook 10 reads them; run this again whenever a model or an acquisition changes what it picks
(notebook 10's live replay cell and tests/test_study_records.py say when).

Usage:
    python scripts/build_model_study.py [--seeds 20] [--processes 2]      # ~5 min on 2 cores
    python scripts/build_model_study.py --check [--strategies "knn greedy" ...] [--check-seeds 0]
        replays those runs again and compares their picks with the shipped rows (exit 1 if any
        differs)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def code_commit() -> dict[str, object]:
    """The commit of the code that replays, and whether course_utils differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              check=False).stdout.strip()

    return {"code_commit": git("rev-parse", "HEAD") or None,
            "code_modified": bool(git("status", "--porcelain", "--", "course_utils"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0 ... N-1 (default 20)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None,
                        help="records file (default notebooks/data/10_model_study.csv.gz)")
    parser.add_argument("--check", action="store_true",
                        help="replay some runs again and compare them with the records")
    parser.add_argument("--strategies", nargs="+", default=None,
                        help="with --check: which strategies (default all)")
    parser.add_argument("--check-seeds", type=int, nargs="+", default=[0],
                        help="with --check: which seeds (default 0)")
    args = parser.parse_args(argv)

    from course_utils.studies import study_records as sr

    out = args.out or REPO / sr.MODEL_STUDY_FILE
    with tempfile.TemporaryDirectory() as folder:
        if args.check:
            try:
                shipped = sr.read_study(out)
                replayed = sr.replay_study(shipped.study, folder, strategies=args.strategies,
                                           seeds=args.check_seeds, processes=args.processes)
            except sr.StudyError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            runs = replayed.groupby(["strategy", "seed"]).ngroups
            diff = sr.differences(shipped.curves, replayed)
            for line in diff:
                print(f"DIFFERS: {line}")
            print(f"{runs - len(diff)} of {runs} replayed runs pick what {out.name} records")
            return 1 if diff else 0
        study = sr.Study.model_grid(n_seeds=args.seeds)
        started = time.perf_counter()
        curves = sr.replay_study(study, folder, processes=args.processes)
        seconds = time.perf_counter() - started
    command = "python scripts/build_model_study.py" + (
        f" --seeds {args.seeds}" if args.seeds != 20 else "")
    sr.write_study(curves, study, out, {
        "what": "notebook 10's model x acquisition study, replayed against the ground truth",
        "command": command, **code_commit(),
        "replay_seconds": round(seconds), "processes": args.processes})
    runs = curves.groupby(["strategy", "seed"]).ngroups
    print(f"{runs} runs replayed in {seconds:.0f} s; records in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
