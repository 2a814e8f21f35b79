#!/usr/bin/env bash
# Submit the homework notebook as a PBS job on Polaris, from a login node:
#
#   submit/submit_homework.sh -A PROJECT [-q debug] [-n NODES] [-t HH:MM:SS] [--name NAME] \
#       initial_training_count=16 max_training_count=128 batch_size=16 acquisition=ucb
#
# Parameters are checked before submission (an impossible campaign never waits in the queue).
# The filled-in job script is kept in outputs/jobs/scripts/; the job writes
# outputs/jobs/NAME-JOBID/ (executed notebook, results.json, simulations.csv, plot, job.log).
# --dry-run writes the job script and prints the qsub command without submitting. --help: all options.
set -euo pipefail
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/_course_env.sh"
exec python -m course_utils.polaris.pbs submit "$@"
