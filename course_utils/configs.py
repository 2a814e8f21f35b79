"""Parsl configurations: a laptop/CI one and a Polaris one, each built fresh by a function.

The ``-mpi`` variants add a second executor (label ``mpi``) in Parsl's MPI mode beside the
usual workers (label ``htex``), for apps that run MPI programs (:func:`course_utils.apps.cheap_mpi_app`).

A ``Config`` object must not be reused after ``parsl.clear()``, and nothing here may read the
environment (``PBS_NODEFILE``, network interfaces) at import time, so every call builds a new
one. Notebooks use ``with parsl.load(make_config(name, ...)):``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from parsl.config import Config
from parsl.executors import HighThroughputExecutor, MPIExecutor
from parsl.launchers import MpiExecLauncher, SimpleLauncher
from parsl.providers import LocalProvider, PBSProProvider

from course_utils.cache import default_cache_dir
from course_utils.parsl_guard import interchange_command, watch_token, worker_launch_command

CONFIG_NAMES = ("local", "polaris", "local-mpi", "polaris-mpi")
EXECUTOR_LABEL = "htex"
MPI_EXECUTOR_LABEL = "mpi"
#: Extra launcher options (CPU binding) that MPI apps put after ``$PARSL_MPI_PREFIX``.
MPI_OPTIONS_ENV = "COURSE_UTILS_MPI_OPTIONS"
POLARIS_MPI_CORES = 16  # of each node's 32 cores, the last 16 go to MPI ranks in polaris-mpi
POLARIS_CORES_PER_NODE = 32
POLARIS_INTERFACE = "bond0"
POLARIS_FILESYSTEMS = "home:eagle"
#: ALCF: Parsl on Polaris fails with "AF_UNIX path too long" unless workers use a short TMPDIR.
POLARIS_TMPDIR_EXPORT = "export TMPDIR=/tmp"
#: Folder of the shell-safe links to run folders whose names a shell would split (see
#: :func:`parsl_run_dir`); default: ``parsl-links`` in the course's cache folder.
LINKS_DIR_ENV = "COURSE_UTILS_PARSL_LINKS"
_SHELL_SAFE = re.compile(r"[A-Za-z0-9_+./-]+")  # no quoting needed, nor commas or colons


def thread_exports(xtb_threads: int = 1) -> str:
    """Shell exports that keep each worker's xTB (OpenMP) and BLAS to ``xtb_threads`` threads.

    Without them two concurrent simulations took 7 s each instead of 0.3 s (oversubscription).
    """
    if xtb_threads < 1:
        raise ValueError(f"xtb_threads must be >= 1, got {xtb_threads}")
    n = int(xtb_threads)
    return (
        f"export OMP_NUM_THREADS={n} OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "
        f"COURSE_UTILS_XTB_THREADS={n}"
    )


class RunDirMpiExecLauncher(MpiExecLauncher):
    """Parsl's ``MpiExecLauncher``, but its de-duplicated node file goes into the run's
    submit-script folder instead of the current directory (a notebook's folder, on Polaris)."""

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int,
                 script_dir: str = "") -> str:
        script = super().__call__(command, tasks_per_node, nodes_per_block, script_dir)
        # A quoted here-document keeps the worker command as written: a '$' or a backquote in a
        # quoted path (the venv's python) reaches the node's shell unexpanded.
        return (script.replace('HOSTFILE="$JOBNAME.nodes"',
                               'HOSTFILE="${SCRIPT_DIR:+$SCRIPT_DIR/}$JOBNAME.nodes"')
                .replace("cat << MPIEXEC_EOF", "cat << 'MPIEXEC_EOF'"))


def _repo_activate_script() -> Path | None:
    script = Path(__file__).resolve().parents[1] / "activate_env.sh"
    return script if script.is_file() else None


def _check_workers(workers: int | None, name: str = "workers") -> None:
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {workers!r}")


def _tolerant_block_errors(executor, status) -> None:
    """Fail the executor only after three worker blocks in a row failed (a broken environment),
    not when one replaced block (a pool restarted after a lost task) shows up as missing."""
    from parsl.jobs.error_handlers import windowed_error_handler

    windowed_error_handler(executor, status, threshold=3)


def _guarded(**executor_options: Any) -> dict[str, Any]:
    """Executor options that start the interchange and worker pools through
    :mod:`course_utils.parsl_guard`: out of the user's process group, with the same Python as
    this process, and never outliving it."""
    token = watch_token()
    return {"interchange_launch_cmd": interchange_command(token),
            "launch_cmd": worker_launch_command(token),
            "block_error_handler": _tolerant_block_errors, **executor_options}


def make_local_config(
    workers: int | None = None,
    run_dir: str | os.PathLike | None = None,
    *,
    xtb_threads: int = 1,
    retries: int = 0,
) -> Config:
    """HighThroughputExecutor here: ``workers`` single-threaded workers (default: all cores).

    Workers listen on the loopback interface only, so this works offline and on CI.
    """
    _check_workers(workers)
    return _config([_local_executor(workers, xtb_threads)], run_dir, retries)


def _local_executor(workers: int | None, xtb_threads: int) -> HighThroughputExecutor:
    return HighThroughputExecutor(
        label=EXECUTOR_LABEL,
        address="127.0.0.1",
        max_workers_per_node=workers or os.cpu_count() or 1,
        cores_per_worker=1,
        cpu_affinity="none",
        prefetch_capacity=0,
        # A lost pool is noticed in seconds, not the default two minutes; a pool's watchdog
        # looks at its workers every heartbeat period, so a dead worker's task fails with
        # WorkerLost within 2 s (course_utils.campaign.lost_workers).
        **_guarded(heartbeat_period=2, heartbeat_threshold=30),
        provider=LocalProvider(
            init_blocks=1,
            min_blocks=1,
            max_blocks=1,
            worker_init=thread_exports(xtb_threads),
        ),
    )


def is_shell_safe(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one word to a shell, and to lists split at commas or colons
    (ASCII letters, digits and ``_+./-`` only)."""
    return bool(_SHELL_SAFE.fullmatch(os.fspath(path)))


def _links_dir() -> Path:
    """Where the links to unsafe run folders go: shared by every node (home) when its own name
    is safe, else a private folder in /tmp."""
    configured = os.environ.get(LINKS_DIR_ENV)
    if configured:
        return Path(configured).expanduser()

    cache = default_cache_dir().absolute() / "parsl-links"
    if is_shell_safe(cache):
        return cache
    return Path(tempfile.gettempdir() if is_shell_safe(tempfile.gettempdir()) else "/tmp",
                f"course_utils-{os.getuid()}", "parsl-links")


def _prune_dangling(links: Path) -> None:
    """Remove links whose run folder is gone (deleted or renamed outputs)."""
    for link in links.iterdir():
        if link.is_symlink() and not link.exists():
            link.unlink(missing_ok=True)


def parsl_run_dir(run_dir: str | os.PathLike) -> str:
    """The run folder to give Parsl: ``run_dir`` itself when its absolute path is shell-safe,
    else a shell-safe symlink that points at it.

    Parsl writes that path unquoted into the shell commands it runs (worker ``--logdir``, submit
    scripts, ``qsub``), so a space or a parenthesis in it lost every worker. Through the link
    Parsl's files still land in ``run_dir``. Each folder has one link, named by a hash of its
    absolute path and reused by every run into it; links to folders that are gone are removed.
    """
    real = os.path.abspath(run_dir)
    if is_shell_safe(real):
        return os.fspath(run_dir)
    os.makedirs(real, exist_ok=True)  # a dangling link would make Parsl's makedirs fail
    links = _links_dir()
    if not is_shell_safe(links.absolute()):
        raise ValueError(f"{LINKS_DIR_ENV}={links} needs quoting in a shell; "
                         "point it at a folder named with letters, digits and _+./- only")
    links.mkdir(mode=0o700, parents=True, exist_ok=True)
    _prune_dangling(links)
    link = links / hashlib.sha256(real.encode()).hexdigest()[:16]
    if not (link.is_symlink() and os.readlink(link) == real):
        spare = links / f".{link.name}.{os.getpid()}"
        spare.unlink(missing_ok=True)
        spare.symlink_to(real, target_is_directory=True)
        os.replace(spare, link)  # atomic: a run starting at the same time sees one or the other
    return str(link.absolute())


def _config(executors: list, run_dir: str | os.PathLike | None, retries: int, *,
            local: bool = True) -> Config:
    return Config(
        executors=executors,
        run_dir=parsl_run_dir(run_dir if run_dir is not None else "runinfo"),
        retries=retries,
        usage_tracking=0,
        # Locally Parsl starts the first block on the strategy's first tick: 1 s instead of 5 s.
        **({"strategy_period": 1} if local else {}),
    )


class LocalNodesLauncher(SimpleLauncher):
    """Parsl's MPI mode takes its nodes from the batch job's node file; outside a job this
    launcher writes one that names this machine ``slots`` times (one per MPI program running at
    once) into the run's submit-script folder, and points ``PBS_NODEFILE`` at it."""

    def __init__(self, slots: int = 1):
        super().__init__()
        self.slots = slots

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int,
                 script_dir: str = "") -> str:
        nodefile = (shlex.quote(script_dir) + "/" if script_dir else "") + '"$JOBNAME.mpi-nodes"'
        hosts = " ".join(["localhost"] * self.slots)
        return (f"unset SLURM_NODELIST\nprintf '%s\\n' {hosts} > {nodefile}\n"
                f"export PBS_NODEFILE={nodefile}\n"
                + super().__call__(command, tasks_per_node, nodes_per_block, script_dir))


def _mpi_worker_init(worker_init: str, mpi_options: str, *, venv_path: bool) -> str:
    """``worker_init`` plus the binding options MPI apps read; with ``venv_path`` this Python's
    bin/ goes first on PATH, so Parsl's ``mpiexec`` is the MPICH of the ``mpi`` extra."""
    path = f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\"; " \
        if venv_path else ""
    return f"{worker_init}; {path}export {MPI_OPTIONS_ENV}={shlex.quote(mpi_options)}"


def _mpi_executor(provider: Any, mpi_tasks: int, address: str, heartbeat: tuple[int, int]
                  ) -> MPIExecutor:
    """Parsl's MPI-mode executor, started through the guard like the others: its pool runs up to
    ``mpi_tasks`` MPI programs at once, each launched by ``$PARSL_MPI_PREFIX`` (``mpiexec``)."""
    _check_workers(mpi_tasks, "mpi_tasks")
    options = _guarded(heartbeat_period=heartbeat[0], heartbeat_threshold=heartbeat[1])
    # MPIExecutor's signature still types this as a str; HTEX runs it as the list it is.
    interchange = options.pop("interchange_launch_cmd")
    executor = MPIExecutor(label=MPI_EXECUTOR_LABEL, address=address, provider=provider,
                           max_workers_per_block=mpi_tasks, mpi_launcher="mpiexec", **options)
    executor.interchange_launch_cmd = interchange
    return executor


def make_local_mpi_config(
    workers: int | None = None,
    run_dir: str | os.PathLike | None = None,
    *,
    mpi_tasks: int = 1,
    mpi_options: str = "",
    xtb_threads: int = 1,
    retries: int = 0,
) -> Config:
    """:func:`make_local_config` plus an ``mpi`` executor: MPI programs on this machine through
    MPICH's ``mpiexec`` (the venv's, from the ``mpi`` extra), up to ``mpi_tasks`` at once.

    Ranks and workers share this machine's cores: on a laptop, fewer workers leave room for them.
    """
    _check_workers(workers)
    provider = LocalProvider(
        launcher=LocalNodesLauncher(mpi_tasks),
        init_blocks=1,
        min_blocks=1,
        max_blocks=1,
        worker_init=_mpi_worker_init(thread_exports(xtb_threads), mpi_options, venv_path=True),
    )
    executors = [_local_executor(workers, xtb_threads),
                 _mpi_executor(provider, mpi_tasks, "127.0.0.1", heartbeat=(2, 30))]
    return _config(executors, run_dir, retries)


def job_node_count(nodefile: str | os.PathLike | None = None) -> int:
    """Nodes of the running job: lines of ``PBS_NODEFILE`` (one per node on Polaris, as ALCF's
    ``wc -l < $PBS_NODEFILE``), read when called; 1 outside a job."""
    path = nodefile or os.environ.get("PBS_NODEFILE")
    if not path:
        return 1
    try:
        hosts = [line for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as err:
        raise ValueError(f"cannot read the PBS node file {path}: {err}") from None
    return max(len(hosts), 1)


def polaris_worker_init(
    activate_script: str | os.PathLike | None = None, xtb_threads: int = 1
) -> str:
    """Commands each Polaris worker node runs first: a short TMPDIR (ALCF's fix for "AF_UNIX
    path too long"), the course environment, then thread limits."""
    script = activate_script or _repo_activate_script()
    lines = [POLARIS_TMPDIR_EXPORT]
    if script is not None:
        lines.append(f"source {shlex.quote(os.fspath(script))}")
    lines.append(thread_exports(xtb_threads))
    return "; ".join(lines)


def _with_short_tmpdir(worker_init: str) -> str:
    """A user's own Polaris ``worker_init``, with ``TMPDIR=/tmp`` first unless it sets TMPDIR."""
    return worker_init if "TMPDIR" in worker_init else f"{POLARIS_TMPDIR_EXPORT}; {worker_init}"


def make_polaris_config(
    *,
    account: str | None = None,
    queue: str = "debug",
    walltime: str = "01:00:00",
    nodes: int | None = None,
    workers_per_node: int = POLARIS_CORES_PER_NODE,
    interactive: bool | None = None,
    run_dir: str | os.PathLike | None = None,
    address: str | None = None,
    interface: str = POLARIS_INTERFACE,
    worker_init: str | None = None,
    xtb_threads: int = 1,
    cpu_affinity: str = "block",
    launcher_overrides: str | None = None,
    bind_cmd: str = "--cpu-bind",
    retries: int = 0,
) -> Config:
    """Workers on Polaris compute nodes: one manager per node via ``mpiexec``, CPU-pinned workers.

    ``interactive=True`` (default when ``PBS_NODEFILE`` is set at call time) uses the nodes of
    the job this runs in (``qsub -I``, a batch job; ``nodes`` defaults to all of them); otherwise
    Parsl submits its own PBS Pro job with ``account``/``queue``/``walltime``/``nodes``.
    ``bind_cmd`` and ``launcher_overrides`` are Cray PALS ``mpiexec`` options on Polaris; the
    tests pass MPICH's (``--bind-to``, ``--ppn 1``) to run this same path on one machine.
    """
    _check_workers(workers_per_node, "workers_per_node")
    if interactive is None:
        interactive = bool(os.environ.get("PBS_NODEFILE"))
    if nodes is None:
        nodes = job_node_count() if interactive else 1
    if not isinstance(nodes, int) or nodes < 1:
        raise ValueError(f"nodes must be a positive integer, got {nodes!r}")
    if not interactive and not account:
        raise ValueError(
            "make_polaris_config needs account='YOUR_ALCF_PROJECT' to submit a PBS job "
            "(or run inside a job, e.g. `qsub -I`, and pass interactive=True)."
        )
    if address is None:
        from parsl.addresses import address_by_interface

        address = address_by_interface(interface)
    depth = POLARIS_CORES_PER_NODE * 2  # all hardware threads of the node belong to its manager
    if launcher_overrides is None:
        launcher_overrides = f"--depth={depth} --ppn 1"
    launcher = RunDirMpiExecLauncher(bind_cmd=bind_cmd, overrides=launcher_overrides)
    init = (_with_short_tmpdir(worker_init) if worker_init is not None
            else polaris_worker_init(xtb_threads=xtb_threads))
    job = {"account": account, "queue": queue, "walltime": walltime} if not interactive else None
    executor = HighThroughputExecutor(
        label=EXECUTOR_LABEL,
        address=address,
        max_workers_per_node=workers_per_node,
        cores_per_worker=1,
        cpu_affinity=cpu_affinity,
        prefetch_capacity=0,
        **_guarded(heartbeat_period=15, heartbeat_threshold=60),
        provider=_polaris_provider(job, nodes, launcher, init),
    )
    return _config([executor], run_dir, retries, local=False)


def _polaris_provider(job: dict[str, Any] | None, nodes: int, launcher: Any, worker_init: str
                      ) -> LocalProvider | PBSProProvider:
    """The nodes of the job this runs in (``job`` None), or a PBS job of its own
    (``job``: account, queue, walltime)."""
    if job is None:
        return LocalProvider(nodes_per_block=nodes, launcher=launcher, init_blocks=1,
                             min_blocks=1, max_blocks=1, worker_init=worker_init)
    return PBSProProvider(
        **job,
        nodes_per_block=nodes,
        launcher=launcher,
        scheduler_options=f"#PBS -l filesystems={POLARIS_FILESYSTEMS}\n#PBS -l place=scatter",
        select_options="ngpus=4",
        cpus_per_node=POLARIS_CORES_PER_NODE * 2,
        init_blocks=1,
        min_blocks=0,
        max_blocks=1,
        worker_init=worker_init,
    )


def polaris_rank_binding(first_core: int, cores: int, threads: int = 1) -> str:
    """PALS ``mpiexec`` options that pin each rank on a node to ``threads`` cores of its own,
    taken in order from ``first_core`` (ranks per node can be at most ``cores // threads``)."""
    if threads < 1 or cores < threads or first_core < 0:
        raise ValueError(f"cannot bind ranks of {threads} thread(s) to {cores} cores "
                         f"from core {first_core}")
    starts = range(first_core, first_core + cores - threads + 1, threads)
    slots = [str(c) if threads == 1 else f"{c}-{c + threads - 1}" for c in starts]
    return "--cpu-bind list:" + ":".join(slots)


def make_polaris_mpi_config(
    *,
    mpi_tasks: int = 1,
    mpi_cores: int = POLARIS_MPI_CORES,
    mpi_options: str | None = None,
    workers_per_node: int | None = None,
    **polaris: Any,
) -> Config:
    """:func:`make_polaris_config` plus an ``mpi`` executor: up to ``mpi_tasks`` MPI programs
    at once, each spread by PALS ``mpiexec`` over the job's nodes (``PBS_NODEFILE``).

    Inside a job, workers and ranks share each node without sharing cores: the workers
    (``workers_per_node``, default ``32 - mpi_cores``, ``cpu_affinity="block"``) take the first
    cores and ranks are pinned to the last ``mpi_cores`` (``--cpu-bind list:16:...:31``), so a
    program may use up to ``mpi_cores`` ranks per node. Outside a job each executor submits
    a PBS job of its own. ``mpi_options`` replaces the binding; other options go to
    :func:`make_polaris_config`.
    """
    if not isinstance(mpi_cores, int) or not 1 <= mpi_cores < POLARIS_CORES_PER_NODE:
        raise ValueError(f"mpi_cores must be between 1 and {POLARIS_CORES_PER_NODE - 1}, "
                         f"got {mpi_cores!r}")
    if workers_per_node is None:
        workers_per_node = POLARIS_CORES_PER_NODE - mpi_cores
    htex = make_polaris_config(workers_per_node=workers_per_node, **polaris).executors[0]
    threads = polaris.get("xtb_threads", 1)
    if mpi_options is None:
        mpi_options = polaris_rank_binding(POLARIS_CORES_PER_NODE - mpi_cores, mpi_cores, threads)
    init = polaris.get("worker_init")
    init = _mpi_worker_init(_with_short_tmpdir(init) if init is not None
                            else polaris_worker_init(xtb_threads=threads),
                            mpi_options, venv_path=False)  # Cray's mpiexec, never a venv's
    base = htex.provider
    job = ({"account": base.account, "queue": base.queue, "walltime": base.walltime}
           if isinstance(base, PBSProProvider) else None)
    provider = _polaris_provider(job, base.nodes_per_block, SimpleLauncher(), init)
    return _config([htex, _mpi_executor(provider, mpi_tasks, htex.address, heartbeat=(15, 60))],
                   polaris.get("run_dir"), polaris.get("retries", 0), local=False)


def shutdown() -> None:
    """Stop the loaded Parsl configuration, if any; safe to call twice (a re-run last cell)."""
    import parsl
    from parsl.errors import NoDataFlowKernelError

    try:
        dfk = parsl.dfk()
    except NoDataFlowKernelError:
        return
    if not getattr(dfk, "cleanup_called", False):
        dfk.cleanup()
    parsl.clear()


def load_fresh(name: str = "local", **kwargs: Any):
    """Load a new configuration, first shutting down one that an earlier cell left loaded.

    For notebooks whose Parsl work spans several cells, where ``with parsl.load(...)`` cannot:
    re-running the cell never fails with "already loaded".
    """
    import parsl

    shutdown()
    return parsl.load(make_config(name, **kwargs))


def make_config(name: str = "local", **kwargs: Any) -> Config:
    """Build a configuration by name (one of :data:`CONFIG_NAMES`), passing options through.

    ``workers`` means workers on this machine for ``local`` and workers per node for ``polaris``;
    the ``-mpi`` variants add an executor for MPI programs (``mpi_tasks`` of them at once).
    """
    key = str(name).strip().lower()
    if key in ("local", "local-mpi"):
        return (make_local_config if key == "local" else make_local_mpi_config)(**kwargs)
    if key in ("polaris", "polaris-mpi"):
        if "workers" in kwargs:  # notebooks say "workers"; on Polaris that means per node
            workers = kwargs.pop("workers")
            if workers is not None:
                kwargs.setdefault("workers_per_node", workers)
        return (make_polaris_config if key == "polaris" else make_polaris_mpi_config)(**kwargs)
    raise ValueError(f"Unknown Parsl config {name!r}; choose one of {', '.join(CONFIG_NAMES)}.")
