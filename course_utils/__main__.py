"""Command line: ``python -m course_utils run ...`` and ``python -m course_utils grade ...``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from course_utils.campaign import ACQUISITIONS, MODES, CampaignParameters


def _run_parser(sub) -> None:
    run = sub.add_parser("run", help="run (or resume) an active-learning campaign",
                         description="Run or resume a campaign; re-running with the same --out "
                                     "resumes without recomputing finished simulations.")
    defaults = CampaignParameters()
    run.add_argument("--initial-training-count", type=int, default=defaults.initial_training_count)
    run.add_argument("--max-training-count", type=int, default=defaults.max_training_count)
    run.add_argument("--batch-size", type=int, default=defaults.batch_size)
    run.add_argument("--seed", type=int, default=defaults.seed)
    run.add_argument("--acquisition", default=defaults.acquisition, help="|".join(ACQUISITIONS))
    run.add_argument("--mode", default=defaults.mode, help="|".join(MODES))
    run.add_argument("--search-space", default=defaults.search_space,
                     help="'qm9' or a CSV/TSV file with a smiles column")
    run.add_argument("--config", default=defaults.config, help="local|polaris")
    run.add_argument("--workers", type=int, default=None, help="workers (per node on Polaris)")
    run.add_argument("--ucb-kappa", type=float, default=defaults.ucb_kappa)
    run.add_argument("--epsilon", type=float, default=defaults.epsilon)
    run.add_argument("--retrain-after", type=int, default=None)
    run.add_argument("--score-chunks", type=int, default=None)
    run.add_argument("--engine", default=None, help="xtb|tblite (default: auto)")
    run.add_argument("--simulation-walltime", type=float, default=defaults.simulation_walltime)
    run.add_argument("--max-failures", type=int, default=None)
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument("--account", default=None, help="Polaris: ALCF project to charge")
    run.add_argument("--queue", default=None, help="Polaris: debug|prod|...")
    run.add_argument("--walltime", default=None, help="Polaris: HH:MM:SS of Parsl's own job")
    run.add_argument("--nodes", type=int, default=None, help="Polaris: nodes")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def _grade_parser(sub) -> None:
    grade = sub.add_parser("grade", help="rank a class's homework submissions")
    grade.add_argument("paths", nargs="+", type=Path,
                       help="executed homework notebooks and/or output folders")
    grade.add_argument("--out", type=Path, default=Path("grading"),
                       help="folder for leaderboard.csv, leaderboard.png and not_ranked.csv")
    grade.add_argument("--no-verify", action="store_true",
                       help="do not recompute each run's best molecule with xTB")
    grade.add_argument("--engine", default=None, help="xtb|tblite for the check (default: auto)")


def _run(args: argparse.Namespace) -> int:
    from course_utils.campaign import CampaignParameterError, run_campaign
    from course_utils.records import ResumeMismatchError
    from course_utils.search_space import SearchSpaceError

    names = {f.name for f in fields(CampaignParameters)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    options = {k: getattr(args, k) for k in ("account", "queue", "walltime", "nodes")
               if getattr(args, k) is not None}
    if options and args.config != "polaris":
        return _fail(f"--{', --'.join(options)} only apply with --config polaris")
    if args.config == "polaris" and args.workers is not None:
        options["workers_per_node"] = args.workers
    try:
        parameters = CampaignParameters.from_mapping(values)
        result = run_campaign(parameters, args.out, progress=not args.quiet,
                              config_options=options or None)
    except (CampaignParameterError, ResumeMismatchError, SearchSpaceError, ValueError) as err:
        return _fail(str(err).splitlines()[0])
    except KeyboardInterrupt:
        print(f"interrupted: records kept in {args.out}; re-run the same command to resume",
              file=sys.stderr)
        return 130
    best = result.best
    print(f"{result.results['status']}: {result.results['totals']['successful']} successful "
          f"simulations, {result.results['totals']['failed']} failed")
    if best:
        print(f"best simulated: {best['smiles']}  IE = {best['ie']:.3f} eV "
              f"(after {best['time_to_best_s']:.1f} s, simulation #{best['simulations_to_best']})")
    print(f"outputs in {args.out}/: results.json, simulations.csv, ml_in_the_loop.png")
    return 0 if result.results["status"] == "complete" else 1


def _grade(args: argparse.Namespace) -> int:
    from course_utils.grading import grade_main

    return grade_main(args.paths, args.out, verify=not args.no_verify, engine=args.engine)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _grade_parser(sub)
    args = parser.parse_args(argv)
    return _run(args) if args.command == "run" else _grade(args)


if __name__ == "__main__":
    sys.exit(main())
