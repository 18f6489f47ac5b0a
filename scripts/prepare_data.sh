#!/usr/bin/env bash
# Turn a corpus directory (train/valid/test files, plain or .gz, e.g. data/embedded/mt_en_de)
# into fairseq binary data:
#   1. train a sentencepiece unigram model on the train split (joint over both sides for mt/sum),
#   2. encode every split as space-separated pieces (so `fairseq-generate --post-process
#      sentencepiece` turns hypotheses back into text),
#   3. fairseq-preprocess with --workers 1.
# OUT_DIR gets spm.model/spm.vocab, tok/ (the encoded text) and fairseq's dict*.txt, *.bin, *.idx.
# Deterministic (fixed seed, one thread) and idempotent (re-running rewrites the same files).
#
# usage: bash scripts/prepare_data.sh {mt|lm|sum} SRC_DIR OUT_DIR
# Sides (mt, sum): any pair. SRC_DIR holds train.XX and train.YY (plain or .gz; exactly two sides)
#        plus valid.* and test.* of the same sides. Source and target: SRC_LANG and TGT_LANG if set;
#        else the order the directory's name gives (mt_en_de, iwslt.de-en: XX_YY or XX-YY);
#        else alphabetical (doc -> sum, en -> fr). lm: train.txt, valid.txt, test.txt.
# env:   VENV_BIN (default ROOT/.venv/bin: python with sentencepiece and fairseq)
#        SRC_LANG, TGT_LANG (mt, sum: the source and target side names, both or neither)
#        SPM_VOCAB (default 8000; a smaller corpus gets fewer pieces, the limit is soft)
#        SPM_INPUT_SENTENCES (default 1000000: lines sampled, with a fixed seed, to train spm)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${VENV_BIN:-$ROOT/.venv/bin}  # tests pass the running interpreter's bin directory
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONWARNINGS=ignore

die() { echo "prepare_data.sh: error: $*" >&2; exit 2; }
[[ $# -eq 3 ]] || die "usage: prepare_data.sh {mt|lm|sum} SRC_DIR OUT_DIR"
MODE=$1 SRC=$2 OUT=$3
[[ "$MODE" =~ ^(mt|lm|sum)$ ]] || die "unknown mode '$MODE' (expected mt, lm or sum)"
[[ -d "$SRC" ]] || die "corpus directory not found: $SRC"
[[ -x "$BIN/python" ]] && "$BIN/python" -c "import fairseq_cli, sentencepiece" 2>/dev/null \
  || die "$BIN/python cannot import fairseq and sentencepiece (run scripts/setup_env.sh)"

# pair_sides: "SOURCE TARGET" of a parallel corpus in $SRC (see the header), or die
pair_sides() {
  local found=() name base a b
  if [[ -n "${SRC_LANG:-}${TGT_LANG:-}" ]]; then
    [[ -n "${SRC_LANG:-}" && -n "${TGT_LANG:-}" && "$SRC_LANG" != "$TGT_LANG" ]] \
      || die "set both SRC_LANG and TGT_LANG, to two different sides (got '${SRC_LANG:-}' and '${TGT_LANG:-}')"
    echo "$SRC_LANG $TGT_LANG"
    return
  fi
  for name in "$SRC"/train.*; do
    [[ -f "$name" ]] || continue
    name=${name##*/train.}
    found+=("${name%.gz}")
  done
  mapfile -t found < <(printf '%s\n' "${found[@]}" | grep . | LC_ALL=C sort -u)
  (( ${#found[@]} == 2 )) || die "expected exactly two sides train.XX and train.YY in $SRC, found ${#found[@]}" \
    "(${found[*]:-none}): set SRC_LANG and TGT_LANG"
  a=${found[0]} b=${found[1]} base=$(basename "$SRC")
  if [[ "$base" =~ (^|[^[:alnum:]])"$b"[_-]"$a"($|[^[:alnum:]]) ]]; then
    echo "$b $a"  # the directory's name gives the direction
  else
    echo "$a $b"
  fi
}

if [[ "$MODE" == lm ]]; then
  SIDES="txt"
  FAIRSEQ_ARGS=(--only-source)
else
  pair=$(pair_sides)  # exits here, with status 2, if pair_sides died
  read -r S T <<<"$pair"
  for side in "$S" "$T"; do
    [[ "$side" =~ ^[A-Za-z0-9_]+$ ]] || die "side name '$side' is not a plain word (fairseq names files train.$S-$T.$S.bin)"
  done
  SIDES="$S $T"
  FAIRSEQ_ARGS=(--source-lang "$S" --target-lang "$T" --joined-dictionary)
  echo "sides: $S -> $T"
fi
for split in train valid test; do  # every input checked before anything is created
  for side in $SIDES; do
    [[ -f "$SRC/$split.$side" || -f "$SRC/$split.$side.gz" ]] || die "missing $split.${side}[.gz] in $SRC"
  done
done
mkdir -p "$OUT/tok"

start=$SECONDS
# Steps 1-2 in Python: sentencepiece is a Python module of the venv.
"$BIN/python" - "$SRC" "$OUT" "$SIDES" "${SPM_VOCAB:-8000}" "${SPM_INPUT_SENTENCES:-1000000}" <<'EOF'
import gzip, sys
from pathlib import Path
import sentencepiece as spm

src, out, sides, vocab, max_sentences = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(), int(sys.argv[4]), int(sys.argv[5])

def read(split, side):
    for path in (src / f"{split}.{side}", src / f"{split}.{side}.gz"):
        if path.is_file():
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as f:
                return f.read().splitlines()
    print(f"prepare_data.sh: error: missing {split}.{side}[.gz] in {src}", file=sys.stderr)
    sys.exit(2)

data = {(split, side): read(split, side) for split in ("train", "valid", "test") for side in sides}
train_text = out / "tok" / "spm_train.txt"
train_text.write_text("".join(line + "\n" for side in sides for line in data["train", side]), "utf-8")
spm.set_random_generator_seed(1)
spm.SentencePieceTrainer.train(
    input=str(train_text), model_prefix=str(out / "spm"), model_type="unigram", vocab_size=vocab,
    character_coverage=1.0, input_sentence_size=max_sentences, shuffle_input_sentence=True,
    max_sentence_length=20000, hard_vocab_limit=False, num_threads=1, minloglevel=2)
train_text.unlink()
sp = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
for (split, side), lines in data.items():
    with open(out / "tok" / f"{split}.{side}", "w", encoding="utf-8") as f:
        f.writelines(" ".join(sp.encode(line, out_type=str)) + "\n" for line in lines)
    print(f"{split}.{side}: {len(lines)} lines")
print(f"sentencepiece: {sp.get_piece_size()} pieces (unigram, asked {vocab})")
EOF
echo "sentencepiece: $((SECONDS - start)) s"

# fairseq-preprocess refuses to overwrite a dictionary: clear its previous output first.
rm -f "$OUT"/dict*.txt "$OUT"/*.bin "$OUT"/*.idx "$OUT"/preprocess.log "$OUT"/preprocess.out
if [[ "$MODE" == lm ]]; then
  PREFIXES=(--trainpref "$OUT/tok/train.txt" --validpref "$OUT/tok/valid.txt" --testpref "$OUT/tok/test.txt")
else
  PREFIXES=(--trainpref "$OUT/tok/train" --validpref "$OUT/tok/valid" --testpref "$OUT/tok/test")
fi
t=$SECONDS
"$BIN/python" -m fairseq_cli.preprocess "${FAIRSEQ_ARGS[@]}" "${PREFIXES[@]}" --destdir "$OUT" --workers 1 \
  >"$OUT/preprocess.out" 2>&1 || { tail -20 "$OUT/preprocess.out" >&2; die "fairseq-preprocess failed"; }
grep -E ": [0-9]+ sents" "$OUT/preprocess.out" | sed "s/^.*fairseq_cli.preprocess[:|] *//" || true
echo "fairseq-preprocess: $((SECONDS - t)) s; dictionary $(wc -l <"$(ls "$OUT"/dict*.txt | head -1)") entries -> $OUT"
