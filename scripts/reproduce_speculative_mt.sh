#!/usr/bin/env bash
# Self-speculative drafts of a 6-12 translation model (issue 13's translation shape;
# docs/speculative.md section 5d): the translation recipe of reproduce_mt.sh with 12 decoder
# layers (d = 128), LayerDrop p = 0.5 in both stacks (the rate whose drafts agreed most on the 6-6
# models) and p = 0 (the control), each to its validation plateau; the depth sweep of each (test
# BLEU, every other layer), then alpha of every-other and first-E drafts along greedy translations
# (scripts/speculative_alpha.py). Why this shape: its measured draft and verify costs make a
# 2-4 layer draft pay off at alpha 0.64-0.79 (benchmarks/speculative_shapes.sh), 0.03-0.05 above
# what the 6-6 p = 0.5 model's drafts reach at the same share of layers: the closest shape of the
# issue's. First in the queue, p = 0.5 with an early-exit loss after the decoder's first 1, 2 and 4
# layers: on the 8-layer LM the exits raised first-E agreement from 0.44 / 0.66 to 0.71 / 0.79
# (1 / 2 layers) and the best predicted speed-up from 1.07 to 1.20 (docs/speculative.md 5e).
# Not finished yet: mt612_p05_ee is training (docs/results/README.md).
# The costs of a trained model, on a quiet machine afterwards (docs/speculative.md 5c):
#   .venv/bin/python benchmarks/bench_speculative.py $OUT/ckpt/NAME/checkpoint_best.pt $OUT/data-bin ...
#   JOBS=2 bash scripts/reproduce_speculative_mt.sh
# Environment: DATA_SRC (dir with train/valid/test.en/.de), MAX_UPDATE, PATIENCE, and those of
# reproduce_common.sh (JOBS, OUT, PUBLISH, ...).
source "$(dirname "$0")/reproduce_common.sh"
paths speculative_mt data/embedded/mt_en_de
source scripts/recipes.sh
once data env SPM_VOCAB="$MT_SPM_VOCAB" bash scripts/prepare_data.sh mt "$DATA_SRC" "$DATA_BIN"
TRAIN=("${MT_RECIPE[@]}" --decoder-layers 12 --patience "${PATIENCE:-3}" --max-update "${MAX_UPDATE:-24000}")
EVAL=(--task translation --stack decoder --beam 5 --max-tokens 8000)

jobs_list() {
  model mt612_p05_ee "6-12 p=0.5 + early exit 1,2,4" all --encoder-layerdrop 0.5 --decoder-layerdrop 0.5 \
    --layerdrop-early-exit-layers 1,2,4
  # the p = 0 control before p = 0.5 without exits: the control is what shows whether LayerDrop
  # training is what makes drafting pay; exits against no exits was measured on the 8-layer LM
  model mt612_p0 "6-12 p=0" all --encoder-layerdrop 0.0 --decoder-layerdrop 0.0
  model mt612_p05 "6-12 p=0.5" all --encoder-layerdrop 0.5 --decoder-layerdrop 0.5
  sweep_rest
  local name  # 64 new tokens cover 95% of test targets (reproduce_mt.sh)
  for name in mt612_p05_ee mt612_p05 mt612_p0; do alpha "$name" 1,2,3,4,6,8,10 every-other,first 64; done
}
run_all "LibreOffice help EN-DE, 6-12 decoder: test BLEU vs decoder depth (best validation checkpoints)"
