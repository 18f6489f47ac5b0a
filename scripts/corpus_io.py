"""The file and command-line boundary of the corpus scripts (build_corpora.py, sentence_task.py
and their embed helpers): how inputs are read, how outputs are written, how failures are shown.

Standard library only, like the scripts: they run under the system python3, without the plugin,
so this is their own small copy of the plugin's rules (``fairseq_layerdrop.cli.boundary``).

Reading, one rule per kind of input:

* raw sources from outside (LibreOffice help HTML, kernel reST, apt's ``Packages`` and
  ``Translation-en`` indexes) are messy by nature, so bad bytes do not stop a build: bytes that
  are not UTF-8 are decoded as lone surrogates (``errors="surrogateescape"``) and corpus_text
  drops every pair, paragraph, description or label that holds one (``corpus_text.undecodable``).
  A U+FFFD written in valid UTF-8 is text, not damage, and is kept (Debian's index has a few).
* an apt index may be compressed (.gz, .bz2, .xz, .lzma: read with the standard library); one
  that is truncated or corrupt is refused with CorpusError naming the file. apt's own .lz4 and
  .zst indexes are skipped (no standard-library reader): fetch_corpora.sh decompresses them.
* files this project wrote (built corpora, SOURCES.tsv) must be UTF-8: anything else is refused
  with CorpusError naming the file and the first bad byte.

Writing is all or nothing (:func:`write_outputs`): a script reads and checks everything first,
then each file is written to a hidden temporary name beside its destination, and only once all
are written are they renamed into place (Ctrl-C, SIGTERM and SIGHUP are held back while
renaming). On a failure the temporary files and the directories made for them are removed, so no
half-written output is left behind, and files already there (outputs of an earlier run, inputs)
are unchanged. The renames are not one atomic step, so each file they replace is first kept under
a hidden hard link beside it: should a rename fail (everything that can be checked is checked
before), the files renamed before it are put back as they were (or removed, if they are new).

Exit statuses (:func:`run`), with at most one line ``<prog>: error: <message>`` on stderr:
0 done; 2 a bad option or input, or the system refused (OSError such as a missing file, no
permission or a full disk; MemoryError); 1 a bug of ours; 130 Ctrl-C; 143 SIGTERM and 129 SIGHUP
(a `kill`, a closed terminal: the same clean stop as Ctrl-C; a hangup already ignored, as
under `nohup`, stays ignored).
"""
import argparse
import bz2
import errno
import gzip
import io
import lzma
import os
import shutil
import signal
import sys
import threading
import traceback
import zlib
from pathlib import Path

OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".lzma": lzma.open}
SKIPPED = {".lz4", ".zst"}  # compressed indexes without a standard-library reader
BROKEN = (OSError, EOFError, zlib.error, lzma.LZMAError)  # what a damaged compressed stream raises
STOPS = (signal.SIGTERM, signal.SIGHUP)  # stop cleanly, like Ctrl-C
HELD = {signal.SIGINT, *STOPS}  # held back while the outputs are renamed into place


class CorpusError(ValueError):
    """Bad input or output path; the CLI prints the message on one line and exits 2."""


# ---------------------------------------------------------------- messages and exit statuses
def one_line(text) -> str:
    """``text`` with line breaks and other unprintable characters (from a file name) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line ``<prog>: error: ...`` and exit 2 (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 written in ASCII digits."""
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def fail(prog: str, message: str, status: int) -> int:
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    return status


class Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so the temporary files are removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def raise_stopped(signum, frame):
    raise Stopped(signum)


def run(prog: str, work) -> int:
    """``work()`` (which prints its own result) under the exit statuses above; returns the status."""
    main = threading.current_thread() is threading.main_thread()  # handlers: main thread only
    previous = {sig: signal.signal(sig, raise_stopped) for sig in STOPS
                if main and signal.getsignal(sig) is not signal.SIG_IGN}  # nohup: stays ignored
    try:
        work()
        return 0
    except KeyboardInterrupt:
        return fail(prog, "interrupted", 128 + signal.SIGINT)
    except Stopped as stop:
        return fail(prog, f"stopped by {signal.Signals(stop.signum).name}", 128 + stop.signum)
    except CorpusError as err:
        return fail(prog, str(err), 2)
    except (OSError, MemoryError) as err:
        return fail(prog, f"{type(err).__name__}: {err}", 2)
    except Exception as err:  # a bug of ours: still one line, and the traceback on request
        if os.environ.get("FAIRSEQ_LAYERDROP_TRACEBACK"):
            traceback.print_exception(type(err), err, err.__traceback__)  # any python3
        return fail(prog, f"internal error (a bug in {prog}; set FAIRSEQ_LAYERDROP_TRACEBACK=1 for "
                          f"details): {type(err).__name__}: {err}", 1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------- reading
def index_files(raw: Path, pattern: str) -> list:
    """Files under ``raw`` matching ``pattern`` (glob), plain or in a compression we can read."""
    return sorted(p for p in Path(raw).rglob(pattern) if p.is_file() and p.suffix not in SKIPPED)


def read_raw(path: Path) -> str:
    """A raw source as text: decompressed by its suffix; bytes that are not UTF-8 become lone
    surrogates, which corpus_text drops."""
    path = Path(path)
    data = path.read_bytes()
    opener = OPENERS.get(path.suffix)
    if opener is not None:
        try:
            if not data:  # the decompressors read an empty file as empty text
                raise EOFError("empty file")
            with opener(io.BytesIO(data), "rb") as stream:
                data = stream.read()
        except BROKEN as err:
            raise CorpusError(f"{path}: truncated or corrupt {path.suffix[1:]} file "
                              f"({type(err).__name__}: {err})") from None
    return data.decode("utf-8", "surrogateescape")


def read_own(path: Path) -> str:
    """A file this project wrote (a built corpus, SOURCES.tsv): UTF-8 text, else CorpusError."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 text (byte {err.start})") from None


# ---------------------------------------------------------------- writing, all or nothing
def check_output(out: Path, inputs=None) -> None:
    """Refuse an output directory that is (or lies under) a file, or, for a build, one inside the
    input tree (a rebuild would search it and could read the old output back as input)."""
    out = Path(out)
    for path in (out, *out.parents):  # the nearest existing path must be a directory
        if path.exists():
            if not path.is_dir():
                where = "" if path == out else f" lies under {path}, which"
                raise CorpusError(f"output {out}{where} is not a directory")
            break
    if inputs is not None:
        top = Path(inputs).resolve()
        if out.resolve() == top or top in out.resolve().parents:
            raise CorpusError(f"output {out} lies inside the input directory {inputs}")


def write_outputs(out: Path, files: dict) -> None:
    """Write ``{relative path: bytes}`` under ``out``, all or nothing (see the module docstring)."""
    out = Path(out)
    check_output(out)
    targets = [(out / rel, data) for rel, data in files.items()]
    for dest, _ in targets:
        if dest.is_dir():
            raise CorpusError(f"cannot write {dest}: it is a directory")
    made, staged = [], []  # directories we created; (temporary, destination) of each file
    try:
        for dest, data in targets:
            make_dirs(dest.parent, made)
            temporary = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
            staged.append((temporary, dest))
            with open(temporary, "xb") as f:  # "x": never through a planted file or link
                f.write(data)
        held = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)  # a stop waits for the renames
        try:
            commit(staged)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    except BaseException:
        discard(staged, made)
        raise


def commit(staged: list) -> None:
    """Rename each (temporary, destination) into place; should one rename fail, put back the
    destinations already replaced (from the hard link kept of each) and re-raise."""
    replaced = []  # (destination, its kept earlier file or None)
    try:
        for temporary, dest in staged:
            kept = keep(dest)
            try:
                os.replace(temporary, dest)
            except BaseException:
                remove_quietly(kept)
                raise
            replaced.append((dest, kept))
    except BaseException:
        for dest, kept in reversed(replaced):
            put_back(dest, kept)
        raise
    for _, kept in replaced:
        remove_quietly(kept)


def keep(dest: Path):
    """A hidden hard link (a copy where links are refused) to the file ``dest`` replaces, or None."""
    if not os.path.lexists(dest):
        return None
    kept = dest.with_name(f".{dest.name}.{os.getpid()}.previous")
    kept.unlink(missing_ok=True)  # left by a run that crashed with the same pid
    try:
        os.link(dest, kept, follow_symlinks=False)
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
            raise
        shutil.copy2(dest, kept, follow_symlinks=False)  # a file system without hard links
    return kept


def put_back(dest: Path, kept) -> None:
    """Undo one rename: the kept earlier file back in place, or the new file removed."""
    try:
        if kept is None:
            dest.unlink(missing_ok=True)
        else:
            os.replace(kept, dest)
    except OSError:
        pass


def remove_quietly(path) -> None:
    """Remove ``path`` if there is one; cleanup after a failure, so an error here is not raised."""
    if path is not None:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def make_dirs(path: Path, made: list) -> None:
    """Create ``path`` and its missing parents, appending each one made to ``made``."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir()
        made.append(directory)


def discard(staged: list, made: list) -> None:
    """Remove the temporary files of a failed write and the directories made for them."""
    for temporary, _ in staged:
        remove_quietly(temporary)
    for directory in reversed(made):
        try:
            directory.rmdir()
        except OSError:
            pass
