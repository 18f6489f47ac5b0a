"""Builders of hostile and malformed checkpoint files for ``tests/test_prune_hostile.py``.

Everything is built in-process from :func:`tests.test_pruning.make_state` and small byte-level
edits: a zip writer that can lie (declared sizes, compression, overlapping or duplicate members),
pickle opcodes injected in place of a placeholder string, and payloads that would create a marker
file if any code from the file ever ran.
"""
import os
import struct
import zipfile
import zlib

import torch

from tests.test_pruning import make_state

PLACEHOLDER = "HOSTILE_PLACEHOLDER"


class Payload:
    """Unpickling this runs ``os.system`` (the attack a malicious checkpoint would carry)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvalPayload(Payload):
    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


def state(enc=4, dec=4, legacy=True, **top):
    """A small valid checkpoint dict (4+4 layers) with top-level entries replaced by ``top``."""
    s = make_state(enc=enc, dec=dec, legacy=legacy)
    s.update(top)
    return s


def with_model(edit, **kw):
    s = state(**kw)
    edit(s["model"])
    return s


def laughs(depth=40):
    """A list whose tree has 2**depth leaves but only ``depth`` distinct containers."""
    node = ["lol"]
    for _ in range(depth):
        node = [node, node]
    return node


def nested(depth):
    node = {}
    for _ in range(depth):
        node = {"x": node}
    return node


def self_referencing(kind=dict):
    obj = kind()
    if kind is dict:
        obj["self"] = obj
    else:
        obj.append(obj)
    return obj


# -- zip archives ------------------------------------------------------------------------------
def members(path):
    """``[(name, bytes)]`` of a torch zip archive, in order."""
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def zip_bytes(entries) -> bytes:
    """A zip archive from ``entries``: dicts with ``name``, ``data`` and optionally ``method``
    (0 stored, 8 deflated; ``data`` is then already compressed), ``size`` and ``compressed_size``
    (declared sizes), ``crc``, ``at`` (index of an earlier entry whose local header this one reuses) or
    ``inside`` (index of an earlier entry whose data holds this one's local header and data)."""
    body, central, offsets = bytearray(), bytearray(), []
    for e in entries:
        name = e["name"].encode() if isinstance(e["name"], str) else e["name"]
        data, method = e["data"], e.get("method", 0)
        size, csize = e.get("size", len(data)), e.get("compressed_size", len(data))
        crc = e.get("crc", zlib.crc32(data) if method == 0 else 0)
        if "at" in e:
            offset = offsets[e["at"]]
        elif "inside" in e:  # the local header sits at the start of that entry's data
            offset = offsets[e["inside"]] + 30 + len(entries[e["inside"]]["name"])
        else:
            offset = len(body)
            body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, csize,
                                min(size, 0xFFFFFFFF), len(name), 0) + name + data
        offsets.append(offset)
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc, csize,
                               min(size, 0xFFFFFFFF), len(name), 0, 0, 0, 0, 0, offset) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(body), 0)
    return bytes(body + central + end)


def overlapping(entries):
    """``entries`` plus a member whose local header and data lie inside the last member's data
    (the construction of non-recursive zip bombs: many names, one copy of the bytes)."""
    inner_name, inner = b"archive/inner", b"shared bytes"
    header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(inner), len(inner),
                         len(inner), len(inner_name), 0) + inner_name
    outer = {"name": "archive/outer", "data": header + inner}
    return entries + [outer, {"name": inner_name, "data": inner, "inside": len(entries)}]


def rewrite(path, edit):
    """Rewrite the torch archive at ``path``: ``edit`` gets and returns the list of entries."""
    entries = [{"name": n, "data": d} for n, d in members(path)]
    path.write_bytes(zip_bytes(edit(entries)))


def entry(entries, suffix):
    return next(e for e in entries if e["name"].endswith(suffix))


def deflated(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def zero_bomb(gib: int = 1) -> bytes:
    """A raw deflate stream (~1 MB per GiB) that inflates to ``gib`` GiB of zeros."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(1 << 24)
    first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)  # every later 16 MiB block is the same
    return first + again * (64 * gib - 1) + c.flush()


# -- pickles -------------------------------------------------------------------------------------
def _unicode(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def inject(path, opcodes: bytes, top=None):
    """Save a valid checkpoint whose ``extra_state['x']`` is the object that ``opcodes`` build."""
    s = state(**(top or {}))
    s["extra_state"]["x"] = PLACEHOLDER
    torch.save(s, path)

    def edit(entries):
        pkl = entry(entries, "data.pkl")
        assert pkl["data"].count(_unicode(PLACEHOLDER)) == 1
        pkl["data"] = pkl["data"].replace(_unicode(PLACEHOLDER), opcodes)
        return entries
    rewrite(path, edit)


def call(module: str, name: str, *args: str) -> bytes:
    """Opcodes that call ``module.name(*args)`` (string arguments)."""
    return f"c{module}\n{name}\n".encode() + b"(" + b"".join(_unicode(a) for a in args) + b"tR"


def storage_ref(kind: str, key: str, numel: int) -> bytes:
    """Opcodes of a persistent id ``('storage', torch.<kind>, key, 'cpu', numel)``."""
    return (b"(" + _unicode("storage") + f"ctorch\n{kind}\n".encode() + _unicode(key) + _unicode("cpu")
            + b"J" + struct.pack("<i", numel) + b"tQ")


def storage_ref_numel(kind: str, key: str, numel_opcodes: bytes) -> bytes:
    """As :func:`storage_ref`, with the opcodes that push the size given (any object)."""
    return (b"(" + _unicode("storage") + f"ctorch\n{kind}\n".encode() + _unicode(key) + _unicode("cpu")
            + numel_opcodes + b"tQ")


def long4(value: int) -> bytes:
    """Opcodes of ``value`` as LONG4 (any size)."""
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8b" + struct.pack("<i", len(raw)) + raw


def memo_bomb(index: int = 1 << 27) -> bytes:
    """Opcodes of ``None`` stored at memo ``index`` (LONG_BINPUT): an unpickler grows its memo to it."""
    return b"Nr" + struct.pack("<I", index)


def set_flood(n: int) -> bytes:
    """Opcodes of one tuple of ``n`` empty sets (one byte each: EMPTY_SET)."""
    return b"(" + b"\x8f" * n + b"t"


def polyglot(first: bytes, second: bytes) -> bytes:
    """Two torch archives end to end: Python's zipfile reads the second (its offsets corrected for
    the first); a reader that does not correct them would read members of the first."""
    return first + second


def deep_list(depth: int) -> bytes:
    """Opcodes of ``depth`` lists nested in each other (built without recursion)."""
    return b"]" * depth + b"a" * (depth - 1)


# -- edits of a torch archive's entries (for :func:`rewrite`) and of a model state dict -----------
def resize_record(size_change):
    def edit(entries):
        e = entry(entries, "data/1")
        e["data"] = e["data"][:size_change] if size_change < 0 else e["data"] + bytes(size_change)
        return entries
    return edit


def compress_member(suffix):
    def edit(entries):
        e = entry(entries, suffix)
        e.update(size=len(e["data"]), crc=zlib.crc32(e["data"]), method=8, data=deflated(e["data"]))
        return entries
    return edit


def bomb_member(name="data.pkl", gib=1):
    def edit(entries):
        e = entry(entries, name)
        e.update(method=8, data=zero_bomb(gib), size=gib << 30)
        return entries
    return edit


def ratio_bomb(entries):  # under the size limit, far over the ratio
    e = entry(entries, "data.pkl")
    e.update(method=8, data=deflated(bytes(8 << 20)), size=8 << 20)
    return entries


def named_bomb(entries):
    e = entry(entries, "data.pkl")
    e.update(method=8, data=zero_bomb(1), size=1 << 30, name=e["name"] + "\nfairseq-layerdrop-prune: all good")
    return entries


def huge_declared(entries):
    entry(entries, "data/0").update(size=1 << 40)
    return entries


def shared_header(entries):
    return entries + [{"name": "archive/extra", "data": b"", "at": 0}]


def past_the_end(entries):
    e = entry(entries, "data/0")
    e.update(size=0xFFFFFFF0, compressed_size=0xFFFFFFF0)
    return entries


def duplicate(entries):
    return entries + [dict(entry(entries, "data/0"))]


def oversized_pickle(entries):
    entry(entries, "data.pkl")["data"] += bytes(16 << 20)  # trailing bytes after STOP
    return entries


def rename_layer(old, new):
    def edit(model):
        for key in [k for k in model if f".layers.{old}." in k]:
            model[key.replace(f".layers.{old}.", f".layers.{new}.")] = model.pop(key)
    return edit
