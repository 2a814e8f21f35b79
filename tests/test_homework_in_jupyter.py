"""The homework notebook as a student sees it: a kernel started by a real Jupyter server.

A Jupyter server (what JupyterLab talks to) starts the kernel for ``notebooks/4_homework.ipynb``;
the notebook's cells run there in order, so the widget panel must appear instead of the headless
run, and pressing Run (after moving the sliders) must run a real campaign.
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


def test_panel_shows_and_run_button_works_under_jupyter_server(jupyter_kernel, tmp_path):
    nb = nbformat.read(REPO / NOTEBOOK, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert "JPY_SESSION_NAME" in "".join(
        o.get("text", "") for o in _run(jupyter_kernel, "import os; print(dict(os.environ))"))
    widget_shown = False
    for cell in cells:
        outputs = _run(jupyter_kernel, cell.source)
        if "parameters" in cell.metadata.get("tags", []):
            _run(jupyter_kernel, f"output_dir = {str(tmp_path / 'homework')!r}")
        widget_shown |= any(WIDGET_MIME in o.get("data", {}) for o in outputs)
    assert widget_shown, "the panel was not displayed"
    assert not (tmp_path / "homework").exists(), "a headless run happened instead of the panel"

    outputs = _run(jupyter_kernel, "\n".join([
        "panel.initial.value, panel.maximum.value, panel.batch.value = 4, 6, 2",
        "panel.seed.value = 21",
        "panel.click()",
        "print(panel.result.results['status'], panel.result.results['totals']['successful'])",
        "print(panel.result.out_dir)",
    ]))
    text = "".join(o.get("text", "") for o in outputs)
    assert "complete 6" in text
    run_dir = Path(text.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "homework"
    assert {"results.json", "simulations.csv", "ml_in_the_loop.png"} <= {
        p.name for p in run_dir.iterdir()}
