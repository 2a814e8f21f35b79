#!/usr/bin/env bash
# Quickstart command 2: set up the environment (first time only) and run the whole test suite:
# ruff, unit tests, notebook execution through papermill and nbval checks of stored outputs.
# Extra arguments go to pytest, e.g. `bash run_tests.sh -k chemistry`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck disable=SC1091
source ./activate_env.sh
ruff check .
python -m pytest "$@"
