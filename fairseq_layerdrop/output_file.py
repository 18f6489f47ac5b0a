"""Writing the pruned checkpoint: all or nothing, never over a file that appeared meanwhile.

:func:`save_exclusive` writes ``torch.save`` output to a file without a name where Linux allows
it (``O_TMPFILE``): until the last step nothing is visible in the directory, so no way out (an
exception, a full disk, ``ulimit -f``, Ctrl-C, a signal, even SIGKILL or a crash) can leave a
temporary file behind. Elsewhere the temporary file is named ``.fairseq-layerdrop-*.tmp``, is
removed on every way out the process survives, and is listed in :data:`LIVE_TEMPS` for the
SIGBUS handler of :mod:`fairseq_layerdrop.cli.boundary`. After ``fsync`` the data gets its final
name with ``link``, which fails if the name exists: two prunes racing for one output cannot both
succeed, and a file created after our early check is never replaced. Only ``force`` replaces
(rename over the old file). The directory is opened once and every step is relative to it, and
temporary names are short, so any legal output name works.
"""
import ctypes
import ctypes.util
import errno
import mmap
import os
import secrets
import stat
from pathlib import Path
from typing import Optional

import torch

from fairseq_layerdrop.checkpoint_io import InputFile, check_path_text
from fairseq_layerdrop.errors import CheckpointError, show

LIVE_TEMPS = set()  # (directory fd, name) of named temporary files that exist right now
USE_TMPFILE = True  # False: always use a named temporary file (tests cover both ways)
_TEMP_PREFIX = ".fairseq-layerdrop-"


def check_output_path(src, out, force: bool) -> None:
    """Refuse, before any reading: the input itself, an existing output without ``force``, a
    directory, an unwritable place, names and paths over the system's limits, ``out.pt/``."""
    check_path_text(out, "output")
    where, out = show(out), Path(os.fsdecode(out))
    parent = out.parent if str(out.parent) else Path(".")
    try:
        if out.name in ("", ".", "..") or out.is_dir():
            raise CheckpointError(f"{where}: is a directory")
        if _same_file(src, out):
            raise CheckpointError(f"{where}: refusing to overwrite the input checkpoint")
        if os.path.lexists(out) and not force:
            raise CheckpointError(f"{where}: output exists (pass --force to replace it)")
        _refuse_special(out, where)
        if not parent.is_dir():
            raise CheckpointError(f"{where}: cannot write: directory {show(parent)} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise CheckpointError(f"{where}: cannot write: directory {show(parent)} is not writable")
    except OSError as err:
        raise CheckpointError(f"{where}: cannot use as output: {show(err.strerror or err)}") from None


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either missing, unreadable or not a usable path
        return False


class _MappedPages:
    """The kernel mappings of a memory-mapped input file, to hand its pages back while writing.

    ``torch.save`` reads every kept tensor, and each page it reads from the (private, never
    written) mapping of the input counts towards the process's resident memory until unmapped.
    ``madvise(MADV_DONTNEED)`` on those mappings after each written chunk keeps the peak near one
    chunk; a later read re-faults the page from the file, so nothing is lost. The ranges come
    from ``/proc/self/maps`` entries of exactly this file, never from tensor addresses (dropping
    anonymous memory would zero it). A no-op where either is unavailable.
    """

    def __init__(self, target: os.stat_result):
        self.ranges = []
        libc_name = ctypes.util.find_library("c")
        self.madvise = getattr(ctypes.CDLL(libc_name, use_errno=True), "madvise", None) if libc_name else None
        if self.madvise is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        self.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        try:
            lines = Path("/proc/self/maps").read_bytes().splitlines()  # bytes: paths need not be UTF-8
        except OSError:
            return
        for line in lines:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or fields[4] == b"0":
                continue
            dev_major, dev_minor = (int(x, 16) for x in fields[3].split(b":"))
            if int(fields[4]) == target.st_ino and os.makedev(dev_major, dev_minor) == target.st_dev:
                lo, hi = (int(x, 16) for x in fields[0].split(b"-"))
                self.ranges.append((lo, hi - lo))

    def release(self) -> None:
        for start, length in self.ranges:
            self.madvise(start, length, mmap.MADV_DONTNEED)


def mapped_pages(src) -> _MappedPages:
    """The mappings of the input (an :class:`InputFile` or a path) made by ``load_checkpoint``."""
    return _MappedPages(src.stat if isinstance(src, InputFile) else os.stat(src))


class _ReleasingFile:
    """A write-only file wrapper that releases the mapped input every ``every`` bytes and keeps
    the exception of a failed write: ``torch.save`` replaces an exception raised by a write after
    the first with ``RuntimeError: unexpected pos`` (ENOSPC, EFBIG, Ctrl-C and signals alike)."""

    def __init__(self, f, pages: Optional[_MappedPages], every: int = 1 << 26):
        self.f, self.pages, self.every, self.pending, self.error = f, pages, every, 0, None

    def write(self, data) -> int:
        try:
            n = self.f.write(data)
        except BaseException as err:
            self.error = err
            raise
        self.pending += len(data)
        if self.pages is not None and self.pending >= self.every:
            self.pages.release()
            self.pending = 0
        return n

    def flush(self) -> None:
        self.f.flush()


def _temp_name() -> str:
    return f"{_TEMP_PREFIX}{secrets.token_hex(6)}.tmp"


def _open_temp(dir_fd: int):
    """``(fd, name)``: an unnamed file in the directory if possible (name ``None``), else a new name."""
    if USE_TMPFILE and hasattr(os, "O_TMPFILE") and os.path.exists("/proc/self/fd"):
        try:
            return os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=dir_fd), None
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                raise
    name = _temp_name()
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666, dir_fd=dir_fd)
    LIVE_TEMPS.add((dir_fd, name))
    return fd, name


def _remove_temps(dir_fd: int) -> None:
    for entry in [e for e in LIVE_TEMPS if e[0] == dir_fd]:
        try:
            os.unlink(entry[1], dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        LIVE_TEMPS.discard(entry)


def _rename_no_replace(dir_fd: int, src: str, dst: str) -> None:
    """``renameat2(RENAME_NOREPLACE)``: for file systems without hard links (Linux >= 3.15)."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        raise OSError(errno.ENOSYS, "cannot create the output exclusively on this system (use --force)")
    if fn(dir_fd, os.fsencode(src), dir_fd, os.fsencode(dst), 1) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _publish(fd: int, temp: Optional[str], dir_fd: int, name: str, force: bool) -> None:
    """Give the written file its final name: ``link`` (fails if it exists), or rename with ``force``."""
    if temp is None:  # unnamed: link it under the final name, or under a temporary one to rename
        temp = _temp_name() if force else name
        if force:
            LIVE_TEMPS.add((dir_fd, temp))
        os.link(f"/proc/self/fd/{fd}", temp, dst_dir_fd=dir_fd, follow_symlinks=True)
        if not force:
            return
    if force:
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    else:
        try:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            os.unlink(temp, dir_fd=dir_fd)
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK):
                raise
            _rename_no_replace(dir_fd, temp, name)
    LIVE_TEMPS.discard((dir_fd, temp))


def _save(obj, writer, where: str) -> None:
    """``torch.save``, with the real cause of a failed write, and a one-line error for content that
    cannot be pickled (only possible with objects a trusted pickle made)."""
    try:
        torch.save(obj, writer)
    except Exception as err:
        if getattr(writer, "error", None) is not None:  # the real cause: ENOSPC, EFBIG, a signal
            raise writer.error from None
        if isinstance(err, OSError):
            raise
        raise CheckpointError(f"{where}: cannot serialize the pruned checkpoint ({show(type(err).__name__)}: "
                              f"{show(str(err))}); nothing written") from None


def _write(obj, fd: int, release, where: str) -> None:
    with os.fdopen(fd, "wb", closefd=False) as f:
        _save(obj, _ReleasingFile(f, release), where)
        f.flush()
        os.fsync(fd)


def save_exclusive(obj, out, force: bool = False, release: Optional[_MappedPages] = None,
                   source: Optional[os.stat_result] = None) -> int:
    """``torch.save(obj)`` to ``out``, all or nothing; returns the bytes written.

    ``force``: replace an existing ``out`` (never ``source``, the input's stat); ``release``: the
    mapped input's pages (:func:`mapped_pages`), dropped while writing.
    """
    where, out = show(out), Path(os.fsdecode(out))
    try:
        dir_fd = os.open(str(out.parent) or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as err:
        raise CheckpointError(f"{where}: cannot write: {show(err.strerror or err)}") from None
    try:
        fd, temp = _open_temp(dir_fd)
        try:
            _write(obj, fd, release, where)
            if force and source is not None:
                _refuse_input(out.name, dir_fd, source, where)
            if force:
                _refuse_special(out.name, where, dir_fd)
            _publish(fd, temp, dir_fd, out.name, force)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        try:
            os.fsync(dir_fd)  # make the new name durable (best effort: the file is complete)
        except OSError:
            pass
        return size
    except FileExistsError:
        raise CheckpointError(f"{where}: output exists (created while pruning; pass --force to replace "
                              f"it); nothing written") from None
    except OSError as err:
        raise CheckpointError(f"{where}: cannot write: {show(err.strerror or err)}; nothing written") from None
    finally:
        _remove_temps(dir_fd)
        os.close(dir_fd)


def _refuse_input(name: str, dir_fd: int, source: os.stat_result, where: str) -> None:
    try:
        now = os.stat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if (now.st_dev, now.st_ino) == (source.st_dev, source.st_ino):
        raise CheckpointError(f"{where}: refusing to overwrite the input checkpoint")


def _refuse_special(name, where: str, dir_fd: Optional[int] = None) -> None:
    """Even with --force, only a file or a symbolic link is replaced: never a device, FIFO or
    socket that happens to have the output's name (``--force /dev/null`` would replace the device)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise CheckpointError(f"{where}: is not a regular file (a device, FIFO or socket); refusing to "
                              f"replace it")


class _ByteCounter:
    """A write-only sink that counts bytes (``--dry-run`` sizes without writing)."""

    def __init__(self):
        self.size = 0

    def write(self, data) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def serialized_size(obj) -> int:
    """Bytes ``torch.save(obj)`` would write (within a few hundred bytes of zip padding)."""
    sink = _ByteCounter()
    _save(obj, sink, "--dry-run")
    return sink.size
