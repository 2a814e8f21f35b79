"""Notebooks 3 and 4 executed through papermill with small parameters, as CI and students do."""

from __future__ import annotations

import ast
import copy
import json
import subprocess
import time
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from jupyter_client import kernelspec

from course_utils import records as rec
from course_utils.campaign.parameters import ACQUISITIONS
from course_utils.campaign.runner import run_campaign
from course_utils.grading import HAND_IN_LABEL, find_submissions
from course_utils.ml.registry import MODEL_CHOICES
from course_utils.studies.headline import DEFAULT_CAMPAIGN

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL = "ml-in-the-loop" if "ml-in-the-loop" in kernelspec.find_kernel_specs() else None
SMALL = {"seed": 7, "initial_training_count": 6, "max_training_count": 14, "batch_size": 4}


def _execute(name: str, tmp_path: Path, **parameters) -> tuple[nbformat.NotebookNode, Path]:
    out = tmp_path / "out"
    executed = tmp_path / name
    pm.execute_notebook(NOTEBOOKS / name, executed, parameters={**parameters,
                        "output_dir": str(out)}, kernel_name=KERNEL, cwd=str(NOTEBOOKS),
                        progress_bar=False)
    nb = nbformat.read(executed, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    return nb, out


def _check_run(out: Path, expected: int) -> dict:
    results = json.loads((out / rec.RESULTS_FILE).read_text())
    sims = rec.read_simulations(out)
    ok = sims[sims["status"] == "ok"]
    assert len(ok) == expected and ok["smiles"].nunique() == expected
    assert results["status"] == "complete"
    assert results["best"]["ie"] == pytest.approx(ok["ie"].max(), abs=1e-9)
    assert (out / rec.PLOT_FILE).read_bytes()[:4] == b"\x89PNG"
    return results


@pytest.fixture(scope="module")
def notebook3_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb3")
    nb, out = _execute("3_ml_in_the_loop.ipynb", tmp, **SMALL, replay_seeds=2)
    return nb, out


def test_notebook3_small_run_has_14_distinct_successes(notebook3_run):
    nb, out = notebook3_run
    _check_run(out, 14)
    its = rec.read_iterations(out)
    assert its["training_size"].tolist() == [6, 10]
    text = json.dumps(nb.cells[-6:])  # the results cells print energies with their unit
    assert "eV" in text and " Ha" not in text


def test_notebook3_and_the_campaign_engine_agree(notebook3_run, parsl_local, tmp_path):
    _, out = notebook3_run
    strategy = {k: DEFAULT_CAMPAIGN[k] for k in ("model", "acquisition")}
    engine = run_campaign({**SMALL, **strategy, "workers": 2}, tmp_path / "engine", progress=False)
    notebook = rec.read_simulations(out)
    assert set(notebook["smiles"]) == set(engine.simulations["smiles"])
    assert json.loads((out / rec.RESULTS_FILE).read_text())["best"]["smiles"] == \
        engine.best["smiles"]


def test_quickstart_script_into_a_folder_a_shell_would_split(small_space, tmp_path):
    """bash run_ml_in_the_loop.sh "out dir/run 1" once hung with every worker lost."""
    out = tmp_path / "it's \"my\" $HOME (out dir) é" / "run 1"
    small = ["-p", "initial_training_count", "4", "-p", "max_training_count", "6",
             "-p", "batch_size", "2", "-p", "seed", "3", "-p", "search_space", str(small_space)]
    proc = subprocess.run(["bash", str(REPO / "run_ml_in_the_loop.sh"), str(out), *small],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    _check_run(out, 6)
    assert (out / "3_ml_in_the_loop.ipynb").is_file()
    assert f"Done. Outputs in {out}:" in proc.stdout and "status: complete" in proc.stdout


def test_notebook3_runs_twice_in_one_kernel(tmp_path):
    """Re-running every cell (as a student does) must not fail on Parsl being loaded already."""
    from nbclient import NotebookClient

    prepared = tmp_path / "prepared.ipynb"
    pm.execute_notebook(NOTEBOOKS / "3_ml_in_the_loop.ipynb", prepared, prepare_only=True,
                        parameters={"initial_training_count": 4, "max_training_count": 6,
                                    "batch_size": 2, "seed": 3, "replay_seeds": 2,
                                    "output_dir": str(tmp_path / "out")})
    nb = nbformat.read(prepared, as_version=4)
    client = NotebookClient(nb, kernel_name=KERNEL or "python3", resources={
        "metadata": {"path": str(NOTEBOOKS)}}, timeout=600)
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    client.execute_cell(cell, index)  # raises CellExecutionError on any error
    _check_run(tmp_path / "out", 6)


#: The names of run_batches (course_utils/campaign/batch_loop.py) as notebook 3 spells them.
AS_IN_NOTEBOOK = {"steps": "campaign", "history": "campaign.history", "plan": "campaign.plan",
                  "batch_size": "batch_size", "budget": "max_training_count"}


class _Rename(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id not in AS_IN_NOTEBOOK:
            return node
        return ast.copy_location(ast.parse(AS_IN_NOTEBOOK[node.id], mode="eval").body, node)


def _only_while(tree: ast.AST, where: str) -> ast.While:
    loops = [n for n in ast.walk(tree) if isinstance(n, ast.While)]
    assert len(loops) == 1, f"{where}: {len(loops)} while loops"
    return loops[0]


def engine_loop() -> ast.While:
    """run_batches's while loop, with the notebook's names."""
    tree = ast.parse((REPO / "course_utils" / "campaign" / "batch_loop.py").read_text())
    (func,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
               and n.name == "run_batches"]
    return _Rename().visit(_only_while(func, "run_batches"))


def notebook3_loop_cell() -> ast.Module:
    """The code cell of notebook 3 that holds a while loop (there must be exactly one)."""
    nb = nbformat.read(NOTEBOOKS / "3_ml_in_the_loop.ipynb", as_version=4)
    trees = [ast.parse(c.source) for c in nb.cells if c.cell_type == "code"]
    (cell,) = [t for t in trees if any(isinstance(n, ast.While) for n in ast.walk(t))]
    return cell


def _is_bar_line(statement: ast.stmt) -> bool:
    """A progress-bar call (``bar.update(...)``), the one kind of line the notebook adds."""
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
            and isinstance(statement.value.func, ast.Attribute)
            and isinstance(statement.value.func.value, ast.Name)
            and statement.value.func.value.id == "bar")


def loop_drift(engine: ast.While, notebook: ast.While) -> list[str]:
    """How the notebook's loop differs from the engine's, one line each (none: the same)."""
    problems = []
    if ast.dump(engine.test) != ast.dump(notebook.test):
        problems.append(f"condition: engine `{ast.unparse(engine.test)}`, "
                        f"notebook `{ast.unparse(notebook.test)}`")
    if notebook.orelse or engine.orelse:
        problems.append("a while-else clause")
    wanted = list(engine.body)
    for statement in notebook.body:
        if wanted and ast.dump(statement) == ast.dump(wanted[0]):
            wanted.pop(0)
        elif not _is_bar_line(statement):
            problems.append(f"notebook line not in the engine's order: {ast.unparse(statement)}")
    problems += [f"engine line missing: {ast.unparse(s)}" for s in wanted]
    return problems


def test_notebook3_loop_is_the_engines_batch_loop():
    """The loop a student reads in notebook 3 runs the statements run_batches runs, in order:
    the same batch plan, retrain policy and stop rule; only the progress bar is added."""
    engine = engine_loop()
    assert len(engine.body) >= 8  # the batch loop was found, not some other while
    notebook = _only_while(notebook3_loop_cell(), "notebook 3's loop cell")
    assert loop_drift(engine, notebook) == []


def _drifted(change: str) -> ast.While:
    """Notebook 3's loop with one drift from the engine's: ``drop:i`` removes the engine's
    i-th line, ``swap:i`` swaps it with the next line, ``extra:i`` adds a line before it,
    ``condition`` and ``edit`` change the loop's condition and its target line to the old loop's."""
    loop = copy.deepcopy(_only_while(notebook3_loop_cell(), "notebook 3's loop cell"))
    engine = [ast.dump(s) for s in engine_loop().body]
    kind, _, at = change.partition(":")
    i = [n for n, s in enumerate(loop.body) if ast.dump(s) in engine][int(at or 0)]
    if kind == "drop":
        del loop.body[i]
    elif kind == "swap":
        loop.body[i], loop.body[i + 1] = loop.body[i + 1], loop.body[i]
    elif kind == "extra":
        loop.body.insert(i, ast.parse("predictions = campaign.predictions(scores)").body[0])
    elif kind == "condition":
        loop.test = ast.parse("campaign.n_ok < max_training_count", mode="eval").body
    elif kind == "edit":  # the old loop's target: successes now, not when the batch began
        (i,) = [n for n, s in enumerate(loop.body) if ast.unparse(s).startswith("target =")]
        loop.body[i] = ast.parse("target = min(batch_size, max_training_count - campaign.n_ok)"
                                 ).body[0]
    return loop


@pytest.mark.parametrize("change", [f"drop:{i}" for i in range(len(engine_loop().body))]
                         + ["swap:4", "extra:2", "condition", "edit"])
def test_notebook3_loop_drift_is_found(change):
    """Each drift from the engine's loop (a line removed, moved, added or edited; another
    condition) is found, so the test above fails on it."""
    assert loop_drift(engine_loop(), _drifted(change))


def test_notebook4_headless_uses_the_parameters_cell(tmp_path):
    nb, out = _execute("4_homework.ipynb", tmp_path, seed=2, initial_training_count=4,
                       max_training_count=8, batch_size=2, acquisition="ucb", model="gp")
    results = _check_run(out, 8)
    assert results["parameters"]["acquisition"] == "ucb" and results["parameters"]["model"] == "gp"
    widgets = [o for c in nb.cells for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
               and "VBox" in o["data"].get("text/plain", "")]
    assert not widgets, "the interactive panel was shown in a headless run"
    assert results["workers"] == 2 and results["machine"]["cpu_count"] >= 1
    last = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []))
    assert f"{HAND_IN_LABEL} {out}" in last  # the last cell names the folder to hand in
    executed = tmp_path / "4_homework.ipynb"
    (found,) = find_submissions([executed])
    assert found.run_dir == out


def test_notebook4_offers_the_model_as_a_parameter():
    nb = nbformat.read(NOTEBOOKS / "4_homework.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and 'model = "knn"' in tagged[0].source.splitlines()
    assert any("model=model" in c.source for c in nb.cells if c.cell_type == "code")
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_notebook4_names_every_model_and_acquisition_with_when_it_helps():
    """One table row per model the panel offers and per acquisition, each with its use."""
    intro = nbformat.read(NOTEBOOKS / "4_homework.ipynb", as_version=4).cells[0].source
    rows = {line.split("|")[1].strip(): line for line in intro.splitlines()
            if line.startswith("| `")}
    for name in (*MODEL_CHOICES, *ACQUISITIONS, "ucb_kappa", "epsilon"):
        assert f"`{name}`" in rows, name
        assert len(rows[f"`{name}`"].split("|")) >= 4 and len(rows[f"`{name}`"]) > 60, name

def test_notebook4_rejects_impossible_parameters(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="initial_training_count"):
        _execute("4_homework.ipynb", tmp_path, initial_training_count=24, max_training_count=24)


def _ok_rows(out: Path, batch_from: int = 0) -> int:
    if not (out / rec.SIMULATIONS_FILE).exists():
        return 0
    sims = rec.read_simulations(out)
    return int(((sims["status"] == "ok") & (sims["batch"] >= batch_from)).sum())


def _press_stop_during(kernel, code: str, ready, out: Path) -> list[str]:
    """Run ``code``, press the stop button once ``ready()``: the cell must end with one line,
    soon, and leave results.json saying interrupted. The ok simulations kept."""
    msg_id = kernel.start(code)
    deadline = time.time() + 400
    while not ready():
        assert time.time() < deadline, "the cell never got far enough to be stopped"
        time.sleep(0.2)
    pressed = time.time()
    kernel.km.interrupt_kernel()  # what the stop button does: SIGINT to the kernel
    reply, _, errors = kernel.finish(msg_id, timeout=120)
    assert reply["status"] == "error" and reply["ename"] == "CampaignInterrupted", errors
    assert len(errors) == 1 and "resume" in errors[0], errors  # one line, no traceback
    assert time.time() - pressed < 60
    assert json.loads((out / rec.RESULTS_FILE).read_text())["status"] == "interrupted"
    sims = rec.read_simulations(out)
    return sims.loc[sims["status"] == "ok", "smiles"].tolist()


def test_notebook3_stop_button_keeps_results_and_a_rerun_resumes(small_space, tmp_path):
    """The step-by-step API stops as run_campaign does, in the initial batch and in the loop;
    re-running the cell, or the whole notebook, resumes without recomputing anything."""
    from notebook_tools import Kernel

    out = tmp_path / "out"
    prepared = tmp_path / "prepared.ipynb"
    pm.execute_notebook(NOTEBOOKS / "3_ml_in_the_loop.ipynb", prepared, prepare_only=True,
                        parameters={"initial_training_count": 6, "max_training_count": 18,
                                    "batch_size": 6, "seed": 5, "search_space": str(small_space),
                                    "output_dir": str(out)})
    cells = [c.source for c in nbformat.read(prepared, as_version=4).cells
             if c.cell_type == "code"]
    kernel = Kernel()
    kept = []
    try:
        for code in cells:
            if "campaign.initial_batch()" in code:
                kept += _press_stop_during(kernel, code, lambda: _ok_rows(out) >= 2, out)
                kernel.run(code)  # the same cell again resumes the initial batch
            elif "while campaign.budget_left()" in code:
                kept += _press_stop_during(kernel, code, lambda: _ok_rows(out, 1) >= 1, out)
                break
            else:
                kernel.run(code)
        for code in cells:  # the whole notebook again, as a student does: it resumes
            kernel.run(code)
    finally:
        kernel.close()
    sims = rec.read_simulations(out)
    assert sims["smiles"].is_unique  # nothing finished before the stops was computed again
    assert set(kept) <= set(sims.loc[sims["status"] == "ok", "smiles"])
    _check_run(out, 18)
