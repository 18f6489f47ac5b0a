#!/usr/bin/env bash
# Depth on demand for summarization, at CPU scale (Debian package descriptions -> synopsis).
# Trains a 6-6 BART-shaped model from scratch (no pretrained BART offline) with LayerDrop p = 0
# and p = 0.5 in both stacks, and a 6-3 model from scratch, for the same number of updates; then
# prunes the decoder of the 6-6 models to every depth ("every other" rule) and scores test ROUGE.
#   bash scripts/reproduce_sum.sh            # results in work/reproduce_sum/results
# Environment: DATA_SRC (corpus dir with train/valid/test.doc/.sum), OUT, UPDATES, OMP_NUM_THREADS.
source "$(dirname "$0")/reproduce_common.sh"
DATA_SRC=${DATA_SRC:-data/embedded/sum_debian}
OUT=${OUT:-work/reproduce_sum}
UPDATES=${UPDATES:-500}
DATA_BIN="$OUT/data-bin"
[[ -f "$DATA_BIN/dict.doc.txt" ]] || bash scripts/prepare_data.sh sum "$DATA_SRC" "$DATA_BIN"

SUM=(--task translation --source-lang doc --target-lang sum --truncate-source
     --max-tokens 2048 --arch bart_layerdrop_tiny --encoder-embed-dim 128 --encoder-ffn-embed-dim 512
     --decoder-embed-dim 128 --decoder-ffn-embed-dim 512 --encoder-layers 6 --share-all-embeddings
     --dropout 0.1 --criterion label_smoothed_cross_entropy_layerdrop --label-smoothing 0.1
     --optimizer adam --adam-betas "(0.9,0.98)" --lr 2e-3 --lr-scheduler inverse_sqrt
     --warmup-updates 200 --max-update "$UPDATES")
train sum66_p0 "${SUM[@]}" --decoder-layers 6 --encoder-layerdrop 0.0 --decoder-layerdrop 0.0
train sum66_p05 "${SUM[@]}" --decoder-layers 6 --encoder-layerdrop 0.5 --decoder-layerdrop 0.5
train sum63_scratch "${SUM[@]}" --decoder-layers 3 --encoder-layerdrop 0.0 --decoder-layerdrop 0.0

EVAL=(--task summarization --stack decoder --beam 4 --max-tokens 8000 --gen-args "--max-len-b 40 --truncate-source")
sweep sum66_p0 "6-6 p=0" all "${EVAL[@]}"
sweep sum66_p05 "6-6 p=0.5" all "${EVAL[@]}"
sweep sum63_scratch "6-3 scratch" 3 "${EVAL[@]}"
report "Debian descriptions: test ROUGE-L vs decoder depth"
