#!/usr/bin/env bash
# Self-speculative drafts at the scale issue 13 names (docs/speculative.md): 12-layer d = 256
# decoders on kernel-doc prose with LayerDrop p = 0 (the control), 0.2 and 0.5, p = 0.5 with an
# early-exit loss after 1, 2 and 4 layers (the 1-2 layer drafts of docs/speculative.md 5d-5e),
# and p = 0.5 with learned per-layer rates (the "learned" draft keeps the layers with the lowest rates), each to its validation plateau (early stopping, as in
# reproduce_lm.sh); the depth sweep of each (test perplexity, every other layer), then the
# acceptance rate alpha of every-other and first-E drafts along full-depth greedy continuations
# (scripts/speculative_alpha.py). NOT RUN YET: budget in docs/results/README.md.
# The draft and verify costs c and v(k) are a benchmark, for a quiet machine afterwards:
#   .venv/bin/python benchmarks/bench_speculative.py $OUT/ckpt/NAME/checkpoint_best.pt $OUT/data-bin ...
#   JOBS=2 bash scripts/reproduce_speculative.sh
# Environment: DATA_SRC (raw text dir with train/valid/test.txt), MAX_UPDATE, PATIENCE, and those of
# reproduce_common.sh (JOBS, OUT, PUBLISH, ...).
source "$(dirname "$0")/reproduce_common.sh"
paths speculative data/embedded/lm_kernel
once data bash scripts/prepare_data.sh lm "$DATA_SRC" "$DATA_BIN"
source scripts/recipes.sh
# the LM recipe at d = 256, 12 layers; pre-norm (as the paper's LM) and a gentler learning rate for
# the deeper, wider stack
TRAIN=("${LM_RECIPE[@]}" --decoder-layers 12 --decoder-embed-dim 256 --decoder-ffn-embed-dim 1024
  --decoder-normalize-before --lr 1e-3 --warmup-updates 400 --patience "${PATIENCE:-3}"
  --max-update "${MAX_UPDATE:-10000}")
PLOT_YMAX=${PLOT_YMAX-400}
EVAL=(--task lm --stack decoder --tokens-per-sample "$LM_TOKENS_PER_SAMPLE")
MODELS=(lm12_p0 lm12_p02 lm12_p05 lm12_p05_ee lm12_p05_learned)

jobs_list() {
  model lm12_p0 "12L d=256 p=0" all --decoder-layerdrop 0.0
  model lm12_p02 "12L d=256 p=0.2" all --decoder-layerdrop 0.2
  model lm12_p05 "12L d=256 p=0.5" all --decoder-layerdrop 0.5
  model lm12_p05_ee "12L d=256 p=0.5 + early exit 1,2,4" all --decoder-layerdrop 0.5 --layerdrop-early-exit-layers 1,2,4
  model lm12_p05_learned "12L d=256 p=0.5, learned rates" all --decoder-layerdrop 0.5 --layerdrop-learned-rates
  sweep_rest
}

# alpha_report TITLE: the depth-sweep report, then alpha of each model ($OUT/alpha/NAME.json)
alpha_report() {
  local name strategies
  report "$1"
  for name in "${MODELS[@]}"; do
    strategies=every-other,first
    [[ $name == *_learned ]] && strategies+=,learned
    alpha "$name" 1,2,3,4,6,8,10 "$strategies"
  done
}
run_all "kernel-doc LM, 12 layers d=256: test perplexity vs depth" alpha_report
