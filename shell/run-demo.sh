#!/usr/bin/env bash
# The main job on the embedded demo data: set-up, demo data, GLASS training + evaluation on the CPU,
# the metric table and the heat maps. Safe to re-run (the environment and the data are reused; training starts
# over in a fresh results folder). Extra arguments are passed to main.py.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source "$REPO/shell/setup-env.sh"
export HF_HUB_OFFLINE=1

DEMO_DIR="${DEMO_DIR:-$REPO/.cache/demo}"
RESULTS="${RESULTS:-$REPO/results/demo}"
if ! "$PY" -c "import datasets.demo" 2>/dev/null; then
  echo "[demo] the environment is ready; the demo-data generator is not in this checkout yet."
  exit 0
fi
echo "[demo] generating (or reusing) the demo data in $DEMO_DIR"
"$PY" -m datasets.demo --out "$DEMO_DIR"

if ! "$PY" -c "import glass.method" 2>/dev/null; then
  echo "[demo] the environment and the demo data are ready ($DEMO_DIR); the GLASS method is not in this checkout yet."
  exit 0
fi

rm -rf "$RESULTS"
"$PY" main.py --method glass --test ckpt \
  --dataset mvtec --datapath "$DEMO_DIR/mvtec" --augpath "$DEMO_DIR/dtd/images" \
  --results_path "$RESULTS" --gpu -1 --seed 0 \
  -b efficientnet_lite0 -le layer2 -le layer3 \
  --pretrain_embed_dimension 512 --target_embed_dimension 512 --dsc_hidden 512 \
  --meta_epochs 8 --eval_epochs 1 --step 20 --limit 64 \
  --distribution 2 --fg 1 --resize 256 --imagesize 256 --batch_size 8 --num_workers 0 "$@"
echo "[demo] results table: $RESULTS/results.csv; heat maps: $RESULTS/eval/<dataset>_<class>/*.png"
