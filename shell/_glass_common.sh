# Shared by the GLASS run-*.sh scripts (sourced, not run): repository root, Python, and the dry-run switch.
# DRY_RUN=1 prints the python command instead of running it. PYTHON overrides the interpreter.
# NPROC=<n> launches with torchrun (n processes; NNODES/NODE_RANK/RDZV_ENDPOINT for several machines): _launch.sh.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

source "$REPO/shell/_launch.sh"

# run_glass ARG...: run (or, with DRY_RUN=1, print) `python main.py --method glass ARG...`
run_glass() {
  main_py "$PYTHON"
  local cmd=("${MAIN_PY[@]}" --method glass "$@")
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '%q ' "${cmd[@]}"
    printf '\n'
  else
    "${cmd[@]}"
  fi
}

# The reference `net` settings shared by every script (glass.md §2).
GLASS_NET=(-b wideresnet50 -le layer2 -le layer3 --pretrain_embed_dimension 1536 --target_embed_dimension 1536
  --patchsize 3 --meta_epochs 640 --eval_epochs 1 --dsc_layers 2 --dsc_hidden 1024 --pre_proj 1 --mining 1
  --noise 0.015 --radius 0.75 --p 0.5 --step 20 --limit 392)
# The reference `dataset` settings shared by every script.
GLASS_DATA=(--mean 0.5 --std 0.1 --rand_aug 1 --batch_size 8 --resize 288 --imagesize 288)

# class_flags CLASS...: "--classes c1 --classes c2 ..."
class_flags() {
  local c
  for c in "$@"; do printf -- '--classes\n%s\n' "$c"; done
}
