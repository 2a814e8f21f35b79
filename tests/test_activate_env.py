"""activate_env.sh on Polaris' conda path: created once, updated when the dependencies change.

There is no conda here, so a stand-in ``conda`` on the PATH records what the real script asks
of it; everything else (the stamp, the kernel registration) runs for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAND_IN_CONDA = """#!/usr/bin/env bash
echo "$*" >> "$CONDA_LOG"
if [ "${CONDA_FAIL:-}" = "$1 $2" ]; then echo "stand-in conda: $1 $2 failed" >&2; exit 1; fi
if [ "$1 $2" = "env create" ]; then mkdir -p "$4/conda-meta"; fi
exit 0
"""


@pytest.fixture
def kit(tmp_path):
    """A copy of the script and the two files its stamp reads, and a stand-in conda."""
    root = tmp_path / "kit"
    root.mkdir()
    for name in ("activate_env.sh", "pyproject.toml", "environment.yml"):
        shutil.copy(ROOT / name, root / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "conda").write_text(STAND_IN_CONDA)
    (bin_dir / "conda").chmod(0o755)
    return root, bin_dir, tmp_path


def _source(kit, **extra) -> subprocess.CompletedProcess:
    root, bin_dir, tmp = kit
    env = {**os.environ, "COURSE_ENV_MODE": "conda", "COURSE_CONDA_ENV": str(tmp / "env"),
           "CONDA_LOG": str(tmp / "conda.log"), "JUPYTER_DATA_DIR": str(tmp / "jupyter"),
           "COURSE_KERNEL_NAME": "conda-path-test",
           "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                   f"{os.environ['PATH']}", **extra}
    return subprocess.run(["bash", "-c", "source ./activate_env.sh && echo activated"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def _calls(kit) -> list[str]:
    log = kit[2] / "conda.log"
    return log.read_text().splitlines() if log.exists() else []


def _verbs(kit) -> list[str]:
    """``env create``, ``env update``, ``activate``: what each call asked for."""
    return [" ".join(c.split()[:2]) if c.startswith("env ") else c.split()[0] for c in _calls(kit)]


def test_the_conda_env_is_created_once_and_updated_when_the_dependencies_change(kit):
    first = _source(kit)
    assert first.returncode == 0 and "activated" in first.stdout, first.stderr
    assert _verbs(kit) == ["env create", "activate"]

    again = _source(kit)  # nothing changed: nothing to do but activate
    assert again.returncode == 0, again.stderr
    assert _calls(kit)[2:] == [f"activate {kit[2] / 'env'}"]

    with open(kit[0] / "environment.yml", "a") as fh:
        fh.write("  # a dependency list that changed\n")
    updated = _source(kit)
    assert updated.returncode == 0, updated.stderr
    assert "dependencies changed" in updated.stdout
    assert _calls(kit)[3].startswith(f"env update --prefix {kit[2] / 'env'} --file environment.yml")
    assert _source(kit).returncode == 0 and _calls(kit)[5:] == [f"activate {kit[2] / 'env'}"]


def test_a_failed_update_says_so_and_is_tried_again_next_time(kit):
    assert _source(kit).returncode == 0
    (kit[2] / "env" / ".course_install_stamp").write_text("an older dependency list\n")
    failed = _source(kit, CONDA_FAIL="env update")
    assert failed.returncode != 0 and "activated" not in failed.stdout
    assert "activate_env.sh: conda env update failed" in failed.stderr
    retried = _source(kit)
    assert retried.returncode == 0, retried.stderr
    assert _verbs(kit).count("env update") == 2
