"""The campaign figure (``ml_in_the_loop.png``) and what it says it was measured against."""

from __future__ import annotations

import json

from PIL import Image

from course_utils import records as rec
from course_utils.campaign import run_campaign
from course_utils.plotting import plot_campaign


def test_campaign_figure_carries_its_ground_truth_as_text(tiny_truth, tmp_path):
    """The PNG names the search space, the table's coverage and its global best, so a stored
    figure can be checked against the shipped table (tests/test_stored_outputs.py)."""
    space, table = tiny_truth
    out = tmp_path / "run"
    result = run_campaign({"initial_training_count": 6, "max_training_count": 10, "batch_size": 4,
                           "seed": 3, "search_space": str(space), "simulator": "replay",
                           "ground_truth": str(table)}, out, progress=False)
    evaluation = json.loads((out / rec.RESULTS_FILE).read_text())["evaluation"]
    text = Image.open(result.plot_path).text
    best = evaluation["global_best"]
    assert text["Description"] == (f"search space {space}; {evaluation['coverage']['text']}; "
                                   f"global best {best['ie']:.3f} eV ({best['smiles']})")
    assert "seed 3" in text["Title"]


def test_a_figure_without_an_evaluation_states_nothing(tiny_truth, tmp_path):
    space, table = tiny_truth
    out = tmp_path / "run"
    run_campaign({"initial_training_count": 6, "max_training_count": 8, "batch_size": 2,
                  "seed": 4, "search_space": str(space), "simulator": "replay",
                  "ground_truth": str(table)}, out, progress=False, plot=False)
    (out / rec.RESULTS_FILE).unlink()  # records only: nothing to measure against
    assert "Description" not in Image.open(plot_campaign(out)).text
