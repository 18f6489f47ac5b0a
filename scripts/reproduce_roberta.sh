#!/usr/bin/env bash
# Sentence representations at CPU scale (the paper's RoBERTa setting: pretrain with LayerDrop,
# prune, then fine-tune). Is an 8-layer RoBERTa pretrained with LayerDrop and pruned to 4 or 2
# layers before fine-tuning as good as a model pretrained at that depth with the same budget?
#   1. data: masked-LM pretraining on the kernel docs (data/embedded/lm_kernel, sentencepiece 8k,
#      scripts/prepare_data.sh lm); the task is Debian description -> section (data/embedded/
#      cls_debian, 8 balanced sections), encoded with the same sentencepiece model and dictionary
#      (scripts/prepare_sentence_task.sh ... PRETRAINED_BIN);
#   2. pretraining (masked_lm, ROBERTA_RECIPE of scripts/recipes.sh: d = 128, PRETRAIN_UPDATES
#      updates for every model): 8 layers at p = 0 and at p = 0.5, 4 and 2 layers from scratch;
#   3. fine-tuning, SEEDS seeds each: the 8-layer models pruned to 4 and 2 layers (every other
#      layer) and whole, the scratch models whole, and 4 and 2 layers with no pretraining (`none`,
#      random initialisation: the floor that shows what pretraining adds). Each run is the user's
#      workflow: the prune tool, then STOCK fairseq-train --task sentence_prediction --restore-file
#      (no --user-dir; the scratch models go through the prune tool too, at their own depth, which
#      only converts them to the stock architecture; `none` skips both the prune and the restore);
#   4. score: test accuracy at the epoch of the best valid accuracy (scripts/roberta_scores.py);
#      $OUT/results/table.md (mean and each seed), training.md and valid_curves.png (pretraining).
#
# Why this script prunes, fine-tunes and scores, and fairseq-layerdrop-sweep has no
# `--task sentence_prediction` mode: the sweep evaluates one trained checkpoint at every depth
# without training; here every depth is a new training run (seeds, learning rate, its own data
# directory, resumable and shared between workers), which is reproduce_common.sh's job, and
# the experiment should run exactly the commands a user of stock fairseq runs after the prune,
# which a sweep mode would hide inside the plugin.
#
# Run on 2026-11-28 (README section 4, docs/results/roberta): pretrainings 19-71 min each (3000
# updates, one thread), 20 fine-tunings of 4-16 min each; about 5 h of one slot in all.
#   JOBS=2 bash scripts/reproduce_roberta.sh
# Environment: OUT, RESULTS, DATA_SRC, TASK_SRC, PRETRAIN_UPDATES (3000), FT_EPOCHS (10), FT_LR (2e-4, not
# tuned), SEEDS ("1 2"), JOBS.
source "$(dirname "$0")/reproduce_common.sh"
paths roberta data/embedded/lm_kernel  # DATA_SRC, OUT (work/reproduce_roberta), RESULTS (docs/results/roberta)
TASK_SRC=${TASK_SRC:-data/embedded/cls_debian}
PRETRAIN_UPDATES=${PRETRAIN_UPDATES:-3000}
FT_EPOCHS=${FT_EPOCHS:-10}
FT_LR=${FT_LR:-2e-4}
SEEDS=${SEEDS:-1 2}
DATA_BIN="$OUT/data-bin/mlm"  # what reproduce_common.sh's `train` pretrains on
TASK_BIN="$OUT/data-bin/cls"
once data bash scripts/prepare_data.sh lm "$DATA_SRC" "$DATA_BIN"
once task bash scripts/prepare_sentence_task.sh "$TASK_SRC" "$TASK_BIN" "$DATA_BIN"
source scripts/recipes.sh
PRE=("${ROBERTA_RECIPE[@]}" --max-update "$PRETRAIN_UPDATES")
NUM_CLASSES=$(grep -vc '^madeupword' "$TASK_BIN/label/dict.txt")  # fairseq pads dictionaries
PER_EPOCH=$(( ($(wc -l <"$TASK_BIN/tok/train.label") + 31) / 32 ))  # --batch-size 32
FT_UPDATES=$(( FT_EPOCHS * PER_EPOCH ))
FT_WARMUP=$(( (FT_UPDATES * 6 + 99) / 100 ))  # 6% warm-up, as fairseq's GLUE recipe

# finetune NAME DEPTH SEED: prune $OUT/ckpt/NAME/checkpoint_best.pt to DEPTH layers, fine-tune it with
# stock fairseq-train into $OUT/ft/NAME_dDEPTH_sSEED, score it (skipped when done before). NAME
# `none` is the no-pretraining baseline: the same fine-tuning from a random initialisation.
finetune() {
  local name=$1 depth=$2 seed=$3
  local dir="$OUT/ft/${name}_d${depth}_s${seed}" restore=()
  mkdir -p "$dir"
  if [[ -f "$dir/.done" ]]; then log "finetune $(basename "$dir"): done before"; return; fi
  [[ $name == none ]] || wait_trained "$name"
  if ! lock "$dir/.lock"; then log "finetune $(basename "$dir"): another worker has it"; return; fi
  if [[ -f "$dir/.done" ]]; then unlock; return; fi
  log "finetune $(basename "$dir")"
  rm -f "$dir/pruned.pt"
  if [[ $name != none ]]; then
    "$BIN/fairseq-layerdrop-prune" "$OUT/ckpt/$name/checkpoint_best.pt" "$dir/pruned.pt" --encoder-depth "$depth" \
      --quiet >"$dir/prune.txt"
    restore=(--restore-file "$dir/pruned.pt")
  fi
  local rc=0
  env -u TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD "$BIN/fairseq-train" "$TASK_BIN" ${restore[@]+"${restore[@]}"} \
    "${ROBERTA_FT_RECIPE[@]}" --encoder-layers "$depth" --num-classes "$NUM_CLASSES" --lr "$FT_LR" \
    --max-update "$FT_UPDATES" --total-num-update "$FT_UPDATES" --warmup-updates "$FT_WARMUP" \
    --valid-subset valid,test --seed "$seed" --save-dir "$dir" --no-save --cpu --num-workers 0 \
    --required-batch-size-multiple 1 --log-format simple --log-interval 100 >"$dir/train.log" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then unlock; log "finetune $(basename "$dir") failed (exit $rc), see $dir/train.log"; return "$rc"; fi
  "$BIN/python" scripts/roberta_scores.py score "$dir/train.log" -o "$dir/score.json" >&2
  rm -f "$dir/pruned.pt"
  touch "$dir/.done"
  unlock
}

jobs_list() {
  train mlm8_p0 "${PRE[@]}" --encoder-layers 8 --encoder-layerdrop 0.0
  train mlm8_p05 "${PRE[@]}" --encoder-layers 8 --encoder-layerdrop 0.5
  train mlm4_scratch "${PRE[@]}" --encoder-layers 4 --encoder-layerdrop 0.0
  train mlm2_scratch "${PRE[@]}" --encoder-layers 2 --encoder-layerdrop 0.0
  local seed depth
  for seed in $SEEDS; do
    for depth in 4 2 8; do
      finetune mlm8_p05 "$depth" "$seed"
      finetune mlm8_p0 "$depth" "$seed"
    done
    finetune mlm4_scratch 4 "$seed"
    finetune mlm2_scratch 2 "$seed"
  done
  for seed in $SEEDS; do  # added after the first results: does pretraining help at all here?
    finetune none 4 "$seed"
    finetune none 2 "$seed"
  done
}

# roberta_tables TITLE DIR CURVES SCORES...: DIR/table.md (accuracy), training.md, valid_curves.png
roberta_tables() {
  local title=$1 dir=$2 curves=$3
  shift 3
  mkdir -p "$dir"
  { echo "# $title"; echo; "$BIN/python" scripts/roberta_scores.py table "$@"; } | tee "$dir/table.md"
  training_tables "$dir" "$curves"
}

# report_roberta TITLE: the tables once every fine-tuning is scored
report_roberta() {
  local d
  for d in "$OUT"/ft/*/; do wait_lock "$d/.lock"; done
  roberta_tables "$1" "$OUT/results" "$OUT/curves" "$OUT"/ft/*/score.json
}

# publish_roberta TITLE (PUBLISH=1): pretraining curves, the score of each finished fine-tuning
# (docs/results/roberta/scores/) and the tables of what is finished so far
publish_roberta() {
  local d scores=()
  publish_curves
  mkdir -p "$RESULTS/scores"
  for d in "$OUT"/ft/*/; do
    [[ -f "$d/.done" ]] && cp "$d/score.json" "$RESULTS/scores/$(basename "$d").json"
  done
  for d in "$RESULTS"/scores/*.json; do [[ -f "$d" ]] && scores+=("$d"); done
  if [[ ${#scores[@]} -eq 0 ]]; then log "publish: no fine-tuning finished yet"; return; fi
  roberta_tables "$1" "$RESULTS" "$RESULTS/curves" "${scores[@]}" >/dev/null
  log "published into $RESULTS: ${#scores[@]} fine-tunings, $(ls "$RESULTS"/curves/*.json | wc -l) curves"
}

run_all "Debian description -> section: test accuracy of pruned vs scratch RoBERTa" report_roberta publish_roberta
