#!/usr/bin/env bash
# Quickstart command 1: set up the environment (first time only) and run the full
# ML-in-the-loop notebook end to end with papermill, locally.
#   bash run_ml_in_the_loop.sh [OUTPUT_FOLDER] [papermill options, e.g. -p max_training_count 32]
# Writes OUTPUT_FOLDER/3_ml_in_the_loop.ipynb (executed), ml_in_the_loop.png, results.json,
# simulations.csv and iterations.csv. Default folder: outputs/ml_in_the_loop. Running it again
# with the same folder resumes the campaign recorded there (nothing is recomputed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck disable=SC1091
source ./activate_env.sh
out="${1:-outputs/ml_in_the_loop}"
shift || true
mkdir -p "$out"
out="$(cd "$out" && pwd)"
papermill notebooks/3_ml_in_the_loop.ipynb "$out/3_ml_in_the_loop.ipynb" \
    -k "$COURSE_KERNEL_NAME" --cwd notebooks -p output_dir "$out" "$@"
echo
echo "Done. Outputs in $out:"
ls -1 "$out" | grep -v runinfo | sed 's/^/  /'
python - "$out" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/results.json"))
b = r["best"]
print(f"status: {r['status']}; best simulated molecule {b['smiles']} with IE {b['ie']:.3f} eV")
PY
