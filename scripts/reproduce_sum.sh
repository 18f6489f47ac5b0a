#!/usr/bin/env bash
# Depth on demand for summarization, at CPU scale (Debian package description -> synopsis).
# Trains 6-6 BART-shaped models from scratch with LayerDrop p = 0 and 0.5 in both stacks and a 6-3
# model from scratch with the same recipe, each to its validation plateau (early stopping:
# PATIENCE epochs without a better validation loss, at most MAX_UPDATE updates); prunes the
# decoder of the 6-6 models to every depth ("every other" rule, no fine-tuning) and scores test
# ROUGE (rouge-score, stemming), next to lead baselines (first words / first sentence); both 6-6
# models are also pruned by "search on valid".
# Data: the full corpus (33k training pairs) that scripts/fetch_corpora.sh builds from apt's
# English description index (fetched if missing); DATA_SRC=data/embedded/sum_debian uses the
# shipped 7.5k-pair slice instead.
#   JOBS=2 bash scripts/reproduce_sum.sh    # see docs/results/README.md for the measured wall time
# The p = 0.5 and 6-3 models are trained only once the p = 0 model's full-depth ROUGE-L is above
# every lead baseline (else this corpus cannot test the claim); SUM_ALL=1 trains them anyway.
# Recipe 1 (the default: SPM_VOCAB=8000, SUM_DROPOUT=0.1) overfits and does not clear the lead
# baselines (sum66_p0: test ROUGE-L 12.6 against 27.1, docs/results/sum). Recipe 2 changes the two
# levers its curves point at, into its own run state and results; it does not clear them either
# (stopped by hand at 16384 updates, still improving slowly: test ROUGE-L 14.3, docs/results/sum_v2):
#   SPM_VOCAB=4000 SUM_DROPOUT=0.3 OUT=work/reproduce_sum_v2 RESULTS=docs/results/sum_v2 \
#     JOBS=2 bash scripts/reproduce_sum.sh
# Recipe 3 (SUM_PRETRAIN=1) pretrains each model on the training documents first (BART's text
# infilling, fairseq's denoising task: SUM_PRETRAIN_RECIPE in recipes.sh) for a fixed budget of
# SUM_PRE_UPDATES updates (default 3000, about 3 epochs; its plateau ends it sooner), as the RoBERTa
# reproduction does, then fine-tunes it on the synopses from its best checkpoint at learning rate SUM_FT_LR
# (default 1e-3); depth is the same in both stages, and LayerDrop too except for the p = 0.5 model, which
# fine-tunes from the p = 0 model's pretraining (see jobs_list). The model must learn to copy
# (74.5% of synopsis words are in the document), which 33k synopses alone did not teach:
#   SUM_PRETRAIN=1 SPM_VOCAB=4000 SUM_DROPOUT=0.3 OUT=work/reproduce_sum_v3 RESULTS=docs/results/sum_v3 \
#     JOBS=2 bash scripts/reproduce_sum.sh
# Environment: DATA_SRC, MAX_UPDATE, PATIENCE, SUM_ALL, SUM_DROPOUT, SUM_PRETRAIN, SUM_PRE_UPDATES, SUM_FT_LR,
# SPM_VOCAB (prepare_data.sh), and those of reproduce_common.sh (JOBS, OUT, PUBLISH, ...).
source "$(dirname "$0")/reproduce_common.sh"
paths sum work/corpora/sum_debian
source scripts/recipes.sh
# corpus: the default corpus is fetched when missing; another DATA_SRC must hold one
corpus() {
  [[ ! -f "$DATA_SRC/train.doc" && ! -f "$DATA_SRC/train.doc.gz" ]] || return 0
  [[ "$DATA_SRC" == work/corpora/sum_debian ]] || { log "no corpus in $DATA_SRC"; exit 2; }
  bash scripts/fetch_corpora.sh work/corpora
}
once corpus corpus
once data bash scripts/prepare_data.sh sum "$DATA_SRC" "$DATA_BIN"
mkdir -p "$OUT/results"
once lead "$BIN/python" scripts/lead_baseline.py "$DATA_SRC" -o "$OUT/results/lead.json"
TRAIN=("${SUM_RECIPE[@]}" --dropout "${SUM_DROPOUT:-0.1}" --patience "${PATIENCE:-3}"
       --max-update "${MAX_UPDATE:-24000}")  # the cap is a guard (see reproduce_mt.sh)
BUILD=model
SUM_PRE_UPDATES=${SUM_PRE_UPDATES:-3000}
if [[ -n "${SUM_PRETRAIN:-}" ]]; then  # recipe 3: the encoded training documents, same dictionary
  PRE_BIN="$OUT/data-bin-denoise"
  once denoise "$BIN/fairseq-preprocess" --only-source --srcdict "$DATA_BIN/dict.doc.txt" \
    --trainpref "$DATA_BIN/tok/train.doc" --validpref "$DATA_BIN/tok/valid.doc" --destdir "$PRE_BIN" --workers 1
  PRE_TRAIN=("${SUM_PRETRAIN_RECIPE[@]}" --dropout "${SUM_DROPOUT:-0.1}" --patience "${PATIENCE:-3}"
             --max-update "$SUM_PRE_UPDATES")
  FINETUNE=(--lr "${SUM_FT_LR:-1e-3}")
  BUILD=pretrained_model
fi
EVAL=(--task summarization --stack decoder --beam 4 --max-tokens 8000
      --gen-args "--max-len-b 40 --truncate-source --max-source-positions 256")

jobs_list() {
  $BUILD sum66_p0 "6-6 p=0" all --decoder-layers 6 --encoder-layerdrop 0.0 --decoder-layerdrop 0.0
  # the other two test the paper's claim only if the p = 0 model summarises better than the lead
  # baselines (issue 10); SUM_ALL=1 trains them regardless
  if [[ -n "${SUM_ALL:-}" ]] || beats_baseline sum66_p0 "$OUT/results/lead.json" rougeL; then
    # recipe 3: p = 0.5 fine-tunes from the p = 0 pretraining (LayerDrop in the fine-tuning only):
    # pretrained with p = 0.5, it had not learned to copy after the 3000 updates (valid loss 6.65
    # against 3.9; docs/results/sum_v3); the same shape, so the same pretrained weights
    PRE_FROM=sum66_p0 $BUILD sum66_p05 "6-6 p=0.5" all --decoder-layers 6 --encoder-layerdrop 0.5 --decoder-layerdrop 0.5
    # the 6-3 model's pretraining gets twice the budget: after 2000 of its 3000 updates it had not
    # begun to copy (valid loss 6.32 against 4.48 for 6-6; docs/results/README.md), and the baseline
    # of the claim must not be the model held back
    PRE_UPDATES=$((2 * SUM_PRE_UPDATES)) \
      $BUILD sum63_scratch "6-3 scratch" 3 --decoder-layers 3 --encoder-layerdrop 0.0 --decoder-layerdrop 0.0
    sweep_rest
    # does every other keep the right layers? search on valid for both 6-6 models
    search_sweep sum66_p05 "6-6 p=0.5"
    search_sweep sum66_p0 "6-6 p=0"
  else
    log "sum66_p05, sum63_scratch: wait for sum66_p0 to clear the lead baselines (SUM_ALL=1 trains them now)"
    sweep_rest
  fi
}
run_all "Debian descriptions: test ROUGE-L vs decoder depth (best validation checkpoints)"
