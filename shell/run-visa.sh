#!/usr/bin/env bash
# GLASS on VisA with the reference settings (glass.md §2). Edit datapath / augpath / classes below.
# --test ckpt trains (resuming an interrupted run; --retrain starts over) then evaluates; --test test only evaluates.
# Runs from any directory. DRY_RUN=1 bash shell/run-visa.sh prints the command instead of running it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_glass_common.sh"

datapath=${GLASS_DATAPATH:-/data/VisA}
augpath=${GLASS_AUGPATH:-/data/dtd/images}
classes=(candle capsules cashew chewinggum fryum macaroni1 macaroni2 pcb1 pcb2 pcb3 pcb4 pipe_fryum)
test_mode=ckpt   # ckpt | test

mapfile -t class_args < <(class_flags "${classes[@]}")
run_glass --test "$test_mode" --gpu 0 --seed 0 --results_path results \
  "${GLASS_NET[@]}" "${GLASS_DATA[@]}" --distribution 0 --fg 1 \
  --dataset visa --datapath "$datapath" --augpath "$augpath" "${class_args[@]}" "$@"
