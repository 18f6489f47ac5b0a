#!/usr/bin/env bash
# The README's demo: on the shipped real corpus (Linux kernel documentation, data/embedded), train
# an 8-layer language model with LayerDrop 0.5, prune it to every depth with
# fairseq-layerdrop-prune (every other layer, no fine-tuning) and score each depth with
# fairseq-eval-lm. Prints the table; writes work/demo/results/{table.md,depth_sweep.png}.
# The comparison with a model trained without LayerDrop is scripts/reproduce_lm.sh.
source "$(dirname "$0")/reproduce_common.sh"
OUT=${OUT:-work/demo}
UPDATES=${UPDATES:-1000}
DATA_BIN="$OUT/data-bin"
[[ -f "$DATA_BIN/dict.txt" ]] || bash scripts/prepare_data.sh lm data/embedded/lm_kernel "$DATA_BIN"

train lm8_p05 --task language_modeling --tokens-per-sample 128 --sample-break-mode none \
  --max-tokens 2048 --arch transformer_lm_layerdrop_tiny --decoder-layers 8 --decoder-embed-dim 128 \
  --decoder-ffn-embed-dim 512 --decoder-attention-heads 4 --share-decoder-input-output-embed \
  --dropout 0.1 --decoder-layerdrop 0.5 --criterion cross_entropy_layerdrop --optimizer adam \
  --adam-betas "(0.9,0.98)" --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 200 \
  --max-update "$UPDATES"
sweep lm8_p05 "8L p=0.5" all --task lm --stack decoder --tokens-per-sample 128
report "demo: kernel-doc LM, test perplexity vs depth (one model, pruned without fine-tuning)"
