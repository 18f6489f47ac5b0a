"""scripts/prepare_data.sh: bad input, an lm corpus, and parallel corpora of any language pair.

The lm test takes a few hundred lines of the shipped lm slice (or made-up text without it); the
parallel tests use a tiny made-up en-fr corpus.
"""
import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def _run(args, **env):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


@pytest.mark.parametrize("args,message", [
    (["xx", ".", "out"], "unknown mode 'xx'"), (["lm", "/nonexistent/dir", "out"], "corpus directory not found"),
    (["lm"], "usage: prepare_data.sh"), (["lm", "EMPTY", "out"], "missing train.txt")])
def test_prepare_data_bad_input_exits_2(tmp_path, args, message):
    args = [str(tmp_path) if a == "EMPTY" else str(tmp_path / a) if a == "out" else a for a in args]
    out = _run(["bash", str(SCRIPTS / "prepare_data.sh"), *args], VENV_BIN=str(Path(sys.executable).parent))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("prepare_data.sh: error: ") and message in out.stderr, out.stderr
    assert not (tmp_path / "out").exists()  # refused before anything is created


def _lm_lines(n: int) -> list:
    slice_ = ROOT / "data/embedded/lm_kernel/train.txt.gz"
    if slice_.is_file():
        with gzip.open(slice_, "rt", encoding="utf-8") as f:
            return [next(f).rstrip("\n") for _ in range(n)]
    return [f"The driver number {i} registers device {i % 7} with the bus core." for i in range(n)]


def test_prepare_data_lm_end_to_end(tmp_path):
    src = tmp_path / "corpus"
    src.mkdir()
    lines = _lm_lines(360)
    (src / "train.txt").write_text("\n".join(lines[:300]) + "\n", "utf-8")
    for name, part in (("valid.txt.gz", lines[300:330]), ("test.txt.gz", lines[330:])):
        with gzip.open(src / name, "wt", encoding="utf-8") as f:
            f.write("\n".join(part) + "\n")
    out = _run(["bash", str(SCRIPTS / "prepare_data.sh"), "lm", str(src), str(tmp_path / "bin")],
               VENV_BIN=str(Path(sys.executable).parent), SPM_VOCAB="600", OMP_NUM_THREADS="1")
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("dict.txt", "train.bin", "valid.idx", "test.bin", "spm.model"):
        assert (tmp_path / "bin" / name).is_file(), name
    first = (tmp_path / "bin/tok/train.txt").read_text("utf-8").splitlines()[0]
    # what fairseq's --post-process sentencepiece does
    assert first.replace(" ", "").replace("\u2581", " ").strip() == " ".join(lines[0].split())


def _en_fr_corpus(root: Path, sides=("en", "fr")) -> Path:
    """A tiny parallel corpus of made-up sentences: train 60 pairs, valid and test 5."""
    words = {"en": ("the cat sees the dog", "a house is big", "we open the file"),
             "fr": ("le chat voit le chien", "une maison est grande", "nous ouvrons le fichier"),
             "de": ("die Katze sieht den Hund", "ein Haus ist gross", "wir öffnen die Datei")}
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 60), ("valid", 5), ("test", 5)):
        for side in sides:
            lines = [f"{words[side][i % 3]} {i}" for i in range(n)]
            (root / f"{split}.{side}").write_text("\n".join(lines) + "\n", "utf-8")
    return root


def _prepare(src: Path, out: Path, **env):
    return _run(["bash", str(SCRIPTS / "prepare_data.sh"), "mt", str(src), str(out)],
                VENV_BIN=str(Path(sys.executable).parent), SPM_VOCAB="60", **env)


def test_prepare_data_any_language_pair(tmp_path):
    src = _en_fr_corpus(tmp_path / "corpus")
    out = _prepare(src, tmp_path / "bin")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sides: en -> fr" in out.stdout  # no direction in the directory name: alphabetical
    for name in ("dict.en.txt", "dict.fr.txt", "train.en-fr.en.bin", "train.en-fr.fr.idx", "test.en-fr.fr.bin"):
        assert (tmp_path / "bin" / name).is_file(), name
    assert (tmp_path / "bin/dict.en.txt").read_text() == (tmp_path / "bin/dict.fr.txt").read_text()  # joined
    out = _prepare(src, tmp_path / "bin_fr_en", SRC_LANG="fr", TGT_LANG="en")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sides: fr -> en" in out.stdout and (tmp_path / "bin_fr_en/train.fr-en.fr.bin").is_file()


def test_prepare_data_reads_the_direction_from_the_directory_name(tmp_path):
    src = _en_fr_corpus(tmp_path / "mt_fr_en")
    out = _prepare(src, tmp_path / "bin")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sides: fr -> en" in out.stdout


@pytest.mark.parametrize("sides,env,message", [
    (("en", "fr", "de"), {}, "expected exactly two sides train.XX and train.YY in"),
    (("en",), {}, "found 1 (en): set SRC_LANG and TGT_LANG"),
    (("en", "fr"), {"SRC_LANG": "en"}, "set both SRC_LANG and TGT_LANG"),
    (("en", "fr"), {"SRC_LANG": "en", "TGT_LANG": "de"}, "missing train.de[.gz] in"),
])
def test_prepare_data_ambiguous_or_missing_sides_exit_2(tmp_path, sides, env, message):
    out = _prepare(_en_fr_corpus(tmp_path / "corpus", sides), tmp_path / "bin", **env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("prepare_data.sh: error: ") and message in out.stderr
