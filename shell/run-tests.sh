#!/usr/bin/env bash
# The test suite: creates or reuses the environment, then runs pytest (no network, no GPU needed).
# Extra arguments go to pytest, e.g. `bash shell/run-tests.sh -k metrics`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source "$REPO/shell/setup-env.sh" "$REPO/requirements-dev.txt"
export HF_HUB_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
set +e
"$PY" -m pytest -q "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit $status
