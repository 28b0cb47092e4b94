#!/usr/bin/env bash
# Issue 13 on a GPU machine, in one command (about 5-8 minutes):
#   bash benchmarks/gpu_check.sh            # environment, CUDA test subset, GPU benchmarks, summary
# Figures go to results/gpu_check/ (or $OUT when set). Needs no network when torch/timm are already installed
# (set VIRTUAL_ENV or have them in python3); otherwise shell/setup-env.sh installs requirements-dev.txt.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DEST="${OUT:-$REPO/results/gpu_check}"
mkdir -p "$DEST"
started=$(date +%s)

if [[ -z "${VIRTUAL_ENV:-}" ]] && python3 -c "import torch, timm, cv2, skimage, sklearn, scipy, pytest" 2>/dev/null; then
  PY=python3
  echo "[gpu_check] using $(command -v python3)"
else
  # shellcheck source=../shell/setup-env.sh
  source "$REPO/shell/setup-env.sh" "$REPO/requirements-dev.txt" || { echo "FAIL: environment setup"; exit 1; }
fi
set +e  # setup-env.sh sets -e: keep going past a failing stage so that the summary is printed
export HF_HUB_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
if [[ -z "${AD_SHARED_DIR:-}" ]]; then
  for candidate in "$REPO/shared" "$REPO/../shared"; do
    [[ -d "$candidate/fixtures" ]] && export AD_SHARED_DIR="$candidate" && break
  done
fi
"$PY" - <<'PYEOF' || { echo "FAIL: no CUDA device visible to torch"; exit 1; }
import torch
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
print(f"[gpu_check] {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PYEOF

# 1. the CUDA test subset (--device cuda: a missing GPU fails instead of skipping) and the CPU checks of the
#    CUDA code paths; the fixture tests run when ../shared/fixtures is present
tests=(tests/test_cuda.py tests/test_glass_sync_free.py tests/test_threads.py)  # none needs downloaded weights
[[ -n "${AD_SHARED_DIR:-}" ]] && tests+=(tests/test_glass_fixture.py tests/test_slsg_fixture.py)
timeout 240 "$PY" -m pytest -q -p no:cacheprovider --device cuda "${tests[@]}" 2>&1 | tee "$DEST/tests.txt" | tail -15
test_status=${PIPESTATUS[0]}

# 2. the GPU benchmarks (GLASS reference order vs toolkit fp32 / bf16, SLSG step and inference)
timeout 300 "$PY" benchmarks/gpu_speed.py --device cuda --json "$DEST/gpu_speed.json" 2>&1 | tee "$DEST/gpu_speed.txt"
bench_status=${PIPESTATUS[0]}

echo
echo "==================== gpu_check summary ($(( $(date +%s) - started )) s) ===================="
[[ $test_status -eq 0 ]] && echo "PASS  CUDA test subset ($(tail -1 "$DEST/tests.txt"))" \
                         || echo "FAIL  CUDA test subset (exit $test_status; see $DEST/tests.txt)"
if [[ $bench_status -eq 0 ]]; then
  echo "PASS  gpu_speed"
  grep -E "^(gpu_speed on|summary:)" "$DEST/gpu_speed.txt"
  grep -E "^  (reference|toolkit|toolkit_bf16) " "$DEST/gpu_speed.txt" | cut -c1-200
else
  echo "FAIL  gpu_speed (exit $bench_status; see $DEST/gpu_speed.txt)"
fi
echo "figures: $DEST/gpu_speed.json"
[[ $test_status -eq 0 && $bench_status -eq 0 ]]
