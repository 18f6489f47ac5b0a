"""fairseq-layerdrop-prune under hostile and malformed inputs (issue 14): a catalogue.

Every case builds one bad input (file, path or option) in a fresh directory and runs the tool.
Each must: exit with the expected status (2; 128+N after signal N), print exactly one line on
stderr that starts with the tool's name (no control characters) and names the problem, print
nothing on stdout, leave the directory exactly as it was (no output, no temporary file, the input
and any other file byte-identical), let no payload create its marker file, and stay within
:data:`SECONDS` and :data:`EXTRA_RSS` (peak resident memory above the start of the case).
In-process where possible; cases that need a signal to kill the process or an rlimit run in a
subprocess (peak RSS from ``wait4``).
"""
import contextlib
import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fairseq_layerdrop import output_file
from fairseq_layerdrop.cli import prune
from tests import hostile as h
from tests.hostile_cases import CASES, MARKER, PROG, Ctx, S, long_name, make_dir, rewritten

SECONDS = 5.0  # wall time of one in-process case (a refusal takes milliseconds; the machine is shared)
EXTRA_RSS = 200 << 20  # peak RSS above the case's start; the bombs below would take gigabytes


def _listing(root: Path) -> dict:
    """Every entry under ``root`` (no symlinks followed): name -> sha256 of a file, else its kind."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            kind = "dir" if path.is_dir() else "file" if path.is_file() else "other"
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest() \
                if kind == "file" else kind
    return out


def _peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _status(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) << 10


def check_one_line(err: str, expect: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith(f"{PROG}: error: ") and err[:-1].isprintable(), repr(err)
    assert expect in err, (expect, err)


class CaseTimeout(BaseException):
    """A case ran twice its time limit (not an Exception: the tool must not catch it)."""


def _timeout(signum, frame):
    raise CaseTimeout


@contextlib.contextmanager
def _fail_safe(seconds: float):
    """If a guard ever regresses, fail the case instead of the machine: allocations beyond 1 GiB of
    new address space fail, and the case is stopped at twice its time limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_status("VmSize") + (1 << 30), hard))
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, 2 * seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_case(ctx, capsys, build, expect, code=2, seconds=SECONDS):
    argv = [os.fspath(a) for a in build(ctx)]
    before = _listing(ctx.tmp)
    capsys.readouterr()
    _peak_rss_reset()
    start_rss, start = _status("VmRSS"), time.perf_counter()
    with _fail_safe(seconds):
        try:
            got = prune.main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            got = exit_.code
    elapsed, extra = time.perf_counter() - start, _status("VmHWM") - start_rss
    out, err = capsys.readouterr()
    assert (got, out) == (code, ""), (got, out, err)
    check_one_line(err, expect)
    before.update({name: hashlib.sha256(data).hexdigest() for name, data in ctx.appears.items()})
    assert _listing(ctx.tmp) == before  # no output, no temporary file, every file byte-identical
    assert not ctx.marker.exists()
    assert elapsed < seconds and extra < EXTRA_RSS, (elapsed, extra >> 20)


@pytest.mark.parametrize("name", list(CASES))
def test_refused(name, tmp_path, monkeypatch, capsys):
    build, expect, *code = CASES[name]
    run_case(Ctx(tmp_path, monkeypatch), capsys, build, expect, *code)


def test_catalogue_size():
    assert len(CASES) + len(CHILD_CASES) >= 60


# -- cases that end the process or need an rlimit: run in a child -------------------------------
_CHILD = """
import os, sys
from fairseq_layerdrop import output_file
from fairseq_layerdrop.cli import prune
mode, argv = sys.argv[1], sys.argv[2:]
output_file.USE_TMPFILE = "named" not in mode
write = output_file._ReleasingFile.write
def truncating_write(self, data):  # another process truncates the mapped input mid-write
    os.truncate(argv[0], 0)
    return write(self, data)
if "truncate" in mode:
    output_file._ReleasingFile.write = truncating_write
sys.exit(prune.main(argv))
"""
CHILD_CASES = {
    "SIGBUS: input truncated while writing (unnamed temp)": ("truncate", 135, "changed while being read"),
    "SIGBUS: input truncated while writing (named temp)": ("truncate named", 135, "changed while being read"),
    "file size limit (ulimit -f, EFBIG)": ("fsize", 2, "File too large"),
    "file size limit, named temp": ("fsize named", 2, "File too large"),
}


@pytest.mark.parametrize("name", list(CHILD_CASES))
def test_refused_in_child(name, tmp_path):
    mode, code, expect = CHILD_CASES[name]
    ctx = Ctx(tmp_path, None)
    s = h.state()
    s["model"]["big.weight"] = torch.randn(256, 1024)  # 1 MiB: the write takes many calls
    ctx.save(s)
    before = _listing(tmp_path)
    err_path = tmp_path.parent / f"{tmp_path.name}.stderr"

    def limits():  # fail-safe: 2 GiB of address space (the tool takes ~0.6), 60 s of CPU
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        resource.setrlimit(resource.RLIMIT_CPU, (60, 60))
        if "fsize" in mode:
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, resource.RLIM_INFINITY))

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    with open(err_path, "w") as err_file:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, mode, *map(str, ctx.args())], stdout=subprocess.PIPE,
                                stderr=err_file, env=env, preexec_fn=limits, cwd=Path(__file__).parents[1])
        out = proc.stdout.read()  # returns when the child ends (the CPU limit ends a runaway one)
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    assert (proc.returncode, out) == (code, b""), (proc.returncode, err_path.read_text())
    check_one_line(err_path.read_text(), expect)
    after = _listing(tmp_path)
    if "truncate" in mode:  # the input is the one thing the "other process" changed
        before.pop("in.pt"), after.pop("in.pt")
    assert after == before and not ctx.marker.exists()
    assert elapsed < 60 and usage.ru_maxrss << 10 < 400 << 20, (elapsed, usage.ru_maxrss >> 10)


# -- search-on-valid: fairseq builds and runs the model the file describes -----------------------
@pytest.fixture(scope="module")
def lm_state(lm_data):
    """A real (untrained) 4-layer ``transformer_lm_layerdrop_tiny`` checkpoint for ``lm_data``."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    import fairseq_layerdrop

    fairseq_layerdrop.register()  # the file alone too, not only after tests that register it
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(lm_data), "--task", "language_modeling", "--arch", "transformer_lm_layerdrop_tiny",
        "--decoder-layers", "4", "--decoder-embed-dim", "16", "--decoder-ffn-embed-dim", "32",
        "--decoder-attention-heads", "2", "--tokens-per-sample", "32"])
    cfg = convert_namespace_to_omegaconf(args)
    model = tasks.setup_task(cfg.task).build_model(cfg.model)
    return {"model": model.state_dict(), "args": None, "cfg": OmegaConf.to_container(cfg),
            "optimizer_history": [], "extra_state": {}}


def _search_args(ctx, data, *more):
    return ctx.args("--decoder-depth", "2", "--strategy", "search-on-valid", "--data", str(data), *more)


def _other_dictionary(ctx, data):
    other = make_dir(ctx, "other")
    for f in data.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "dict.txt").write_text((data / "dict.txt").read_text() + "".join(f"new{i} 1\n" for i in range(8)))
    return other


def _huge(state, ffn=1 << 30):
    state = dict(state, cfg=dict(state["cfg"]))
    state["cfg"]["model"] = dict(state["cfg"]["model"], decoder_ffn_embed_dim=ffn)
    return state


def _no_meta(ctx):
    from fairseq_layerdrop import search
    ctx.mp.setattr(search, "_meta_model", lambda task, cfg: None)


SEARCH_CASES = {
    "empty data directory": (lambda c, s, d: c.save(s) and _search_args(c, make_dir(c, "empty")), "dict.txt"),
    "data with another dictionary": (lambda c, s, d: c.save(s) and _search_args(c, _other_dictionary(c, d)),
                                     "decoder.embed_tokens.weight is [64, 16] in the model"),
    "config asks for a huge model": (lambda c, s, d: c.save(_huge(s)) and _search_args(c, d), "fc1.bias is [1073741824]"),
    "huge model, no meta device": (lambda c, s, d: _no_meta(c) or c.save(_huge(s, 1 << 25)) and _search_args(c, d),
                                   "needs more memory than its weights justify"),
    "not a buildable model": (lambda c, s, d: c.save(S()) and _search_args(c, d), "search-on-valid: cannot score"),
    "no validation batches": (lambda c, s, d: c.save(s) and _search_args(c, d, "--valid-subset", "nope\x1b"),
                              "nope\\x1b"),
}


@pytest.mark.parametrize("name", list(SEARCH_CASES))
def test_search_refused(name, lm_state, lm_data, tmp_path, monkeypatch, capsys):
    build, expect = SEARCH_CASES[name]
    run_case(Ctx(tmp_path, monkeypatch), capsys, lambda c: build(c, lm_state, lm_data), expect, seconds=30)


def test_search_prints_no_fairseq_logs(lm_state, lm_data, tmp_path, capsys):
    torch.save(lm_state, tmp_path / "lm.pt")
    for i, quiet in enumerate(([], ["--quiet"])):
        argv = [tmp_path / "lm.pt", tmp_path / f"o{i}.pt", "--decoder-depth", "2", "--strategy", "search-on-valid",
                "--data", lm_data, *quiet]
        assert prune.main([str(a) for a in argv]) == 0
        out, err = capsys.readouterr()
        assert err == "" and out.count("search-on-valid:") == 3 and out.splitlines()[-1].startswith("pruned:")


# -- what the checks must still accept --------------------------------------------------------------
def _accept_legacy(ctx):
    return ctx.save(S(), _use_new_zipfile_serialization=False).args()


def _accept_unaligned_zip(ctx):  # a zip written by another tool: no 64-byte alignment of records
    return rewritten(ctx, lambda entries: entries)


def _accept_non_utf8(ctx):
    inp = os.fsdecode(bytes(ctx.tmp) + b"/caf\xe9.pt")
    torch.save(S(), inp)
    return ctx.args(inp=inp, out=os.fsdecode(bytes(ctx.tmp) + b"/\xff.pt"))


ACCEPTED = {
    "legacy format": _accept_legacy,
    "zip without alignment": _accept_unaligned_zip,
    "non-UTF-8 paths": _accept_non_utf8,
    "output name of 255 bytes": lambda c: c.save(S()).args(out=c.tmp / long_name(255)),
    "protocol 4 with --trust-checkpoint": lambda c: c.save(S(), pickle_protocol=4).args("--decoder-depth", "2",
                                                                                          "--trust-checkpoint"),
    "--force over an existing output": lambda c: c.save(S()) and c.out.write_bytes(b"old") and
    c.args("--decoder-depth", "2", "--force"),
    "--force, named temp": lambda c: c.mp.setattr(output_file, "USE_TMPFILE", False) or c.save(S()) and
    c.out.write_bytes(b"old") and c.args("--decoder-depth", "2", "--force"),
    "pruning a pruned file": lambda c: c.save(S()) and prune.main([str(c.inp), str(c.tmp / "p1.pt"),
                                                                  "--decoder-depth", "3"]) == 0 and
    c.args("--decoder-depth", "2", inp=c.tmp / "p1.pt"),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted(name, tmp_path, monkeypatch, capsys):
    argv = [os.fspath(a) for a in ACCEPTED[name](Ctx(tmp_path, monkeypatch))]
    capsys.readouterr()
    assert prune.main(argv) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("pruned: encoder 4 -> 4 [all], decoder ")
    result = torch.load(argv[1], map_location="cpu", weights_only=True)
    assert {k for k in result["model"] if k.startswith("decoder.layers.")} == \
        {f"decoder.layers.{i}.{n}" for i in range(2) for n in ("fc1.weight", "self_attn_layer_norm.bias")}
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary file


def test_sweep_uses_the_same_loader(tmp_path, capsys):
    """fairseq-layerdrop-sweep loads through the prune tool's loader: same refusals, one line, exit 2."""
    from fairseq_layerdrop.cli import sweep

    marker = tmp_path / MARKER
    for name, bad in {"laughs": S(args=None, cfg={"model": {}, "x": h.laughs()}),
                      "payload": S(extra_state={"p": h.Payload(marker)})}.items():
        torch.save(bad, tmp_path / f"{name}.pt")
        start = time.perf_counter()
        code = sweep.main([str(tmp_path / f"{name}.pt"), str(tmp_path), "--task", "lm", "--out-dir",
                           str(tmp_path / f"sweep_{name}")])
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and time.perf_counter() - start < SECONDS
        assert err.count("\n") == 1 and err.startswith("fairseq-layerdrop-sweep: error: ") and "refused" in err
        assert not marker.exists()
