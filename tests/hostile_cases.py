"""The catalogue of hostile and malformed inputs of ``tests/test_prune_hostile.py``.

:data:`CASES` maps a name to ``(build, expected text[, exit status])``: ``build(ctx)`` creates the
input in ``ctx.tmp`` and returns the command line. Grouped by the classes of issue 14: types and
shapes, resource exhaustion, storages, layers, payloads and messages, paths and parsing, and
(:data:`WRITE_CASES`) failures while writing and races, each with both kinds of temporary file.
"""
import argparse
import errno
import io
import os
import signal
import warnings
from pathlib import Path

import torch

from fairseq_layerdrop import output_file
from tests import hostile as h

PROG = "fairseq-layerdrop-prune"
MARKER = "pwned"  # what every payload would create


class Ctx:
    """One case's directory: ``inp`` (in.pt), ``out`` (out.pt), the payloads' ``marker``."""

    def __init__(self, tmp: Path, monkeypatch):
        self.tmp, self.mp = tmp, monkeypatch
        self.inp, self.out, self.marker = tmp / "in.pt", tmp / "out.pt", tmp / MARKER
        self.appears = {}  # files another process creates during the run: name -> content

    def save(self, obj, **kw):
        torch.save(obj, self.inp, **kw)
        return self

    def write(self, data: bytes):
        self.inp.write_bytes(data)
        return self.args()

    def args(self, *opts, inp=None, out=None):
        return [inp or self.inp, out or self.out, *(opts or ("--decoder-depth", "2"))]


class _HookedFile:
    """The output file, but its ``after``-th write first calls ``action(ctx)``."""

    def __init__(self, f, ctx, action, after):
        self.f, self.ctx, self.action, self.left = f, ctx, action, after

    def write(self, data):
        self.left -= 1
        if self.left == 0:
            self.action(self.ctx)
        return self.f.write(data)

    def flush(self):
        self.f.flush()


def _on_write(ctx, action, after=3, named=False):
    """Make the output's ``after``-th write call ``action(ctx)``; ``named``: no O_TMPFILE."""
    init = output_file._ReleasingFile.__init__
    ctx.mp.setattr(output_file._ReleasingFile, "__init__",
                   lambda self, f, pages: init(self, _HookedFile(f, ctx, action, after), pages))
    ctx.mp.setattr(output_file, "USE_TMPFILE", not named)


def _disk_full(ctx):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _kill(signum):
    return lambda ctx: os.kill(os.getpid(), signum)


def _keyboard(ctx):
    raise KeyboardInterrupt


def _create_output(ctx):
    ctx.out.write_bytes(b"written by another process")


def _output_appears(ctx):
    ctx.appears[ctx.out.name] = b"written by another process"


def _torchscript(ctx):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.save is deprecated
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(ctx.inp))
    return ctx.args()


def _fifo(ctx):
    fifo = ctx.tmp / "fifo.pt"
    os.mkfifo(fifo)
    return ctx.args(inp=fifo)


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _special_output(ctx):
    os.mkfifo(ctx.out)
    return ctx.args("--decoder-depth", "2", "--force")


def make_dir(ctx, name):
    (ctx.tmp / name).mkdir()
    return ctx.tmp / name


def _legacy_truncated(ctx):
    torch.save(h.state(), ctx.inp, _use_new_zipfile_serialization=False)
    ctx.inp.write_bytes(ctx.inp.read_bytes()[:-40])
    return ctx.args()


def _import_payload(ctx):
    (ctx.tmp / "evil_module_x1.py").write_text(f"open({str(ctx.marker)!r}, 'w').close()\ndef f(): pass\n")
    ctx.mp.syspath_prepend(str(ctx.tmp))
    h.inject(ctx.inp, h.call("evil_module_x1", "f"))
    return ctx.args()


def rewritten(ctx, edit, s=None):
    ctx.save(s or h.state())
    h.rewrite(ctx.inp, edit)
    return ctx.args()


def long_name(n):
    return "x" * (n - 3) + ".pt"


def _deep_path(ctx, total, name):
    part, parts = "d" * 200, []
    while len("/".join(parts)) < total:
        parts.append(part)
    return ctx.tmp / "/".join(parts) / name


S = h.state
M = h.with_model
CASES = {
    # 1. types and shapes of everything besides the weights
    "cfg is a string": (lambda c: c.save(S(args=None, cfg="transformer")).args(), "'cfg' is a str"),
    "cfg is a number": (lambda c: c.save(S(args=None, cfg=3)).args(), "'cfg' is a int"),
    "cfg is a list": (lambda c: c.save(S(args=None, cfg=[1, 2])).args(), "'cfg' is a list"),
    "cfg contains itself": (lambda c: c.save(S(args=None, cfg=h.self_referencing())).args(), "(a cycle)"),
    "args is a string": (lambda c: c.save(S(args="x")).args(), "'args' is a str"),
    "args is a list": (lambda c: c.save(S(args=[1])).args(), "'args' is a list"),
    "args contains itself": (lambda c: c.save(S(args=h.self_referencing(list))).args(), "(a cycle)"),
    "optimizer_history is a string": (lambda c: c.save(S(optimizer_history="x")).args(), "'optimizer_history'"),
    "optimizer_history of numbers": (lambda c: c.save(S(optimizer_history=[1, 2])).args(), "non-mappings"),
    "extra_state is a list": (lambda c: c.save(S(extra_state=[1])).args(), "'extra_state' is a list"),
    "extra_state is a number": (lambda c: c.save(S(extra_state=7)).args(), "'extra_state' is a int"),
    "pruning record is a string": (lambda c: c.save(S(layerdrop_pruning="x")).args(), "'layerdrop_pruning'"),
    "arch is a number": (lambda c: c.save(S(cfg=None, args=argparse.Namespace(arch=3))).args(),
                         "architecture name"),
    "arch is a list": (lambda c: c.save(S(args=None, cfg={"model": {"_name": ["x"]}})).args(), "architecture name"),
    "model config is a string": (lambda c: c.save(S(args=None, cfg={"model": "transformer"})).args(),
                                 "model config is a str"),
    "config holds a set": (lambda c: c.save(S(args=None, cfg={"model": {"a\nb": {1}}})).args(),
                           "a\\nb holds a builtins.set"),
    "checkpoint is a list": (lambda c: c.save([1, 2]).args(), "no 'model' state dict"),
    "model is a list": (lambda c: c.save(S(model=[torch.zeros(1)])).args(), "is not a state dict"),
    "model key is a number": (lambda c: c.save(M(lambda m: m.update({3: torch.zeros(1)}))).args(),
                              "has a key that is not a parameter name: 3"),
    "model holds a string": (lambda c: c.save(M(lambda m: m.update({"w": "x"}))).args(), "non-tensors"),
    "sparse weight": (lambda c: c.save(M(lambda m: m.update({"decoder.layers.0.fc1.weight":
                                                             torch.eye(2).to_sparse()}))).args(), "sparse"),
    "view larger than storage": (lambda c: c.save(M(lambda m: m.update({"w": torch.zeros(1).expand(10 ** 6)})))
                                 .args(), "larger than its storage"),
    "ema is a string": (lambda c: c.save(S(extra_state={"ema": "x"})).args(), "is not a state dict"),
    "ema has other layers": (lambda c: c.save(S(extra_state={"ema": h.make_state(2, 2)["model"]})).args(),
                             "other layers than the model"),
    "learned logits 2-d": (lambda c: c.save(M(lambda m: m.update({"encoder.layers.layerdrop_logits":
                                                                  torch.zeros(2, 2)}))).args(), "finite numbers"),
    "learned logits short (learned)": (lambda c: c.save(M(lambda m: m.update({"encoder.layers.layerdrop_logits":
                                                                              torch.zeros(2)}))).args(
        "--encoder-depth", "3", "--strategy", "learned"), "must be 4 finite numbers"),
    "learned logits short (every-other)": (lambda c: c.save(M(lambda m: m.update({
        "encoder.layers.layerdrop_logits": torch.zeros(3)}))).args("--keep-plugin-arch", "--encoder-depth", "2"),
        "must be 4 finite numbers"),
    "learned logits not finite": (lambda c: c.save(M(lambda m: m.update({"encoder.layers.layerdrop_logits":
                                                                         torch.tensor([0, 1, 2, float("nan")])})))
                                  .args(), "finite numbers"),
    "learned rate not a number": (lambda c: c.save(S(args=argparse.Namespace(
        **dict(vars(h.state()["args"]), encoder_layerdrop="abc")))).args("--encoder-depth", "2", "--strategy", "learned"),
        "not a drop rate"),
    "config nested 200 deep": (lambda c: c.save(S(args=None, cfg={"model": {}, "deep": h.nested(200)})).args(),
                               "nested more than 100"),
    "pickle nested 100000 deep": (lambda c: h.inject(c.inp, h.deep_list(100000)) or c.args(), "nested more than 100"),
    # 2. resource exhaustion from tiny files
    "billion laughs in cfg": (lambda c: c.save(S(args=None, cfg={"model": {}, "x": h.laughs()})).args(),
                              "more than 200,000 objects"),
    "billion laughs in args": (lambda c: c.save(S(args=argparse.Namespace(arch="t", x=h.laughs())))
                               .args(), "more than 200,000 objects"),
    "billion laughs in extra_state": (lambda c: c.save(S(extra_state={"x": h.laughs()})).args(),
                                      "more than 1,000,000 objects"),
    "memo index 2**27 (memo bomb)": (lambda c: h.inject(c.inp, h.memo_bomb()) or c.args(), "memo index out of order"),
    "a million and more empty sets": (lambda c: h.inject(c.inp, h.set_flood(1_100_000)) or c.args(),
                                      "more than 1,000,000 opcodes"),
    "two archives end to end": (lambda c: c.write(h.polyglot(_saved(h.state(enc=2)), _saved(h.state()))),
                                "data in front of its zip archive"),
    "deflate bomb: pickle 1 GiB": (lambda c: rewritten(c, h.bomb_member()), "would inflate to 1,073,741,824"),
    "deflate bomb: ratio": (lambda c: rewritten(c, h.ratio_bomb), "limits"),
    "deflate bomb: storage 1 GiB": (lambda c: rewritten(c, h.bomb_member("data/0")), "would inflate"),
    "compressed storage": (lambda c: rewritten(c, h.compress_member("data/0")), "storage 0 is compressed"),
    "declared size 1 TiB": (lambda c: rewritten(c, h.huge_declared), "two sizes"),
    "overlapping members": (lambda c: rewritten(c, h.overlapping), "members archive/outer and archive/inner overlap"),
    "two members, one local header": (lambda c: rewritten(c, h.shared_header), "bad local header of archive/extra"),
    "stored member past the end": (lambda c: rewritten(c, h.past_the_end), "extends past"),
    "h.duplicate members": (lambda c: rewritten(c, h.duplicate), "two members named"),
    "oversized pickle": (lambda c: rewritten(c, h.oversized_pickle), "limit 16,777,216"),
    # 4. storages against their records
    "storage record short": (lambda c: rewritten(c, h.resize_record(-4)), "its record holds"),
    "storage record long": (lambda c: rewritten(c, h.resize_record(8)), "its record holds"),
    "storage record missing": (lambda c: h.inject(c.inp, h.storage_ref("FloatStorage", "99", 4)) or c.args(),
                               "no record data/99"),
    "storage key with newline": (lambda c: h.inject(c.inp, h.storage_ref("FloatStorage", "9\n9", 4)) or c.args(),
                                 "data/9\\n9"),
    "storage numel negative": (lambda c: h.inject(c.inp, h.storage_ref("FloatStorage", "0", -1)) or c.args(),
                               "storage 0 has a size that is not a count (a negative number)"),
    "storage numel of 5000 digits": (lambda c: h.inject(c.inp, h.storage_ref_numel(
        "FloatStorage", "0", h.long4(-10 ** 5000))) or c.args(), "size that is not a count (a negative number)"),
    "storage numel 2**100": (lambda c: h.inject(c.inp, h.storage_ref_numel("FloatStorage", "0", h.long4(1 << 100)))
                             or c.args(), "size that is not a count (an impossible number)"),
    "storage numel a deep list": (lambda c: h.inject(c.inp, h.storage_ref_numel("FloatStorage", "0", h.deep_list(
        100000))) or c.args(), "size that is not a count (a list)"),
    "storage of unknown type": (lambda c: h.inject(c.inp, h.storage_ref("EvilStorage", "0", 1)) or c.args(),
                                "unknown type (torch.EvilStorage)"),
    "storage with two sizes": (lambda c: h.inject(c.inp, b"(" + h.storage_ref("FloatStorage", "0", 1) +
                                                  h.storage_ref("FloatStorage", "0", 2) + b"t") or c.args(),
                               "two sizes"),
    "legacy file truncated": (_legacy_truncated, "storages need more bytes"),
    # 5. inconsistent layers
    "kept layer lacks a parameter": (lambda c: c.save(M(lambda m: m.pop("decoder.layers.2.fc1.weight"))).args(),
                                     "decoder layer 2 differs from its siblings: it lacks fc1.weight"),
    "layer parameter of another shape": (lambda c: c.save(M(lambda m: m.update({"decoder.layers.1.fc1.weight":
                                                                                torch.zeros(3, 2)}))).args(),
                                         "fc1.weight is [3, 2]"),
    "layer with an extra parameter": (lambda c: c.save(M(lambda m: m.update({"encoder.layers.3.x": torch.zeros(1)})))
                                      .args(), "extra parameter x"),
    "layer parameter of another dtype": (lambda c: c.save(M(lambda m: m.update({"encoder.layers.0.fc1.weight":
                                                                                torch.zeros(2, 2).double()})))
                                         .args(), "torch.float64"),
    "layers.00 beside layers.0": (lambda c: c.save(M(lambda m: m.update({"decoder.layers.00.fc1.weight":
                                                                         torch.zeros(2, 2)}))).args(), "'00'"),
    "layers.01 for layers.1": (lambda c: c.save(M(h.rename_layer(1, "01"))).args(), "'01'"),
    "full-width layer index": (lambda c: c.save(M(h.rename_layer(1, "\uff11"))).args(), "'\\uff11' is not a layer"),
    "Arabic-Indic layer index": (lambda c: c.save(M(h.rename_layer(1, "\u0661"))).args(), "'\\u0661' is not a layer"),
    "layer index 1_0": (lambda c: c.save(M(h.rename_layer(1, "1_0"))).args(), "'1_0'"),
    "gap in layer indices": (lambda c: c.save(M(h.rename_layer(3, 4))).args(), "not numbered 0..3"),
    "two layer lists in a stack": (lambda c: c.save(M(h.rename_layer(1, "1.a.layers.1"))).args(), "two layer lists")
    if False else (lambda c: c.save(M(lambda m: m.update({"decoder.x.layers.0.fc1.weight": torch.zeros(2, 2)})))
                   .args(), "two layer lists"),
    # 7. payloads and valid files the safe loader refuses
    "os.system payload": (lambda c: c.save(S(extra_state={"p": h.Payload(c.marker)})).args(), "refused to load"),
    "eval payload": (lambda c: c.save(S(extra_state={"p": h.EvalPayload(c.marker)})).args(), "function eval,"),
    "payload in args": (lambda c: c.save(S(args=argparse.Namespace(p=h.Payload(c.marker)))).args(),
                        "refused to load"),
    "payload in legacy format": (lambda c: c.save(S(extra_state={"p": h.Payload(c.marker)}),
                                                  _use_new_zipfile_serialization=False).args(), "refused to load"),
    "import-time payload": (_import_payload, "evil_module_x1.f"),
    "subprocess payload": (lambda c: h.inject(c.inp, h.call("subprocess", "call", f"touch {c.marker}")) or c.args(),
                           "subprocess.call"),
    "trusted file holding a lock": (lambda c: h.inject(c.inp, h.call("_thread", "allocate_lock")) or
                                    c.args("--decoder-depth", "2", "--trust-checkpoint"), "cannot serialize"),
    "pickle protocol 4": (lambda c: c.save(S(), pickle_protocol=4).args(), "pickle protocol 4"),
    "pickle protocol 4 payload": (lambda c: c.save(S(extra_state={"p": h.Payload(c.marker)}), pickle_protocol=4)
                                  .args(), "--trust-checkpoint"),
    "TorchScript archive": (_torchscript, "TorchScript"),
    "zip member name with newline": (lambda c: rewritten(c, h.named_bomb), "data.pkl\\nfairseq-layerdrop-prune"),
    "not torch: text": (lambda c: c.write(b"model = 1\n"), "neither torch's zip format"),
    "not torch: plain zip": (lambda c: c.write(h.zip_bytes([{"name": "a.txt", "data": b"hi"}])), "archive folder"),
    "not torch: zip without data.pkl": (lambda c: c.write(h.zip_bytes([{"name": "a/b", "data": b"x"}])),
                                        "no data.pkl"),
    "zip header, no archive": (lambda c: c.write(b"PK\x03\x04" + bytes(100)), "corrupt or truncated"),
    "input path with newline": (lambda c: c.args(inp=c.tmp / "a\nfairseq-layerdrop-prune: ok.pt"), "a\\nfairseq"),
    "input path with escape codes": (lambda c: c.args(inp=c.tmp / "\x1b[2J\x1b[31mred.pt"), "\\x1b[2J"),
    "input path with bidi override": (lambda c: c.args(inp=c.tmp / "\u202etp.exe"), "\\u202e"),
    "input path not UTF-8": (lambda c: c.args(inp=os.fsdecode(bytes(c.tmp) + b"/caf\xe9.pt")), "caf\\xe9.pt"),
    "output path with newline": (lambda c: c.save(S()).args(out=c.tmp / "no\ndir" / "o.pt"), "no\\ndir"),
    # 8. paths and parsing
    "output name of 256 bytes": (lambda c: c.save(S()).args(out=c.tmp / long_name(256)), "file name too long"),
    "output path over PATH_MAX": (lambda c: c.save(S()).args(out=_deep_path(c, 4100, "o.pt")), "/o.pt: path too long"),
    "input name of 256 bytes": (lambda c: c.args(inp=c.tmp / long_name(256)), "file name too long"),
    "input path over PATH_MAX": (lambda c: c.args(inp=_deep_path(c, 4100, "i.pt")), "/i.pt: path too long"),
    "output out.pt/": (lambda c: c.save(S()).args(out=f"{c.out}/"), "trailing '/'"),
    "input in.pt/": (lambda c: c.save(S()).args(inp=f"{c.inp}/"), "trailing '/'"),
    "output is a directory": (lambda c: c.save(S()).args(out=make_dir(c, "outdir")), "is a directory"),
    "output is a FIFO, with --force": (lambda c: c.save(S()) and _special_output(c), "is not a regular file"),
    "output is .": (lambda c: c.save(S()).args(out=c.tmp / "."), "is a directory"),
    "input is a directory": (lambda c: c.args(inp=make_dir(c, "indir")), "indir: is a directory"),
    "input is a FIFO": (_fifo, "not a regular file"),
    "keep list ²": (lambda c: c.save(S()).args("--decoder-layers-to-keep", "\u00b2"), "not a layer index"),
    "keep list of 5000 digits": (lambda c: c.save(S()).args("--decoder-layers-to-keep", "1" * 5000),
                                 "not a layer index"),
    "keep list full-width": (lambda c: c.save(S()).args("--decoder-layers-to-keep", "0,\uff11"), "not a layer index"),
    "keep list Arabic-Indic": (lambda c: c.save(S()).args("--decoder-layers-to-keep", "\u0661"), "not a layer index"),
    "keep list 00": (lambda c: c.save(S()).args("--decoder-layers-to-keep", "00"), "not a layer index"),
    "keep list 1_0": (lambda c: c.save(S()).args("--decoder-layers-to-keep", "1_0"), "not a layer index"),
    "keep list +1": (lambda c: c.save(S()).args("--decoder-layers-to-keep", "+1"), "not a layer index"),
    "keep list with newline": (lambda c: c.save(S()).args("--decoder-layers-to-keep", "0\n1"), "'0\\n1'"),
    "depth 1_0": (lambda c: c.save(S()).args("--decoder-depth", "1_0"), "expected a number of layers"),
    "depth full-width": (lambda c: c.save(S()).args("--decoder-depth", "\uff13"), "expected a number of layers"),
    "depth Arabic-Indic": (lambda c: c.save(S()).args("--decoder-depth", "\u0663"), "expected a number of layers"),
    "depth 03": (lambda c: c.save(S()).args("--decoder-depth", "03"), "expected a number of layers"),
    "depth +3": (lambda c: c.save(S()).args("--decoder-depth", "+3"), "expected a number of layers"),
    "depth with a space": (lambda c: c.save(S()).args("--decoder-depth", " 3"), "expected a number of layers"),
    "depth of 5000 digits": (lambda c: c.save(S()).args("--decoder-depth", "9" * 5000), "expected a number"),
    "max-batches 1_0": (lambda c: c.save(S()).args("--decoder-depth", "2", "--strategy", "search-on-valid",
                                                   "--data", str(c.tmp), "--max-batches", "1_0"),
                        "expected a positive number"),
    "unknown option with newline": (lambda c: c.save(S()).args("--decoder-depth", "2", "--x\nfake"),
                                    "unrecognized arguments"),
    "search data with newline": (lambda c: c.save(S()).args("--decoder-depth", "2", "--strategy", "search-on-valid",
                                                            "--data", "no\nsuch"), "no\\nsuch"),
}

# 3. write failures and 6. races: the writer fails or is interrupted part-way (both temp-file kinds)
WRITE_CASES = {
    "disk full": (_disk_full, 2, "No space left on device"),
    "Ctrl-C (KeyboardInterrupt)": (_keyboard, 130, "interrupted"),
    "SIGINT": (_kill(signal.SIGINT), 130, "interrupted by SIGINT"),
    "SIGTERM": (_kill(signal.SIGTERM), 143, "interrupted by SIGTERM"),
    "SIGHUP": (_kill(signal.SIGHUP), 129, "interrupted by SIGHUP"),
    "output created meanwhile": (_create_output, 2, "created while pruning"),
}


def _write_case(ctx, action, named):
    _on_write(ctx, action, named=named)
    if action is _create_output:
        _output_appears(ctx)
    return ctx.save(S()).args()


for _name, (_action, _code, _expect) in WRITE_CASES.items():
    for _named in (False, True):
        CASES[f"{_name} ({'named' if _named else 'unnamed'} temp)"] = (
            lambda c, a=_action, n=_named: _write_case(c, a, n), _expect, _code)
