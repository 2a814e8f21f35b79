"""Command line: ``python -m course_utils run ...`` and ``python -m course_utils grade ...``."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, fields
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_type_hints

from course_utils import records as rec
from course_utils.campaign.lineage import LINEAGE_FILE, LineageError, lineage_line, predict_with_version
from course_utils.campaign.parameters import CampaignNote, CampaignParameterError, CampaignParameters
from course_utils.campaign.runner import CampaignInterrupted, run_campaign
from course_utils.campaign.trust import CHECKS_FILE
from course_utils.configs import CONFIG_NAMES
from course_utils.figures.command import figures_main
from course_utils.grading import grade_main
from course_utils.ground_truth.build import build_ground_truth, lower_priority, parse_shard
from course_utils.ground_truth.pack import pack_ground_truth, truth_status
from course_utils.ground_truth.table import (
    GroundTruthError,
    default_build_file,
    default_pack_dir,
    packaged_table_path,
    read_table,
)
from course_utils.records.lock import FolderInUseError
from course_utils.records.recorder import ResumeMismatchError
from course_utils.resilience import error_message
from course_utils.resilience import fail as _fail
from course_utils.search_space import SearchSpaceError
from course_utils.status import is_finished_status, is_stopped_early
from course_utils.studies.sweep import sweep_main


def _out_arg(text: str) -> Path | str:
    """``--out`` as a Path; a blank one stays a str, since Path("") would quietly mean "."."""
    return Path(text) if text.strip() else text


def _flag_type(name: str, annotation: Any) -> type | None:
    """argparse's ``type`` for a parameter: int or float (optional or not); None for str, the
    same as giving none. Any other annotation would need a flag of its own, so it is refused."""
    kinds = ([a for a in get_args(annotation) if a is not type(None)]
             if isinstance(annotation, UnionType) else [annotation])
    if len(kinds) != 1 or kinds[0] not in (int, float, str):
        raise TypeError(f"CampaignParameters.{name}: no flag for a {annotation} parameter")
    return None if kinds[0] is str else kinds[0]


def _add_parameter_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`CampaignParameters` field (``--initial-training-count`` for
    ``initial_training_count``) with its type, default and help: defined once, not restated."""
    types = get_type_hints(CampaignParameters)
    for field in fields(CampaignParameters):
        if field.default is MISSING:
            raise TypeError(f"CampaignParameters.{field.name}: a flag needs a plain default")
        parser.add_argument(f"--{field.name.replace('_', '-')}", default=field.default,
                            type=_flag_type(field.name, types[field.name]),
                            help=field.metadata.get("help"))


def _run_parser(sub) -> None:
    run = sub.add_parser("run", help="run (or resume) an active-learning campaign",
                         description="Run or resume a campaign; re-running with the same --out "
                                     "resumes without recomputing finished simulations.")
    _add_parameter_flags(run)
    run.add_argument("--out", type=_out_arg, required=True, help="output folder")
    run.add_argument("--account", default=None, help="Polaris: ALCF project to charge")
    run.add_argument("--queue", default=None, help="Polaris: debug|prod|...")
    run.add_argument("--walltime", default=None, help="Polaris: HH:MM:SS of Parsl's own job")
    run.add_argument("--nodes", type=int, default=None, help="Polaris: nodes")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def _grade_parser(sub) -> None:
    grade = sub.add_parser("grade", help="rank a class's homework submissions")
    grade.add_argument("paths", nargs="+", type=Path,
                       help="executed homework notebooks and/or output folders")
    grade.add_argument("--out", type=_out_arg, default=Path("grading"),
                       help="folder for leaderboard.csv, leaderboard.png and not_ranked.csv")
    grade.add_argument("--no-verify", action="store_true",
                       help="do not recompute with xTB a best molecule the ground-truth table "
                            "lacks (the table check is always made)")
    grade.add_argument("--rank-duplicates", action="store_true",
                       help="rank runs that are copies of each other (listed in duplicates.csv) "
                            "anyway")
    grade.add_argument("--engine", default=None, help="xtb|tblite for the check (default: auto)")


def _figures_parser(sub) -> None:
    figures = sub.add_parser(
        "figures", help="regenerate every figure of finished runs from their records",
        description="For each run folder: DIR/<run>/campaign.png, model_error.png, "
                    "utilization.png, ie_distribution.png; for all of them DIR/leaderboard.png. "
                    "A path that is not a run folder stops the command with one line (exit 2) "
                    "before anything is written.")
    figures.add_argument("paths", nargs="+", type=Path, help="run output folders")
    figures.add_argument("--out", type=_out_arg, required=True, help="folder for the figures")
    figures.add_argument("--ground-truth", default="qm9",
                         help="ground-truth table file, or a shipped space's name (default qm9)")


def _predict_parser(sub) -> None:
    predict = sub.add_parser(
        "predict", help="predict IE (eV) with a model version a campaign saved",
        description="Predict with RUN/models/vNNNN (the .joblib checked against its .json). "
                    "Invalid SMILES are reported by row; the others are still predicted.")
    predict.add_argument("smiles", nargs="*", help="SMILES to predict")
    # `run --model` spells a model (knn, gp:...); a saved version is `--version` here, and
    # `--model`, which older kits used for it, is still read.
    version = predict.add_mutually_exclusive_group(required=True)
    version.add_argument("--version", type=_out_arg, metavar="RUN/models/vNNNN",
                         help="the saved model version to predict with")
    version.add_argument("--model", type=_out_arg, metavar="RUN/models/vNNNN",
                         help="older spelling of --version")
    predict.add_argument("--input", type=Path, default=None,
                         help="file of SMILES: a CSV with a smiles column, or one per line")
    predict.add_argument("--out", type=_out_arg, default=None, help="write the predictions as CSV")


def _predict(args: argparse.Namespace) -> int:
    flag, version = ("--version", args.version) if args.version is not None else ("--model",
                                                                                  args.model)
    if isinstance(version, str) or not version.name:  # '' or '/': no version is named
        return _fail(f"{flag} {str(version)!r} names no model version; give "
                     "RUN/models/vNNNN (a .joblib with its .json)")
    smiles = list(args.smiles)
    if args.input is not None:
        try:
            smiles += _read_smiles_file(args.input)
        except (OSError, ValueError) as err:
            return _fail(f"cannot read --input {args.input}: {error_message(err)}")
    if not smiles:
        return _fail("nothing to predict: give SMILES or --input FILE")
    problem = _out_problem(args.out, folder=False) if args.out is not None else None
    if problem:
        return _fail(problem)
    try:
        frame, info = predict_with_version(version, smiles)
    except LineageError as err:
        return _fail(str(err))
    print(lineage_line(info))
    for row in frame[frame["error"] != ""].itertuples():
        print(f"row {row.row}: {row.smiles!r}: {row.error}", file=sys.stderr)
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            frame.rename(columns={"ie": "ie_ev", "ie_spread": "ie_spread_ev"}).to_csv(
                args.out, index=False)
        except OSError as err:
            return _fail(_os_error_line(err, args.out))
        print(f"wrote {len(frame)} rows to {args.out}")
    else:
        for row in frame[frame["error"] == ""].itertuples():
            print(f"{row.smiles}\t{row.ie:.3f} eV\t± {row.ie_spread:.3f} eV")
    return 0 if (frame["error"] == "").all() else 1


def _read_smiles_file(path: Path) -> list[str]:
    import pandas as pd

    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0].strip() if text.strip() else ""
    if "smiles" in [c.strip().lower() for c in first.split(",")]:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        column = next(c for c in frame.columns if c.strip().lower() == "smiles")
        return frame[column].tolist()
    return [line.strip() for line in text.splitlines() if line.strip()]


def _sweep_parser(sub) -> None:
    sweep = sub.add_parser(
        "sweep", help="a sweep of configurations that stops the hopeless ones early",
        description="Successive halving: run every configuration of --configs (one per line, "
                    "name=value words as in submit/example_sweep.txt) to a first rung budget, "
                    "keep the best 1/eta (best IE, ties by time), resume them with a larger "
                    "budget, up to the full budget. Writes OUT/sweep.csv, OUT/sweep.json and "
                    "OUT/configs/config-NN/; the same command again goes on where it stopped.")
    sweep.add_argument("--configs", type=Path, required=True, help="configurations file")
    sweep.add_argument("--out", type=_out_arg, required=True, help="the sweep's folder")
    sweep.add_argument("--eta", type=int, default=3, help="keep the best 1/eta at each rung")
    sweep.add_argument("--rungs", default=None,
                       help="rung budgets (successful simulations), e.g. 16,32,64")
    sweep.add_argument("--min-budget", type=int, default=None,
                       help="first rung's budget; then x eta per rung (default: from eta and "
                            "the number of configurations)")
    sweep.add_argument("--budget", type=int, default=None,
                       help="full budget for every configuration (default: their "
                            "max_training_count, which must agree)")
    sweep.add_argument("--simulator", default="xtb", help="xtb | replay")
    sweep.add_argument("--search-space", default=None,
                       help="default qm9 (with --simulator replay truth:qm9, the part of QM9 "
                            "the table covers: all of it for the shipped table)")
    sweep.add_argument("--ground-truth", default=None, help="replay: table file")
    sweep.add_argument("--config", default="local", help="local|polaris")
    sweep.add_argument("--workers", type=int, default=None, help="workers (per node on Polaris)")
    sweep.add_argument("--quiet", action="store_true", help="no line per campaign")


def _sweep(args: argparse.Namespace) -> int:
    problem = _out_problem(args.out)
    if problem:
        return _fail(problem)
    try:
        return sweep_main(args)
    except OSError as err:
        return _fail(_os_error_line(err, args.out))
    except (ValueError, LookupError) as err:  # e.g. a table a sweep's worker could not load
        return _fail(err)


def _truth_parser(sub) -> None:
    truth = sub.add_parser("truth", help="build or inspect the ground-truth table of a search space")
    verbs = truth.add_subparsers(dest="verb", required=True)
    build = verbs.add_parser("build", help="simulate every molecule not yet in the table (resumable)")
    build.add_argument("--search-space", default="qm9")
    build.add_argument("--config", default="local", help="local|polaris")
    build.add_argument("--workers", type=int, default=None, help="workers (per node on Polaris)")
    build.add_argument("--out", type=_out_arg, default=None,
                       help="CSV the results are appended to (default outputs/ground_truth/SPACE.csv)")
    build.add_argument("--shard", default=None, help="i/n: only part i of n (split across jobs)")
    build.add_argument("--limit", type=int, default=None, help="simulate at most this many now")
    build.add_argument("--engine", default=None, help="xtb|tblite (default: auto)")
    build.add_argument("--nodes", type=int, default=None, help="Polaris: nodes")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.add_argument("--nice", action="store_true",
                       help="yield the CPU to everything else (nice 19, and on Linux its "
                            "session's scheduling group; start it with setsid)")
    status = verbs.add_parser("status", help="coverage, failures and remaining compute")
    status.add_argument("--search-space", default="qm9")
    status.add_argument("--out", type=_out_arg, default=None, help="the build file to include")
    status.add_argument("--workers", type=int, default=None)
    pack = verbs.add_parser(
        "pack", help="merge build files with the shipped table into a folder of yours",
        description="Writes OUT/SPACE_ground_truth.csv.gz and its .provenance.json; the "
                    "package's own files are only read (to ship a new table, copy the two "
                    "files into course_utils/data by hand).")
    pack.add_argument("--search-space", default="qm9")
    pack.add_argument("--out", type=_out_arg, default=default_pack_dir(),
                      help=f"folder for the packed table (default {default_pack_dir()})")
    pack.add_argument("build_files", nargs="*", type=Path)


def _truth_problem(args: argparse.Namespace) -> str | None:
    """Values of ``truth build`` and ``pack`` that parse but cannot be meant; one line."""
    if args.verb == "pack":
        return _out_problem(args.out)
    if args.verb != "build":
        return None
    if args.limit is not None and args.limit < 0:
        return f"--limit {args.limit}: give how many molecules to simulate now (0 or more)"
    if str(args.config).lower() not in CONFIG_NAMES:
        return f"--config {args.config!r} is unknown; choose one of {', '.join(CONFIG_NAMES)}"
    return _out_problem(args.out, folder=False) if args.out is not None else None


def _truth(args: argparse.Namespace) -> int:
    problem = _truth_problem(args)
    if problem:
        return _fail(problem)
    try:
        if args.verb == "status":
            print(truth_status(args.search_space, args.out, args.workers))
            return 0
        if args.verb == "pack":
            files = args.build_files or [default_build_file(args.search_space)]
            table = pack_ground_truth(args.search_space, files, args.out)
            print(f"packed {table} (to ship it, copy it and its provenance into course_utils/data)")
            print(truth_status(args.search_space, files[0]))
            return 0
        options = {"nodes": args.nodes} if args.nodes is not None else None
        if args.nice:
            lower_priority()
        report = build_ground_truth(
            args.search_space, out=args.out, config=args.config, workers=args.workers,
            shard=parse_shard(args.shard), limit=args.limit, engine=args.engine,
            progress=not args.quiet, config_options=options)
    except (GroundTruthError, ValueError, OSError) as err:
        return _fail(err)
    print(f"{'interrupted' if report.interrupted else 'done'}: {report.computed:,} of "
          f"{report.todo:,} molecules simulated this time ({dict(report.statuses)}), "
          f"{report.compute_seconds / 3600:.2f} core-hours in {report.wall_seconds / 60:.1f} min; "
          f"results in {report.build_file}")
    print(truth_status(args.search_space, report.build_file, args.workers))
    return 130 if report.interrupted else 0


_SIGNAL_NUMBERS = {"SIGINT": 2, "SIGHUP": 1, "SIGTERM": 15}


def _run(args: argparse.Namespace) -> int:
    names = {f.name for f in fields(CampaignParameters)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    options = {k: getattr(args, k) for k in ("account", "queue", "walltime", "nodes")
               if getattr(args, k) is not None}
    on_polaris = args.config in ("polaris", "polaris-mpi")
    if options and not on_polaris:
        return _fail(f"--{', --'.join(options)} only apply with --config polaris")
    if on_polaris and args.workers is not None:
        options["workers_per_node"] = args.workers
    try:
        parameters = CampaignParameters.from_mapping(values)
        # Before the folder exists (bad input leaves nothing behind); builds the parts once:
        # the campaign takes the same ones from `parameters`.
        parameters.validate()
        problem = _out_folder_problem(args.out)
        if problem:
            return _fail(problem)
        result = run_campaign(parameters, args.out, progress=not args.quiet,
                              config_options=options or None)
    except (CampaignParameterError, ResumeMismatchError, SearchSpaceError, FolderInUseError,
            ValueError, LookupError) as err:
        return _fail(err)
    except OSError as err:  # after the folder checks: a full or read-only disk mid-run
        return _fail(_os_error_line(err, args.out))
    except CampaignInterrupted as err:
        print(str(err).replace("run it again", "run the same command again"), file=sys.stderr)
        return 128 + _SIGNAL_NUMBERS.get(err.cause.removeprefix("stopped by "), 2)
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
    written = existing_outputs(args.out)
    print(f"outputs in {args.out}/: {', '.join(written)}" if written
          else f"no output files in {args.out}/")
    if is_stopped_early(result.results["status"]):
        print(result.results["message"])
    return 0 if is_finished_status(result.results["status"]) else 1


def _out_folder_problem(out: Path) -> str | None:
    """Why ``--out`` cannot be the run's folder (one line), creating it if needed; None if fine."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder; give a folder (new or from an earlier run)"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot create the --out folder {out}: {err.strerror or err}"
    if not os.access(out, os.W_OK | os.X_OK):
        return f"cannot write into the --out folder {out}: permission denied"
    return None


def _out_problem(out: Path, folder: bool = True) -> str | None:
    """Why ``--out`` (a folder, or with ``folder=False`` a file) cannot be written, found
    without creating anything: the command may still refuse its input first. None if fine."""
    if folder and out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder; give a folder"
    if not folder and out.is_dir():
        return f"--out {out} is a folder; give a file name in it, e.g. {out / 'out.csv'}"
    existing = out if folder else out.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create --out {out}: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"cannot write --out {out}: {existing} is read-only or not yours; "
                "give an --out you can write to")
    return None


def _os_error_line(err: OSError, out: Path) -> str:
    """One line for an OSError that got past the --out checks (a disk that filled up or became
    read-only); one about another file, or none (a network port), is not blamed on --out."""
    what = err.strerror or error_message(err)
    if err.filename is None:
        return what
    line = f"{what}: {err.filename}"
    name, mine = Path(os.path.abspath(err.filename)), Path(os.path.abspath(out))
    if name.is_relative_to(mine) or mine.is_relative_to(name):
        return f"cannot write --out {out} ({line}); give an --out you can write to"
    return line


def existing_outputs(out: Path) -> list[str]:
    """The run's output files that really exist in ``out`` (a run without successes has no plot)."""
    names = (rec.RESULTS_FILE, rec.SIMULATIONS_FILE, rec.ITERATIONS_FILE, rec.PLOT_FILE,
             LINEAGE_FILE, CHECKS_FILE)
    return [name for name in names if (Path(out) / name).is_file()]


def _grade(args: argparse.Namespace) -> int:
    problem = _out_problem(args.out)
    if problem:
        return _fail(problem)
    try:
        return grade_main(args.paths, args.out, verify=not args.no_verify, engine=args.engine,
                          rank_duplicates=args.rank_duplicates)
    except OSError as err:
        return _fail(_os_error_line(err, args.out))


def _figures(args: argparse.Namespace) -> int:
    problem = (_out_problem(args.out) or _ground_truth_problem(args.ground_truth)
               or next(filter(None, map(_run_to_draw_problem, args.paths)), None))
    if problem:
        return _fail(problem)
    return figures_main(args.paths, args.out, truth=args.ground_truth)


def _ground_truth_problem(truth: str) -> str | None:
    """Why ``figures --ground-truth`` names no usable table (a file, or a shipped space's name)."""
    path = Path(truth)
    if not path.exists() and packaged_table_path(truth).exists() and not path.suffix:
        return None  # a shipped space's name: qm9
    if not path.is_file():
        return (f"--ground-truth {truth}: no such file, and no table is shipped for a space of "
                "that name; give a table from `truth build` or qm9")
    try:
        table = read_table(path)
    except (GroundTruthError, ValueError, OSError) as err:
        return f"--ground-truth {truth}: {error_message(err)}"
    if not (table["status"] == rec.STATUS_OK).any():
        return f"--ground-truth {truth}: the table holds no molecule with an IE"
    return None


def _run_to_draw_problem(path: Path) -> str | None:
    """Why a run folder has nothing ``figures`` can draw faithfully: no finished records."""
    if not rec.is_run_folder(path):
        return None  # not a run at all: figures_main names it
    try:
        sims = rec.read_simulations(path)
    except (ValueError, OSError) as err:
        return f"{path}: {error_message(err)}"
    if sims.empty:
        return f"{path}: {rec.SIMULATIONS_FILE} holds no simulation; nothing to draw yet"
    if not (path / rec.RESULTS_FILE).is_file():
        return (f"{path}: no {rec.RESULTS_FILE} (a run killed before its first one, or the file "
                "was deleted); run the same command again to finish the run, then draw it")
    return None


def _argument_problem(args: argparse.Namespace) -> str | None:
    """Values argparse accepts but no command can use: a blank --out, --workers below 1."""
    out = getattr(args, "out", None)
    if isinstance(out, str):
        return f"--out is empty ({out!r}); give a path, e.g. --out outputs/mine"
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        return f"--workers {workers}: give at least 1 worker, or leave --workers out"
    return None


@contextmanager
def _notes_as_lines() -> Iterator[None]:
    """Show a :class:`CampaignNote` as one ``note:`` line (not a warning's file, line number
    and source); other warnings as before."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, CampaignNote):
            print(f"note: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _grade_parser(sub)
    _truth_parser(sub)
    _figures_parser(sub)
    _predict_parser(sub)
    _sweep_parser(sub)
    args = parser.parse_args(argv)
    problem = _argument_problem(args)
    if problem:
        return _fail(problem)
    handlers = {"run": _run, "grade": _grade, "truth": _truth, "figures": _figures,
                "predict": _predict, "sweep": _sweep}
    with _notes_as_lines():
        return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
