# Shared steps of scripts/reproduce_*.sh (sourced, not run).
# Train several small models on the same data, sweep every depth of each, table + plot.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup_env.sh
BIN="$ROOT/.venv/bin"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} MKL_NUM_THREADS=${MKL_NUM_THREADS:-2} PYTHONWARNINGS=ignore

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# train NAME ARGS...: fairseq-train into $OUT/ckpt/NAME unless it already finished
train() {
  local name=$1; shift
  local dir="$OUT/ckpt/$name"
  if [[ -f "$dir/checkpoint_last.pt" && -f "$dir/.done" ]]; then log "train $name: done before"; return; fi
  mkdir -p "$dir"
  log "train $name"
  local start=$SECONDS
  "$BIN/fairseq-train" "$DATA_BIN" --user-dir "$ROOT/fairseq_layerdrop" --save-dir "$dir" \
    --cpu --num-workers 0 --required-batch-size-multiple 1 --no-epoch-checkpoints \
    --log-format simple --log-interval 100 --seed 1 "$@" > "$dir/train.log" 2>&1
  echo $((SECONDS - start)) > "$dir/train_seconds"
  touch "$dir/.done"
  log "train $name: $((SECONDS - start)) s, $(grep -o 'valid on .valid. subset | loss [0-9.]*' "$dir/train.log" | tail -1)"
}

# sweep NAME LABEL DEPTHS ARGS...: fairseq-layerdrop-sweep of $OUT/ckpt/NAME
sweep() {
  local name=$1 label=$2 depths=$3; shift 3
  log "sweep $name ($depths)"
  "$BIN/fairseq-layerdrop-sweep" "$OUT/ckpt/$name/checkpoint_best.pt" "$DATA_BIN" --depths "$depths" \
    --out-dir "$OUT/sweeps/$name" --label "$label" --threads "$OMP_NUM_THREADS" "$@"
}

report() {
  local title=$1
  mkdir -p "$OUT/results"
  "$BIN/fairseq-layerdrop-plot" "$OUT"/sweeps/*/sweep.json -o "$OUT/results/depth_sweep.png" --title "$title"
  "$BIN/python" scripts/results_table.py "$OUT"/sweeps/*/sweep.json | tee "$OUT/results/table.md"
  for d in "$OUT"/ckpt/*/; do echo "$(basename "$d"): trained in $(cat "$d/train_seconds") s"; done \
    | tee "$OUT/results/train_times.txt"
}
