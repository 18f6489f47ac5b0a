#!/usr/bin/env bash
# Depth on demand for language modeling, at CPU scale (Linux kernel documentation prose).
# Trains an 8-layer LM with LayerDrop p = 0 (baseline), 0.2 and 0.5 and a 4-layer LM from
# scratch, all for the same number of updates; then prunes the 8-layer models to every depth
# ("every other" rule) and measures test perplexity with fairseq-eval-lm.
#   bash scripts/reproduce_lm.sh            # 70 min measured with two such jobs sharing 2 cores; results in work/reproduce_lm/results
# Environment: DATA_SRC (raw text dir with train/valid/test.txt), OUT, UPDATES, OMP_NUM_THREADS.
source "$(dirname "$0")/reproduce_common.sh"
DATA_SRC=${DATA_SRC:-data/embedded/lm_kernel}
OUT=${OUT:-work/reproduce_lm}
UPDATES=${UPDATES:-1000}
DATA_BIN="$OUT/data-bin"
[[ -f "$DATA_BIN/dict.txt" ]] || bash scripts/prepare_data.sh lm "$DATA_SRC" "$DATA_BIN"

LM=(--task language_modeling --tokens-per-sample 128 --sample-break-mode none --max-tokens 2048
    --arch transformer_lm_layerdrop_tiny --decoder-embed-dim 128 --decoder-ffn-embed-dim 512
    --decoder-attention-heads 4 --share-decoder-input-output-embed --dropout 0.1
    --criterion cross_entropy_layerdrop --optimizer adam --adam-betas "(0.9,0.98)" --lr 2e-3
    --lr-scheduler inverse_sqrt --warmup-updates 200 --max-update "$UPDATES")
train lm8_p0 "${LM[@]}" --decoder-layers 8 --decoder-layerdrop 0.0
train lm8_p02 "${LM[@]}" --decoder-layers 8 --decoder-layerdrop 0.2
train lm8_p05 "${LM[@]}" --decoder-layers 8 --decoder-layerdrop 0.5
train lm4_scratch "${LM[@]}" --decoder-layers 4 --decoder-layerdrop 0.0

EVAL=(--task lm --stack decoder --tokens-per-sample 128)
sweep lm8_p0 "8L p=0" all "${EVAL[@]}"
sweep lm8_p02 "8L p=0.2" all "${EVAL[@]}"
sweep lm8_p05 "8L p=0.5" all "${EVAL[@]}"
sweep lm4_scratch "4L scratch" 4 "${EVAL[@]}"
report "kernel-doc LM: test perplexity vs depth"
