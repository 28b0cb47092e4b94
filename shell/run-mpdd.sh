#!/usr/bin/env bash
# GLASS on MPDD with the reference settings (glass.md §2; --fg 0). Edit datapath / augpath / classes below.
# --test ckpt trains (resuming an interrupted run; --retrain starts over) then evaluates; --test test only evaluates.
# Runs from any directory. DRY_RUN=1 bash shell/run-mpdd.sh prints the command instead of running it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_glass_common.sh"

datapath=${GLASS_DATAPATH:-/data/MPDD}
augpath=${GLASS_AUGPATH:-/data/dtd/images}
classes=(bracket_black bracket_brown bracket_white connector metal_plate tubes)
test_mode=ckpt   # ckpt | test

mapfile -t class_args < <(class_flags "${classes[@]}")
run_glass --test "$test_mode" --gpu 0 --seed 0 --results_path results \
  "${GLASS_NET[@]}" "${GLASS_DATA[@]}" --distribution 0 --fg 0 \
  --dataset mpdd --datapath "$datapath" --augpath "$augpath" "${class_args[@]}" "$@"
