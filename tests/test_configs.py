"""Parsl configuration factories: fresh objects, clear errors, the right Polaris pieces."""

from __future__ import annotations

import importlib

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
