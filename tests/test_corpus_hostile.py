"""The corpus builders (scripts/build_corpora.py, sentence_task.py) on hostile and malformed input:
one-line errors and exit statuses, bytes that are not UTF-8, damaged compressed indexes, output
that is written all or nothing (more on output and exit statuses: test_corpus_output.py).

Every input is made here in tmp_path; the command-line runs use ``python -S -E -s`` (no
site-packages), as the scripts must run under the system python3 with the standard library only.
"""
import gzip
import sys

import pytest

from tests.corpus_helpers import SCRIPTS, cli, descriptions, sum_raw_dir, tree
from tests.test_corpora import RST, TRANSLATION, _help_fixture
from tests.test_sentence_task import fake_indexes

sys.path.insert(0, str(SCRIPTS))  # the builders are scripts, not a package
import build_corpora as bc  # noqa: E402
import sentence_task as st  # noqa: E402


@pytest.fixture
def sum_raw(tmp_path):
    return sum_raw_dir(tmp_path / "raw")


# ---------------------------------------------------------------- usage errors: one line, exit 2
@pytest.mark.parametrize("script, args, line", [
    ("build_corpora.py", ["mt"], "the following arguments are required: raw_dir, out_dir"),
    ("build_corpora.py", ["mt", "a", "b", "--max-train", "0"], "argument --max-train: expected a positive integer, got '0'"),
    ("build_corpora.py", ["mt", "a", "b", "--max-train", "-3"], "argument --max-train: expected a positive integer, got '-3'"),
    ("build_corpora.py", ["mt", "a", "b", "--bogus"], "unrecognized arguments: --bogus"),
    ("sentence_task.py", ["build", "a", "b", "--sections", "0"], "argument --sections: expected a positive integer, got '0'"),
    ("sentence_task.py", ["build", "a"], "the following arguments are required: out"),
])
def test_usage_error_is_one_line_and_exit_2(script, args, line):
    out = cli(script, *args)
    assert (out.returncode, out.stdout, out.stderr) == (2, "", f"{script}: error: {line}\n")


@pytest.mark.parametrize("script", ["build_corpora.py", "sentence_task.py"])
def test_bad_mode_is_one_line_and_exit_2(script):
    out = cli(script, "x\ny", "a", "b")  # a line break in the argument stays escaped
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"{script}: error: argument mode: invalid choice: 'x\\ny'")


# ---------------------------------------------------------------- bad paths: one line, exit 2, nothing written
def test_missing_raw_dir_with_a_line_break_in_its_name(tmp_path):
    out = cli("build_corpora.py", "lm", tmp_path / "no\nsuch", tmp_path / "out")
    assert (out.returncode, out.stderr) == (2, f"build_corpora.py: error: raw directory not found: {tmp_path}/no\\nsuch\n")
    assert tree(tmp_path) == {}


def test_raw_dir_that_is_a_file(tmp_path):
    (tmp_path / "raw").write_text("x")
    out = cli("sentence_task.py", "build", tmp_path / "raw", tmp_path / "out")
    assert (out.returncode, out.stderr) == (2, f"sentence_task.py: error: raw directory is not a directory: {tmp_path}/raw\n")
    assert tree(tmp_path) == {"raw": b"x"}


@pytest.mark.parametrize("out_rel, line", [
    ("taken", "output {out} is not a directory"),
    ("taken/sub", "output {out} lies under {tmp}/taken, which is not a directory"),
    ("raw/out", "output {out} lies inside the input directory {tmp}/raw"),
    ("raw", "output {out} lies inside the input directory {tmp}/raw"),
])
def test_unusable_output_path_is_refused_before_reading(sum_raw, tmp_path, out_rel, line):
    (tmp_path / "taken").write_text("keep me")
    before = tree(tmp_path)
    out = cli("build_corpora.py", "sum", sum_raw, tmp_path / out_rel)
    expected = line.format(out=tmp_path / out_rel, tmp=tmp_path)
    assert (out.returncode, out.stderr) == (2, f"build_corpora.py: error: {expected}\n")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("files, line", [
    ({}, "need *_Packages and *Translation-en* indexes (plain, .gz, .bz2 or .xz) under {raw}"),
    ({"a_Packages.lz4": b"x", "a_Translation-en.lz4": b"x"},  # apt's own .lz4: skipped, not read as text
     "need *_Packages and *Translation-en* indexes (plain, .gz, .bz2 or .xz) under {raw}"),
    ({"a_Packages": b"Package: a\nSection: libs\nDescription-md5: 1\n", "a_Translation-en": b"Package: b\n"},
     "no package under {raw} has both a section and a description"),
])
def test_sentence_task_without_usable_indexes(tmp_path, files, line):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, data in files.items():
        (raw / name).write_bytes(data)
    out = cli("sentence_task.py", "build", raw, tmp_path / "out")
    assert (out.returncode, out.stderr) == (2, f"sentence_task.py: error: {line.format(raw=raw)}\n")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- bytes that are not UTF-8: dropped, never fatal
def test_lm_drops_the_paragraph_with_a_bad_byte_and_keeps_the_rest(tmp_path):
    src = tmp_path / "raw/html/_sources"
    src.mkdir(parents=True)
    (src / "driver.rst.txt").write_bytes(RST.encode("utf-8").replace(b"a small device", b"a sm\xffall device"))
    counts = bc.build("lm", tmp_path / "raw", tmp_path / "out")
    lines = [line for s in bc.SPLITS for line in (tmp_path / "out" / f"{s}.txt").read_text("utf-8").splitlines()]
    assert sum(counts.values()) == 2 and not any("device is probed" in line for line in lines)
    assert "Each list item that is long enough becomes its own paragraph of text." in lines


def test_mt_drops_the_pair_with_a_bad_byte_and_keeps_the_rest(tmp_path):
    _help_fixture(tmp_path / "raw", n_pages=30)
    page = tmp_path / "raw/usr/share/libreoffice/help/de/text/shared/000.html"
    page.write_bytes(page.read_bytes().replace(b"Nummer 1 des", b"Nummer 1 \xfe des"))
    bc.build("mt", tmp_path / "raw", tmp_path / "out")
    english = "".join((tmp_path / "out" / f"{s}.en").read_text("utf-8") for s in bc.SPLITS)
    assert "Page 0 explains option number 1 " not in english and "Page 0 explains option number 2 " in english


def test_sum_drops_a_damaged_description_but_keeps_a_written_replacement_character(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    text = descriptions(extra="\n" + TRANSLATION.format(name="d", synopsis="damaged", first="Damaged \udcff " * 50,
                                                        second="x.")
                        + "\n" + TRANSLATION.format(name="r", synopsis="has \ufffd", first="Written \ufffd " * 50,
                                                    second="x."))
    (raw / "x_Translation-en.txt").write_bytes(text.encode("utf-8", "surrogateescape"))
    bc.build("sum", raw, tmp_path / "out")
    sums = "".join((tmp_path / "out" / f"{s}.sum").read_text("utf-8") for s in bc.SPLITS).splitlines()
    assert len(sums) == 41 and "has \ufffd" in sums and "damaged" not in sums


def test_cls_drops_a_package_whose_section_has_a_bad_byte(tmp_path):
    fake_indexes(tmp_path / "raw")
    good = list(st.described_packages(tmp_path / "raw"))
    packages = tmp_path / "raw/x_main_binary-amd64_Packages.txt"
    packages.write_bytes(packages.read_bytes().replace(b"Package: pkg0-0\nVersion: 1\nSection: libs",
                                                       b"Package: pkg0-0\nVersion: 1\nSection: li\xffbs", 1))
    rows = list(st.described_packages(tmp_path / "raw"))
    assert rows == [row for row in good if row[0] != "pkg0-0"] and len(rows) == len(good) - 1  # pkg0: 1 binary


# ---------------------------------------------------------------- compressed indexes
def test_a_gzipped_index_gives_the_same_files_as_the_plain_one(sum_raw, tmp_path):
    bc.build("sum", sum_raw, tmp_path / "plain")
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    (zipped / "x_Translation-en.gz").write_bytes(gzip.compress((sum_raw / "x_Translation-en.txt").read_bytes()))
    bc.build("sum", zipped, tmp_path / "gz")
    assert tree(tmp_path / "gz") == tree(tmp_path / "plain") != {}


BROKEN = {  # name: (bytes from the good gzip, reason shown)
    "truncated": (lambda z: z[:-20], "EOFError: Compressed file ended before the end-of-stream marker was reached"),
    "not gzip": (lambda z: b"Package: a\n", "BadGzipFile: Not a gzipped file (b'Pa')"),
    "empty": (lambda z: b"", "EOFError: empty file"),
}


@pytest.mark.parametrize("kind", BROKEN)
def test_a_damaged_gzip_is_one_line_and_leaves_the_old_output(sum_raw, tmp_path, kind):
    bc.build("sum", sum_raw, tmp_path / "out")  # an earlier good build
    good = gzip.compress(descriptions(60).encode())
    (sum_raw / "y_Translation-en.gz").write_bytes(BROKEN[kind][0](good))
    before = tree(tmp_path)
    out = cli("build_corpora.py", "sum", sum_raw, tmp_path / "out")
    line = f"{sum_raw}/y_Translation-en.gz: truncated or corrupt gz file ({BROKEN[kind][1]})"
    assert (out.returncode, out.stdout, out.stderr) == (2, "", f"build_corpora.py: error: {line}\n")
    assert tree(tmp_path) == before


def test_sentence_task_on_a_truncated_packages_gz(tmp_path):
    fake_indexes(tmp_path / "raw")
    packages = tmp_path / "raw/x_main_binary-amd64_Packages.txt"
    broken = packages.with_suffix(".gz")
    broken.write_bytes(gzip.compress(packages.read_bytes())[:100])
    packages.unlink()
    out = cli("sentence_task.py", "build", tmp_path / "raw", tmp_path / "out")
    line = f"{broken}: truncated or corrupt gz file (EOFError: Compressed file ended before the end-of-stream marker was reached)"
    assert (out.returncode, out.stderr) == (2, f"sentence_task.py: error: {line}\n")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- good input from the command line (no site-packages)
def test_a_good_build_prints_its_counts_and_nothing_else(sum_raw, tmp_path):
    out = cli("build_corpora.py", "sum", sum_raw, tmp_path / "out")
    counts = bc.build("sum", sum_raw, tmp_path / "again")
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == "sum: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "\n"
    assert tree(tmp_path / "out") == tree(tmp_path / "again")
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary left
