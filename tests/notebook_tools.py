"""Running notebooks in tests: through papermill with small parameters, or cell by cell in a
kernel that can be interrupted as the stop button does."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import nbformat
import papermill as pm
from jupyter_client import kernelspec

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL = "ml-in-the-loop" if "ml-in-the-loop" in kernelspec.find_kernel_specs() else None


def _tree(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def run_notebook(name: str, tmp_path: Path, parameters: dict) -> nbformat.NotebookNode:
    """Execute ``notebooks/NAME`` into ``tmp_path`` with ``parameters``; no cell may fail, and
    nothing may be written in the notebooks folder (outputs go to ``output_dir`` only)."""
    before = _tree(NOTEBOOKS)
    executed = tmp_path / name
    pm.execute_notebook(NOTEBOOKS / name, executed, parameters=parameters, kernel_name=KERNEL,
                        cwd=str(NOTEBOOKS), progress_bar=False)
    nb = nbformat.read(executed, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{name}: {errors[0].ename}: {errors[0].evalue}" if errors else ""
    assert _tree(NOTEBOOKS) == before, f"{name} wrote outside its output_dir"
    return nb


def printed_text(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook's cells printed."""
    return "".join(str(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))


def shown_text(nb: nbformat.NotebookNode) -> str:
    """What the notebook's cells printed and the plain-text values they showed."""
    return "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                   for c in nb.cells for o in c.get("outputs", []))


def shell_reply(kc, msg_id: str, timeout: float) -> dict:
    """The kernel's reply to the request ``msg_id``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = kc.get_shell_msg(timeout=max(deadline - time.time(), 0.1))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg["content"]
    raise AssertionError(f"no reply from the kernel within {timeout:.0f} s")


def cell_outputs(kc, msg_id: str) -> tuple[str, list[str]]:
    """Text the cell printed and the error lines it showed, drained from iopub until the
    kernel goes idle after it (or nothing more arrives)."""
    text, errors = [], []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=2)
        except queue.Empty:
            break
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            text.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            errors.extend(msg["content"]["traceback"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return "".join(text), errors


class Kernel:
    """A kernel as JupyterLab drives it: cells sent one by one, the stop button as a signal."""

    def __init__(self, cwd: Path = NOTEBOOKS):
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name=KERNEL or "python3")
        self.km.start_kernel(cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def start(self, code: str) -> str:
        return self.kc.execute(code)

    def finish(self, msg_id: str, timeout: float = 600) -> tuple[dict, str, list[str]]:
        """The reply of ``msg_id``, what it printed, and the lines of the error it showed."""
        reply = shell_reply(self.kc, msg_id, timeout)
        return (reply, *cell_outputs(self.kc, msg_id))

    def run(self, code: str, timeout: float = 600) -> str:
        """Run ``code``; it must succeed. What it printed."""
        reply, text, errors = self.finish(self.start(code), timeout)
        assert reply["status"] == "ok", errors or reply
        return text

    def close(self) -> None:
        self.km.shutdown_kernel(now=True)
        self.kc.stop_channels()
