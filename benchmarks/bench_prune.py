"""Cost of ``fairseq-layerdrop-prune`` on a large checkpoint: wall time and peak RSS vs ``cp``.

Two fairseq checkpoints with random weights, each over 1 GB, are written by fairseq's own
``Trainer.save_checkpoint`` in a temporary directory on /tmp (deleted afterwards):

* ``weights``: a 12-12 layer ``transformer_layerdrop``, 1024/4096 wide (~350 M parameters, fp32);
  its Adam state is empty (no update taken), as in a checkpoint saved before training;
* ``weights_and_adam``: a 6-6 layer model of the same width after one update, so the file also
  holds Adam's two moments (``last_optimizer_state``), as ``checkpoint_last.pt`` does.

For each, ``cp`` and the prune tool (half the decoder and encoder layers kept) run alternately
``--repeats`` times; ``sync`` (untimed) between runs flushes dirty pages so that no run pays for
the previous one's writes. The page cache cannot be dropped here, so the input is warm in memory
for both. Peak RSS is the tool's own high-water mark, read by GNU ``/usr/bin/time``
(``common.run_timed_rss``). A bare interpreter importing the
prune module is measured as well: the fixed start-up cost in time and memory.

    .venv/bin/python benchmarks/bench_prune.py [--quick] [--out results/prune.json]
"""
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from fairseq_layerdrop.cli.boundary import OneLineParser, nonnegative_float, positive_int  # noqa: E402

PRUNE = common.VENV_BIN / "fairseq-layerdrop-prune"
# name -> (encoder layers, decoder layers, embed dim, FFN dim, heads, take one update)
CHECKPOINTS = {"weights": (12, 12, 1024, 4096, 16, False), "weights_and_adam": (6, 6, 1024, 4096, 16, True)}
QUICK_CHECKPOINTS = {"weights": (4, 4, 64, 256, 4, False), "weights_and_adam": (4, 4, 64, 256, 4, True)}
VOCAB = 1000


def every_other(n: int) -> str:
    return ",".join(str(i) for i in range(0, n, 2))


def make_checkpoint(tmp: Path, name: str, shape) -> Dict:
    enc, dec, dim, ffn, heads, step = shape
    data = tmp / "dicts"
    data.mkdir(exist_ok=True)
    for side in ("src", "tgt"):
        (data / f"dict.{side}.txt").write_text("".join(f"w{i} 1\n" for i in range(VOCAB - 4)))
    argv = [data, "--user-dir", common.PLUGIN_DIR, "--task", "translation", "--source-lang", "src",
            "--target-lang", "tgt", "--arch", "transformer_layerdrop", "--share-all-embeddings", "--cpu",
            "--encoder-layers", enc, "--decoder-layers", dec, "--encoder-embed-dim", dim,
            "--decoder-embed-dim", dim, "--encoder-ffn-embed-dim", ffn, "--decoder-ffn-embed-dim", ffn,
            "--encoder-attention-heads", heads, "--decoder-attention-heads", heads,
            "--encoder-layerdrop", "0.2", "--decoder-layerdrop", "0.2", "--optimizer", "adam", "--lr", "1e-4",
            "--criterion", "label_smoothed_cross_entropy", "--max-tokens", "4096"]
    sample = tiny_sample() if step else None
    path = tmp / f"{name}.pt"
    info = common.save_random_checkpoint(argv, path, sample)
    return {"path": path, "encoder_layers": enc, "decoder_layers": dec, "embed_dim": dim, "ffn_dim": ffn,
            "adam_state": step, **info}


def tiny_sample() -> Dict:
    """One 2-sentence batch: enough for a single update that fills Adam's moments."""
    import torch

    tok = torch.tensor([[5, 6, 7, 2], [8, 9, 10, 2]])
    prev = torch.tensor([[2, 5, 6, 7], [2, 8, 9, 10]])
    return {"id": torch.arange(2), "nsentences": 2, "ntokens": 8, "target": tok,
            "net_input": {"src_tokens": tok, "src_lengths": torch.tensor([4, 4]), "prev_output_tokens": prev}}


def time_pair(ckpt: Dict, tmp: Path, repeats: int, prune_cmd) -> Dict:
    """``cp`` and prune, alternately; outputs deleted and ``sync`` run (untimed) after each."""
    src, out = ckpt["path"], tmp / "out.pt"
    keep = ["--encoder-layers-to-keep", every_other(ckpt["encoder_layers"]),
            "--decoder-layers-to-keep", every_other(ckpt["decoder_layers"])]
    runs = {"cp": [], "cp_fsync": [], "prune": []}
    # cp_fsync: cp plus fsync of the copy (``sync FILE``), the durability the prune tool pays for
    cp_fsync = ["sh", "-c", 'cp "$0" "$1" && sync "$1"', src, out]
    for r in range(repeats):
        for tool, cmd in (("cp", ["cp", src, out]), ("cp_fsync", cp_fsync), ("prune", [*prune_cmd, src, out, *keep])):
            res = common.run_timed_rss(cmd)
            if res["returncode"] != 0:
                raise RuntimeError(f"{tool} failed:\n" + res["stderr"][-2000:])
            size = out.stat().st_size
            out.unlink()
            subprocess.run(["sync"])
            runs[tool].append({"wall_s": round(res["wall_s"], 3), "peak_rss_mb": round(res["maxrss_bytes"] / 2**20, 1),
                               "out_bytes": size})
            common.log(f"{src.name} {tool} #{r + 1}: {runs[tool][-1]}")
    return runs


def summarize(ckpt: Dict, runs: Dict) -> Dict:
    size = ckpt["file_bytes"]
    wall = {t: common.median([x["wall_s"] for x in rs]) for t, rs in runs.items()}
    rss = max(x["peak_rss_mb"] for x in runs["prune"]) * 2**20
    return {"file_gb": round(size / 2**30, 3), "pruned_file_gb": round(runs["prune"][0]["out_bytes"] / 2**30, 3),
            "median_wall_s": wall, "prune_over_cp_wall": round(wall["prune"] / wall["cp"], 2),
            "prune_over_cp_fsync_wall": round(wall["prune"] / wall["cp_fsync"], 2),
            "prune_peak_rss_gb": round(rss / 2**30, 3), "prune_rss_over_file": round(rss / size, 3)}


def startup_cost() -> Dict:
    """Interpreter start plus imports, no work: the floor of any Python tool in time and memory."""
    out = {}
    for name, code in (("import_torch", "import torch"),
                       ("import_torch_fairseq_plugin", "import torch, fairseq_layerdrop")):
        res = common.run_timed_rss([sys.executable, "-c", code])
        out[name] = {"wall_s": round(res["wall_s"], 2), "peak_rss_mb": round(res["maxrss_bytes"] / 2**20, 1)}
    return out


def parse_args(argv):
    ap = OneLineParser(prog="bench_prune.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small checkpoints (a few MB, < 1 minute)")
    ap.add_argument("--threads", type=positive_int, default=2, help="OMP/MKL threads of the prune tool")
    ap.add_argument("--repeats", type=positive_int, default=3, help="alternating cp / prune repeats")
    ap.add_argument("--prune-cmd", default=str(PRUNE),
                    help="the prune tool to measure (a command line; default: this venv's console script)")
    ap.add_argument("--tmp", default="/tmp", help="where the checkpoints are written (deleted after)")
    ap.add_argument("--max-wait", type=nonnegative_float, default=300, help="seconds to wait for a quiet machine")
    ap.add_argument("--out", default=None, help="also write the JSON here", type=common.out_path)
    opts = ap.parse_args(argv)
    if not Path(opts.tmp).is_dir():
        ap.error(f"--tmp {opts.tmp!r} is not a directory")
    if not common.starts(opts.prune_cmd.split()):
        ap.error(f"--prune-cmd {opts.prune_cmd!r} does not start (its --help fails)")
    if opts.quick:
        opts.max_wait = 0
    return opts


def main(argv=None) -> Dict:
    opts = parse_args(argv)
    common.set_threads(opts.threads)
    result = common.result_head("prune", opts, argv, checkpoints={})
    prune_cmd = opts.prune_cmd.split()
    shapes = QUICK_CHECKPOINTS if opts.quick else CHECKPOINTS
    with tempfile.TemporaryDirectory(prefix="ld_bench_prune_", dir=opts.tmp) as tmp:
        tmp = Path(tmp)
        ckpts = {}
        for name, shape in shapes.items():
            common.log(f"writing checkpoint {name} {shape}")
            ckpts[name] = make_checkpoint(tmp, name, shape)
        subprocess.run(["sync"])
        result["load"] = common.wait_for_quiet(opts.max_wait)
        with common.CpuMonitor() as mon:
            result["startup"] = startup_cost()
            for name, ckpt in ckpts.items():
                runs = time_pair(ckpt, tmp, opts.repeats, prune_cmd)
                meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in ckpt.items() if k != "path"}
                result["checkpoints"][name] = {**meta, **summarize(ckpt, runs), "runs": runs}
        result["others_cpu_share"], result["loadavg_end"] = round(mon.share, 3), mon.loadavg_end
    result["machine"] = common.machine_info(opts.threads)
    result["targets"] = {
        name: {"rss_le_0.5x_file": c["prune_rss_over_file"] <= 0.5, "wall_le_3x_cp": c["prune_over_cp_wall"] <= 3.0}
        for name, c in result["checkpoints"].items()}
    common.write_result(result, "prune", opts.out)
    return result


if __name__ == "__main__":
    main()
