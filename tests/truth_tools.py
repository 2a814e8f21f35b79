"""Shared by the ground-truth tests: eight small molecules, the build file as written, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SMILES = ["O", "C", "CC", "OC", "N", "CCO", "C#C", "C1C#C1"]  # C1C#C1 cannot be embedded
UNEMBEDDABLE = "C1C#C1"


def build(space: Path, out: Path, **kwargs):
    from course_utils.ground_truth.build import build_ground_truth

    return build_ground_truth(str(space), out=out, workers=2, progress=False, **kwargs)


def raw_rows(path: Path) -> pd.DataFrame:
    """The build file exactly as written: no de-duplication, unlike read_table."""
    return pd.read_csv(path, keep_default_na=False, na_values={"ie": [""]})


def parsl_loaded() -> bool:
    import parsl
    from parsl.errors import NoDataFlowKernelError

    try:
        parsl.dfk()
    except NoDataFlowKernelError:
        return False
    return True


def truth_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "course_utils", "truth", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
