#!/usr/bin/env bash
# SLSG on MVTec LOCO AD with the reference settings (areylng/SLSG @ 4a1496b): 256x256 LANCZOS input, 4 normals +
# 4 simulated anomalies per step, SGD lr 0.04 (momentum 0.9, wd 3e-5) with one cosine decay over 7001 steps,
# evaluation every 100 steps (best-on-test kept, as the reference; the last step is reported too).
#
#   LOCO=/data/mvtec_loco_anomaly_detection DTD=/data/dtd/images shell/run-loco.sh [extra main.py flags]
#
# The encoder: by default the toolkit's generative pre-training (a reconstruction of the paper, not reference
# code) runs first per class, starting from ENCODER (a torchvision resnet18 state dict, e.g.
# $TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth). PRETRAIN=none reproduces what the released code effectively
# ran (ImageNet initialisation only). Without ENCODER the encoder starts from random weights (a warning says so).
# To evaluate the released per-class weights: --test test --checkpoint model_data/<class>.tch --classes <class>.
# The same flags work for MVTec-AD-layout datasets: DATASET=mvtec LOCO=/data/mvtec CLASSES="bottle cable" ...
# Runs from any directory. DRY_RUN=1 prints the command instead of running it; PY (or PYTHON) picks the interpreter.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PY:-${PYTHON:-}}"
if [[ -z "$PY" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi
: "${LOCO:?set LOCO to the MVTec LOCO AD root (the folder holding breakfast_box/ ...)}"
: "${DTD:?set DTD to the DTD images folder (dtd/images)}"
DATASET="${DATASET:-loco}"
CLASSES="${CLASSES:-breakfast_box juice_bottle splicing_connectors pushpins screw_bag}"
RESULTS="${RESULTS:-$REPO/results/slsg_${DATASET}}"
PRETRAIN="${PRETRAIN:-inpaint+pos}"
GPU="${GPU:-0}"

class_flags=()
for c in $CLASSES; do class_flags+=(--classes "$c"); done
encoder_flags=()
if [[ -n "${ENCODER:-}" ]]; then encoder_flags+=(--encoder_weights "$ENCODER"); fi

cmd=("$PY" main.py --method slsg --test ckpt --dataset "$DATASET" --datapath "$LOCO" --augpath "$DTD"
  "${class_flags[@]}" --results_path "$RESULTS" --gpu "$GPU" --seed 0
  --imagesize 256 --batch_size 4 --steps 7001 --lr 0.04 --eval_every 100
  --pretrain "$PRETRAIN" --pretrain_steps 3000 "${encoder_flags[@]}" "$@")
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf '%q ' "${cmd[@]}"
  printf '\n'
  exit 0
fi
"${cmd[@]}"
echo "[slsg] results: $RESULTS/results.csv (image AUROC overall / logical / structural, pixel AUROC, AU-PRO)"
