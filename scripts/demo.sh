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

source scripts/recipes.sh
train lm8_p05 "${LM_RECIPE[@]}" --decoder-layers 8 --decoder-layerdrop 0.5 --max-update "$UPDATES"
sweep lm8_p05 "8L p=0.5" all --task lm --stack decoder --tokens-per-sample "$LM_TOKENS_PER_SAMPLE"
report "demo: kernel-doc LM, test perplexity vs depth (one model, pruned without fine-tuning)"
