#!/usr/bin/env bash
# Start N training processes on this machine the way `srun --ntasks=N` starts them on a SLURM node: each one
# gets SLURM_NTASKS, SLURM_PROCID, SLURM_LOCALID and SLURM_STEP_NODELIST, from which jax.distributed.initialize()
# (train.distributed=true) finds the coordinator (process 0, on JAX_COORDINATOR_PORT) and its own rank.
#
#   scripts/launch_local.sh 2 train.steps=200 hydra.run.dir=outputs/two_processes
#
# Arguments after N are overrides of `python -m scmodal_jax.train`. Give hydra.run.dir: the processes share the
# run directory of process 0 (it writes the outputs; every process writes its part of the checkpoints).
# If one process fails the others are stopped (they would otherwise wait on their peers' collectives).
# JAX_PLATFORMS defaults to cpu here (CPU collectives over gloo); PYTHON picks the interpreter.
set -euo pipefail
n=${1:-}
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N [overrides...]   (N, the number of processes, must be a positive integer; got '${n}')" >&2
  exit 2
fi
shift
python=${PYTHON:-python}
port=${JAX_COORDINATOR_PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu} JAX_COORDINATOR_PORT=$port
export SLURM_JOB_ID=${SLURM_JOB_ID:-$$} SLURM_NTASKS=$n SLURM_STEP_NODELIST=localhost SLURM_STEP_NUM_NODES=1

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_all INT TERM
for ((rank = 0; rank < n; rank++)); do
  SLURM_PROCID=$rank SLURM_LOCALID=$rank "$python" -m scmodal_jax.train train.distributed=true "$@" &
  pids+=("$!")
done
status=0
for _ in "${pids[@]}"; do
  if ! wait -n; then
    status=1
    stop_all
  fi
done
exit "$status"
