#!/usr/bin/env bash
# Turn a sentence-classification corpus ({train,valid,test}.input0 and .label, plain or .gz, e.g.
# data/embedded/cls_debian) into fairseq's sentence_prediction layout:
#   OUT_DIR/input0/  dict.txt + {train,valid,test}.{bin,idx}   (sentencepiece pieces)
#   OUT_DIR/label/   dict.txt + {train,valid,test}.{bin,idx}   (one label per line)
#   OUT_DIR/spm.model, OUT_DIR/tok/ (the encoded text)
# 1. sentencepiece: with PRETRAINED_BIN (a data-bin of scripts/prepare_data.sh, e.g. the masked-LM
#    pretraining data), its spm.model encodes the text and its dict.txt is the input dictionary,
#    so a model pretrained there can be fine-tuned here; without it, a unigram model is trained
#    on train.input0 (SPM_VOCAB pieces) and fairseq builds the dictionary;
# 2. fairseq-preprocess --only-source for input0, then for label (--workers 1).
# Deterministic (fixed seed, one thread) and idempotent. The sibling of scripts/prepare_data.sh.
#
# usage: bash scripts/prepare_sentence_task.sh SRC_DIR OUT_DIR [PRETRAINED_BIN]
# env:   VENV_BIN (default ROOT/.venv/bin), SPM_VOCAB (default 8000, soft limit)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${VENV_BIN:-$ROOT/.venv/bin}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONWARNINGS=ignore

die() { echo "prepare_sentence_task.sh: error: $*" >&2; exit 2; }
[[ $# -eq 2 || $# -eq 3 ]] || die "usage: prepare_sentence_task.sh SRC_DIR OUT_DIR [PRETRAINED_BIN]"
SRC=$1 OUT=$2 PRE=${3:-}
[[ -d "$SRC" ]] || die "corpus directory not found: $SRC"
[[ -z "$PRE" || (-f "$PRE/spm.model" && -f "$PRE/dict.txt") ]] || die "$PRE has no spm.model and dict.txt"
[[ -x "$BIN/fairseq-preprocess" ]] || die "$BIN/fairseq-preprocess not found (run scripts/setup_env.sh)"
mkdir -p "$OUT/tok"

"$BIN/python" - "$SRC" "$OUT" "${PRE:+$PRE/spm.model}" "${SPM_VOCAB:-8000}" <<'EOF'
import gzip, shutil, sys
from pathlib import Path
import sentencepiece as spm

src, out, model, vocab = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])

def read(split, side):
    for path in (src / f"{split}.{side}", src / f"{split}.{side}.gz"):
        if path.is_file():
            with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as f:
                return f.read().splitlines()
    print(f"prepare_sentence_task.sh: error: missing {split}.{side}[.gz] in {src}", file=sys.stderr)
    sys.exit(2)

data = {(split, side): read(split, side) for split in ("train", "valid", "test") for side in ("input0", "label")}
for split in ("train", "valid", "test"):
    if len(data[split, "input0"]) != len(data[split, "label"]):
        print(f"prepare_sentence_task.sh: error: {split}.input0 and {split}.label differ in length", file=sys.stderr)
        sys.exit(2)
if model:
    shutil.copyfile(model, out / "spm.model")
else:
    spm.set_random_generator_seed(1)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(data["train", "input0"]), model_prefix=str(out / "spm"), model_type="unigram",
        vocab_size=vocab, character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2)
sp = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
for (split, side), lines in data.items():
    encoded = [" ".join(sp.encode(line, out_type=str)) for line in lines] if side == "input0" else lines
    (out / "tok" / f"{split}.{side}").write_text("".join(line + "\n" for line in encoded), "utf-8")
print(f"sentencepiece: {sp.get_piece_size()} pieces ({'pretrained' if model else 'trained here'}); "
      + ", ".join(f"{split} {len(data[split, 'label'])}" for split in ("train", "valid", "test")))
EOF

for side in input0 label; do
  rm -rf "${OUT:?}/$side"  # fairseq-preprocess refuses to overwrite a dictionary
  extra=()
  [[ "$side" == input0 && -n "$PRE" ]] && extra=(--srcdict "$PRE/dict.txt")
  "$BIN/fairseq-preprocess" --only-source --trainpref "$OUT/tok/train.$side" --validpref "$OUT/tok/valid.$side" \
    --testpref "$OUT/tok/test.$side" --destdir "$OUT/$side" --workers 1 "${extra[@]}" \
    >"$OUT/preprocess.$side.out" 2>&1 || { tail -20 "$OUT/preprocess.$side.out" >&2; die "fairseq-preprocess ($side) failed"; }
done
# fairseq pads a dictionary to a multiple of 8 entries with madeupwordNNNN: not labels
echo "fairseq layout: $OUT/input0 ($(wc -l <"$OUT/input0/dict.txt") entries), $OUT/label ($(grep -vc '^madeupword' "$OUT/label/dict.txt") labels)"
