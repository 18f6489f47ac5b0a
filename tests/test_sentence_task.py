"""The description -> section task: builder on hand-written apt indexes, the shipped slice, the
fairseq layout of scripts/prepare_sentence_task.sh loaded by fairseq's sentence_prediction task."""
import gzip
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # the builders are scripts, not a package
import sentence_task as st  # noqa: E402
from build_corpora import split_of  # noqa: E402

EMBEDDED = ROOT / "data" / "embedded" / "cls_debian"
SECTIONS = {"libs": 5, "python": 4, "utils": 3, "games": 1}  # binary packages per source, by section


def fake_indexes(raw: Path, sources: int = 80) -> dict:
    """Packages + Translation-en of ``sources`` source packages; returns {binary package: source}."""
    raw.mkdir(parents=True, exist_ok=True)
    packages, translations, owner = [], [], {}
    for s in range(sources):
        section = list(SECTIONS)[s % len(SECTIONS)]
        for b in range(SECTIONS[section] if s % 7 else 1):
            name, md5 = f"pkg{s}-{b}", f"{s:04d}{b:028d}"
            owner[name] = f"pkg{s}-0"  # the first binary has no Source field: it names the source
            source = f"Source: pkg{s}-0 (1.{b})\n" if b else ""
            packages.append(f"Package: {name}\n{source}Version: 1\nSection: {section}\nDescription: x\n"
                            f"Description-md5: {md5}\n")
            long = " ".join(f"word{s}w{i}" for i in range(80))
            translations.append(f"Package: {name}\nDescription-md5: {md5}\nDescription-en: {section} tool {s} {b}\n"
                                f" {long}\n .\n second paragraph {s}\n")
    (raw / "x_main_binary-amd64_Packages.txt").write_text("\n".join(packages))
    (raw / "x_main_i18n_Translation-en.txt").write_text("\n".join(translations))
    return owner


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    owner = fake_indexes(raw)
    out = tmp_path_factory.mktemp("cls")
    counts = st.build(raw, out, k=3, permille=200)
    return raw, out, counts, owner


def read(out: Path, split: str, side: str) -> list:
    return (out / f"{split}.{side}").read_text().splitlines()


def test_build_is_deterministic(built, tmp_path):
    raw, out, counts, _ = built
    assert st.build(raw, tmp_path, k=3, permille=200) == counts
    again = sorted(f.name for f in tmp_path.iterdir())
    assert again and again == sorted(f.name for f in out.iterdir())
    assert all((out / name).read_bytes() == (tmp_path / name).read_bytes() for name in again)


def test_the_most_frequent_sections_balanced_and_interleaved(built):
    _, out, counts, _ = built
    assert all(counts[split] > 0 for split in ("train", "valid", "test"))
    for split in ("train", "valid", "test"):
        labels = read(out, split, "label")
        assert set(labels) == {"libs", "python", "utils"}  # games: the rarest, left out
        assert len(set(Counter(labels).values())) == 1
        assert labels[:6] == ["libs", "python", "utils"] * 2  # round-robin, most frequent first


def test_no_source_package_in_two_splits(built):
    _, out, _, owner = built
    where = {}
    for split in ("train", "valid", "test"):
        for text in read(out, split, "input0"):
            words = text.split()
            package = f"pkg{words[2]}-{words[3].rstrip('.')}"  # "<section> tool <s> <b>. ..."
            where.setdefault(owner[package], set()).add(split)
            assert split_of(owner[package], st.SALT, 200) == split
    assert all(len(splits) == 1 for splits in where.values())
    assert len(where) > 20


def test_texts_are_synopsis_then_description_cut_to_max_words(built):
    _, out, _, _ = built
    text = read(out, "train", "input0")[0]
    assert len(text.split()) == st.MAX_WORDS and text.split()[4].startswith("word")


def test_shipped_slice_is_small_balanced_and_documented():
    files = sorted(EMBEDDED.glob("*.gz"))
    assert len(files) == 6 and sum(f.stat().st_size for f in files) < 400_000
    for split, n in (("train", 2400), ("valid", 400), ("test", 400)):
        with gzip.open(EMBEDDED / f"{split}.label.gz", "rt") as f:
            labels = f.read().splitlines()
        with gzip.open(EMBEDDED / f"{split}.input0.gz", "rt") as f:
            texts = f.read().splitlines()
        assert len(labels) == len(texts) == n and set(Counter(labels).values()) == {n // 8}
        assert max(len(t.split()) for t in texts) <= st.MAX_WORDS
    assert "DFSG" in (EMBEDDED / "README.md").read_text()


def test_prepared_layout_loads_in_fairseq_sentence_prediction(tmp_path):
    from fairseq import tasks
    from fairseq.options import get_training_parser, parse_args_and_arch

    src = tmp_path / "src"
    src.mkdir()
    for split, n in (("train", 64), ("valid", 16), ("test", 16)):  # balanced prefixes of the shipped slice
        for side in ("input0", "label"):
            with gzip.open(EMBEDDED / f"{split}.{side}.gz", "rt") as f:
                (src / f"{split}.{side}").write_text("".join(f.readlines()[:n]))
    out = tmp_path / "bin"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "prepare_sentence_task.sh"), src, out], text=True,
                          capture_output=True, env={"PATH": "/usr/bin:/bin", "SPM_VOCAB": "300",
                                                    "VENV_BIN": str(Path(sys.executable).parent)})
    assert done.returncode == 0, done.stderr[-2000:]
    args = parse_args_and_arch(get_training_parser(), [str(out), "--task", "sentence_prediction", "--num-classes",
                                                       "8", "--init-token", "0", "--arch", "roberta",
                                                       "--criterion", "sentence_prediction"])
    task = tasks.setup_task(args)
    task.load_dataset("valid")
    ds = task.dataset("valid")
    sample = ds.collater([ds[i] for i in range(len(ds))])
    assert len(ds) == 16 and sorted(sample["target"].view(-1).tolist()) == sorted(list(range(8)) * 2)
    assert (sample["net_input"]["src_tokens"][:, 0] == 0).all()  # <s> first: the head reads it


LOG = """2026-11-28 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 2.1 | nll_loss 0.3 | accuracy 40.5 | wps 1
2026-11-28 | INFO | valid | epoch 001 | valid on 'test' subset | loss 2.2 | nll_loss 0.3 | accuracy 38 | wps 1
2026-11-28 | INFO | valid | epoch 002 | valid on 'valid' subset | loss 1.1 | nll_loss 0.3 | accuracy 61.25 | wps 1
2026-11-28 | INFO | valid | epoch 002 | valid on 'test' subset | loss 1.2 | nll_loss 0.3 | accuracy 57.5 | wps 1
2026-11-28 | INFO | valid | epoch 003 | valid on 'valid' subset | loss 1.0 | nll_loss 0.3 | accuracy 61.25 | wps 1
2026-11-28 | INFO | valid | epoch 003 | valid on 'test' subset | loss 1.0 | nll_loss 0.3 | accuracy 70 | wps 1
"""


def test_fine_tuning_score_is_test_accuracy_at_the_best_valid_epoch():
    import roberta_scores as rs

    assert rs.score_log(LOG) == {"epoch": 2, "valid": 61.25, "test": 57.5, "epochs": 3}  # first of the tied best
    with pytest.raises(ValueError, match="no epoch with both 'valid' and 'test' accuracy"):
        rs.score_log("no validation")
    rows = rs.table([dict(name="mlm8_p05_d4_s1", valid=60.0, test=50.0), dict(name="mlm8_p05_d4_s2", valid=62.0,
                    test=54.0), dict(name="mlm4_scratch_d4_s1", valid=1.0, test=2.0)]).splitlines()
    assert rows[2] == "| mlm4_scratch | 4 | 2.0 | s1 2.0 | 1.0 |"
    assert rows[3] == "| mlm8_p05 | 4 | 52.0 | s1 50.0, s2 54.0 | 61.0 |"


@pytest.mark.parametrize("content,message", [
    ("[]", "not a score file"), ('{"name": "runs", "test": 1, "valid": 2}', "not a score file"),
    ('{"name": "m_d4_s1", "test": "90", "valid": 2}', "not a score file"), ("{", "Expecting")])
def test_a_bad_score_file_is_one_line_and_exit_2(content, message, tmp_path, capsys):
    import roberta_scores as rs

    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert rs.main(["table", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("roberta_scores.py: error: ") and message in err
