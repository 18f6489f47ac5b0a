#!/usr/bin/env bash
# Draft and verify costs (c, v(k)) of the decoder shapes issue 13 names, before training them:
# the cost of a step depends on the shape, not on the weights, so a model of that shape after one
# update already answers "which acceptance rate alpha would a draft need for a 1.25x speed-up?"
# (bench_speculative.py's alpha_needed). Shapes: the 12-layer d = 256 LM of
# scripts/reproduce_speculative.sh, and 6-12 translation models at d = 128 (the recipe of
# reproduce_mt.sh with 12 decoder layers) and d = 256. Each model is trained for one update on the
# reproductions' data (kept under $OUT), then timed on a quiet machine (pause trainings first).
#   bash benchmarks/speculative_shapes.sh    # ~10 min; writes benchmarks/results/speculative_shape_*.json
# Environment: LM_BIN, MT_BIN (binarized data of reproduce_lm.sh / reproduce_mt.sh), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/recipes.sh
BIN=${BIN:-.venv/bin}
LM_BIN=${LM_BIN:-work/reproduce_lm/data-bin}
MT_BIN=${MT_BIN:-work/reproduce_mt/data-bin}
OUT=${OUT:-work/speculative_shapes}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONWARNINGS=ignore
for dir in "$LM_BIN" "$MT_BIN"; do
  [[ -f $dir/dict.txt || -n $(compgen -G "$dir/dict.*.txt") ]] || { echo "speculative_shapes.sh: error: no binarized data in $dir (run the reproduction's data step)" >&2; exit 2; }
done
D256=(--decoder-embed-dim 256 --decoder-ffn-embed-dim 1024)
E256=(--encoder-embed-dim 256 --encoder-ffn-embed-dim 1024)

# one_update NAME DATA_BIN RECIPE_ARGS...: $OUT/NAME/checkpoint_last.pt after one update
one_update() {
  local name=$1 data=$2
  shift 2
  [[ -f $OUT/$name/checkpoint_last.pt ]] && return 0
  "$BIN/fairseq-train" "$data" --user-dir fairseq_layerdrop "$@" --max-update 1 --no-epoch-checkpoints \
    --save-dir "$OUT/$name" --disable-validation --log-format simple > "$OUT/$name.log" 2>&1
}

# costs NAME DATA_BIN CONTEXT: bench_speculative.py on it (the context of the 8-layer / 6-6 runs)
costs() {
  "$BIN/python" benchmarks/bench_speculative.py "$OUT/$1/checkpoint_last.pt" "$2" --depths 1,2,3,4,6,8,10 \
    --strategies every-other,first --ks 1,2,3,4,5,6 --context "$3" --source-tokens 24 \
    -o "benchmarks/results/speculative_shape_$1.json" > /dev/null
}

mkdir -p "$OUT"
one_update lm12_d256 "$LM_BIN" "${LM_RECIPE[@]}" --decoder-layers 12 "${D256[@]}" --decoder-normalize-before
one_update mt612_d128 "$MT_BIN" "${MT_RECIPE[@]}" --decoder-layers 12
one_update mt612_d256 "$MT_BIN" "${MT_RECIPE[@]}" --decoder-layers 12 "${D256[@]}" "${E256[@]}"
costs lm12_d256 "$LM_BIN" 48
costs mt612_d128 "$MT_BIN" 16
costs mt612_d256 "$MT_BIN" 16
echo "results in benchmarks/results/speculative_shape_*.json" >&2
