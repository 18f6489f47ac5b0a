# shellcheck shell=bash
# Training recipes shared by scripts/demo.sh and scripts/reproduce_*.sh (sourced): model size,
# optimiser and batch in one place, so the README's demo and reproductions train the same models.
# Depth, LayerDrop rate, seed and stopping rule are added by each script.

# Language model on kernel-doc prose: d = 128, FFN 512, 4 heads, tied input/output embeddings.
LM_TOKENS_PER_SAMPLE=128
LM_RECIPE=(--task language_modeling --tokens-per-sample "$LM_TOKENS_PER_SAMPLE" --sample-break-mode none
  --max-tokens 2048 --arch transformer_lm_layerdrop_tiny --decoder-embed-dim 128
  --decoder-ffn-embed-dim 512 --decoder-attention-heads 4 --share-decoder-input-output-embed
  --dropout 0.1 --criterion cross_entropy_layerdrop --optimizer adam --adam-betas "(0.9,0.98)"
  --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 200)

# Translation EN->DE on LibreOffice help (sentencepiece 4k joint vocabulary): pre-norm 6-layer
# encoder, d = 128, FFN 512, 4 heads, all embeddings shared; label smoothing 0.1.
MT_SPM_VOCAB=4000
MT_RECIPE=(--task translation --source-lang en --target-lang de --max-tokens 4096
  --arch transformer_layerdrop_tiny --encoder-embed-dim 128 --encoder-ffn-embed-dim 512
  --decoder-embed-dim 128 --decoder-ffn-embed-dim 512 --encoder-attention-heads 4
  --decoder-attention-heads 4 --encoder-normalize-before --decoder-normalize-before
  --share-all-embeddings --dropout 0.1 --encoder-layers 6
  --criterion label_smoothed_cross_entropy_layerdrop --label-smoothing 0.1 --optimizer adam
  --adam-betas "(0.9,0.98)" --lr 3e-3 --lr-scheduler inverse_sqrt --warmup-updates 400
  --clip-norm 1.0)

# Summarization doc -> synopsis (sentencepiece 8k joint): a BART-shaped 6-layer encoder trained
# from scratch (no pretrained BART offline), pre-norm, otherwise the translation recipe.
SUM_SHAPE=(--arch bart_layerdrop_tiny --encoder-embed-dim 128
  --encoder-ffn-embed-dim 512 --decoder-embed-dim 128 --decoder-ffn-embed-dim 512
  --encoder-attention-heads 4 --decoder-attention-heads 4 --encoder-normalize-before
  --decoder-normalize-before --share-all-embeddings --dropout 0.1 --encoder-layers 6)
SUM_OPTIMIZER=(--optimizer adam --adam-betas "(0.9,0.98)" --lr 3e-3 --lr-scheduler inverse_sqrt
  --warmup-updates 400 --clip-norm 1.0)
SUM_RECIPE=(--task translation --source-lang doc --target-lang sum --truncate-source
  --max-source-positions 256 --max-tokens 4096 "${SUM_SHAPE[@]}"
  --criterion label_smoothed_cross_entropy_layerdrop --label-smoothing 0.1 "${SUM_OPTIMIZER[@]}")
# Recipe 3's pretraining of the same model on the training documents alone: BART's text infilling
# (fairseq's denoising task; 30% of the tokens masked in spans of Poisson(3.5) lengths, each span
# one <mask>), one document per sample, cut to 250 pieces; the same source positions as above, so
# the summarization recipe loads the checkpoint (--finetune-from-model).
SUM_PRETRAIN_RECIPE=(--task denoising --sample-break-mode eos --tokens-per-sample 250
  --shorten-method truncate --mask 0.3 --mask-random 0.1 --mask-length span-poisson
  --poisson-lambda 3.5 --replace-length 1 --rotate 0 --permute-sentences 0
  --max-source-positions 256 --max-tokens 4096 "${SUM_SHAPE[@]}" --criterion cross_entropy_layerdrop
  "${SUM_OPTIMIZER[@]}")

# RoBERTa (masked LM) on kernel-doc prose, then Debian description -> section (scripts/
# reproduce_roberta.sh): RoBERTa's layout (post-norm, learned positions, embedding layer norm, LM
# head tied to the embeddings) at d = 128, FFN 512, 4 heads, 128 positions. ROBERTA_SHAPE is
# repeated at fine-tuning: fairseq-train builds the model from the command line, not the file.
ROBERTA_POSITIONS=128
ROBERTA_SHAPE=(--encoder-embed-dim 128 --encoder-ffn-embed-dim 512 --encoder-attention-heads 4
  --max-positions "$ROBERTA_POSITIONS" --dropout 0.1 --attention-dropout 0.1)
ROBERTA_RECIPE=(--task masked_lm --tokens-per-sample "$ROBERTA_POSITIONS" --sample-break-mode none
  --max-tokens 4096 --arch roberta_layerdrop_tiny "${ROBERTA_SHAPE[@]}" --criterion masked_lm_layerdrop
  --optimizer adam --adam-betas "(0.9,0.98)" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0
  --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 400)
# Fine-tuning a pruned file with stock fairseq (no --user-dir): fairseq's GLUE recipe, scaled down.
# The caller adds --encoder-layers, --num-classes, the schedule (--total-num-update ...) and the seed.
ROBERTA_FT_RECIPE=(--task sentence_prediction --init-token 0 --max-positions "$ROBERTA_POSITIONS"
  --shorten-method truncate --arch roberta "${ROBERTA_SHAPE[@]}" --criterion sentence_prediction
  --batch-size 32 --optimizer adam --adam-betas "(0.9,0.98)" --adam-eps 1e-6 --weight-decay 0.1
  --lr-scheduler polynomial_decay --reset-optimizer --reset-dataloader --reset-meters
  --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric)
