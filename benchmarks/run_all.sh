#!/usr/bin/env bash
# Run the three benchmarks one after the other and write benchmarks/results/{train,inference,prune}.json.
#   bash benchmarks/run_all.sh            # full runs (~15 minutes in all on 2 cores: docs/benchmarks.md)
#   bash benchmarks/run_all.sh --quick    # tiny sizes, about a minute in all
# Each script waits (up to 5 minutes) for the 1-minute load average to fall below 0.5 before
# measuring and records the load it saw; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=benchmarks/results
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS PYTHONWARNINGS=ignore
mkdir -p "$OUT"
suffix=""
[[ "${1:-}" == "--quick" ]] && suffix="_quick"
for bench in train inference prune; do
    echo "== $bench $*" >&2
    "$PY" "benchmarks/bench_$bench.py" --threads "$THREADS" --out "$OUT/$bench$suffix.json" "$@" > /dev/null
done
echo "results in $OUT/" >&2
