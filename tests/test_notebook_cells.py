"""Every committed notebook runs with the parameters its readers see.

papermill inserts an ``injected-parameters`` cell after the ``parameters`` cell when it is given
values; committed by mistake, that cell silently overrides what the reader reads (notebook 10
once stored a one-seed comparison under a parameters cell that said four seeds), and nbval then
re-executes the notebook with the injected values too.
"""

from __future__ import annotations

import nbformat
import pytest
from notebook_tools import NOTEBOOKS

NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def injected(nb: nbformat.NotebookNode) -> list[str]:
    """What in ``nb`` shows papermill-injected parameters, one line each."""
    found = [f"cell {i} is tagged injected-parameters" for i, cell in enumerate(nb.cells)
             if "injected-parameters" in cell.metadata.get("tags", [])]
    given = nb.metadata.get("papermill", {}).get("parameters")
    if given:
        found.append(f"papermill metadata records injected parameters {sorted(given)}")
    return found


@pytest.mark.parametrize("name", NAMES)
def test_one_parameters_cell_and_nothing_injected(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: parameters cells {tagged}"
    assert not injected(nb), f"{name}: {injected(nb)}"


def test_an_injected_cell_is_found():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("n_seeds = 4", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("# Parameters\nn_seeds = 1",
                                  metadata={"tags": ["injected-parameters"]})])
    nb.metadata["papermill"] = {"parameters": {"n_seeds": 1}}
    assert len(injected(nb)) == 2
    nb.cells.pop()
    nb.metadata["papermill"]["parameters"] = {}
    assert not injected(nb)
