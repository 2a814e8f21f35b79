#!/usr/bin/env bash
# Quickstart command 2: set up the environment (first time only) and run the whole test suite:
# ruff, unit tests, notebook execution through papermill and nbval checks of stored outputs.
# Extra arguments go to pytest, e.g. `bash run_tests.sh -k chemistry`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck disable=SC1091
source ./activate_env.sh
# The multi-node and MPI tests need a real mpiexec, as Polaris has its own: the venv gets MPICH's
# from PyPI (the mpi extra); failing that, Debian's MPICH when root; otherwise they are skipped.
if ! command -v mpiexec >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing MPICH for the multi-node tests (once; log in .venv/apt.log) ..."
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y mpich; } \
        >"${VIRTUAL_ENV:-.}/apt.log" 2>&1 || echo "  could not install mpich; multi-node tests will be skipped"
fi
# Only the project's own code: a run folder inside the repository (`bash run_ml_in_the_loop.sh my_run`)
# holds an executed notebook that is output, not source.
ruff check course_utils tests benchmarks scripts
# Two processes, one test file (or notebook) each at a time: the suite's Parsl tests wait on
# workers and subprocesses much of the time, so two files side by side take ~40 % less time.
python -m pytest -n 2 --dist loadfile "$@"
