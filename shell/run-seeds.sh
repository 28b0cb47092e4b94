#!/usr/bin/env bash
# Run the same experiment with several seeds and report mean ± std per class (the honest protocol).
#   SEEDS="0 1 2" bash shell/run-seeds.sh --method glass --dataset mvtec --datapath ... --augpath ... --classes carpet
# Every seed gets its own results folder <RESULTS>/seed_<s>; the summary goes to <RESULTS>/seeds_summary.csv.
# NPROC=<n> spreads the (class, seed) units over n torchrun processes (README: "Scale out"); a rerun resumes.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source "$REPO/shell/setup-env.sh" "$REPO/requirements.txt"
SEEDS="${SEEDS:-0 1 2}"
RESULTS="${RESULTS:-results/seeds}"
source "$REPO/shell/_launch.sh"
main_py "$PY"
read -r -a seeds <<< "$SEEDS"
"${MAIN_PY[@]}" "$@" --seeds "${seeds[@]}" --results_path "$RESULTS"
"$PY" -m runner.report "$RESULTS"  # report.html: one table per seed and the mean ± std, linking each seed's own report
