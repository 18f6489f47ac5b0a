#!/usr/bin/env bash
# Depth on demand for translation, at CPU scale (LibreOffice help EN->DE).
# Trains a 6-6 pre-norm transformer with LayerDrop p = 0 (baseline) and 0.5 in both stacks and a
# 6-3 transformer from scratch, for the same number of updates; then prunes the decoder of the
# 6-6 models to every depth ("every other" rule) and measures BLEU (sacrebleu, beam 5).
#   bash scripts/reproduce_mt.sh            # 53 min measured with two such jobs sharing 2 cores; results in work/reproduce_mt/results
# Environment: DATA_SRC (dir with train/valid/test.en/.de), OUT, UPDATES, OMP_NUM_THREADS.
source "$(dirname "$0")/reproduce_common.sh"
DATA_SRC=${DATA_SRC:-data/embedded/mt_en_de}
OUT=${OUT:-work/reproduce_mt}
UPDATES=${UPDATES:-800}
DATA_BIN="$OUT/data-bin"
[[ -f "$DATA_BIN/dict.en.txt" ]] || bash scripts/prepare_data.sh mt "$DATA_SRC" "$DATA_BIN"

MT=(--task translation --source-lang en --target-lang de --max-tokens 2048
    --arch transformer_layerdrop_tiny --encoder-embed-dim 128 --encoder-ffn-embed-dim 512
    --decoder-embed-dim 128 --decoder-ffn-embed-dim 512 --encoder-attention-heads 4
    --decoder-attention-heads 4 --encoder-normalize-before --decoder-normalize-before
    --share-all-embeddings --dropout 0.1 --encoder-layers 6
    --criterion label_smoothed_cross_entropy_layerdrop --label-smoothing 0.1 --optimizer adam
    --adam-betas "(0.9,0.98)" --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 200
    --max-update "$UPDATES")
train mt66_p0 "${MT[@]}" --decoder-layers 6 --encoder-layerdrop 0.0 --decoder-layerdrop 0.0
train mt66_p05 "${MT[@]}" --decoder-layers 6 --encoder-layerdrop 0.5 --decoder-layerdrop 0.5
train mt63_scratch "${MT[@]}" --decoder-layers 3 --encoder-layerdrop 0.0 --decoder-layerdrop 0.0

EVAL=(--task translation --stack decoder --beam 5 --max-tokens 8000)
sweep mt66_p0 "6-6 p=0" all "${EVAL[@]}"
sweep mt66_p05 "6-6 p=0.5" all "${EVAL[@]}"
sweep mt63_scratch "6-3 scratch" 3 "${EVAL[@]}"
report "LibreOffice help EN-DE: test BLEU vs decoder depth"
