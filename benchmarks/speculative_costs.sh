#!/usr/bin/env bash
# Draft and verify costs, and the predicted speed-up S(k), of the trained models of
# docs/speculative.md sections 5b, 5c and 5e: the 8-layer kernel-doc LMs (p = 0, 0.2, 0.5, and
# p = 0.5 with early exits when it is trained) and the 6-6 translation models, each with the alpha
# its reproduction measured. One bench_speculative.py run per model, on a quiet machine (pause
# trainings first: each run waits up to --max-wait for the load to settle).
#   bash benchmarks/speculative_costs.sh    # ~10 min; writes benchmarks/results/speculative_<model>.json
# Environment: LM_OUT, MT_OUT (the reproductions' OUT: work/reproduce_lm, work/reproduce_mt).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
LM_OUT=${LM_OUT:-work/reproduce_lm}
MT_OUT=${MT_OUT:-work/reproduce_mt}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONWARNINGS=ignore

# costs OUT MODEL ALPHA_JSON ARGS...: bench_speculative.py on OUT's best checkpoint of MODEL
costs() {
  local out=$1 model=$2 alpha=$3
  shift 3
  if [[ ! -f $out/ckpt/$model/checkpoint_best.pt || ! -f $alpha ]]; then
    echo "speculative_costs.sh: $model: no checkpoint or alpha yet, skipped" >&2
    return 0
  fi
  "$BIN/python" benchmarks/bench_speculative.py "$out/ckpt/$model/checkpoint_best.pt" "$out/data-bin" \
    --strategies every-other,first --ks 1,2,3,4,5,6 --alpha-json "$alpha" "$@" \
    -o "benchmarks/results/speculative_$model.json" > /dev/null
}

for m in lm8_p0_s1 lm8_p02_s1 lm8_p05_s1 lm8_p05_ee_s1; do  # alpha as published (PUBLISH=1 reproduce_lm.sh)
  costs "$LM_OUT" "$m" "docs/results/speculative/alpha_$m.json" --depths 1,2,3,4,5,6,7
done
for m in mt66_p0 mt66_p02 mt66_p05; do
  costs "$MT_OUT" "$m" "docs/results/speculative/alpha_$m.json" --depths 1,2,3,4,5 --context 16 --source-tokens 24
done
echo "results in benchmarks/results/speculative_*.json" >&2
