"""Reading and writing checkpoints for the prune tool: safe, memory-mapped, verified, atomic.

* :func:`hash_and_verify` streams the input once: its sha256 (for the provenance record) and,
  for torch's zip format, the CRC-32 of every archive member, so a truncated or corrupted file
  is refused before anything is written.
* :func:`load_checkpoint` uses ``torch.load(weights_only=True, mmap=True)`` with only the
  allow-listed classes of :mod:`fairseq_layerdrop.safe_load`: a pickle that asks for any other
  global is refused (nothing from it is executed). ``mmap`` leaves the tensors in the file, so
  pruning a large checkpoint never holds two copies in RAM.
* :func:`atomic_save` writes a temporary file next to the output, fsyncs it and renames it over
  the output; on any failure the temporary file is removed and no output appears.

Every failure the user can cause raises :class:`CheckpointError` with a one-line message.
"""
import ctypes
import ctypes.util
import hashlib
import mmap
import os
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import torch

from fairseq_layerdrop.safe_load import SAFE_CHECKPOINT_GLOBALS

_CHUNK = 1 << 22  # 4 MiB reads
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes


class CheckpointError(Exception):
    """A checkpoint or output path the tool cannot use; the message is one line."""


def _members(path: Path):
    """``[(start, end, crc)]`` byte ranges of the zip members' data, sorted by start."""
    spans = []
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                continue  # torch stores; a compressed member is left to the loader
            f.seek(info.header_offset)
            header = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
            if header[0] != b"PK\x03\x04":
                raise CheckpointError(f"{path}: corrupt zip archive (bad local header of {info.filename})")
            start = info.header_offset + _LOCAL_HEADER.size + header[9] + header[10]
            spans.append((start, start + info.compress_size, info.CRC, info.filename))
    return sorted(spans)


def _crc_chunk(spans, crcs, first, chunk, pos) -> None:
    """Fold ``chunk`` (file bytes from ``pos``) into the CRC-32 of every member it overlaps."""
    end = pos + len(chunk)
    for i in range(first, len(spans)):
        start, stop = spans[i][0], spans[i][1]
        if start >= end:
            break
        lo, hi = max(start, pos), min(stop, end)
        if lo < hi:
            crcs[i] = zlib.crc32(chunk[lo - pos:hi - pos], crcs[i])


def hash_and_verify(path, progress: Optional[Callable[[int], None]] = None) -> str:
    """sha256 of the file, checking every member's CRC-32 on the way (one sequential read).

    The CRC of a chunk runs on a second thread while the main thread hashes it (both release
    the GIL), so the check costs little more than the sha256 alone on two cores.
    """
    path = check_input_path(path)
    try:
        spans = _members(path) if zipfile.is_zipfile(path) else []
    except (zipfile.BadZipFile, OSError, EOFError, struct.error) as err:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({err})") from None
    sha, crcs, pos, first = hashlib.sha256(), [0] * len(spans), 0, 0
    with open(path, "rb") as f, ThreadPoolExecutor(max_workers=1) as pool:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            while first < len(spans) and spans[first][1] <= pos:
                first += 1
            crc_done = pool.submit(_crc_chunk, spans, crcs, first, chunk, pos)
            sha.update(chunk)
            crc_done.result()
            pos += len(chunk)
            if progress:
                progress(len(chunk))
    for (start, stop, crc, name), got in zip(spans, crcs):
        if got != crc:
            raise CheckpointError(f"{path}: corrupt checkpoint (checksum mismatch in {name})")
    return sha.hexdigest()


def _unsupported_global(err: Exception) -> Optional[str]:
    match = re.search(r"GLOBAL ([\w.]+)", str(err))
    return match.group(1) if match else None


def _torch_load(path: Path, trust: bool):
    is_zip = zipfile.is_zipfile(path)
    if trust:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=is_zip)
    with torch.serialization.safe_globals(SAFE_CHECKPOINT_GLOBALS):
        # mmap needs torch's zip format; pre-1.6 files are read into memory
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)


def check_input_path(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"{path}: not readable")
    return path


def load_checkpoint(path, trust: bool = False) -> dict:
    """The checkpoint at ``path`` as a dict, tensors memory-mapped; refuses non-fairseq files."""
    path = check_input_path(path)
    with open(path, "rb") as f:
        zip_magic = f.read(4) == b"PK\x03\x04"
    if zip_magic and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint (its zip archive has no end)")
    try:
        state = _torch_load(path, trust)
    except Exception as err:  # torch raises RuntimeError / UnpicklingError / EOFError / ValueError ...
        name = _unsupported_global(err)
        if name:
            raise CheckpointError(
                f"{path}: refused to load: it needs the class or function {name}, which is not on the "
                f"allow-list of data-only classes; pass --trust-checkpoint only if you trust where the "
                f"file comes from") from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable torch checkpoint (truncated or corrupt?): "
                              f"{first[:200]}") from None
    check_fairseq_checkpoint(state, path)
    return state


def check_fairseq_checkpoint(state, path="checkpoint") -> None:
    if not isinstance(state, Mapping) or not isinstance(state.get("model"), Mapping):
        raise CheckpointError(f"{path}: not a fairseq checkpoint (no 'model' state dict)")
    if not all(torch.is_tensor(v) for v in state["model"].values()):
        raise CheckpointError(f"{path}: not a fairseq checkpoint ('model' holds non-tensors)")
    if state.get("args") is None and state.get("cfg") is None:
        raise CheckpointError(f"{path}: not a fairseq checkpoint (no saved config 'args' or 'cfg')")


def check_output_path(src, out, force: bool) -> None:
    """Refuse to overwrite the input, an existing output without ``force``, or an unwritable place."""
    src, out = Path(src), Path(out)
    if out.exists() and src.exists() and os.path.samefile(src, out):
        raise CheckpointError(f"{out}: refusing to overwrite the input checkpoint")
    if out.exists() and out.is_dir():
        raise CheckpointError(f"{out}: is a directory")
    if out.exists() and not force:
        raise CheckpointError(f"{out}: output exists (pass --force to replace it)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CheckpointError(f"{out}: cannot write: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CheckpointError(f"{out}: cannot write: directory {parent} is not writable")


class _MappedPages:
    """The kernel mappings of a memory-mapped input file, to hand its pages back while writing.

    ``torch.save`` reads every kept tensor, and each page it reads from the (private, never
    written) mapping of the input counts towards the process's resident memory until unmapped.
    ``madvise(MADV_DONTNEED)`` on those mappings after each written chunk keeps the peak near one
    chunk; a later read re-faults the page from the file, so nothing is lost. The ranges come
    from ``/proc/self/maps`` entries of exactly this file, never from tensor addresses (dropping
    anonymous memory would zero it). A no-op where either is unavailable.
    """

    def __init__(self, path):
        self.ranges = []
        libc_name = ctypes.util.find_library("c")
        self.madvise = getattr(ctypes.CDLL(libc_name, use_errno=True), "madvise", None) if libc_name else None
        if self.madvise is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        self.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        target = os.stat(path)
        try:
            lines = Path("/proc/self/maps").read_text().splitlines()
        except OSError:
            return
        for line in lines:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or fields[4] == "0":
                continue
            dev_major, dev_minor = (int(x, 16) for x in fields[3].split(":"))
            if int(fields[4]) == target.st_ino and os.makedev(dev_major, dev_minor) == target.st_dev:
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                self.ranges.append((lo, hi - lo))

    def release(self) -> None:
        for start, length in self.ranges:
            self.madvise(start, length, mmap.MADV_DONTNEED)


class _ReleasingFile:
    """A write-only file wrapper that releases the mapped input every ``every`` bytes."""

    def __init__(self, f, pages: Optional[_MappedPages], every: int = 1 << 26):
        self.f, self.pages, self.every, self.pending = f, pages, every, 0

    def write(self, data) -> int:
        n = self.f.write(data)
        self.pending += len(data)
        if self.pages is not None and self.pending >= self.every:
            self.pages.release()
            self.pending = 0
        return n

    def flush(self) -> None:
        self.f.flush()


def mapped_pages(path) -> _MappedPages:
    """The mappings of ``path`` made by :func:`load_checkpoint` (none for a pre-zip file)."""
    return _MappedPages(path)


def atomic_save(obj, out, release: Optional[_MappedPages] = None) -> None:
    """``torch.save`` to a temporary file in the output's directory, fsync, then rename.

    ``release``: the mapped input's pages (:func:`mapped_pages`), dropped while writing.
    """
    out = Path(out)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    except OSError as err:
        raise CheckpointError(f"{out}: cannot write: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, _ReleasingFile(f, release))
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, out)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError):
            raise CheckpointError(f"{out}: cannot write: {err.strerror or err}") from None
        raise
    try:  # make the rename durable
        dir_fd = os.open(out.parent or ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


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
    torch.save(obj, sink)
    return sink.size
