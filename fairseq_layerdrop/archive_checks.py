"""Checks of a checkpoint file before torch reads it: bounded work, nothing from the file runs.

torch's zip format (``torch.save`` since 1.6) holds ``<archive>/data.pkl`` (the pickled object)
and one stored record ``<archive>/data/<key>`` per storage. Before ``torch.load``:

* the zip directory: unique names, compression torch can read, every member's bytes inside the
  archive and its local header naming the same file, no two members sharing bytes (overlapping
  members are the classic zip bomb). Compressed members (torch never writes them) may inflate to
  at most :data:`MAX_PICKLE_BYTES` and :data:`MAX_RATIO` times their size: both are read from the
  directory, before anything is decompressed. Storages must be stored, not compressed;
* ``data.pkl`` is at most :data:`MAX_PICKLE_BYTES`, and its opcodes are walked first
  (:mod:`fairseq_layerdrop.pickle_scan`: memo indices in order, a bounded number of opcodes), so
  the unpickled objects take a small multiple of that;
* the archive starts at the file's first byte: Python's zipfile corrects member offsets for data
  in front of an archive, torch's reader does not, so with such data the two would read
  different members (every check here would be of bytes torch never reads);
* a dry unpickling of ``data.pkl``, where every global is an inert stub (nothing is imported or
  called), lists the storages the pickle asks for: each needs a record of exactly
  ``numel * element size`` bytes. With ``mmap=True`` torch slices the file at the record by the
  size the pickle declares without comparing the two, so a larger declaration would put the next
  zip header inside a weight, and plain ``torch.load`` refuses what mmap accepted.

torch's legacy format (before 1.6) is a sequence of pickles followed by the raw storages; the
same dry pass checks its magic number and that the storages it declares fit in the file.
"""
import io
import pickle
import struct
import zipfile
from collections import namedtuple
from typing import Dict

import torch

from fairseq_layerdrop import pickle_scan
from fairseq_layerdrop.errors import CheckpointError, show

MAX_PICKLE_BYTES = 16 << 20  # pickled object tree; real fairseq checkpoints use well under 1 MiB
MAX_RATIO = 100  # inflated / compressed size of a compressed member
_MAX_NUMEL = 1 << 60  # elements of one storage: more than any file here can hold
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of torch's legacy format

Member = namedtuple("Member", "name start size crc stored")
Archive = namedtuple("Archive", "kind members prefix protocol")  # kind: "zip" or "legacy"


class _Stub:
    """Stands in for every global of a dry unpickling: accepts any call, state or item."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Stub()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass


class _StorageKind(_Stub):
    """A storage class named in the pickle (``torch.FloatStorage`` ...): its element size, or
    ``None`` for a name torch does not know."""

    def __init__(self, name: str, itemsize):
        self.name, self.itemsize = name, itemsize


def _storage_kind(module: str, name: str) -> _StorageKind:
    try:
        dtype = torch.serialization.StorageType(name).dtype
    except Exception:  # not a storage name torch knows
        return _StorageKind(f"{module}.{name}", None)
    return _StorageKind(f"{module}.{name}", torch.empty((), dtype=dtype).element_size())


class _DryUnpickler(pickle.Unpickler):
    """Unpickles the structure only: globals become stubs, persistent ids are recorded."""

    def __init__(self, file):
        super().__init__(file, encoding="utf-8")
        self.ids = []

    def find_class(self, module, name):
        if isinstance(name, str) and name.endswith("Storage"):
            return _storage_kind(module, name)
        return _Stub  # one class for every other global: nothing is imported or looked up

    def persistent_load(self, pid):
        self.ids.append(pid)
        return _Stub()


class _Bounded:
    """A file to unpickle from that refuses to hand out more than ``limit`` bytes in total.

    Only ``read`` and ``readline`` (no ``peek``): the unpickler then reads exactly what it uses,
    so the file position after a pickle is where the next one starts.
    """

    def __init__(self, f, limit: int):
        self.f, self.left = f, limit

    def _take(self, data: bytes) -> bytes:
        if len(data) > self.left:
            raise CheckpointError(f"refused: its pickles take more than {MAX_PICKLE_BYTES:,} bytes")
        self.left -= len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        return self._take(self.f.read(self.left + 1 if n < 0 or n > self.left else n))

    def readline(self, n: int = -1) -> bytes:
        return self._take(self.f.readline(self.left + 1))


def _dry_load(f, where: str, raw=None):
    """``(object with stubs, persistent ids)`` of the next pickle in ``f``, its opcodes walked first
    (in ``raw``, the seekable file under ``f``, when ``f`` cannot seek)."""
    source = f if raw is None else raw
    start = source.tell()
    pickle_scan.scan(_Bounded(source, MAX_PICKLE_BYTES), where)
    source.seek(start)
    unpickler = _DryUnpickler(f)
    try:
        value = unpickler.load()
    except CheckpointError as err:
        raise CheckpointError(f"{where}: {err}") from None
    except Exception as err:  # pickle raises many types on malformed input
        raise CheckpointError(f"{where}: not a readable torch checkpoint (malformed pickle: "
                              f"{show(type(err).__name__)}: {show(str(err))})") from None
    return value, unpickler.ids


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _kind_of_size(value) -> str:
    """What a bad storage size is, never its repr (a 5000-digit int or a deep list cannot be shown)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return f"a {show(type(value).__name__)}"
    return "a negative number" if value < 0 else "an impossible number"


def _storage_sizes(ids, where: str, fields: int) -> Dict[str, int]:
    """``{key: bytes}`` of the storages in persistent ids of ``fields`` items (5 zip, 6 legacy)."""
    sizes: Dict[str, int] = {}
    for pid in ids:
        if not (isinstance(pid, tuple) and len(pid) == fields and pid[0] in ("storage", b"storage")):
            raise CheckpointError(f"{where}: not a readable torch checkpoint (it refers to an external "
                                  f"object that is not a storage)")
        kind, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(key, str):
            raise CheckpointError(f"{where}: malformed storage reference (its key is not a string)")
        if not isinstance(kind, _StorageKind) or kind.itemsize is None:
            name = kind.name if isinstance(kind, _StorageKind) else "not a storage class"
            raise CheckpointError(f"{where}: storage {show(key)} has an unknown type ({show(name)})")
        if not _is_count(numel) or numel > _MAX_NUMEL:
            raise CheckpointError(f"{where}: storage {show(key)} has a size that is not a count "
                                  f"({_kind_of_size(numel)})")
        nbytes = numel * kind.itemsize
        if sizes.setdefault(key, nbytes) != nbytes:
            raise CheckpointError(f"{where}: storage {show(key)} is declared with two sizes")
        view = pid[5] if fields == 6 else None
        if view is not None and not (isinstance(view, tuple) and len(view) == 3 and _is_count(view[1])
                                     and _is_count(view[2]) and view[1] + view[2] <= numel):
            raise CheckpointError(f"{where}: malformed storage view of {show(key)}")
    return sizes


def _directory(zf: zipfile.ZipFile, f, where: str) -> Dict[str, Member]:
    """The members, each checked against its local header, the bounds and the other members."""
    infos = zf.infolist()
    lowered = [i.filename.lower() for i in infos]  # torch's zip reader may match names case-blind
    if len(set(lowered)) != len(lowered):
        dup = next(i.filename for i in infos if lowered.count(i.filename.lower()) > 1)
        raise CheckpointError(f"{where}: corrupt zip archive (two members named {show(dup)})")
    members, spans, end_of_data = {}, [], getattr(zf, "start_dir", None)
    for info in infos:
        name = show(info.filename)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 1:
            raise CheckpointError(f"{where}: zip member {name} is encrypted or uses compression method "
                                  f"{info.compress_type}, which torch cannot read")
        f.seek(info.header_offset)
        raw = f.read(_LOCAL_HEADER.size)
        header = _LOCAL_HEADER.unpack(raw) if len(raw) == _LOCAL_HEADER.size else None
        encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
        if header is None or header[0] != b"PK\x03\x04" or \
                f.read(header[9]) != info.orig_filename.encode(encoding, "replace"):
            raise CheckpointError(f"{where}: corrupt zip archive (bad local header of {name})")
        start = info.header_offset + _LOCAL_HEADER.size + header[9] + header[10]
        if end_of_data is not None and start + info.compress_size > end_of_data:
            raise CheckpointError(f"{where}: corrupt or truncated zip archive (member {name} extends "
                                  f"past the archive's data)")
        stored = info.compress_type == zipfile.ZIP_STORED
        if stored and info.file_size != info.compress_size:
            raise CheckpointError(f"{where}: corrupt zip archive (stored member {name} has two sizes)")
        if not stored and (info.file_size > MAX_PICKLE_BYTES
                           or info.file_size > MAX_RATIO * max(info.compress_size, 1)):
            raise CheckpointError(
                f"{where}: refused: compressed zip member {name} would inflate to {info.file_size:,} "
                f"bytes from {info.compress_size:,} (limits: {MAX_PICKLE_BYTES:,} bytes, {MAX_RATIO}x)")
        spans.append((info.header_offset, start + info.compress_size, name))
        members[info.filename] = Member(info.filename, start, info.file_size, info.CRC, stored)
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise CheckpointError(f"{where}: corrupt zip archive (members {first} and {second} overlap)")
    return members


def _data_before(zf: zipfile.ZipFile, f) -> int:
    """Bytes in front of the archive (zipfile adds them to every member's offset; torch does not):
    where zipfile found the central directory less where the end record says it is."""
    try:
        end = zipfile._EndRecData(f)  # the end record zipfile itself used (zip64 included)
        return zf.start_dir - end[zipfile._ECD_OFFSET] if end else 0
    except AttributeError:  # a Python without these private names: torch writes its first member at 0
        return min((i.header_offset for i in zf.infolist()), default=0)


def _check_zip(f, where: str) -> Archive:
    try:
        with zipfile.ZipFile(f) as zf:
            if _data_before(zf, f):
                raise CheckpointError(f"{where}: not a torch checkpoint (data in front of its zip archive, "
                                      f"which torch and Python's zipfile would read differently)")
            members = _directory(zf, f, where)
            first = zf.infolist()[0].filename if members else ""
            prefix = first.split("/", 1)[0]
            if "/" not in first:
                raise CheckpointError(f"{where}: not a torch checkpoint (a zip archive without torch's "
                                      f"archive folder)")
            if f"{prefix}/constants.pkl" in members:
                raise CheckpointError(f"{where}: a TorchScript archive (torch.jit.save), not a checkpoint")
            info = members.get(f"{prefix}/data.pkl")
            if info is None:
                raise CheckpointError(f"{where}: not a torch checkpoint (its zip archive has no data.pkl)")
            if info.size > MAX_PICKLE_BYTES:
                raise CheckpointError(f"{where}: refused: its pickled object takes {info.size:,} bytes "
                                      f"(limit {MAX_PICKLE_BYTES:,})")
            data = zf.read(info.name)
    except CheckpointError:
        raise
    except Exception as err:  # zipfile raises BadZipFile, ValueError, struct.error, EOFError ...
        raise CheckpointError(f"{where}: corrupt or truncated checkpoint ({show(err)})") from None
    sizes = _storage_sizes(_dry_load(io.BytesIO(data), where)[1], where, 5)
    for key, nbytes in sizes.items():
        record = members.get(f"{prefix}/data/{key}")
        if record is None:
            raise CheckpointError(f"{where}: storage {show(key)} has no record data/{show(key)}")
        if not record.stored:
            raise CheckpointError(f"{where}: refused: the record of storage {show(key)} is compressed "
                                  f"(torch stores storages as they are, to map them)")
        if record.size != nbytes:
            raise CheckpointError(f"{where}: corrupt checkpoint (storage {show(key)}: the pickle declares "
                                  f"{nbytes:,} bytes, its record holds {record.size:,})")
    protocol = data[1] if data[:1] == b"\x80" and len(data) > 1 else None
    return Archive("zip", members, prefix, protocol)


def _check_legacy(f, size: int, where: str) -> Archive:
    head = f.read(2)
    protocol = head[1] if head[:1] == b"\x80" and len(head) > 1 else None
    f.seek(0)
    bounded = _Bounded(f, MAX_PICKLE_BYTES)
    try:
        magic = _dry_load(bounded, where, f)[0]
    except CheckpointError:
        magic = None
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise CheckpointError(f"{where}: not a readable torch checkpoint (neither torch's zip format "
                              f"nor its legacy format)")
    for _ in range(2):  # protocol version, system info
        _dry_load(bounded, where, f)
    sizes = _storage_sizes(_dry_load(bounded, where, f)[1], where, 6)
    _dry_load(bounded, where, f)  # the storage keys
    if sum(8 + n for n in sizes.values()) > size - f.tell():
        raise CheckpointError(f"{where}: corrupt or truncated checkpoint (its storages need more bytes "
                              f"than the file has)")
    return Archive("legacy", {}, None, protocol)


def check_archive(f, size: int, where: str) -> Archive:
    """Check the open file ``f`` (``size`` bytes) as a torch checkpoint; ``where`` names it in errors.

    Like ``torch.load``, a file is read as a zip archive when it starts with a zip header.
    """
    f.seek(0)
    is_zip = f.read(4) == b"PK\x03\x04"
    f.seek(0)
    return _check_zip(f, where) if is_zip else _check_legacy(f, size, where)
