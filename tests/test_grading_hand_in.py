"""Which run an executed homework notebook hands in (grading.notebook_hand_in): the folder its
last cell names, found also where the notebook and folder were copied to hand them in."""

from __future__ import annotations

from pathlib import Path

import nbformat

from course_utils import records as rec
from course_utils.grading import HAND_IN_LABEL, find_submissions, notebook_hand_in


def _run_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / rec.RESULTS_FILE).write_text("{}")
    return path


def _notebook(path: Path, printed: list[str], output_dir: str = "outputs/4_homework") -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f'seed = 0\noutput_dir = "{output_dir}"\n',
                                       metadata={"tags": ["parameters"]}, execution_count=1)
    cells = [nbformat.v4.new_code_cell("print(...)", execution_count=i + 2, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=text + "\n")])
        for i, text in enumerate(printed)]
    nb.cells = [params, *cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_the_last_named_folder_is_the_hand_in_also_after_a_copy(tmp_path):
    first = _run_folder(tmp_path / "outputs" / "4_homework" / "init8_max24_greedy")
    last = _run_folder(tmp_path / "outputs" / "4_homework" / "init8_max24_ei")
    nb = _notebook(tmp_path / "4_homework.ipynb", [
        f"{HAND_IN_LABEL} outputs/4_homework/{first.name}",
        f"{HAND_IN_LABEL} outputs/4_homework/{last.name}"])
    assert notebook_hand_in(nb)[0] == last
    (found,) = [s for s in find_submissions([nb])]
    assert found.run_dir == last

    # Printed as an absolute path on the student's machine, graded from a copy elsewhere.
    copied = tmp_path / "class" / "alice"
    run = _run_folder(copied / "homework" / "init8_max24_ei")
    nb = _notebook(copied / "4_homework.ipynb",
                   [f"{HAND_IN_LABEL} /home/alice/course/notebooks/homework/init8_max24_ei"])
    assert notebook_hand_in(nb)[:1] != [run]  # the path as printed does not exist here
    submissions = find_submissions([copied])
    assert [s.run_dir for s in submissions] == [run]  # the notebook and its folder: one


def test_without_the_line_a_single_panel_run_under_output_dir_is_found(tmp_path):
    nb = _notebook(tmp_path / "4_homework.ipynb", ["No run yet: press Run in the panel above."])
    assert notebook_hand_in(nb) == []
    only = _run_folder(tmp_path / "outputs" / "4_homework" / "init8_max24_ei")
    assert notebook_hand_in(nb) == [only]
    _run_folder(tmp_path / "outputs" / "4_homework" / "init8_max24_ucb")
    assert notebook_hand_in(nb) == []  # two runs and no line naming one: not a guess
    (found,) = find_submissions([nb])
    assert found.run_dir is None  # reported as "no output folder", with the others ranked
