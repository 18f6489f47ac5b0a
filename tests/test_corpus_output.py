"""Output of the corpus scripts: written all or nothing (scripts/corpus_io.write_outputs), the exit
statuses for a full disk (2), a bug (1), Ctrl-C (130), SIGTERM (143) and SIGHUP (129), and the
embed slices (``build_corpora.py embed``, ``sentence_task.py embed``) on malformed built corpora.
Inputs are made in tmp_path."""
import errno
import sys

import pytest

from tests.corpus_helpers import SCRIPTS, cli, descriptions, sum_raw_dir, tree

sys.path.insert(0, str(SCRIPTS))  # the builders are scripts, not a package
import build_corpora as bc  # noqa: E402
import corpus_io as cio  # noqa: E402
import sentence_task as st  # noqa: E402


@pytest.fixture
def sum_raw(tmp_path):
    return sum_raw_dir(tmp_path / "raw")


FILES = {"one.txt": b"1\n", "a/b/two.txt": b"2\n", "a/three.txt": b"3\n"}


def failing_open(after: int, error: BaseException):
    """``open`` that works ``after`` times, then raises ``error`` (a full disk, Ctrl-C)."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(args)
        if len(calls) > after:
            raise error
        return open(*args, **kwargs)
    return fake


# ---------------------------------------------------------------- write_outputs: all or nothing
def test_write_outputs_replaces_its_files_and_leaves_others(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/one.txt").write_bytes(b"old\n")
    (tmp_path / "out/other.txt").write_bytes(b"not ours\n")
    cio.write_outputs(tmp_path / "out", FILES)
    assert tree(tmp_path / "out") == {"a": None, "a/b": None, "a/b/two.txt": b"2\n", "a/three.txt": b"3\n",
                                      "one.txt": b"1\n", "other.txt": b"not ours\n"}


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
@pytest.mark.parametrize("after", [0, 2])  # the first file, or the last
def test_write_outputs_failing_midway_leaves_nothing_new(tmp_path, monkeypatch, error, after):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/one.txt").write_bytes(b"old\n")
    monkeypatch.setattr(cio, "open", failing_open(after, error), raising=False)
    with pytest.raises(type(error)):
        cio.write_outputs(tmp_path / "out", FILES)
    assert tree(tmp_path) == {"out": None, "out/one.txt": b"old\n"}  # no a/, no temporary file


def failing_rename(at: int):
    """``os.replace`` whose ``at``-th rename of a temporary file fails (the renames that put files
    back still work)."""
    real, calls = cio.os.replace, []

    def fake(src, dst):
        if str(src).endswith(".partial"):
            calls.append(src)
            if len(calls) == at:
                raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)
    return fake


@pytest.mark.parametrize("at", [2, 4])  # one.txt or three.txt: after link.txt
def test_a_rename_failing_midway_puts_back_what_the_earlier_ones_replaced(tmp_path, monkeypatch, at):
    (tmp_path / "out/a").mkdir(parents=True)
    (tmp_path / "out/one.txt").write_bytes(b"old one\n")
    (tmp_path / "out/a/three.txt").write_bytes(b"old three\n")
    (tmp_path / "out/link.txt").symlink_to("one.txt")
    before = tree(tmp_path)
    monkeypatch.setattr(cio.os, "replace", failing_rename(at))
    with pytest.raises(OSError, match="Input/output error"):
        cio.write_outputs(tmp_path / "out", {"link.txt": b"new\n", **FILES})
    assert tree(tmp_path) == before  # one.txt old again, a/b/ and two.txt gone, nothing hidden left
    assert (tmp_path / "out/link.txt").is_symlink()
    monkeypatch.undo()
    cio.write_outputs(tmp_path / "out", FILES)  # and the next run succeeds
    assert (tmp_path / "out/a/b/two.txt").read_bytes() == b"2\n"


def test_write_outputs_refuses_a_directory_in_the_way(tmp_path):
    (tmp_path / "out/a/three.txt").mkdir(parents=True)
    with pytest.raises(cio.CorpusError, match=r"^cannot write .*/out/a/three.txt: it is a directory$"):
        cio.write_outputs(tmp_path / "out", FILES)
    assert tree(tmp_path) == {"out": None, "out/a": None, "out/a/three.txt": None}


# ---------------------------------------------------------------- exit statuses
def test_full_disk_is_one_line_exit_2_and_no_output(sum_raw, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cio, "open", failing_open(3, OSError(errno.ENOSPC, "No space left on device")),
                        raising=False)
    assert bc.main(["sum", str(sum_raw), str(tmp_path / "out")]) == 2
    assert capsys.readouterr() == ("", "build_corpora.py: error: OSError: [Errno 28] No space left on device\n")
    assert not (tmp_path / "out").exists()


def test_a_bug_is_one_line_and_exit_1(sum_raw, tmp_path, monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr(bc, "assign_splits", boom)
    assert bc.main(["sum", str(sum_raw), str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == ("build_corpora.py: error: internal error (a bug in build_corpora.py; set "
                                       "FAIRSEQ_LAYERDROP_TRACEBACK=1 for details): RuntimeError: boom\n")


def test_ctrl_c_while_reading_is_exit_130(tmp_path, monkeypatch, capsys):
    def interrupted(raw):
        raise KeyboardInterrupt
    monkeypatch.setattr(st, "described_packages", interrupted)
    (tmp_path / "raw").mkdir()
    assert st.main(["build", str(tmp_path / "raw"), str(tmp_path / "out")]) == 130
    assert capsys.readouterr() == ("", "sentence_task.py: error: interrupted\n")
    assert tree(tmp_path) == {"raw": None}


INTERRUPT = """import os, signal, sys
import build_corpora, corpus_io
real, calls = {real}, []
def interrupting(*args, **kwargs):  # the third write or the first rename sends the process a signal
    calls.append(args)
    if len(calls) == {at}:
        os.kill(os.getpid(), signal.{sig})
    return real(*args, **kwargs)
{target} = interrupting
sys.exit(build_corpora.main(sys.argv[1:]))
"""
STOPS = [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "stopped by SIGTERM"), ("SIGHUP", 129, "stopped by SIGHUP")]


@pytest.mark.parametrize("sig, status, message", STOPS)
def test_a_stop_while_writing_leaves_nothing(sum_raw, tmp_path, sig, status, message):
    code = INTERRUPT.format(real="open", at=3, target="corpus_io.open", sig=sig)
    out = cli(None, "sum", sum_raw, tmp_path / "out", code=code)
    assert (out.returncode, out.stdout, out.stderr) == (status, "", f"build_corpora.py: error: {message}\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("sig, status, message", STOPS)
def test_a_stop_while_renaming_waits_for_the_renames(sum_raw, tmp_path, sig, status, message):
    bc.build("sum", sum_raw, tmp_path / "clean")
    code = INTERRUPT.format(real="os.replace", at=1, target="os.replace", sig=sig)
    out = cli(None, "sum", sum_raw, tmp_path / "out", code=code)
    assert (out.returncode, out.stderr) == (status, f"build_corpora.py: error: {message}\n")
    assert tree(tmp_path / "out") == tree(tmp_path / "clean") != {}  # complete, no temporary file


def test_run_puts_the_signal_handlers_back(monkeypatch):
    import signal
    before = {sig: signal.getsignal(sig) for sig in cio.STOPS}
    inside = []
    assert cio.run("x", lambda: inside.append(signal.getsignal(signal.SIGTERM))) == 0
    assert inside == [cio.raise_stopped]
    assert {sig: signal.getsignal(sig) for sig in cio.STOPS} == before


def test_run_leaves_an_ignored_hangup_ignored():
    """Under nohup SIGHUP is ignored: a closed terminal must not stop the build."""
    import signal
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        inside = []
        assert cio.run("x", lambda: inside.append(signal.getsignal(signal.SIGHUP))) == 0
        assert inside == [signal.SIG_IGN] and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


# ---------------------------------------------------------------- embed slices of malformed built corpora
CORPORA = {"mt_en_de": ("en", "de"), "lm_kernel": ("txt",), "sum_debian": ("doc", "sum")}


@pytest.fixture
def built(tmp_path):
    """Tiny built corpora, SOURCES.tsv, and an earlier data/embedded (with cls_debian/) to keep."""
    corpora = tmp_path / "corpora"
    for name, suffixes in CORPORA.items():
        (corpora / name).mkdir(parents=True)
        for split in bc.SPLITS:
            for suffix in suffixes:
                (corpora / name / f"{split}.{suffix}").write_text(f"{split} {suffix} one\n{split} two\n", "utf-8")
    (corpora / "raw").mkdir()
    (corpora / "raw/SOURCES.tsv").write_text("source\tversion\tfile\tsha256\nlinux-doc-6.1\t6.1\tx.deb\t00\n", "utf-8")
    (tmp_path / "embedded/cls_debian").mkdir(parents=True)
    (tmp_path / "embedded/README.md").write_text("old readme\n")
    (tmp_path / "embedded/cls_debian/README.md").write_text("cls readme\n")
    return corpora, tmp_path / "embedded"


def test_embed_of_good_corpora_writes_every_slice(built):
    corpora, out = built
    done = cli("build_corpora.py", "embed", corpora, out)
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "embed: mt_en_de 2, lm_kernel 2, sum_debian 2\n")
    files = tree(out)
    assert len([name for name in files if name.endswith(".gz")]) == 15 and files["cls_debian/README.md"] == b"cls readme\n"
    assert b"| linux-doc-6.1 | 6.1 | GPL-2.0 |" in files["README.md"]


@pytest.mark.parametrize("damage, line", [
    ({"mt_en_de/valid.de": b"valid de \xff\n"}, "{c}/mt_en_de/valid.de: not UTF-8 text (byte 9)"),
    ({"sum_debian/test.sum": b"only one line\n"}, "{c}/sum_debian: test.doc and test.sum differ in length"),
    ({"raw/SOURCES.tsv": b"source\tversion\nno tab here\n"}, "{c}/raw/SOURCES.tsv: line 2 is not tab-separated "
                                                           "(source, version, ...)"),
    ({"lm_kernel/valid.txt": None}, "FileNotFoundError: [Errno 2] No such file or directory: '{c}/lm_kernel/valid.txt'"),
])
def test_embed_of_malformed_corpora_is_one_line_and_writes_nothing(built, damage, line):
    corpora, out = built
    for rel, data in damage.items():
        (corpora / rel).unlink() if data is None else (corpora / rel).write_bytes(data)
    before, inputs = tree(out), tree(corpora)
    done = cli("build_corpora.py", "embed", corpora, out)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"build_corpora.py: error: {line.format(c=corpora)}\n")
    assert tree(out) == before and tree(corpora) == inputs


@pytest.mark.parametrize("labels, line", [
    ("", "{t}/train.label has no sections (an empty task)"),
    ("libs\n", "{t}: train.input0 and train.label differ in length"),
])
def test_sentence_task_embed_of_a_malformed_task(tmp_path, labels, line):
    task = tmp_path / "cls"
    task.mkdir()
    for split in bc.SPLITS:
        (task / f"{split}.input0").write_text("" if not labels else "a text\nanother text\n")
        (task / f"{split}.label").write_text(labels)
    done = cli("sentence_task.py", "embed", task, tmp_path / "out")
    assert (done.returncode, done.stderr) == (2, f"sentence_task.py: error: {line.format(t=task)}\n")
    assert not (tmp_path / "out").exists()


def test_sentence_task_embed_into_a_file(tmp_path):
    (tmp_path / "out").write_text("keep me")
    done = cli("sentence_task.py", "embed", tmp_path, tmp_path / "out")
    assert (done.returncode, done.stderr) == (2, f"sentence_task.py: error: output {tmp_path}/out is not a directory\n")
    assert (tmp_path / "out").read_text() == "keep me"


def test_a_sum_build_reads_everything_before_writing(sum_raw, tmp_path):
    (sum_raw / "z_Translation-en.txt").write_text(descriptions(3), "utf-8")
    (sum_raw / "zz_Translation-en.xz").write_bytes(b"\xfd7zXZ\x00 truncated")  # read last, after all the others
    done = cli("build_corpora.py", "sum", sum_raw, tmp_path / "out")
    assert done.returncode == 2 and done.stderr.startswith(f"build_corpora.py: error: {sum_raw}/zz_Translation-en.xz: ")
    assert not (tmp_path / "out").exists()
