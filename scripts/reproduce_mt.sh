#!/usr/bin/env bash
# Depth on demand for translation, at CPU scale (LibreOffice help EN->DE).
# Trains 6-6 pre-norm transformers with LayerDrop p = 0, 0.2 (the paper's default) and 0.5 in both
# stacks and a 6-3 transformer from scratch with the same recipe, each to its validation plateau
# (early stopping: PATIENCE epochs without a better validation loss, at most MAX_UPDATE updates);
# prunes the decoder of the 6-6 models to every depth ("every other" rule, and "search on valid"
# for p = 0.2) and measures test BLEU (sacrebleu via fairseq-generate, beam 5, whole test split).
#   JOBS=2 bash scripts/reproduce_mt.sh     # see docs/results/README.md for the measured wall time
# Results in $OUT/results (table.md, training.md, depth_sweep.png, valid_curves.png).
# Environment: DATA_SRC (dir with train/valid/test.en/.de), MAX_UPDATE, PATIENCE, and those of
# reproduce_common.sh (JOBS, OUT, PUBLISH, ...).
source "$(dirname "$0")/reproduce_common.sh"
paths mt data/embedded/mt_en_de
source scripts/recipes.sh
once data env SPM_VOCAB="$MT_SPM_VOCAB" bash scripts/prepare_data.sh mt "$DATA_SRC" "$DATA_BIN"
TRAIN=("${MT_RECIPE[@]}" --patience "${PATIENCE:-3}" --max-update "${MAX_UPDATE:-24000}")  # a guard: p = 0.2 / 0.5 still gained 0.02-0.05 per epoch at 8000
EVAL=(--task translation --stack decoder --beam 5 --max-tokens 8000)

jobs_list() {
  model mt66_p0 "6-6 p=0" all --decoder-layers 6 --encoder-layerdrop 0.0 --decoder-layerdrop 0.0
  model mt66_p02 "6-6 p=0.2" all --decoder-layers 6 --encoder-layerdrop 0.2 --decoder-layerdrop 0.2
  model mt66_p05 "6-6 p=0.5" all --decoder-layers 6 --encoder-layerdrop 0.5 --decoder-layerdrop 0.5
  model mt63_scratch "6-3 scratch" 3 --decoder-layers 3 --encoder-layerdrop 0.0 --decoder-layerdrop 0.0
  sweep_rest
  search_sweep mt66_p02 "6-6 p=0.2"
  # every other always drops the last layer: how much of p = 0's fall at half depth is that?
  search_sweep mt66_p0 "6-6 p=0"
  # issue 13 (docs/speculative.md): drafts of the decoder; 64 new tokens cover 95% of test targets
  local name
  for name in mt66_p0 mt66_p02 mt66_p05; do alpha "$name" 1,2,3,4,5 every-other,first 64; done
}
run_all "LibreOffice help EN-DE: test BLEU vs decoder depth (best validation checkpoints)"
