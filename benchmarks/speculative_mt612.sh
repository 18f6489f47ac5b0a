#!/usr/bin/env bash
# Issue 13's target on the converged 6-12 translation models of scripts/reproduce_speculative_mt.sh
# (docs/speculative.md 5h and 6), for each model that has finished training:
#  1. bench_speculative_decode.py: tokens/s of first-1, first-2, first-4 (shared cache) and every-other-2
#     drafts at k = 2, 3, 4 against the same loop without drafting, side by side, 7 repeats, on the
#     first 50 test sources (waits for a quiet machine: pause the trainings first);
#  2. fairseq-layerdrop-generate --compare on the whole test split with the draft given by DRAFT
#     (default "--draft-depth 1 --draft-strategy first --draft-tokens 3"): float32 output against
#     fairseq's SequenceGenerator and the loop without drafting, and both speed-ups.
#   bash benchmarks/speculative_mt612.sh [MODEL ...]   # default: mt612_p05_ee mt612_p0 mt612_p05
# Writes benchmarks/results/speculative_decode_MODEL.json and
# docs/results/speculative/generate_compare_MODEL.txt. A model still training (no .done) is skipped:
# its numbers would not be a finding. Environment: OUT (default work/reproduce_speculative_mt), BIN,
# DRAFT, PROMPTS (default 50), STEPS (default "bench compare": either alone, e.g. STEPS=compare;
# anything else: one line, exit 2).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-work/reproduce_speculative_mt}
DRAFT=${DRAFT:---draft-depth 1 --draft-strategy first --draft-tokens 3}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONWARNINGS=ignore
say() { echo "speculative_mt612.sh: $*" >&2; }
STEPS=${STEPS:-bench compare}
for step in $STEPS; do
  [[ $step == bench || $step == compare ]] || { say "error: STEPS: unknown step '$step' (bench, compare)"; exit 2; }
done
step() { [[ " $STEPS " == *" $1 "* ]]; }

# compare MODEL: fairseq-layerdrop-generate --compare on the whole test split, its summary lines kept
compare() {
  local ckpt="$OUT/ckpt/$1/checkpoint_best.pt" log="$OUT/generate_compare_$1" cmd draft
  local doc="docs/results/speculative/generate_compare_$1.txt"
  read -r -a draft <<< "$DRAFT"
  cmd=("$BIN/fairseq-layerdrop-generate" "$OUT/data-bin" --path "$ckpt" --beam 1 --batch-size 1 "${draft[@]}"
       --post-process sentencepiece --compare)
  local start
  start=$(date -u +"%Y-%m-%d %H:%M")
  "${cmd[@]}" > "$log.out" 2> "$log.err"
  {
    echo "# fairseq-layerdrop-generate --compare on the LibreOffice EN-DE test split ($start-$(date -u +%H:%M) UTC, float32, one thread)"
    echo "# ${cmd[*]}"
    grep -E "^(Generate |speculative: |compare: )" "$log.out"
    echo "# stderr (differences from fairseq's SequenceGenerator, one line each):"
    grep -v -E "^\s*$" "$log.err" | sed 's/^/# /' || echo "# (none)"
  } > "$doc.tmp"
  mv "$doc.tmp" "$doc"  # the summary appears whole or not at all
}

models=("$@")
[[ $# -gt 0 ]] || models=(mt612_p05_ee mt612_p0 mt612_p05)
for m in "${models[@]}"; do
  if [[ ! -f "$OUT/ckpt/$m/.done" ]]; then say "$m: not finished training (no $OUT/ckpt/$m/.done), skipped"; continue; fi
  if step bench; then
    say "$m: bench_speculative_decode.py"
    "$BIN/python" benchmarks/bench_speculative_decode.py "$OUT/ckpt/$m/checkpoint_best.pt" "$OUT/data-bin" \
      --drafts first/1,first/2,first/4,every-other/2 --ks 2,3,4 --prompts "${PROMPTS:-50}" --repeats 7 \
      -o "benchmarks/results/speculative_decode_$m.json" > /dev/null
  fi
  if step compare; then
    say "$m: fairseq-layerdrop-generate --compare (whole test split)"
    compare "$m"
  fi
done
