#!/usr/bin/env bash
# Sourced by run-demo.sh and run-tests.sh: use the active virtual environment, or create/reuse ./.venv, and
# install requirements when they changed since the last install (a stamp file holds their hash). Safe to re-run.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ_FILE="${1:-$REPO/requirements.txt}"

if [[ -n "${VIRTUAL_ENV:-}" && -x "${VIRTUAL_ENV}/bin/python" ]]; then
  PY="${VIRTUAL_ENV}/bin/python"
  echo "[setup] using the active environment ${VIRTUAL_ENV}"
else
  if [[ ! -x "$REPO/.venv/bin/python" ]]; then
    echo "[setup] creating $REPO/.venv"
    PYTHON_BIN="${PYTHON:-$(command -v python3.11 || command -v python3)}"
    "$PYTHON_BIN" -m venv "$REPO/.venv"
  fi
  PY="$REPO/.venv/bin/python"
fi

STAMP_DIR="$("$PY" -c 'import sys; print(sys.prefix)')"
STAMP="$STAMP_DIR/.anomaly-toolkit-$(basename "$REQ_FILE").sha256"
WANT="$(cat "$REQ_FILE" "$REPO"/requirements*.txt | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
  echo "[setup] installing $(basename "$REQ_FILE") (first run: a few minutes; PyTorch comes from the local disk)"
  "$PY" -m pip install --disable-pip-version-check -q -r "$REQ_FILE" 2>&1 | grep -v "is ignored: it is neither" || true
  "$PY" -c "import torch, torchvision, timm, cv2, skimage, sklearn, scipy, pandas, tifffile" \
    || { echo "[setup] installation failed: see the pip output above" >&2; exit 1; }
  echo "$WANT" > "$STAMP"
else
  echo "[setup] requirements already installed"
fi
export PY
