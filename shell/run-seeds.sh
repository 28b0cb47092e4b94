#!/usr/bin/env bash
# Run the same experiment with several seeds and report mean ± std per class (the honest protocol).
#   SEEDS="0 1 2" bash shell/run-seeds.sh --method glass --dataset mvtec --datapath ... --augpath ... --classes carpet
# Every seed gets its own results folder <RESULTS>/seed_<s>; the summary goes to <RESULTS>/seeds_summary.csv.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source "$REPO/shell/setup-env.sh" "$REPO/requirements.txt"
SEEDS="${SEEDS:-0 1 2}"
RESULTS="${RESULTS:-results/seeds}"
runs=()
for seed in $SEEDS; do
  echo "[seeds] seed $seed"
  "$PY" main.py "$@" --seed "$seed" --results_path "$RESULTS/seed_$seed"
  runs+=("$RESULTS/seed_$seed")
done
"$PY" -m runner.seeds "${runs[@]}" --out "$RESULTS/seeds_summary.csv"
"$PY" -m runner.report "$RESULTS"  # report.html: one table per seed and the mean ± std, linking each seed's own report
