#!/usr/bin/env bash
# Every reproduction, in order, one training slot per worker:
#   JOBS=2 nohup bash scripts/reproduce_all.sh mt lm sum > reproduce.log 2>&1 &
# Each worker (one thread) goes through the queues in the order given (default: mt lm sum), as a
# worker of each (WORKER=i bash scripts/reproduce_TASK.sh): it trains and sweeps what is left and
# not held by the other worker, then moves on to the next queue instead of waiting, so both slots
# stay busy until the last queue is done. Resumable like each queue: run it again after a stop.
# A queue that fails is logged and the worker goes on. When every worker is done, each queue runs
# once more with one worker, which finds its runs done and writes its report ($OUT/results: table,
# plots). Results stay in work/; publish them with PUBLISH=1 bash scripts/reproduce_TASK.sh
# (docs/results/README.md).
# Environment: JOBS (workers, default 2), and what each reproduce_TASK.sh reads.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
JOBS=${JOBS:-2}
TASKS=("$@")
((${#TASKS[@]})) || TASKS=(mt lm sum)
die() { echo "reproduce_all.sh: error: $*" >&2; exit 2; }
[[ "$JOBS" =~ ^[1-9][0-9]?$ ]] || die "JOBS must be a number of workers from 1 to 99, got '$JOBS'"
for t in "${TASKS[@]}"; do
  [[ "$t" =~ ^[a-z][a-z0-9_]*$ && $t != all && $t != common && -f "$HERE/reproduce_$t.sh" ]] \
    || die "no queue '$t' (scripts/reproduce_$t.sh)"
done

worker() {
  local t rc
  for t in "${TASKS[@]}"; do
    WORKER=$1 bash "$HERE/reproduce_$t.sh" && continue
    rc=$?
    echo "[$(date +%H:%M:%S) w$1] queue $t failed (exit $rc); next queue" >&2
  done
}

pids=()
for ((i = 1; i <= JOBS; i++)); do worker "$i" & pids+=($!); done
stopped=0
for pid in "${pids[@]}"; do wait "$pid" || stopped=1; done
if ((stopped)); then  # a worker was killed (a stop): the reports wait for the next full run
  echo "[$(date +%H:%M:%S)] a worker was stopped; no reports" >&2
  exit 1
fi
for t in "${TASKS[@]}"; do  # the reports (a worker's run of a queue stops before its report)
  JOBS=1 bash "$HERE/reproduce_$t.sh" && continue
  rc=$?
  echo "[$(date +%H:%M:%S)] report of $t failed (exit $rc)" >&2
done
echo "[$(date +%H:%M:%S)] queues done: ${TASKS[*]}" >&2
