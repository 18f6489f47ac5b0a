# shellcheck shell=bash
# Results of scripts/reproduce_*.sh (sourced by reproduce_common.sh, not run): the table, plots and
# wall times of a finished queue (report), and the copy of a machine's run state into the committed
# results (publish, PUBLISH=1).

# render DIR CURVES TITLE SWEEP.json...: into DIR the depth-sweep plot and table of the sweeps, and
# the validation curves and wall times of CURVES/*.json
render() {
  local dir=$1 curves=$2 title=$3; shift 3
  mkdir -p "$dir"
  if (($#)); then  # with no sweep yet (e.g. the first snapshot curves are published), the curves only
    # quality only: the sweeps' speeds were measured beside other trainings (docs/benchmarks.md has speed)
    "$BIN/fairseq-layerdrop-plot" "$@" -o "$dir/depth_sweep.png" --title "$title" --quality-only \
      ${PLOT_YMAX:+--ymax "$PLOT_YMAX"}
    "$BIN/python" scripts/results_table.py "$@" | tee "$dir/table.md"
  fi
  training_tables "$dir" "$curves"
}

# training_tables DIR CURVES: into DIR the validation curves (valid_curves.png) and the wall times
# and stop reasons (training.md) of CURVES/*.json
training_tables() {
  "$BIN/python" scripts/curves.py --plot "$1/valid_curves.png" "$2"/*.json
  "$BIN/python" scripts/curves.py --summary "$2"/*.json | tee "$1/training.md"
}

# report TITLE: table, plots and wall times once every sweep is written
report() {
  local d
  for d in "$OUT"/sweeps/*/; do wait_lock "$d/.lock"; done
  render "$OUT/results" "$OUT/curves" "$1" "$OUT"/sweeps/*/sweep.json
}

# publish TITLE (PUBLISH=1 bash scripts/reproduce_TASK.sh): copy what this machine's run state holds
# into $RESULTS (docs/results/TASK) and redraw its plots and tables there. A finished training
# gives its final curve and, once swept, its sweep(s); a training still running gives a snapshot
# curve ("finished": false); alpha measurements go to docs/results/speculative/alpha_NAME.json.
# Runs committed by another machine stay as they are.
publish() {
  local title=$1 d sweeps=()
  publish_curves
  for d in "$OUT"/sweeps/*/; do
    [[ -f "$d/.done" ]] && cp "$d/sweep.json" "$RESULTS/$(basename "$d").json"
  done
  for d in "$OUT"/alpha/*.json; do
    [[ -f "$d" ]] && mkdir -p docs/results/speculative && cp "$d" "docs/results/speculative/alpha_$(basename "$d")"
  done
  for d in "$RESULTS"/*.json; do [[ -f "$d" ]] && grep -q '"rows"' "$d" && sweeps+=("$d"); done  # not e.g. lead baselines
  render "$RESULTS" "$RESULTS/curves" "$title" "${sweeps[@]}" >/dev/null
  log "published into $RESULTS: ${#sweeps[@]} sweeps, $(ls "$RESULTS"/curves/*.json | wc -l) curves"
}

# publish_curves: each training's validation curve into $RESULTS/curves (final once finished, a
# snapshot while it runs; a run committed by another machine, or any finished curve, stays)
publish_curves() {
  local patience d name
  [[ -n "$RESULTS" ]] || { log "publish: RESULTS is empty, nowhere to publish"; exit 2; }
  patience=$(option_value --patience ${TRAIN[@]+"${TRAIN[@]}"})  # none for fixed budgets (RoBERTa)
  mkdir -p "$RESULTS/curves"
  for d in "$OUT"/ckpt/*/; do
    name=$(basename "$d")
    [[ -f "$d/train.log" ]] || continue
    if [[ -f "$d/.done" ]]; then
      final_curve "$d" "$name" "$patience" "$RESULTS/curves/$name.json"
    elif ! committed "$name" && ! grep -qs '"finished": true' "$RESULTS/curves/$name.json"; then
      "$BIN/python" scripts/curves.py "$d/train.log" --name "$name" --running -o "$RESULTS/curves/$name.json" >/dev/null
    fi
  done
}
