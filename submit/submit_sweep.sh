#!/usr/bin/env bash
# Submit a parameter sweep of the homework: one PBS job per line of a sweep file.
#
#   submit/submit_sweep.sh -A PROJECT [-q debug] [-n NODES] [-t HH:MM:SS] submit/example_sweep.txt
#
# Each line holds one parameter set as name=value words (# starts a comment); every line is
# checked before any job is submitted. Job folders: outputs/jobs/SWEEPNAME-LINE-JOBID/.
# Grade the whole sweep afterwards with: python -m course_utils grade outputs/jobs
#
# Early termination instead: one job runs the whole sweep, stopping the configurations that
# cannot catch the leader at each rung (successive halving; submit/run_sweep.pbs):
#
#   submit/submit_sweep.sh --halving [--eta 3] [--rungs 24,48] -A PROJECT -n 2 -t 01:00:00 \
#       submit/example_sweep.txt
#
# Outputs: outputs/jobs/SWEEPNAME-halving-JOBID/ (sweep.csv, sweep.json, configs/config-NN/).
set -euo pipefail
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/_course_env.sh"
exec python -m course_utils.polaris.pbs sweep "$@"
