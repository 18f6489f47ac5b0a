"""fairseq-layerdrop-prune on hand-built checkpoint files: output, bad input, safety.

Every bad input must give exit status 2, one line on stderr naming the problem, no output
file (not even a temporary one) and an input that is byte-identical afterwards.
"""
import fcntl
import hashlib
import os
import pty
import struct
import subprocess
import sys
import termios
import zipfile

import pytest
import torch

from fairseq_layerdrop import pruning
from fairseq_layerdrop.cli import prune
from tests.test_pruning import make_state


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "in.pt"
    torch.save(make_state(enc=6, dec=6), path)
    return path


def run(argv, capsys):
    try:
        code = prune.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)  # plain config: no allow-list needed


def test_prune_writes_renumbered_stock_checkpoint_and_summary(ckpt, tmp_path, capsys):
    out = tmp_path / "out.pt"
    code, stdout, _ = run([ckpt, out, "--encoder-layers-to-keep", "1,3,5", "--decoder-depth", "3"], capsys)
    assert code == 0
    assert "encoder 6 -> 3 [1,3,5]" in stdout and "decoder 6 -> 3 [0,2,4]" in stdout
    assert "stock fairseq: loads without --user-dir" in stdout and f"wrote {out}" in stdout
    state = load(out)
    assert pruning.layer_stacks(state["model"]) == {"encoder": 3, "decoder": 3}
    rec = state[pruning.PROVENANCE_KEY]
    assert rec["source_sha256"] == sha(ckpt)
    assert rec["strategy"] == {"encoder": "layers-to-keep", "decoder": "every-other"}
    assert float(state["model"]["decoder.layers.2.fc1.weight"][0, 0]) == 204.0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_dry_run_writes_nothing(ckpt, tmp_path, capsys):
    code, stdout, _ = run([ckpt, "--decoder-depth", "2", "--dry-run"], capsys)
    assert code == 0 and stdout.startswith("dry run, nothing written: would keep encoder 6 -> 6 [all], decoder 6 -> 2 [0,3]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pt"]


def test_existing_output_needs_force_and_input_is_never_overwritten(ckpt, tmp_path, capsys):
    out = tmp_path / "out.pt"
    out.write_bytes(b"keep me")
    code, _, err = run([ckpt, out, "--decoder-depth", "2"], capsys)
    assert code == 2 and "--force" in err and out.read_bytes() == b"keep me"
    assert run([ckpt, out, "--decoder-depth", "2", "--force"], capsys)[0] == 0
    assert pruning.layer_stacks(load(out)["model"])["decoder"] == 2
    before = sha(ckpt)
    code, _, err = run([ckpt, ckpt, "--decoder-depth", "2", "--force"], capsys)
    assert code == 2 and "overwrite the input" in err and sha(ckpt) == before


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt(path):
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _corrupt_data(path):
    """Flip one byte inside the largest stored tensor (headers intact: only the CRC can tell)."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0x01
    path.write_bytes(bytes(data))


BAD_FILES = {
    "missing": (lambda p: p.unlink(), "no such file"),
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "truncated": (_truncated, "corrupt or truncated"),
    "corrupt": (_corrupt, "corrupt zip archive (bad local header of"),
    "corrupt tensor bytes": (_corrupt_data, "corrupt checkpoint (checksum mismatch in"),
    "text": (lambda p: p.write_text("hello\n"), "not a readable torch checkpoint"),
    "not fairseq": (lambda p: torch.save({"weights": torch.zeros(2)}, p), "not a fairseq checkpoint"),
    "no config": (lambda p: torch.save({"model": {"a.layers.0.w": torch.zeros(1)}}, p),
                  "not a fairseq checkpoint"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_files(ckpt, tmp_path, capsys, case):
    spoil, message = BAD_FILES[case]
    spoil(ckpt)
    before = sha(ckpt) if ckpt.exists() else None
    out = tmp_path / "out.pt"
    code, stdout, err = run([ckpt, out, "--decoder-depth", "2"], capsys)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("fairseq-layerdrop-prune: error: ") and message in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert (sha(ckpt) if ckpt.exists() else None) == before


BAD_OPTIONS = {
    "out of range": (["--decoder-layers-to-keep", "0,6"], "out of range"),
    "duplicate": (["--decoder-layers-to-keep", "1,1"], "duplicate"),
    "unsorted": (["--decoder-layers-to-keep", "3,1"], "increasing"),
    "non-numeric": (["--decoder-layers-to-keep", "0,x"], "not a layer index"),
    "empty list": (["--decoder-layers-to-keep", ""], "empty"),
    "depth 0": (["--decoder-depth", "0"], "1..6"),
    "depth > N": (["--encoder-depth", "7"], "1..6"),
    "depth not a number": (["--encoder-depth", "two"], "expected a number of layers"),
    "both list and depth": (["--decoder-depth", "2", "--decoder-layers-to-keep", "0"], "not allowed with"),
    "nothing to do": ([], "nothing to prune"),
    "unknown strategy": (["--decoder-depth", "2", "--strategy", "random"], "invalid choice"),
    "strategy without depth": (["--decoder-layers-to-keep", "0", "--strategy", "learned"], "--strategy applies"),
    "learned without rates": (["--decoder-depth", "2", "--strategy", "learned"], "no learned decoder rates"),
    "search without data": (["--decoder-depth", "2", "--strategy", "search-on-valid"], "needs --data"),
    "unwritable output": (["--decoder-depth", "2", "--OUT", "nodir/out.pt"], "does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_options(ckpt, tmp_path, capsys, case):
    opts, message = BAD_OPTIONS[case]
    out = tmp_path / "out.pt"
    if "--OUT" in opts:
        i = opts.index("--OUT")
        out, opts = tmp_path / opts[i + 1], opts[:i]
    before = sha(ckpt)
    code, stdout, err = run([ckpt, out, *opts], capsys)
    assert code == 2 and stdout == "", err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists() and sha(ckpt) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pt"]


def test_missing_stack(tmp_path, capsys):
    path = tmp_path / "lm.pt"
    torch.save(make_state(enc=0, dec=4, arch="transformer_lm_layerdrop_tiny"), path)
    code, _, err = run([path, tmp_path / "o.pt", "--encoder-depth", "1"], capsys)
    assert code == 2 and "no encoder layers" in err and not (tmp_path / "o.pt").exists()


class Payload:
    """Unpickling this runs ``os.system``: the attack a malicious checkpoint would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_and_not_executed(tmp_path, capsys):
    marker = tmp_path / "pwned"
    state = make_state(enc=2, dec=2)
    state["extra_state"]["evil"] = Payload(marker)
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    code, _, err = run([path, tmp_path / "o.pt", "--decoder-depth", "1"], capsys)
    assert code == 2 and "refused to load" in err and "system" in err and "--trust-checkpoint" in err
    assert not marker.exists() and not (tmp_path / "o.pt").exists()


def _terminal_stderr(cmd, env):
    """Run ``cmd`` with stderr on a pseudo-terminal; ``(returncode, stderr text)``."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 x 100 characters
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other side is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_console_script_and_module_entry_point(ckpt, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    script = os.path.join(os.path.dirname(sys.executable), "fairseq-layerdrop-prune")
    a = subprocess.run([script, ckpt, tmp_path / "a.pt", "--decoder-depth", "3", "--quiet"],
                       capture_output=True, text=True, env=env)
    b = subprocess.run([sys.executable, "-m", "fairseq_layerdrop.cli.prune", ckpt, tmp_path / "b.pt",
                        "--decoder-layers-to-keep", "0,2,4"], capture_output=True, text=True, env=env)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stderr == "" and b.stderr == ""  # stderr is not a terminal: no progress output
    code, shown = _terminal_stderr([script, ckpt, tmp_path / "c.pt", "--decoder-depth", "2"], env)
    assert code == 0 and "verify + sha256" in shown and "loaded" in shown  # progress on a terminal
    code, shown = _terminal_stderr([script, ckpt, tmp_path / "d.pt", "--decoder-depth", "2", "--quiet"], env)
    assert code == 0 and shown == ""
    ma, mb = load(tmp_path / "a.pt")["model"], load(tmp_path / "b.pt")["model"]
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    bad = subprocess.run([script, ckpt, tmp_path / "e.pt", "--decoder-depth", "9"], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0


def test_module_entry_point_imports_no_fairseq(ckpt, tmp_path):
    """`python -m` imports the package first, as a fairseq --user-dir does; the tool must not pay
    for fairseq there either (it registers only when fairseq is already imported)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "fairseq_layerdrop.cli.prune", ckpt,
                          tmp_path / "a.pt", "--decoder-depth", "3", "--quiet"], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert {"fairseq_layerdrop", "fairseq_layerdrop.pruning", "torch"} <= imported  # the log sees its imports
    assert sorted(m for m in imported if m.split(".")[0] in ("fairseq", "fairseq_cli")) == []
    assert load(tmp_path / "a.pt")["cfg"]["model"]["decoder_layers"] == 3


def test_writing_with_released_input_pages_keeps_every_value(tmp_path):
    """The memory-saving writer drops the input's mapped pages after every write (every=1 here):
    the output must still hold exactly the input's values, re-read from the file."""
    from fairseq_layerdrop import checkpoint_io, output_file

    src = tmp_path / "big.pt"
    state = make_state(enc=4, dec=4)
    state["model"]["extra.weight"] = torch.randn(512, 1024)  # 2 MB: spans many pages
    torch.save(state, src)
    loaded = checkpoint_io.load_checkpoint(src)
    pages = output_file.mapped_pages(src)
    assert pages.ranges, "the input should be memory-mapped"
    new = pruning.prune_state(loaded, {"encoder": [0, 3]})
    writer = output_file._ReleasingFile
    try:
        output_file._ReleasingFile = lambda f, p: writer(f, p, every=1)
        output_file.save_exclusive(new, tmp_path / "out.pt", release=pages)
    finally:
        output_file._ReleasingFile = writer
    out = load(tmp_path / "out.pt")["model"]
    assert torch.equal(out["extra.weight"], state["model"]["extra.weight"])
    assert torch.equal(out["encoder.layers.1.fc1.weight"], state["model"]["encoder.layers.3.fc1.weight"])
    assert torch.equal(loaded["model"]["extra.weight"], state["model"]["extra.weight"])  # mapping intact


def test_loading_leaves_the_allow_list_in_place(tmp_path):
    """After the prune tool's loader ran in this process, a fairseq file with an argparse.Namespace
    still loads with torch's safe loader (torch's ``safe_globals`` context would remove it on exit)."""
    from fairseq_layerdrop.checkpoint_io import load_checkpoint

    path = tmp_path / "legacy.pt"
    torch.save(make_state(enc=2, dec=2, legacy=True), path)
    assert "args" in load_checkpoint(str(path))
    assert "args" in torch.load(path, weights_only=True)


def test_an_ignored_hangup_stays_ignored_while_a_tool_runs():
    """Under nohup SIGHUP is ignored: closing the terminal must not stop a long prune or sweep."""
    import signal

    from fairseq_layerdrop.cli import boundary

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        inside = []
        assert boundary.run("x", lambda: inside.append((signal.getsignal(signal.SIGHUP),
                                                         signal.getsignal(signal.SIGTERM)))) == 0
        assert inside[0][0] is signal.SIG_IGN and inside[0][1] is not signal.SIG_IGN
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
