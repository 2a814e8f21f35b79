"""The registered Jupyter kernel: it carries its environment, runs Parsl when started by a
server outside that environment, and a stop-button interrupt ends a campaign's cell quickly."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from notebook_tools import cell_outputs, shell_reply
from process_tools import descendants, run_processes, survivors

from course_utils import records as rec
from course_utils.polaris.jupyter_kernel import kernel_env, needs_refresh, register_kernel

KERNEL = os.environ.get("COURSE_KERNEL_NAME", "ml-in-the-loop")


def test_kernel_spec_puts_the_environment_first_on_path(tmp_path):
    where = register_kernel("probe-kernel", prefix=str(tmp_path))
    spec = json.loads((where / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    assert spec["env"]["PATH"] == f"{Path(sys.executable).parent}{os.pathsep}${{PATH}}"
    assert spec["env"]["OMP_NUM_THREADS"] == "1"
    assert spec["env"] == kernel_env()


def test_the_course_kernel_is_registered_with_its_environment():
    assert not needs_refresh(KERNEL), "source activate_env.sh registers it"


def _start(env=None):
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name=KERNEL)
    km.start_kernel(env=env) if env is not None else km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def _campaign_code(space, out, budget):
    return (
        "from course_utils.campaign.runner import run_campaign\n"
        f"r = run_campaign(dict(initial_training_count=4, max_training_count={budget}, "
        f"batch_size=2, seed=4, workers=2, search_space={str(space)!r}), {str(out)!r}, "
        "progress=False)\n"
        "print('STATUS', r.results['status'])\n"
    )


def test_kernel_started_outside_the_environment_runs_a_campaign(small_space, tmp_path):
    # A JupyterHub's server runs in its own environment: our bin is not on its PATH.
    clean = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)),
             "COURSE_UTILS_CACHE_DIR": str(tmp_path / "cache")}
    km, kc = _start(env=clean)
    try:
        code = "import shutil; print('PYTHON', shutil.which('python'))\n" + _campaign_code(
            small_space, tmp_path / "run", 6)
        msg_id = kc.execute(code)
        reply = shell_reply(kc, msg_id, timeout=240)
        text, errors = cell_outputs(kc, msg_id)
        assert reply["status"] == "ok", errors
        assert f"PYTHON {Path(sys.executable).parent / 'python'}" in text
        assert "STATUS complete" in text
    finally:
        kernel_pid = km.provisioner.pid if km.provisioner else None
        km.shutdown_kernel(now=True)
        kc.stop_channels()
    assert kernel_pid is not None


def test_stop_button_interrupts_a_campaign_and_the_cell_returns(small_space, tmp_path):
    out = tmp_path / "run"
    km, kc = _start()
    kernel_pid = km.provisioner.pid
    try:
        msg_id = kc.execute(_campaign_code(small_space, out, 40))
        deadline = time.time() + 240
        while time.time() < deadline:
            path = out / rec.SIMULATIONS_FILE
            if path.exists() and (rec.read_simulations(out)["status"] == "ok").sum() >= 4:
                break
            time.sleep(0.2)
        started = run_processes(kernel_pid)
        pressed = time.time()
        km.interrupt_kernel()  # what the stop button does: SIGINT to the kernel's process group
        reply = shell_reply(kc, msg_id, timeout=60)
        took = time.time() - pressed
        _, errors = cell_outputs(kc, msg_id)
        assert reply["status"] == "error" and reply["ename"] == "CampaignInterrupted"
        assert took < 30, f"the cell returned {took:.0f} s after the stop button"
        assert len(errors) == 1 and "resume" in errors[0], errors  # one line, no traceback
        assert json.loads((out / rec.RESULTS_FILE).read_text())["status"] == "interrupted"
        # Parsl was shut down with the cell: none of its processes survive, the kernel does.
        assert survivors({p: t for p, t in started.items() if p != kernel_pid}, 60) == []
        again = kc.execute("print(1 + 1)")
        assert shell_reply(kc, again, timeout=30)["status"] == "ok"
    finally:
        km.shutdown_kernel(now=True)
        kc.stop_channels()
    assert survivors(descendants(kernel_pid), 30) == []
