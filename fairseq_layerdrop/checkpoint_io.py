"""Reading checkpoints for the prune and sweep tools: one loader, safe, bounded, memory-mapped.

* :func:`open_input` opens the input once (a FIFO or device is refused without blocking); every
  later read goes through that descriptor (``/proc/self/fd/N`` where it exists), so the file
  checked, loaded and hashed is one file even if the path changes meanwhile, and a path that is
  not UTF-8 (which torch's mmap cannot open) works.
* :func:`load_checkpoint` checks the archive before torch reads it
  (:mod:`~fairseq_layerdrop.archive_checks`: zip directory, compression bounds, pickle size,
  every storage record's size), loads with ``torch.load(weights_only=True, mmap=True)`` and only
  the allow-listed data classes of :mod:`~fairseq_layerdrop.safe_load` (a pickle asking for any
  other global is refused, nothing from it runs), then checks the whole structure
  (:mod:`~fairseq_layerdrop.checkpoint_checks`). ``mmap`` leaves the tensors in the file.
* :func:`hash_and_verify` streams the file once: its sha256 and the CRC-32 of every stored zip
  member, so a corrupt file is refused before anything is written.

Every failure the user can cause raises :class:`CheckpointError` with a one-line message.
Writing is :mod:`fairseq_layerdrop.output_file`.
"""
import hashlib
import os
import pickle
import pickletools
import re
import stat
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import torch

from fairseq_layerdrop import archive_checks, checkpoint_checks
from fairseq_layerdrop.errors import CheckpointError, show
from fairseq_layerdrop.safe_load import register_safe_globals

_CHUNK = 1 << 22  # 4 MiB reads
PATH_MAX = 4096  # Linux; os.pathconf gives the file system's value where it can
NAME_MAX = 255
TRUST_HINT = "pass --trust-checkpoint only if you trust where the file comes from"


def path_limits(directory) -> tuple:
    """``(longest path, longest file name)`` in bytes for files in ``directory``."""
    limits = []
    for name, default in (("PC_PATH_MAX", PATH_MAX), ("PC_NAME_MAX", NAME_MAX)):
        try:
            limits.append(os.pathconf(directory, name))
        except (OSError, ValueError):
            limits.append(default)
    return tuple(limits)


def check_path_text(path, role: str) -> bytes:
    """The path's bytes; refuses a NUL, a trailing ``/`` and lengths over the system's limits."""
    raw = os.fsencode(path)
    where = show(path)
    if not raw or b"\0" in raw:
        raise CheckpointError(f"{where}: not a usable {role} path")
    if raw.endswith(b"/"):
        raise CheckpointError(f"{where}: names a directory (trailing '/'); give the {role} file's name")
    directory = os.path.dirname(raw) or b"."
    path_max, name_max = path_limits(directory if os.path.isdir(directory) else b".")
    if len(raw) >= path_max:
        raise CheckpointError(f"{where}: path too long ({len(raw)} bytes; the limit is {path_max - 1})")
    long_names = [part for part in raw.split(b"/") if len(part) > name_max]
    if long_names:
        raise CheckpointError(f"{where}: file name too long ({len(long_names[0])} bytes; the limit is "
                              f"{name_max})")
    return raw


class InputFile:
    """An input checkpoint opened once: ``path`` as given, ``fd``, its ``stat``, and the path
    that reaches exactly this file for libraries that need a name (``/proc/self/fd/N``)."""

    def __init__(self, path):
        self.path, self.where = Path(os.fsdecode(path)), show(path)
        check_path_text(path, "input")
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise CheckpointError(f"{self.where}: no such file") from None
        except PermissionError:
            raise CheckpointError(f"{self.where}: not readable") from None
        except OSError as err:
            raise CheckpointError(f"{self.where}: cannot open: {show(err.strerror or err)}") from None
        self.stat = os.fstat(self.fd)
        if stat.S_ISDIR(self.stat.st_mode) or not stat.S_ISREG(self.stat.st_mode):
            self.close()
            kind = "is a directory" if stat.S_ISDIR(self.stat.st_mode) else "not a regular file"
            raise CheckpointError(f"{self.where}: {kind}")
        if self.stat.st_size == 0:
            self.close()
            raise CheckpointError(f"{self.where}: empty file")
        proc = f"/proc/self/fd/{self.fd}"
        self.name = proc if os.path.exists(proc) else os.fsdecode(path)
        if self.name != proc:  # no /proc: torch opens the path itself, and needs it in UTF-8
            try:
                self.name.encode("utf-8")
            except UnicodeEncodeError:
                self.close()
                raise CheckpointError(f"{self.where}: torch cannot open a path that is not UTF-8 on this "
                                      f"system (no /proc/self/fd); rename or link the file") from None
        self.archive = None

    def open(self):
        """A new binary reader of this file (its own position)."""
        return open(self.name, "rb")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_input(path) -> InputFile:
    return InputFile(path)


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


def _checked_archive(src: InputFile):
    if src.archive is None:
        with src.open() as f:
            src.archive = archive_checks.check_archive(f, src.stat.st_size, src.where)
    return src.archive


def hash_and_verify(path_or_input, progress: Optional[Callable[[int], None]] = None) -> str:
    """sha256 of the file, checking every stored member's CRC-32 on the way (one sequential read).

    The CRC of a chunk runs on a second thread while the main thread hashes it (both release
    the GIL), so the check costs little more than the sha256 alone on two cores.
    """
    src = path_or_input if isinstance(path_or_input, InputFile) else InputFile(path_or_input)
    try:
        archive = _checked_archive(src)
        spans = sorted((m.start, m.start + m.size, m.crc, m.name) for m in archive.members.values() if m.stored)
        sha, crcs, pos, first = hashlib.sha256(), [0] * len(spans), 0, 0
        with src.open() as f, ThreadPoolExecutor(max_workers=1) as pool:
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
    finally:
        if src is not path_or_input:
            src.close()
    if pos != src.stat.st_size:
        raise CheckpointError(f"{src.where}: the file changed size while being read")
    for (start, stop, crc, name), got in zip(spans, crcs):
        if got != crc:
            raise CheckpointError(f"{src.where}: corrupt checkpoint (checksum mismatch in {show(name)})")
    return sha.hexdigest()


def _refusal(err: Exception, archive) -> str:
    """A one-line reason for a failed ``torch.load``: what was refused, and whether trusting helps."""
    text = str(err)
    inner = text.split("WeightsUnpickler error:", 1)[-1]
    name = re.search(r"GLOBAL (\S+?)(?: was not|\s+whose|\s|$)", inner)
    if name:
        return (f"refused to load: it needs the class or function {show(name.group(1))}, which is not on "
                f"the allow-list of data-only classes; {TRUST_HINT}")
    operand = re.search(r"Unsupported operand (\d+)", inner)
    if operand:
        op = pickletools.code2op.get(chr(int(operand.group(1))))
        proto = f"pickle protocol {archive.protocol}" if archive.protocol is not None else "its pickle"
        return (f"refused by torch's safe loader, not corrupt: saved with {proto}, whose opcode "
                f"{op.name if op else operand.group(1)} the safe loader does not read; re-save it with "
                f"torch.save's default protocol, or {TRUST_HINT}")
    lines = [ln.strip() for ln in inner.splitlines() if ln.strip() and "pytorch.org" not in ln]
    first = lines[0] if lines else type(err).__name__
    if isinstance(err, pickle.UnpicklingError):
        return f"refused by torch's safe loader: {show(first)}; {TRUST_HINT}"
    return f"not a readable torch checkpoint: {show(type(err).__name__)}: {show(first)}"


def _torch_load(src: InputFile, trust: bool):
    mmap = src.archive.kind == "zip"  # mmap needs torch's zip format; legacy files are read into memory
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about protocols and TorchScript on stderr
        if trust:
            return torch.load(src.name, map_location="cpu", weights_only=False, mmap=mmap)
        # the process-wide allow-list, not torch's safe_globals context: leaving that context
        # removes the classes from the allow-list even though the package had registered them
        register_safe_globals()
        return torch.load(src.name, map_location="cpu", weights_only=True, mmap=mmap)


def load_checkpoint(path_or_input, trust: bool = False) -> dict:
    """The checkpoint as a dict, tensors memory-mapped; refuses anything but a fairseq checkpoint.

    ``path_or_input``: a path or an :class:`InputFile` (kept open by the caller, e.g. to hash the
    very same file afterwards).
    """
    src = path_or_input if isinstance(path_or_input, InputFile) else InputFile(path_or_input)
    try:
        archive = _checked_archive(src)
        try:
            state = _torch_load(src, trust)
        except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ValueError ...
            raise CheckpointError(f"{src.where}: {_refusal(err, archive)}") from None
        try:
            checkpoint_checks.check_checkpoint(state, src.where)
        except CheckpointError:
            raise
        except Exception as err:
            if not trust:  # safe loading gives plain data only: an exception here is our bug
                raise
            # trusted pickles can hold any object, whose methods may raise anything
            raise CheckpointError(f"{src.where}: unexpected content ({show(type(err).__name__)}: "
                                  f"{show(str(err))})") from None
        return state
    finally:
        if src is not path_or_input:
            src.close()
