"""Shared fixtures: one real local HighThroughputExecutor for the whole session.

Starting Parsl costs seconds, so tests that only need *a* running executor share this one
(loopback address, a temporary run_dir), as Colmena's tests do.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep fingerprint caches of the test run out of the user's home directory."""
    if "COURSE_UTILS_CACHE_DIR" not in os.environ:
        os.environ["COURSE_UTILS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def parsl_local(tmp_path_factory):
    import parsl

    from course_utils.configs import make_local_config

    run_dir = tmp_path_factory.mktemp("runinfo")
    with parsl.load(make_local_config(workers=2, run_dir=run_dir)) as dfk:
        yield dfk


@pytest.fixture(scope="session")
def small_space(tmp_path_factory) -> Path:
    """200 seeded QM9 molecules as a user search-space file: real molecules, fast campaigns."""
    import pandas as pd

    from course_utils.search_space import load_search_space, sample_smiles

    path = tmp_path_factory.mktemp("space") / "space.csv"
    pd.DataFrame({"smiles": sample_smiles(load_search_space("qm9"), 200, seed=11)}).to_csv(
        path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_truth(parsl_local, small_space, tmp_path_factory):
    """A real ground-truth table (xTB) for the first 30 molecules of the small test space, plus
    one that cannot be embedded: replays, stop rules and figures are tested against it."""
    import pandas as pd

    from course_utils.ground_truth.build import build_ground_truth

    folder = tmp_path_factory.mktemp("truth")
    space = folder / "space.csv"
    smiles = pd.read_csv(small_space)["smiles"].head(30).tolist() + ["C1C#C1"]  # one fails
    pd.DataFrame({"smiles": smiles}).to_csv(space, index=False)
    table = folder / "truth.csv"
    build_ground_truth(str(space), out=table, workers=2, progress=False)
    return space, table


@pytest.fixture(scope="session")
def eight_space(tmp_path_factory) -> Path:
    """Eight small molecules, one of which cannot be embedded: a space a build finishes fast."""
    import pandas as pd
    from truth_tools import SMILES

    path = tmp_path_factory.mktemp("gt_space") / "space.csv"
    pd.DataFrame({"smiles": SMILES}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def eight_built(eight_space, tmp_path_factory):
    """The one build that loads (and shuts down) its own Parsl, unless the session's is loaded
    already; every other build of the ground-truth tests reuses the session's executor."""
    from truth_tools import build, parsl_loaded

    out = tmp_path_factory.mktemp("gt_full") / "t.csv"
    loaded = parsl_loaded()
    report = build(eight_space, out)
    assert parsl_loaded() == loaded  # a kernel the build loaded is gone; a reused one stays
    return report, out


@pytest.fixture
def parsl_after_build(eight_built, parsl_local):
    """The session's executor, requested only after ``eight_built`` had its chance to load its own."""
    return parsl_local


_SESSION_START = __import__("time").time()


def pytest_sessionfinish(session, exitstatus):
    """No Parsl process of any test may outlive the suite (by more than about a minute).

    Under pytest-xdist only the controller checks, once every worker has finished: a worker
    that finishes first would see the other's live executors."""
    from process_tools import parsl_processes, survivors

    if hasattr(session.config, "workerinput"):
        return
    left = survivors(parsl_processes(_SESSION_START), timeout=60)
    if left:
        print("\nParsl processes left behind by the tests:\n  " + "\n  ".join(left))
        session.exitstatus = 1
