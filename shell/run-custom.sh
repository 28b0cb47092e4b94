#!/usr/bin/env bash
# GLASS on your own data with the reference run-custom settings (glass.md §2). Edit datapath / augpath / classes.
# --test ckpt trains (resuming an interrupted run; --retrain starts over) then evaluates; --test test only evaluates.
# Your own data in the MVTec AD layout (<datapath>/<class>/{train/good,test/<type>,ground_truth/<type>}).
# --distribution 2 (manifold GAS) because custom classes are not in the built-in table; 1 = let the FFT judge decide.
# Runs from any directory. DRY_RUN=1 bash shell/run-custom.sh prints the command instead of running it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_glass_common.sh"

datapath=${GLASS_DATAPATH:-/data/Custom}
augpath=${GLASS_AUGPATH:-/data/dtd/images}
classes=(class1 class2)
test_mode=ckpt   # ckpt | test

mapfile -t class_args < <(class_flags "${classes[@]}")
run_glass --test "$test_mode" --gpu 0 --seed 0 --results_path results \
  "${GLASS_NET[@]}" "${GLASS_DATA[@]}" --distribution 2 --fg 0 \
  --dataset mvtec --datapath "$datapath" --augpath "$augpath" "${class_args[@]}" "$@"
