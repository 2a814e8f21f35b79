"""Stored notebook outputs agree with the data the kit ships.

nbval compares only the cells marked for it, so a figure or a printed line in a stored output
can go stale when the shipped ground-truth table changes (it did: notebooks 3 and 4 kept saying
"covers 14,929 of 130,831 molecules" and a global best of 18.25 eV after the table was complete).
This reads every stored output instead: printed text, and the text that the kit's campaign
figures carry inside their PNG files.
"""

from __future__ import annotations

import base64
import io
import re

import nbformat
import pytest
from notebook_tools import NOTEBOOKS
from PIL import Image

from course_utils.ground_truth.shipped import load_ground_truth

COVERS = re.compile(r"covers ([\d,]+) of ([\d,]+) molecules")
GLOBAL_BEST = re.compile(r"global best(?: of the table)?:? (?:\S+ at )?(\d+\.\d+) eV")
#: Notebooks whose stored output shows a campaign over all of QM9, with its figure.
CAMPAIGN_FIGURES = ("3_ml_in_the_loop.ipynb", "4_homework.ipynb")


@pytest.fixture(scope="module")
def shipped() -> tuple[int, int, float]:
    table = load_ground_truth("qm9")
    coverage = table.attrs["coverage"]
    return coverage.covered, coverage.total, float(table["ie"].max())


def _outputs(path) -> tuple[list[str], list[dict[str, str]]]:
    """Printed text and the text chunks of PNG images of a stored notebook."""
    nb = nbformat.read(path, as_version=4)
    texts, images = [], []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                texts.append(str(output["text"]))
            data = output.get("data", {})
            texts += [str(data[kind]) for kind in ("text/plain", "text/html") if kind in data]
            if "image/png" in data:
                png = Image.open(io.BytesIO(base64.b64decode(data["image/png"])))
                images.append(dict(png.text))
    return texts, images


def _agrees(value: str, truth: float) -> bool:
    """A value printed with d decimals agrees when it is the truth rounded to d decimals."""
    decimals = len(value.partition(".")[2])
    return abs(float(value) - round(truth, decimals)) < 0.5 * 10 ** -decimals + 1e-9


def _stale_claims(text: str, shipped: tuple[int, int, float]) -> list[str]:
    covered, total, best = shipped
    stale = []
    for match in COVERS.finditer(text):
        n, of = (int(g.replace(",", "")) for g in match.groups())
        if of == total and n != covered:
            stale.append(match.group(0))
    stale += [m.group(0) for m in GLOBAL_BEST.finditer(text) if not _agrees(m.group(1), best)]
    return stale


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_stored_outputs_state_the_shipped_coverage_and_best(name, shipped):
    texts, images = _outputs(NOTEBOOKS / name)
    descriptions = [i.get("Description", "") for i in images]
    stale = [claim for text in texts + descriptions for claim in _stale_claims(text, shipped)]
    assert not stale, f"{name}: stored output disagrees with the shipped table: {stale[:5]}"


@pytest.mark.parametrize("name", CAMPAIGN_FIGURES)
def test_campaign_figures_say_what_they_were_measured_against(name, shipped):
    """The stored campaign figure names its search space, coverage and global best, and they
    are the shipped table's (an old figure without that text fails: it cannot be checked)."""
    _, images = _outputs(NOTEBOOKS / name)
    described = [i["Description"] for i in images if "search space" in i.get("Description", "")]
    assert described, f"{name} stores no campaign figure that states its ground truth"
    covered, total, best = shipped
    for text in described:
        assert "search space qm9;" in text
        assert f"covers {covered:,} of {total:,} molecules" in text
        assert f"global best {best:.3f} eV" in text


def test_stale_claims_are_caught():
    """The checks themselves: a stale coverage and a stale best are found, current ones pass."""
    shipped = (130_831, 130_831, 20.234)
    assert _stale_claims("ground truth covers 14,929 of 130,831 molecules", shipped)
    assert _stale_claims("global best 18.25 eV (O)", shipped)
    assert _stale_claims("global best of the table: 18.246 eV", shipped)
    assert not _stale_claims("ground truth covers 130,831 of 130,831 molecules; "
                             "global best: FC(F)(F)F at 20.23 eV", shipped)
    assert not _stale_claims("truth:qm9:8000 covers 8,000 of 8,000 molecules", shipped)
