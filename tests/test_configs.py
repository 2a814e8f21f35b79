"""Parsl configuration factories: fresh objects, clear errors, the right Polaris pieces."""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from parsl.launchers import MpiExecLauncher
from parsl.providers import LocalProvider, PBSProProvider

from course_utils import configs
from course_utils.configs import make_config, make_local_config, make_polaris_config


def test_local_config_is_loopback_and_single_threaded(tmp_path):
    cfg = make_local_config(workers=3, run_dir=tmp_path)
    (ex,) = cfg.executors
    assert ex.address == "127.0.0.1"
    assert ex.max_workers_per_node == 3
    assert isinstance(ex.provider, LocalProvider)
    assert "OMP_NUM_THREADS=1" in ex.provider.worker_init
    assert cfg.run_dir == str(tmp_path)


def test_every_call_builds_a_new_config():
    a, b = make_config("local", workers=1), make_config("local", workers=1)
    assert a is not b and a.executors[0] is not b.executors[0]


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2"])
def test_bad_worker_counts_are_rejected(bad):
    with pytest.raises(ValueError, match="workers"):
        make_local_config(workers=bad)


def test_unknown_config_name_lists_the_choices():
    with pytest.raises(ValueError, match="local, polaris"):
        make_config("frontier")


def test_import_reads_nothing_from_the_environment(monkeypatch):
    monkeypatch.delenv("PBS_NODEFILE", raising=False)
    importlib.reload(configs)  # the original tutorial's config crashed here outside a PBS job
    assert configs.make_config("local").executors


def test_polaris_batch_config_submits_a_pbs_job():
    cfg = make_polaris_config(
        account="MyProject", queue="prod", walltime="02:00:00", nodes=4,
        interactive=False, address="10.0.0.1",
    )
    (ex,) = cfg.executors
    provider = ex.provider
    assert isinstance(provider, PBSProProvider)
    assert provider.account == "MyProject" and provider.queue == "prod"
    assert provider.walltime == "02:00:00" and provider.nodes_per_block == 4
    assert "filesystems=home:eagle" in provider.scheduler_options
    assert isinstance(provider.launcher, MpiExecLauncher)
    assert provider.launcher.bind_cmd == "--cpu-bind"
    assert "--ppn 1" in provider.launcher.overrides
    assert ex.cpu_affinity == "block" and ex.max_workers_per_node == 32
    assert "OMP_NUM_THREADS=1" in provider.worker_init
    assert "activate_env.sh" in provider.worker_init


def test_polaris_needs_an_account_outside_a_job(monkeypatch):
    monkeypatch.delenv("PBS_NODEFILE", raising=False)
    with pytest.raises(ValueError, match="account"):
        make_polaris_config(address="10.0.0.1")


def test_polaris_inside_a_job_uses_its_nodes(monkeypatch, tmp_path):
    nodefile = tmp_path / "nodes"
    nodefile.write_text("x1\nx2\n")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))
    cfg = make_polaris_config(nodes=2, address="127.0.0.1")
    provider = cfg.executors[0].provider
    assert isinstance(provider, LocalProvider)
    assert provider.nodes_per_block == 2
    assert isinstance(provider.launcher, MpiExecLauncher)


def test_polaris_job_node_count_comes_from_the_node_file_when_called(monkeypatch, tmp_path):
    nodefile = tmp_path / "nodes"
    nodefile.write_text("node-a\nnode-b\nnode-c\n")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))
    cfg = make_config("polaris", workers=4, address="127.0.0.1", bind_cmd="--bind-to",
                      launcher_overrides="--ppn 1")
    (ex,) = cfg.executors
    assert ex.provider.nodes_per_block == 3 and ex.max_workers_per_node == 4
    command = ex.provider.launcher("process_worker_pool.py", 1, ex.provider.nodes_per_block)
    assert "mpiexec --bind-to none --ppn 1 -n $WORKERCOUNT" in command
    assert "WORKERCOUNT=3" in command  # one manager per node
    # Parsl's node file lands in the run directory, not in the notebook's folder.
    assert 'HOSTFILE="${SCRIPT_DIR:+$SCRIPT_DIR/}$JOBNAME.nodes"' in command
    monkeypatch.delenv("PBS_NODEFILE")
    assert configs.job_node_count() == 1


def test_thread_exports_validate():
    assert "OMP_NUM_THREADS=4" in configs.thread_exports(4)
    with pytest.raises(ValueError):
        configs.thread_exports(0)


# --- the -mpi variants: workers for ordinary apps plus Parsl's MPI mode ----------------------
def test_local_mpi_config_adds_an_mpi_executor_beside_the_workers(tmp_path):
    from parsl.executors import MPIExecutor

    cfg = make_config("local-mpi", workers=1, mpi_tasks=2, run_dir=tmp_path)
    htex, mpi = cfg.executors
    assert (htex.label, mpi.label) == (configs.EXECUTOR_LABEL, configs.MPI_EXECUTOR_LABEL)
    assert htex.max_workers_per_node == 1 and not htex.enable_mpi_mode
    assert isinstance(mpi, MPIExecutor) and mpi.enable_mpi_mode and mpi.mpi_launcher == "mpiexec"
    assert mpi.max_workers_per_block == 2 and mpi.address == "127.0.0.1"
    assert cfg.run_dir == str(tmp_path)
    for ex in (htex, mpi):  # both started through the guard
        assert "course_utils.parsl_guard" in ex.launch_cmd
        assert "course_utils.parsl_guard" in ex.interchange_launch_cmd
    init = mpi.provider.worker_init
    assert "OMP_NUM_THREADS=1" in init and f"export PATH={Path(sys.executable).parent}:" in init
    assert f"{configs.MPI_OPTIONS_ENV}=''" in init
    # MPI mode needs a batch job's node file; outside one the launcher writes it.
    script = mpi.provider.launcher("pool --x", 1, 1, "/run/submit scripts")
    lines = script.splitlines()
    assert lines[1] == "printf '%s\\n' localhost localhost > '/run/submit scripts'/\"$JOBNAME.mpi-nodes\""
    assert lines[2] == "export PBS_NODEFILE='/run/submit scripts'/\"$JOBNAME.mpi-nodes\""
    assert lines[-1] == "pool --x"


@pytest.mark.parametrize("bad", [{"mpi_tasks": 0}, {"workers": 0}])
def test_local_mpi_config_validates(bad):
    with pytest.raises(ValueError):
        make_config("local-mpi", **bad)


def test_polaris_mpi_config_splits_each_node_between_workers_and_ranks():
    from parsl.executors import MPIExecutor
    from parsl.launchers import SimpleLauncher

    cfg = make_config("polaris-mpi", account="MyProject", queue="prod", nodes=2,
                      interactive=False, address="10.0.0.1", mpi_tasks=1)
    htex, mpi = cfg.executors
    assert htex.max_workers_per_node == 16 and htex.cpu_affinity == "block"
    assert isinstance(htex.provider.launcher, MpiExecLauncher)
    assert isinstance(mpi, MPIExecutor) and mpi.mpi_launcher == "mpiexec"
    assert mpi.address == "10.0.0.1" and mpi.max_workers_per_block == 1
    provider = mpi.provider
    assert isinstance(provider, PBSProProvider) and type(provider.launcher) is SimpleLauncher
    assert (provider.account, provider.queue, provider.nodes_per_block) == ("MyProject", "prod", 2)
    assert "filesystems=home:eagle" in provider.scheduler_options
    binding = "--cpu-bind list:" + ":".join(str(c) for c in range(16, 32))
    assert f"{configs.MPI_OPTIONS_ENV}='{binding}'" in provider.worker_init
    assert "activate_env.sh" in provider.worker_init and "export PATH" not in provider.worker_init


def test_polaris_mpi_inside_a_job_uses_its_nodes(monkeypatch, tmp_path):
    nodefile = tmp_path / "nodes"
    nodefile.write_text("x1\nx2\nx3\n")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))
    cfg = make_config("polaris-mpi", workers=8, address="127.0.0.1", mpi_cores=8,
                      mpi_options="--cpu-bind depth --depth=1")
    htex, mpi = cfg.executors
    assert htex.max_workers_per_node == 8
    assert isinstance(mpi.provider, LocalProvider) and mpi.provider.nodes_per_block == 3
    assert "COURSE_UTILS_MPI_OPTIONS='--cpu-bind depth --depth=1'" in mpi.provider.worker_init


def test_polaris_rank_binding():
    assert configs.polaris_rank_binding(16, 4) == "--cpu-bind list:16:17:18:19"
    assert configs.polaris_rank_binding(24, 8, threads=4) == "--cpu-bind list:24-27:28-31"
    with pytest.raises(ValueError):
        configs.polaris_rank_binding(0, 2, threads=4)
    with pytest.raises(ValueError, match="mpi_cores"):
        make_config("polaris-mpi", account="P", interactive=False, address="x", mpi_cores=32)


def test_every_config_name_builds(monkeypatch):
    monkeypatch.delenv("PBS_NODEFILE", raising=False)
    for name in configs.CONFIG_NAMES:
        options = {"account": "P", "address": "127.0.0.1"} if name.startswith("polaris") else {}
        assert make_config(name, **options).executors


# --- run folders and scripts whose names a shell would split ---------------------------------
UNSAFE = "it's \"q\" $HOME (1) é"  # a space, quotes, a dollar, parentheses, a non-ASCII letter


def test_an_unsafe_run_folder_reaches_parsl_through_one_safe_link(tmp_path, monkeypatch):
    from parsl.dataflow.rundirs import make_rundir
    from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

    monkeypatch.setenv(configs.LINKS_DIR_ENV, str(tmp_path / "links"))
    real = tmp_path / UNSAFE / "runinfo"
    cfg = make_local_config(workers=1, run_dir=real)
    assert configs.is_shell_safe(cfg.run_dir) and Path(cfg.run_dir).resolve() == real.resolve()
    assert make_local_config(workers=1, run_dir=real).run_dir == cfg.run_dir  # reused
    # What Parsl does with it: a numbered folder, then the worker launch command.
    logdir = Path(make_rundir(cfg.run_dir)) / "htex"
    assert "/" + Path(cfg.run_dir).name + "/" in str(logdir)  # Parsl keeps the link's name
    words = shlex.split(DEFAULT_LAUNCH_CMD.format(
        debug="", max_workers_per_node="", addresses="127.0.0.1", prefetch_capacity=0,
        cores_per_worker=1, mem_per_worker=0, poll_period=10, worker_port=1,
        cert_dir=logdir / "certificates", logdir=logdir, logconf=logdir / "log_config",
        heartbeat_period=5, heartbeat_threshold=30, address_probe_timeout_string="",
        drain_period=None, cpu_affinity="none", enable_mpi_mode="", mpi_launcher="mpiexec",
        accelerators=""))
    (logdir_word,) = [w for w in words if w.startswith("--logdir=")]
    Path(logdir_word.removeprefix("--logdir=")).mkdir(parents=True)
    assert (real / "000" / "htex").is_dir()  # Parsl's files land in the user's folder
    assert make_local_config(run_dir=tmp_path / "safe").run_dir == str(tmp_path / "safe")


def test_links_to_run_folders_that_are_gone_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv(configs.LINKS_DIR_ENV, str(tmp_path / "links"))
    gone = Path(make_local_config(run_dir=tmp_path / "a b" / "runinfo").run_dir)
    shutil.rmtree(tmp_path / "a b")
    kept = Path(make_local_config(run_dir=tmp_path / "c d" / "runinfo").run_dir)
    assert sorted(p.name for p in (tmp_path / "links").iterdir()) == [kept.name]
    assert not gone.is_symlink()


def test_links_go_to_tmp_when_the_cache_folder_needs_quoting_too(tmp_path, monkeypatch):
    monkeypatch.delenv(configs.LINKS_DIR_ENV, raising=False)
    monkeypatch.setenv("COURSE_UTILS_CACHE_DIR", str(tmp_path / "my cache"))
    link = Path(make_local_config(run_dir=tmp_path / "a b").run_dir)
    try:
        assert configs.is_shell_safe(link) and link.resolve() == (tmp_path / "a b").resolve()
        assert link.parent.parent.name.startswith("course_utils-")
        assert not (tmp_path / "my cache").exists()
    finally:
        link.unlink()


def test_an_unsafe_links_folder_is_refused_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv(configs.LINKS_DIR_ENV, str(tmp_path / "my links"))
    with pytest.raises(ValueError, match=f"{configs.LINKS_DIR_ENV}=.*letters, digits"):
        make_local_config(run_dir=tmp_path / "a b")


def _run_shell(text: str, tmp_path: Path, **env: str) -> str:
    proc = subprocess.run(["bash", "-c", text], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, **env}, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_polaris_worker_init_sources_an_unsafe_script_and_sets_a_short_tmpdir(tmp_path):
    script = tmp_path / UNSAFE / "activate_env.sh"
    script.parent.mkdir()
    script.write_text("echo sourced\n")
    init = configs.polaris_worker_init(script, xtb_threads=2)
    assert init.startswith("export TMPDIR=/tmp; ")
    out = _run_shell(f"{init}; echo \"$TMPDIR $OMP_NUM_THREADS\"", tmp_path, TMPDIR="/x/long")
    assert out.splitlines() == ["sourced", "/tmp 2"]


def test_every_polaris_config_exports_a_short_tmpdir(monkeypatch):
    monkeypatch.delenv("PBS_NODEFILE", raising=False)
    job = {"account": "P", "interactive": False, "address": "10.0.0.1"}
    inits = [ex.provider.worker_init for name in ("polaris", "polaris-mpi")
             for ex in make_config(name, **job).executors]
    inits += [ex.provider.worker_init for name in ("polaris", "polaris-mpi")
              for ex in make_config(name, worker_init="module load x", **job).executors]
    assert len(inits) == 6
    assert all(init.startswith("export TMPDIR=/tmp; ") for init in inits), inits
    own = make_polaris_config(worker_init="export TMPDIR=/local/scratch", **job)
    assert own.executors[0].provider.worker_init == "export TMPDIR=/local/scratch"


def test_mpiexec_launcher_writes_the_worker_command_unexpanded(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mpiexec").write_text('#!/bin/sh\nwhile [ "$1" != /usr/bin/sh ]; do shift; done\n'
                                  'exec "$@"\n')
    (fake / "mpiexec").chmod(0o755)
    python = f"/opt/{UNSAFE} `x`/bin/python"
    command = f"printf '%s\\n' {shlex.quote(python)} > seen.txt"
    launcher = configs.RunDirMpiExecLauncher(bind_cmd="--bind-to", overrides="--ppn 1")
    script = launcher(command, 1, 1, str(tmp_path))
    _run_shell(script, tmp_path, JOBNAME="job", PATH=f"{fake}:{os.environ['PATH']}")
    assert (tmp_path / "seen.txt").read_text() == python + "\n"
