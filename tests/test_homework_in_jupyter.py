"""The homework notebook as a student sees it: a kernel started by a real Jupyter server.

A Jupyter server (what JupyterLab talks to) starts the kernel for ``notebooks/4_homework.ipynb``;
the notebook's cells run there in order, so the widget panel must appear instead of the headless
run, and pressing Run (after moving the sliders) must run a real campaign. A run started from
the panel must stop, by its Stop button or by the notebook's stop button, even when the click
was handled outside the main thread (JupyterLab's widget messages may go to a subshell).
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/4_homework.ipynb"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, token: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"token {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
    return json.loads(text) if text else {}


@pytest.fixture
def jupyter_kernel(tmp_path):
    """A kernel for the homework notebook, started through a Jupyter server's sessions API."""
    from jupyter_client import BlockingKernelClient, kernelspec

    token, port = secrets.token_hex(12), _free_port()
    runtime = tmp_path / "runtime"
    env = {**__import__("os").environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
    env.pop("JPY_SESSION_NAME", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root",
         "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={REPO}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180  # a busy 2-core machine can take a minute to start it
        while True:
            try:
                _request(f"{base}/api/status", token)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        kernel = "ml-in-the-loop" if "ml-in-the-loop" in kernelspec.find_kernel_specs() \
            else "python3"
        session = _request(f"{base}/api/sessions", token, "POST",
                           {"path": NOTEBOOK, "type": "notebook", "kernel": {"name": kernel}})
        client = BlockingKernelClient(
            connection_file=str(runtime / f"kernel-{session['kernel']['id']}.json"))
        client.load_connection_file()
        client.start_channels()
        client.hb_channel.time_to_dead = 10.0  # a busy machine answers heartbeats late
        client.wait_for_ready(timeout=120)
        # The stop button: the server's interrupt endpoint (it calls km.interrupt_kernel()).
        client.interrupt = lambda: _request(
            f"{base}/api/kernels/{session['kernel']['id']}/interrupt", token, "POST", {})
        yield client
        client.stop_channels()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _run(client, code: str, timeout: float = 300) -> list[dict]:
    outputs: list[dict] = []

    def keep(msg):
        if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
            outputs.append({"type": msg["msg_type"], **msg["content"]})

    reply = client.execute_interactive(code, output_hook=keep, timeout=timeout)
    errors = [o for o in outputs if o["type"] == "error"]
    assert reply["content"]["status"] == "ok" and not errors, errors or reply["content"]
    return outputs


def _as_output(output: dict) -> nbformat.NotebookNode:
    """A kernel message's content as the output a saved notebook holds."""
    if output["type"] == "stream":
        return nbformat.v4.new_output("stream", name=output["name"], text=output["text"])
    return nbformat.v4.new_output("display_data", data=output.get("data", {}),
                                  metadata=output.get("metadata", {}))


def test_panel_shows_and_run_button_works_under_jupyter_server(jupyter_kernel, tmp_path):
    """A student's session: the panel, Run, then the result and hand-in cells run again; the
    notebook saved from it is graded from the panel run's folder, wherever it is handed in."""
    from course_utils.grading import HAND_IN_LABEL, find_submissions, grade

    nb = nbformat.read(REPO / NOTEBOOK, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert "JPY_SESSION_NAME" in "".join(
        o.get("text", "") for o in _run(jupyter_kernel, "import os; print(dict(os.environ))"))
    widget_shown = False
    count = 0
    for cell in cells:
        outputs = _run(jupyter_kernel, cell.source)
        if "parameters" in cell.metadata.get("tags", []):
            _run(jupyter_kernel, f"output_dir = {str(tmp_path / 'homework')!r}")
        widget_shown |= any(WIDGET_MIME in o.get("data", {}) for o in outputs)
        count += 1
        cell.execution_count, cell.outputs = count, [_as_output(o) for o in outputs]
    assert widget_shown, "the panel was not displayed"
    assert not (tmp_path / "homework").exists(), "a headless run happened instead of the panel"
    assert "No run yet" in "".join(o.get("text", "") for o in cells[-1].outputs)

    outputs = _run(jupyter_kernel, "\n".join([
        "panel.initial.value, panel.maximum.value, panel.batch.value = 4, 6, 2",
        "panel.seed.value = 21",
        "panel.click()",
        "print(panel.result.results['status'], panel.result.results['totals']['successful'])",
        "print(panel.phases)",
        "print(panel.result.out_dir)",
    ]))
    text = "".join(o.get("text", "") for o in outputs)
    assert "complete 6" in text
    assert "starting Parsl" in text and "simulating the initial batch" in text
    run_dir = Path(text.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "homework"
    assert {"results.json", "simulations.csv", "ml_in_the_loop.png"} <= {
        p.name for p in run_dir.iterdir()}
    results = json.loads((run_dir / "results.json").read_text())
    assert results["workers"] == 2 and results["machine"]["cpu_count"] >= 1

    for cell in cells[-2:]:  # "Your result" and "Hand-in" again, after the panel's run
        count += 1
        cell.execution_count = count
        cell.outputs = [_as_output(o) for o in _run(jupyter_kernel, cell.source)]
    last = "".join(o.get("text", "") for o in cells[-1].outputs)
    assert f"{HAND_IN_LABEL} {run_dir}" in last  # outside the notebook's folder: absolute

    handed_in = tmp_path / "student"  # the notebook and its run, copied elsewhere to hand in
    handed_in.mkdir()
    nbformat.write(nb, handed_in / "4_homework.ipynb")
    (handed_in / "homework").mkdir()
    run_dir.rename(handed_in / "homework" / run_dir.name)  # the path it printed is gone
    (found,) = find_submissions([handed_in])
    assert found.run_dir is not None
    assert found.run_dir.resolve() == (handed_in / "homework" / run_dir.name).resolve()
    assert [n.name for n in found.notebooks] == ["4_homework.ipynb"]
    report = grade([handed_in / "4_homework.ipynb"], tmp_path / "grading", verify=False)
    assert len(report.board) == 1, report.not_ranked.to_dict("records")


PANEL = """
import threading, time
from course_utils.campaign.runner import CampaignParameters, run_campaign
from course_utils.widgets import HomeworkPanel

delay = [0.15]  # seconds per progress update: a replay slow enough to be stopped


def run(parameters, on_update):
    def slow(info):
        time.sleep(delay[0])
        on_update(info)

    return run_campaign(parameters, OUT, on_update=slow, progress=False, plot=False)


panel = HomeworkPanel(CampaignParameters(
    initial_training_count=6, max_training_count=60, batch_size=4, seed=9,
    search_space="truth:qm9:4000", simulator="replay", workers=2), run)
display(panel)
"""
PRESS = "threading.Thread(target=panel.{}.click).start()"  # a callback off the main thread


def _press(client, button: str) -> None:
    """Press a panel button as JupyterLab does: a widget ``comm_msg`` on the shell channel."""
    model_id = "".join(o.get("text", "") for o in _run(
        client, f"print(panel.{button}.model_id)")).strip()
    client.shell_channel.send(client.session.msg("comm_msg", {
        "comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}}))
STATE = ("print(panel.progress.value, panel.running, panel.button.disabled, "
         "panel.stop_button.disabled, '|', panel.status.value)")


def _state(client) -> tuple[int, bool, bool, bool, str]:
    text = "".join(o.get("text", "") for o in _run(client, STATE)).strip()
    head, status = text.split("|", 1)
    n, running, run_off, stop_off = head.split()
    return int(n), running == "True", run_off == "True", stop_off == "True", status


def _stopped_within(client, seconds: float) -> str:
    """Wait (with the kernel idle between looks) until the run ended; its status line."""
    deadline = time.time() + seconds
    while True:
        n, running, run_off, stop_off, status = _state(client)
        if not running:
            assert not run_off and stop_off  # Run is back, Stop is off again
            return status
        assert time.time() < deadline, f"the run did not stop: {status}"
        time.sleep(0.3)


def _run_until(client, at_least: int, off_main_thread: bool) -> None:
    if off_main_thread:
        _run(client, PRESS.format("button"))
    else:
        _press(client, "button")
    deadline = time.time() + 120
    while True:
        n, running, run_off, stop_off, status = _state(client)
        assert running and run_off and not stop_off and "Stop" in status, status
        if n >= at_least:
            return
        assert time.time() < deadline, "the run made no progress"
        time.sleep(0.3)


def test_panel_run_stops_by_stop_button_and_kernel_interrupt_then_resumes(jupyter_kernel,
                                                                         tmp_path):
    from course_utils import records as rec

    out = tmp_path / "run"
    _run(jupyter_kernel, f"OUT = {str(out)!r}\n" + PANEL)

    _run_until(jupyter_kernel, 8, off_main_thread=True)
    jupyter_kernel.interrupt()  # the notebook's stop button while the kernel is idle
    status = _stopped_within(jupyter_kernel, 15)
    assert "Campaign interrupted" in status and "resume" in status, status
    assert json.loads((out / rec.RESULTS_FILE).read_text())["status"] == "interrupted"
    first = rec.read_simulations(out)

    _run_until(jupyter_kernel, int((first["status"] == "ok").sum()) + 4, off_main_thread=False)
    _press(jupyter_kernel, "stop_button")
    status = _stopped_within(jupyter_kernel, 15)
    assert "stopped by the Stop button" in status and "resume" in status, status
    assert json.loads((out / rec.RESULTS_FILE).read_text())["status"] == "interrupted"
    second = rec.read_simulations(out)
    assert second["smiles"].tolist()[: len(first)] == first["smiles"].tolist()

    text = "".join(o.get("text", "") for o in _run(jupyter_kernel, "\n".join([
        "delay[0] = 0.0",
        "r = panel.click()",
        "print(r.results['status'], r.results['resumed_from_simulations'])",
        "print('shown', len(panel.output.outputs))"])))
    assert f"complete {len(second)}" in text
    assert "shown 1" in text  # the summary table, appended from the run's thread
    final = rec.read_simulations(out)
    assert final["smiles"].is_unique  # nothing kept was simulated again
    assert final["smiles"].tolist()[: len(second)] == second["smiles"].tolist()
