# Sourced by _glass_common.sh and run-seeds.sh: how main.py is started.
# NPROC=<n> (n > 1) or NNODES=<m> (m > 1) launch it with torchrun, which spreads the (class, seed) work units over
# the processes (README: "Scale out"); NNODES, NODE_RANK, RDZV_ENDPOINT (host:port of the rendezvous, on node 0)
# and RDZV_ID are passed through to torchrun. Without them: plain `python main.py`.
# main_py PYTHON: sets the array MAIN_PY to the command that runs main.py.
main_py() {
  local python="$1" nproc="${NPROC:-1}" nnodes="${NNODES:-1}"
  if (( nproc > 1 || nnodes > 1 )); then
    MAIN_PY=("$python" -m torch.distributed.run --nproc_per_node "$nproc")
    if (( nnodes > 1 )); then
      MAIN_PY+=(--nnodes "$nnodes" --rdzv_backend c10d --rdzv_endpoint "${RDZV_ENDPOINT:?RDZV_ENDPOINT=host:port is needed with NNODES>1}"
        --rdzv_id "${RDZV_ID:-glass}")
      if [[ -n "${NODE_RANK:-}" ]]; then MAIN_PY+=(--node_rank "$NODE_RANK"); fi
    fi
    MAIN_PY+=(main.py)
  else
    MAIN_PY=("$python" main.py)
  fi
}
