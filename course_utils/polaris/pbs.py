"""Batch jobs on Polaris: render the PBS job script for a run, submit it, turn job variables into
papermill parameters.

The job script itself is ``submit/run_notebook.pbs`` (plain bash, usable with ``qsub`` directly);
this module fills in its ``#PBS`` directives for a given account, queue, node count and walltime,
checks the parameters before anything waits in a queue, and builds the ``qsub`` command line.

Command line (what ``submit/submit_homework.sh`` and ``submit/submit_sweep.sh`` call)::

    python -m course_utils.polaris.pbs submit -A PROJECT [-q debug] [-n NODES] [-t HH:MM:SS] name=value ...
    python -m course_utils.polaris.pbs sweep  -A PROJECT [...] SWEEP_FILE      # one job per line
    python -m course_utils.polaris.pbs sweep --halving [--eta 3] [--rungs 24,48] -A PROJECT [...] SWEEP_FILE
                                                                       # one job, early termination
    python -m course_utils.polaris.pbs papermill-args NOTEBOOK                 # used inside the job
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from course_utils.campaign.parameters import CampaignParameterError, CampaignParameters
from course_utils.configs import POLARIS_FILESYSTEMS
from course_utils.resilience import error_message, fail
from course_utils.studies.sweep_file import SweepFileError, parse_assignments, parse_value, read_sweep
from course_utils.studies.sweep_plan import SweepError, check_sweep, parse_rungs, read_configs

REPO = Path(__file__).resolve().parents[2]
JOB_SCRIPT = REPO / "submit" / "run_notebook.pbs"
#: One job that runs a whole sweep with early termination (``sweep --halving``).
SWEEP_JOB_SCRIPT = REPO / "submit" / "run_sweep.pbs"
HOMEWORK = "notebooks/4_homework.ipynb"
_WALLTIME = re.compile(r"^\d{1,3}:[0-5]\d:[0-5]\d$")


class SubmitError(ValueError):
    """A submission that cannot work; the message says which option and what to do."""


@dataclass
class JobSpec:
    """One PBS job that runs a notebook through papermill on Polaris compute nodes."""

    account: str
    queue: str = "debug"
    nodes: int = 1
    walltime: str = "00:30:00"
    notebook: str = HOMEWORK
    parameters: dict[str, str] = field(default_factory=dict)
    name: str = ""
    output_root: str = ""
    params_file: str = ""
    workers_per_node: int | None = None
    out_dir: str = ""
    course_root: str = str(REPO)

    def validate(self) -> None:
        if not self.account or not re.match(r"^[A-Za-z0-9_.-]+$", self.account):
            raise SubmitError("--account: give your ALCF project name (e.g. -A MyProject)")
        if not isinstance(self.nodes, int) or self.nodes < 1:
            raise SubmitError(f"--nodes must be a positive integer, got {self.nodes!r}")
        if not _WALLTIME.match(self.walltime):
            raise SubmitError(f"--walltime must look like HH:MM:SS, got {self.walltime!r}")
        if not self.queue or not re.match(r"^[A-Za-z0-9_-]+$", self.queue):
            raise SubmitError(f"--queue {self.queue!r} is not a queue name (e.g. debug, prod)")
        notebook = Path(self.course_root) / self.notebook
        if not notebook.is_file():
            raise SubmitError(f"notebook {self.notebook!r} not found under {self.course_root}")
        if self.params_file and not Path(self.params_file).is_file():
            raise SubmitError(f"--params-file {self.params_file!r} not found")
        check_parameters(notebook, self.parameters)

    @property
    def jobs_root(self) -> Path:
        """Where job folders (and the kept job scripts) go."""
        return Path(self.output_root or Path(self.course_root) / "outputs" / "jobs")

    @property
    def job_name(self) -> str:
        base = self.name or Path(self.notebook).stem
        return re.sub(r"[^A-Za-z0-9_-]", "_", base)[:15] or "notebook"


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, str]:
    """Names and default values (as source text) of the notebook's ``parameters`` cell."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise SubmitError(f"{notebook} must have exactly one cell tagged 'parameters'")
    out: dict[str, str] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.get_source_segment(cells[0].source, node.value) or ""
    return out


def check_parameters(notebook: str | os.PathLike, parameters: Mapping[str, str]) -> None:
    """Refuse unknown names, unusable values and (for the homework) impossible campaigns now,
    not after the job waited in the queue."""
    known = notebook_parameters(notebook)
    for name, value in parameters.items():
        if name not in known:
            raise SubmitError(f"unknown parameter {name!r}; {Path(notebook).name} takes: "
                              f"{', '.join(known)}")
        if "," in value:
            raise SubmitError(f"{name}={value!r}: qsub -v cannot carry commas; put it in a YAML "
                              "file and pass --params-file")
    campaign_names = {"initial_training_count", "max_training_count", "batch_size"}
    if not campaign_names <= set(known):
        return
    names = {f.name for f in fields(CampaignParameters)} - {"config", "workers"}
    values = {n: parse_value(v) for n, v in known.items() if n in names}
    values.update({n: parse_value(v) for n, v in parameters.items() if n in names})
    try:
        CampaignParameters.from_mapping(values).validate()
    except (CampaignParameterError, TypeError) as err:
        raise SubmitError(error_message(err)) from None


def render_job_script(spec: JobSpec, template: str | os.PathLike = JOB_SCRIPT) -> str:
    """The job script with ``#PBS`` directives for this job (account, queue, nodes, walltime)."""
    lines = Path(template).read_text().splitlines()
    body = [line for line in lines[1:] if not line.startswith("#PBS")]
    directives = [
        f"#PBS -N {spec.job_name}",
        f"#PBS -A {spec.account}",
        f"#PBS -q {spec.queue}",
        f"#PBS -l select={spec.nodes}:system=polaris",
        "#PBS -l place=scatter",
        f"#PBS -l walltime={spec.walltime}",
        f"#PBS -l filesystems={POLARIS_FILESYSTEMS}",
        "#PBS -j oe",
    ]
    return "\n".join([lines[0], *directives, *body]) + "\n"


def job_variables(spec: JobSpec) -> dict[str, str]:
    """What the job script reads from ``qsub -v``: where things are, and the notebook parameters."""
    out = {"COURSE_ROOT": str(Path(spec.course_root).resolve()), "NOTEBOOK": spec.notebook}
    if spec.name:
        out["RUN_NAME"] = spec.name
    if spec.output_root:
        out["OUTPUT_ROOT"] = str(Path(spec.output_root).resolve())
    if spec.params_file:
        out["PARAMS_FILE"] = str(Path(spec.params_file).resolve())
    if spec.workers_per_node:
        out["WORKERS_PER_NODE"] = str(spec.workers_per_node)
    if spec.out_dir:
        out["OUT_DIR"] = str(Path(spec.out_dir).resolve())
    out.update(spec.parameters)
    return out


def _by_name(value: str) -> bool:
    """``qsub -v`` splits its list at commas and reads quotes, so a value (a folder's path) with
    either travels in qsub's own environment and is named alone in the list."""
    return any(c in value for c in ",'\"")


def qsub_command(spec: JobSpec, script: str | os.PathLike,
                 extra: Mapping[str, str] | None = None) -> list[str]:
    """``qsub -v ... SCRIPT``; run it with :func:`qsub_environment` added to the environment."""
    variables = ",".join(k if _by_name(v) else f"{k}={v}"
                         for k, v in {**job_variables(spec), **(extra or {})}.items())
    return ["qsub", "-v", variables, str(script)]


def qsub_environment(spec: JobSpec, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The job variables :func:`qsub_command` names without a value: qsub takes them from here."""
    return {k: v for k, v in {**job_variables(spec), **(extra or {})}.items() if _by_name(v)}


def submit(spec: JobSpec, *, dry_run: bool = False, template: str | os.PathLike = JOB_SCRIPT,
           extra: Mapping[str, str] | None = None) -> tuple[str, Path]:
    """Write the job script beside the outputs and ``qsub`` it; returns (job id, script path).

    ``template``: the job script to fill in; ``extra``: further job variables."""
    spec.validate()
    scripts = spec.jobs_root / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    script = scripts / f"{spec.job_name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.pbs"
    script.write_text(render_job_script(spec, template))
    command = qsub_command(spec, script, extra)
    by_name = qsub_environment(spec, extra)
    if dry_run:
        assignments = [f"{k}={shlex.quote(v)}" for k, v in by_name.items()]
        return " ".join([*assignments, shlex.join(command)]), script
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False,
                              env={**os.environ, **by_name})
    except FileNotFoundError:
        raise SubmitError("qsub not found: submit from a Polaris login node") from None
    if proc.returncode != 0:
        raise SubmitError(f"qsub failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "", script


def papermill_arguments(notebook: str | os.PathLike,
                        environ: Mapping[str, str] | None = None) -> list[str]:
    """``-p``/``-y`` options for every notebook parameter given as a job variable.

    ``qsub -v batch_size=8,seed=3`` arrives in the job as environment variables named like the
    notebook's parameters; dict or list values go through ``-y`` (YAML) to keep their type.
    """
    environ = os.environ if environ is None else environ
    args: list[str] = []
    for name in notebook_parameters(notebook):
        if name in environ:
            value = environ[name]
            if value.strip().startswith(("{", "[")):
                args += ["-y", f"{name}: {value}"]
            else:
                args += ["-p", name, value]
    return args


# --- command line ------------------------------------------------------------------------
def _job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-A", "--account", default=os.environ.get("COURSE_PBS_ACCOUNT", ""),
                        help="ALCF project (or set COURSE_PBS_ACCOUNT)")
    parser.add_argument("-q", "--queue", default="debug", help="debug (default), prod, ...")
    parser.add_argument("-n", "--nodes", type=int, default=1, help="compute nodes (default 1)")
    parser.add_argument("-t", "--walltime", default="00:30:00", help="HH:MM:SS (default 00:30:00)")
    parser.add_argument("--notebook", default=HOMEWORK, help=f"default {HOMEWORK}")
    parser.add_argument("--name", default="", help="run name: prefix of the output folder")
    parser.add_argument("--out-root", default="", help="where job folders go (default outputs/jobs)")
    parser.add_argument("--params-file", default="", help="YAML file of further parameters")
    parser.add_argument("--workers-per-node", type=int, default=None, help="default 32")
    parser.add_argument("--dry-run", action="store_true",
                        help="write the job script and print the qsub command, do not submit")


def _spec(args: argparse.Namespace, parameters: dict[str, str], name: str) -> JobSpec:
    return JobSpec(account=args.account, queue=args.queue, nodes=args.nodes,
                   walltime=args.walltime, notebook=args.notebook, parameters=parameters,
                   name=name, output_root=args.out_root, params_file=args.params_file,
                   workers_per_node=args.workers_per_node,
                   out_dir=getattr(args, "out_dir", ""))


def _report(spec: JobSpec, job: str, script: Path, dry_run: bool) -> None:
    where = spec.out_dir or f"{spec.jobs_root}/{spec.name or Path(spec.notebook).stem}-<job id>/"
    if dry_run:
        print(f"job script: {script}\nwould run: {job}")
    else:
        print(f"submitted {job or '(no job id printed)'}: {spec.nodes} node(s), queue "
              f"{spec.queue}, walltime {spec.walltime}\n  job script: {script}\n  outputs: "
              f"{where}  (check with: qstat -u $USER)")


def halving_variables(args: argparse.Namespace) -> dict[str, str]:
    """The sweep checked now, as the job variables of ``submit/run_sweep.pbs`` (rungs planned
    here, so the job runs exactly what was checked; ``:`` because qsub -v splits at commas)."""
    try:
        configs = read_configs(args.sweep_file)
        _, rungs = check_sweep(configs, eta=args.eta, rungs=parse_rungs(args.rungs),
                               min_budget=args.min_budget, common={"simulator": args.simulator})
    except SweepError as err:
        raise SubmitError(str(err)) from None
    return {"SWEEP_FILE": str(Path(args.sweep_file).resolve()), "ETA": str(args.eta),
            "RUNGS": ":".join(str(r) for r in rungs), "SIMULATOR": args.simulator}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.polaris.pbs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("submit", help="submit one notebook run")
    _job_options(one)
    one.add_argument("--out-dir", default="",
                     help="exact output folder; one that holds a run is resumed")
    one.add_argument("parameters", nargs="*", help="notebook parameters as name=value")
    sweep = sub.add_parser("sweep", help="submit one job per line of a sweep file")
    _job_options(sweep)
    sweep.add_argument("sweep_file")
    sweep.add_argument("--halving", action="store_true",
                       help="one job for the whole sweep, stopping configurations that cannot "
                            "catch the leader (python -m course_utils sweep)")
    sweep.add_argument("--eta", type=int, default=3, help="--halving: keep the best 1/eta per rung")
    sweep.add_argument("--rungs", default=None, help="--halving: rung budgets, e.g. 16,32,64")
    sweep.add_argument("--min-budget", type=int, default=None, help="--halving: first rung")
    sweep.add_argument("--simulator", default="xtb", help="--halving: xtb (default) | replay")
    sweep.add_argument("--out-dir", default="",
                       help="--halving: exact sweep folder; one that holds the sweep goes on")
    args_cmd = sub.add_parser("papermill-args", help="(inside a job) print papermill options")
    args_cmd.add_argument("notebook")
    args = parser.parse_args(argv)
    try:
        if args.command == "papermill-args":
            sys.stdout.write("\0".join(papermill_arguments(args.notebook)))
            return 0
        if args.command == "submit":
            spec = _spec(args, parse_assignments(args.parameters), args.name)
            job, script = submit(spec, dry_run=args.dry_run)
            _report(spec, job, script, args.dry_run)
            return 0
        if args.halving:
            spec = _spec(args, {}, args.name or f"{Path(args.sweep_file).stem}-halving")
            variables = halving_variables(args)  # checked before anything is written
            job, script = submit(spec, dry_run=args.dry_run, template=SWEEP_JOB_SCRIPT,
                                 extra=variables)
            _report(spec, job, script, args.dry_run)
            return 0
        if args.out_dir:
            raise SubmitError("--out-dir only applies with --halving (one folder per sweep)")
        sets = read_sweep(args.sweep_file)
        specs = [_spec(args, p, f"{args.name or Path(args.sweep_file).stem}-{i}")
                 for i, p in enumerate(sets, start=1)]
        for spec in specs:  # check every line before submitting any
            spec.validate()
        for spec in specs:
            job, script = submit(spec, dry_run=args.dry_run)
            _report(spec, job, script, args.dry_run)
        return 0
    except (SubmitError, SweepFileError) as err:
        return fail(str(err))


if __name__ == "__main__":
    sys.exit(main())
