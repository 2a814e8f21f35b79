"""Running a notebook the way the tests of notebooks 5 and later do: papermill, small parameters."""

from __future__ import annotations

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
