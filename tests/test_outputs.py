"""What a run reports: results.json says how many workers ran it and on which machine."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from course_utils import records as rec

REPO = Path(__file__).resolve().parents[1]


def test_a_command_line_run_records_its_workers_and_machine(tmp_path):
    """``--workers`` left out (the common case) still records the count the run used."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "course_utils", "run", "--simulator", "replay",
         "--search-space", "truth:qm9:200", "--initial-training-count", "6",
         "--max-training-count", "10", "--batch-size", "2", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / rec.RESULTS_FILE).read_text())
    assert results["parameters"]["workers"] is None  # what was asked: the machine's cores
    assert results["workers"] == os.cpu_count()  # what ran
    assert results["machine"] == {"hostname": socket.gethostname(), "cpu_count": os.cpu_count(),
                                  "platform": platform.platform()}


def test_a_run_given_workers_records_that_count(tmp_path):
    from course_utils.campaign.runner import run_campaign

    result = run_campaign({"simulator": "replay", "search_space": "truth:qm9:200", "workers": 3,
                           "initial_training_count": 6, "max_training_count": 8,
                           "batch_size": 2}, tmp_path / "run", progress=False, plot=False)
    assert result.results["workers"] == 3
    assert json.loads((tmp_path / "run" / rec.RESULTS_FILE).read_text())["workers"] == 3
