#!/usr/bin/env bash
# GLASS on MAD-sys (Beta_0.1) with the reference settings (glass.md §2). Edit datapath / classes below.
# --test ckpt trains (resuming an interrupted run; --retrain starts over) then evaluates; --test test only evaluates.
# Test only: --dataset mad-sys evaluates the MVTec AD checkpoints (results/models/backbone_0/mvtec_<class>, as in the
# reference, which names these runs "mvtec"); rows are named mad-sys_<class> in results.csv.
# Other Beta_* subsets: edit datapath.
# Runs from any directory. DRY_RUN=1 bash shell/run-mad-sys.sh prints the command instead of running it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_glass_common.sh"

datapath=${GLASS_DATAPATH:-/data/MAD-sys/Beta_0.1}
augpath=${GLASS_AUGPATH:-/data/dtd/images}
classes=(carpet grid leather tile wood)
test_mode=test   # ckpt | test

mapfile -t class_args < <(class_flags "${classes[@]}")
run_glass --test "$test_mode" --gpu 0 --seed 0 --results_path results \
  "${GLASS_NET[@]}" "${GLASS_DATA[@]}" --distribution 0 --fg 1 \
  --dataset mad-sys --datapath "$datapath" --augpath "$augpath" "${class_args[@]}" "$@"
