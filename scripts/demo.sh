#!/usr/bin/env bash
# The README's demo: on the shipped real corpus (LibreOffice help EN->DE, data/embedded), train a
# small 6-6 transformer with LayerDrop 0.2, then prune its decoder to every depth with
# fairseq-layerdrop-prune and score each depth with fairseq-generate + sacrebleu.
# About 15 minutes on 2 CPU cores (UPDATES=600). Output: work/demo/results/{table.md,depth_sweep.png}.
source "$(dirname "$0")/reproduce_common.sh"
OUT=${OUT:-work/demo}
UPDATES=${UPDATES:-600}
DATA_BIN="$OUT/data-bin"
[[ -f "$DATA_BIN/dict.en.txt" ]] || bash scripts/prepare_data.sh mt data/embedded/mt_en_de "$DATA_BIN"

train mt66_p02 --task translation --source-lang en --target-lang de --max-tokens 2048 \
  --arch transformer_layerdrop_tiny --encoder-embed-dim 128 --encoder-ffn-embed-dim 512 \
  --decoder-embed-dim 128 --decoder-ffn-embed-dim 512 --share-all-embeddings --dropout 0.1 \
  --encoder-normalize-before --decoder-normalize-before \
  --encoder-layerdrop 0.2 --decoder-layerdrop 0.2 \
  --criterion label_smoothed_cross_entropy_layerdrop --label-smoothing 0.1 --optimizer adam \
  --adam-betas "(0.9,0.98)" --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 200 \
  --max-update "$UPDATES"
sweep mt66_p02 "6-6 p=0.2" all --task translation --stack decoder --beam 5 --max-tokens 8000
report "demo: BLEU vs decoder depth (one model, pruned without fine-tuning)"
