# shellcheck shell=bash
# Shared steps of scripts/reproduce_*.sh (sourced, not run).
# Train several small models on the same data to their validation plateau, sweep every depth of
# each, then table + plots.
#
# Resumable: a stopped run is started again with the same command; fairseq-train continues from
# checkpoint_last.pt (saved and validated once per epoch, so patience counts epochs; a stop loses
# at most the epoch in progress), finished trainings and sweeps are skipped.
# Parallel: JOBS=2 starts two workers of the same script (one thread each); they share the list
# of trainings through lock files, so each model is trained once. A worker of the same script
# can also be added by hand: WORKER=2 OMP_NUM_THREADS=1 bash scripts/reproduce_lm.sh
# Environment of every reproduction (besides each script's own): JOBS (workers, default 1),
# WORKER (run as worker N: train and sweep, no report), PUBLISH (copy finished results to RESULTS
# instead of running), RESULTS (default docs/results/TASK), OUT (default work/reproduce_TASK),
# BIN (default .venv/bin), PLATEAU_POLL (seconds between plateau checks, default 15), PLOT_YMAX,
# ONLY (comma-separated run names: train, sweep and measure only these; committed runs are copied
# as always, and the others are skipped, e.g. ONLY=lm8_p0_s1 to redo one run and its sweeps).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup_env.sh
BIN=${BIN:-"$ROOT/.venv/bin"}
JOBS=${JOBS:-1}
if [[ -n "${WORKER:-}" || "$JOBS" -gt 1 ]]; then export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} MKL_NUM_THREADS=${MKL_NUM_THREADS:-2} PYTHONWARNINGS=ignore

# committed NAME: the run's curve (finished) and sweep are committed under $RESULTS
# (docs/results/<task>): its numbers are final, so a new machine does not train or sweep it
# again. Delete those two files to redo the run.
committed() {
  [[ -n "${RESULTS:-}" && -f "$RESULTS/$1.json" && -f "$RESULTS/curves/$1.json" ]] \
    && grep -q '"finished": true' "$RESULTS/curves/$1.json"
}

# wanted NAME: ONLY is unset or lists NAME (NAME_pre and NAME:TAG count as NAME)
wanted() {
  local name=${1%%:*}
  name=${name%_pre}
  [[ -z "${ONLY:-}" || ",$ONLY," == *",$name,"* ]]
}

# paths TASK DATA: where a reproduction reads and writes; the environment wins. DATA_SRC: the raw
# corpus (default DATA); OUT: run state (work/reproduce_TASK); RESULTS: committed results
# (docs/results/TASK; runs whose final curve and sweep are there are not redone; empty: redo them);
# DATA_BIN: $OUT/data-bin.
paths() {
  DATA_SRC=${DATA_SRC:-$2}
  OUT=${OUT:-work/reproduce_$1}
  RESULTS=${RESULTS-docs/results/$1}
  DATA_BIN="$OUT/data-bin"
}

log() { echo "[$(date +%H:%M:%S)${WORKER:+ w$WORKER}] $*" >&2; }

# lock FILE: take an exclusive lock on fd 8 without waiting; fails if another worker holds it
lock() { exec 8>"$1"; flock -n 8; }
unlock() { flock -u 8; exec 8>&-; }
# wait_lock FILE: block until no worker holds FILE's lock (fd 7)
wait_lock() { exec 7>"$1"; flock 7; exec 7>&-; }
# busy FILE: another worker holds FILE's lock (fd 6; nothing is held afterwards)
busy() { exec 6>"$1"; if flock -n 6; then flock -u 6; exec 6>&-; return 1; fi; exec 6>&-; }

# once STEP CMD...: run CMD (data preparation) once per $OUT. Workers that start together take
# turns (a lock), so the data is built once; $OUT/.STEP.done marks a step that finished, so a step
# a stop cut short is done again rather than trusted half-written.
once() {
  local step=$1; shift
  mkdir -p "$OUT"
  exec 6>"$OUT/.prepare.lock"; flock 6
  [[ -f "$OUT/.$step.done" ]] || { "$@"; touch "$OUT/.$step.done"; }
  flock -u 6; exec 6>&-
}

# option_value NAME ARGS...: the value of the last option NAME in ARGS (empty if absent)
option_value() {
  local name=$1 value=""; shift
  while (($#)); do [[ "$1" == "$name" ]] && value=${2:-}; shift; done
  echo "$value"
}

# stalled DIR PATIENCE: DIR/train.log, every sitting taken as one run, is on its plateau
stalled() { [[ -n "$2" && -f "$1/train.log" ]] && "$BIN/python" scripts/curves.py "$1/train.log" --stalled "$2"; }

# stop_at_plateau DIR PATIENCE PID: fairseq counts --patience afresh after a resume (its best loss
# is not in the checkpoint), so a resumed run would stop late, and a later best would replace the
# checkpoint of the plateau. Stop PID at the same epoch as an uninterrupted run, once that epoch's
# checkpoint is saved.
stop_at_plateau() {
  local dir=$1 patience=$2 pid=$3 seen=-1 saves
  while sleep "${PLATEAU_POLL:-15}" && kill -0 "$pid" 2>/dev/null; do
    saves=$(grep -c "Saved checkpoint" "$dir/train.log" || true)
    [[ "$saves" != "$seen" ]] || continue
    seen=$saves
    [[ "$(grep -E "valid on 'valid' subset|Saved checkpoint" "$dir/train.log" | tail -1)" == *"Saved checkpoint"* ]] \
      || continue
    if stalled "$dir" "$patience"; then touch "$dir/.plateau"; kill -TERM "$pid"; return; fi
    if [[ -f "$dir/STOP" ]]; then touch "$dir/.stopped"; kill -TERM "$pid"; return; fi
  done
}

# A run is stopped by hand with a one-line reason in its save directory's STOP file
# (echo "why" > $OUT/ckpt/NAME/STOP): a training in progress stops once its next epoch's checkpoint
# is saved, a resumed one is not started again, and its curve says "by hand: why" (not converged,
# not capped). To train it on: delete STOP and .done. hand_stop DIR prints the reason.
hand_stop() { [[ -f "$1/STOP" ]] || return 1; local why; why=$(head -n 1 "$1/STOP"); echo "${why:-no reason given}"; }

# final_curve DIR NAME PATIENCE FILE: the curve of a finished training (DIR/train.log), with the
# reason of a hand stop
final_curve() {
  local hand=() why
  if why=$(hand_stop "$1"); then hand=(--stopped-by-hand "$why"); fi
  "$BIN/python" scripts/curves.py "$1/train.log" --name "$2" ${3:+--patience "$3"} "${hand[@]}" -o "$4" >/dev/null
}

# train NAME ARGS...: fairseq-train into $OUT/ckpt/NAME unless it already finished (or another
# worker is training it). Early stopping comes from the caller's --patience / --max-update.
train() {
  local name=$1; shift
  local dir="$OUT/ckpt/$name" patience
  patience=$(option_value --patience "$@")
  if [[ -f "$dir/.done" ]]; then log "train $name: done before"; return; fi
  if committed "$name"; then
    log "train $name: final result committed in $RESULTS"
    mkdir -p "$OUT/curves"; cp "$RESULTS/curves/$name.json" "$OUT/curves/"; return
  fi
  if ! wanted "$name"; then log "train $name: not in ONLY"; return; fi
  mkdir -p "$dir"
  if ! lock "$dir/.lock"; then log "train $name: another worker has it"; return; fi
  if [[ -f "$dir/.done" ]]; then unlock; return; fi
  local start=$SECONDS rc=0 pid watcher why
  if stalled "$dir" "$patience"; then
    log "train $name: on its plateau in an earlier sitting"
  elif why=$(hand_stop "$dir") && [[ -f "$dir/checkpoint_best.pt" ]]; then
    log "train $name: stopped by hand in an earlier sitting: $why"
  else
    log "train $name${WORKER:+ (worker $WORKER)}$([[ -f "$dir/checkpoint_last.pt" ]] && echo ": resuming")"
    "$BIN/fairseq-train" "$DATA_BIN" --user-dir "$ROOT/fairseq_layerdrop" --save-dir "$dir" \
      --cpu --num-workers 0 --required-batch-size-multiple 1 --no-epoch-checkpoints \
      --log-format simple --log-interval 100 --seed 1 "$@" >> "$dir/train.log" 2>&1 &
    pid=$!
    stop_at_plateau "$dir" "$patience" "$pid" & watcher=$!
    wait "$pid" || rc=$?
    kill "$watcher" 2>/dev/null || true
    if [[ -f "$dir/.plateau" ]]; then rc=0; rm "$dir/.plateau"; log "train $name: plateau across sittings"; fi
    if [[ -f "$dir/.stopped" ]]; then rc=0; rm "$dir/.stopped"; log "train $name: stopped by hand: $(hand_stop "$dir")"; fi
  fi
  if [[ $rc -ne 0 ]]; then unlock; log "train $name failed (exit $rc), see $dir/train.log"; return "$rc"; fi
  final_curve "$dir" "$name" "$patience" "$OUT/curves/$name.json"
  touch "$dir/.done"
  unlock
  log "train $name: $((SECONDS - start)) s, $(grep -o 'valid on .valid. subset | loss [0-9.]*' "$dir/train.log" | tail -1)"
}

# wait_trained NAME: block until no worker trains NAME; fail if it did not finish (for work that
# several workers share once NAME is trained, e.g. fine-tunings)
wait_trained() {
  local dir="$OUT/ckpt/$1"
  if committed "$1"; then return; fi
  wait_lock "$dir/.lock"
  [[ -f "$dir/.done" ]] || { log "training $1 did not finish"; return 1; }
}

# trained NAME: NAME's training has finished. False while another worker trains it: that worker
# goes on through the same list, so it runs what depends on NAME next, and this one does not wait
# (its slot is free for other work). Stops the script if the training failed, or never started
# (e.g. a misspelt PRE_FROM).
trained() {
  local dir="$OUT/ckpt/$1"
  if committed "$1" || [[ -f "$dir/.done" ]]; then return 0; fi
  if [[ ! -d "$dir" ]]; then log "$1: never trained here (no $dir)"; exit 2; fi
  if busy "$dir/.lock"; then return 1; fi
  if [[ -f "$dir/.done" ]]; then return 0; fi  # finished in between
  log "training $1 did not finish"; exit 1
}

# sweep NAME[:TAG] LABEL DEPTHS ARGS...: fairseq-layerdrop-sweep of $OUT/ckpt/NAME/checkpoint_best.pt
# into $OUT/sweeps/NAME (NAME_TAG with a tag: a second sweep of the same model, e.g. another strategy).
# A committed sweep ($RESULTS/NAME[_TAG].json of a committed run) is copied, not redone; a new sweep
# of a run committed from another machine (no checkpoint here) is skipped with a notice.
sweep() {
  local spec=$1 name=${1%%:*} dir="$OUT/sweeps/${1//:/_}" label=$2 depths=$3; shift 3
  if [[ -f "$dir/.done" ]]; then log "sweep ${spec//:/ }: done before"; return; fi
  mkdir -p "$dir"
  if committed "$name"; then
    if [[ -f "$RESULTS/${spec//:/_}.json" ]]; then
      cp "$RESULTS/${spec//:/_}.json" "$dir/sweep.json"; touch "$dir/.done"; log "sweep ${spec//:/ }: committed"; return
    fi
    if [[ ! -f "$OUT/ckpt/$name/checkpoint_best.pt" ]]; then
      log "sweep ${spec//:/ }: $name was trained on another machine (its results are committed), no checkpoint here"
      return
    fi
  fi
  if ! wanted "$spec"; then log "sweep ${spec//:/ }: not in ONLY"; return; fi
  if ! trained "$name"; then log "sweep ${spec//:/ }: $name is training in another worker, which sweeps it next"; return; fi
  if ! lock "$dir/.lock"; then log "sweep ${spec//:/ }: another worker has it"; return; fi
  if [[ -f "$dir/.done" ]]; then unlock; return; fi  # swept by the worker that held the lock
  log "sweep $(basename "$dir") ($depths)"
  "$BIN/fairseq-layerdrop-sweep" "$OUT/ckpt/$name/checkpoint_best.pt" "$DATA_BIN" --depths "$depths" \
    --out-dir "$dir" --label "$label" --threads "$OMP_NUM_THREADS" "$@"
  touch "$dir/.done"
  unlock
}

# search_sweep NAME LABEL: sweep NAME's layers chosen by search on valid ($DATA_BIN's valid subset)
# as NAME:search, labelled "LABEL search-on-valid"
search_sweep() {
  sweep "$1:search" "$2 search-on-valid" all "${EVAL[@]}" --strategy search-on-valid --prune-args "--data $DATA_BIN"
}

# beats_baseline NAME BASELINES.json METRIC: NAME's full-depth METRIC in its sweep is above every
# baseline of BASELINES.json ({"scores": {name: {METRIC: x}}}); fails (and says why) if it is not,
# or if NAME is not swept yet. For queues whose later models are only worth training then.
beats_baseline() {
  local sweep="$OUT/sweeps/$1/sweep.json"
  if [[ ! -f "$sweep" ]]; then log "$1 is not swept yet: its $3 against the baselines is unknown"; return 1; fi
  "$BIN/python" - "$1" "$sweep" "$2" "$3" <<'EOF'
import json, sys
name, sweep, baselines, metric = sys.argv[1:]
full = max(json.load(open(sweep))["rows"], key=lambda row: int(row["depth"]))[metric]
best, score = max((s[metric], n) for n, s in json.load(open(baselines))["scores"].items())
verdict = "above" if full > best else "not above"
print(f"{name}: full-depth {metric} {full:.2f}, {verdict} the best baseline ({score}: {best:.2f})", file=sys.stderr)
sys.exit(0 if full > best else 1)
EOF
}

# alpha NAME DEPTHS STRATEGIES [NEW]: issue 13's acceptance rates of NAME's drafts along its
# full-depth greedy continuations of 100 test prompts (32 tokens, NEW new, default 32; a translation
# model's prompts are the first 100 test sources; scripts/speculative_alpha.py) into
# $OUT/alpha/NAME.json, once; left to the worker that trains NAME if it is still training
alpha() {
  local name=$1 out="$OUT/alpha/$1.json" new=${4:-32}
  mkdir -p "$OUT/alpha"
  if [[ -f "$out" ]] || ! wanted "$name" || ! trained "$name"; then return; fi
  if [[ ! -f "$OUT/ckpt/$name/checkpoint_best.pt" ]]; then log "alpha $name: no checkpoint here"; return; fi
  if ! lock "$out.lock"; then return; fi
  if [[ ! -f "$out" ]]; then
    log "alpha $name ($3 at depths $2)"
    "$BIN/python" scripts/speculative_alpha.py "$OUT/ckpt/$name/checkpoint_best.pt" "$DATA_BIN" --depths "$2" \
      --strategies "$3" --prompts 100 --prompt-tokens 32 --new-tokens "$new" -o "$out" >&2
  fi
  unlock
}

# model NAME LABEL DEPTHS ARGS...: train NAME with "${TRAIN[@]}" ARGS, then sweep it with "${EVAL[@]}"
# right away, so each result lands as soon as its model is trained (by the worker that trained it).
SWEEPS=()
model() {
  local name=$1 label=$2 depths=$3; shift 3
  train "$name" "${TRAIN[@]}" "$@"
  SWEEPS+=("$name" "$label" "$depths")
  if [[ -f "$OUT/ckpt/$name/.done" ]] || committed "$name"; then
    sweep "$name" "$label" "$depths" "${EVAL[@]}"
  fi
}

# pretrained_model NAME LABEL DEPTHS ARGS...: pretrain NAME_pre on $PRE_BIN with PRE_TRAIN and ARGS,
# then `model` NAME from its best checkpoint with TRAIN, FINETUNE and ARGS (fairseq's
# --finetune-from-model: a resumed fine-tuning continues from NAME's own checkpoint_last.pt). While
# another worker pretrains NAME_pre, this one goes on.
# With PRE_FROM=OTHER (same shape), NAME fine-tunes from OTHER's pretraining instead of its own.
# With PRE_UPDATES=N, NAME's own pretraining is capped at N updates instead of PRE_TRAIN's cap.
pretrained_model() {
  local name=$1 label=$2 depths=$3; shift 3
  local pre="${PRE_FROM:-$name}_pre"
  if ! committed "$name"; then  # a run committed from another machine needs no pretraining here
    if ! wanted "$name"; then log "$name: not in ONLY"; return; fi
    [[ -n "${PRE_FROM:-}" ]] \
      || DATA_BIN=$PRE_BIN train "$pre" "${PRE_TRAIN[@]}" ${PRE_UPDATES:+--max-update "$PRE_UPDATES"} "$@"
    if ! trained "$pre"; then log "$name: $pre is not pretrained yet (another worker has it, or it comes later)"; return; fi
  fi
  model "$name" "$label" "$depths" --finetune-from-model "$OUT/ckpt/$pre/checkpoint_best.pt" \
    ${FINETUNE[@]+"${FINETUNE[@]}"} "$@"
}

# sweep_rest: the sweeps `model` left undone (a worker stopped between a training and its sweep)
sweep_rest() {
  local i
  for ((i = 0; i < ${#SWEEPS[@]}; i += 3)); do sweep "${SWEEPS[@]:i:3}" "${EVAL[@]}"; done
}

source "$ROOT/scripts/reproduce_report.sh"  # render, report, publish

# run_all TITLE [REPORT [PUBLISHER]]: run the caller's `jobs_list` function in JOBS workers, then
# `report TITLE` (or the caller's REPORT function, e.g. for results that are not depth sweeps);
# with PUBLISH=1, `publish TITLE` (or the caller's PUBLISHER) instead
run_all() {
  local title=$1 i pids=() rc=0
  if [[ -n "${PUBLISH:-}" ]]; then
    if [[ -n "${3:-}" ]]; then "$3" "$title"; return; fi
    [[ "${2:-report}" == report || "$2" == alpha_report ]] || { log "PUBLISH: not for this script"; exit 2; }
    publish "$title"; return
  fi
  if [[ -n "${WORKER:-}" ]]; then jobs_list; return; fi   # a worker started by hand or by us
  if [[ "$JOBS" -gt 1 ]]; then
    for i in $(seq 2 "$JOBS"); do WORKER=$i bash "$0" & pids+=($!); done
    WORKER=1 jobs_list || rc=$?
    for i in "${pids[@]}"; do wait "$i" || rc=$?; done
    [[ $rc -eq 0 ]] || { log "a worker failed (exit $rc)"; return "$rc"; }
  else
    jobs_list
  fi
  "${2:-report}" "$title"
}
