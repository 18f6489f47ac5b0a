"""Inference speed of pruned LayerDrop models with fairseq's own tools.

* translation, ``fairseq-generate`` (beam 5): a 6-12 layer ``transformer_layerdrop`` whose decoder
  is cut to 6 layers (0,2,..,10);
* language modeling, ``fairseq-eval-lm``: a 16-layer ``transformer_lm_layerdrop`` cut to 8.

Each model is run four ways, alternately, ``--repeats`` times: the full file; the file written
by ``fairseq-layerdrop-prune`` loaded with no flags at all (stock fairseq, no ``--user-dir``);
the full file pruned at load time with ``--model-overrides "{'decoder_layers_to_keep': ..}"``;
and, as a reference, a model built with half the decoder layers from the start.
Speeds are fairseq's own counters (time spent generating / scoring, model loading excluded);
the process wall time is reported too.

Weights are random (fairseq's initialisation, never trained): the text is meaningless but the
speed is honest. Beam search length would depend on the weights, so every hypothesis is forced
to the same length (``--min-len L --max-len-a 0 --max-len-b L``) and full and pruned models do
the same amount of search.

    .venv/bin/python benchmarks/bench_inference.py [--quick] [--threads 2] [--out results/inference.json]
"""
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from fairseq_layerdrop import evaluation  # noqa: E402  (tool commands and output parsers)
from fairseq_layerdrop.cli.boundary import OneLineParser, nonnegative_float, positive_int  # noqa: E402

MT = dict(vocab=1000, sentences=200, src_len=20, out_len=40, batch_size=50, layers=(6, 12),
          dims=(256, 1024, 4))  # dims: embed, FFN, heads
LM = dict(vocab=1000, sentences=100, src_len=200, tokens_per_sample=256, batch_size=8, layers=16,
          dims=(384, 1536, 6))
QUICK_MT = dict(MT, sentences=20, src_len=8, out_len=10, batch_size=10, layers=(2, 4), dims=(32, 64, 2))
QUICK_LM = dict(LM, sentences=20, src_len=40, tokens_per_sample=64, layers=4, dims=(32, 64, 2))

def every_other(n: int) -> str:
    return ",".join(str(i) for i in range(0, n, 2))


def mt_checkpoints(tmp: Path, spec: Dict) -> Dict:
    """Test data, the full 6-12 model and a reference built with 6 decoder layers from the start."""
    data = common.make_text_data(tmp / "mt", spec["vocab"], spec["sentences"], spec["src_len"], spec["out_len"])
    (enc, dec), (dim, ffn, heads) = spec["layers"], spec["dims"]
    argv = [data, "--user-dir", common.PLUGIN_DIR, "--task", "translation", "--source-lang", "src",
            "--target-lang", "tgt", "--arch", "transformer_layerdrop", "--share-all-embeddings", "--cpu",
            "--encoder-layers", enc, "--encoder-embed-dim", dim, "--decoder-embed-dim", dim,
            "--encoder-ffn-embed-dim", ffn, "--decoder-ffn-embed-dim", ffn, "--encoder-attention-heads", heads,
            "--decoder-attention-heads", heads, "--encoder-layerdrop", "0.2", "--decoder-layerdrop", "0.2",
            "--optimizer", "adam", "--lr", "1e-4", "--criterion", "label_smoothed_cross_entropy",
            "--max-tokens", "4096"]
    info = common.save_random_checkpoint(argv + ["--decoder-layers", dec], tmp / "mt_full.pt")
    common.save_random_checkpoint(argv + ["--decoder-layers", dec // 2], tmp / "mt_native_half.pt")
    return {"data": data, "full": tmp / "mt_full.pt", "native_half": tmp / "mt_native_half.pt",
            "keep": every_other(dec), "layers": spec["layers"], **info}


def lm_checkpoints(tmp: Path, spec: Dict) -> Dict:
    """Test data, the full 16-layer LM and a reference built with 8 layers from the start."""
    data = common.make_text_data(tmp / "lm", spec["vocab"], spec["sentences"], spec["src_len"])
    dim, ffn, heads = spec["dims"]
    argv = [data, "--user-dir", common.PLUGIN_DIR, "--task", "language_modeling", "--arch",
            "transformer_lm_layerdrop", "--cpu", "--decoder-embed-dim", dim, "--decoder-ffn-embed-dim", ffn,
            "--decoder-attention-heads", heads, "--share-decoder-input-output-embed", "--tokens-per-sample",
            spec["tokens_per_sample"], "--decoder-layerdrop", "0.2", "--optimizer", "adam", "--lr", "1e-4",
            "--max-tokens", "4096"]
    info = common.save_random_checkpoint(argv + ["--decoder-layers", spec["layers"]], tmp / "lm_full.pt")
    common.save_random_checkpoint(argv + ["--decoder-layers", spec["layers"] // 2], tmp / "lm_native_half.pt")
    return {"data": data, "full": tmp / "lm_full.pt", "native_half": tmp / "lm_native_half.pt",
            "keep": every_other(spec["layers"]), "layers": spec["layers"], **info}


def prune(ckpt: Dict, out: Path) -> Dict:
    res = common.run_timed([*evaluation.tool_command("fairseq-layerdrop-prune"), ckpt["full"], out,
                            "--decoder-layers-to-keep", ckpt["keep"]])
    if res["returncode"] != 0:
        raise RuntimeError("fairseq-layerdrop-prune failed:\n" + res["stderr"][-2000:])
    return {"wall_s": round(res["wall_s"], 2), "file_bytes": out.stat().st_size}


def ways(ckpt: Dict, pruned: Path) -> Dict[str, List[str]]:
    """Command-line fragments of the ways to run a model."""
    overrides = {"decoder_layers_to_keep": ckpt["keep"]}
    if isinstance(ckpt["layers"], tuple):
        # stock fairseq's prune_state_dict drops every ``.layers.N.`` key no pass claims: pruning the
        # decoder alone would lose the whole encoder, so the encoder gets an explicit keep-all list
        overrides["encoder_layers_to_keep"] = ",".join(str(i) for i in range(ckpt["layers"][0]))
    overrides = repr(overrides)
    out = {"full": ["--path", ckpt["full"], "--user-dir", common.PLUGIN_DIR]}
    out["pruned_file"] = ["--path", pruned]  # stock fairseq: no --user-dir, no overrides
    out["full_load_time_pruned"] = out["full"] + ["--model-overrides", overrides]
    # reference: a model that had half the decoder layers from the start (other random weights)
    out["native_half_depth"] = ["--path", ckpt["native_half"], "--user-dir", common.PLUGIN_DIR]
    return out


def run_generate(ckpt: Dict, spec: Dict, way: List[str]) -> Dict:
    n = spec["out_len"]
    res = common.run_timed([*evaluation.tool_command("fairseq-generate"), ckpt["data"], *way, "--task", "translation",
                            "--source-lang", "src", "--target-lang", "tgt", "--gen-subset", "test",
                            "--beam", "5", "--min-len", n, "--max-len-a", "0", "--max-len-b", n,
                            "--batch-size", spec["batch_size"], "--required-batch-size-multiple", "1",
                            "--cpu", "--num-workers", "0"])
    out = evaluation.parse_generate(res["stdout"] + res["stderr"])
    if res["returncode"] != 0 or out["tokens_per_s"] is None:
        raise RuntimeError("fairseq-generate failed:\n" + res["stderr"][-2000:])
    hyps = sorted(line for line in res["stdout"].splitlines() if line.startswith("H-"))
    return {"sentences": out["sentences"], "tokens": out["tokens"], "gen_s": out["gen_seconds"],
            "sentences_per_s": out["sentences_per_s"], "tokens_per_s": out["tokens_per_s"],
            "wall_s": round(res["wall_s"], 2), "_out": "\n".join(hyps)}


def run_eval_lm(ckpt: Dict, spec: Dict, way: List[str]) -> Dict:
    res = common.run_timed([*evaluation.tool_command("fairseq-eval-lm"), ckpt["data"], *way, "--task",
                            "language_modeling", "--gen-subset", "test", "--tokens-per-sample",
                            spec["tokens_per_sample"], "--context-window", "0", "--batch-size",
                            spec["batch_size"], "--required-batch-size-multiple", "1", "--cpu",
                            "--num-workers", "0"])
    try:
        out = evaluation.parse_eval_lm(res["stdout"] + res["stderr"])
    except evaluation.EvalError:
        out = {}
    if res["returncode"] != 0 or out.get("tokens_per_s") is None:
        raise RuntimeError("fairseq-eval-lm failed:\n" + res["stderr"][-2000:])
    return {"tokens": out["tokens"], "eval_s": out["eval_seconds"], "tokens_per_s": out["tokens_per_s"],
            "wall_s": round(res["wall_s"], 2), "_out": f"loss {out['loss_base2']} ppl {out['ppl']}"}


def compare(runner, ckpt: Dict, spec: Dict, way_args: Dict, repeats: int, speed_keys) -> Dict:
    """Run every way ``repeats`` times, alternating; medians, speed-ups over full, output checks."""
    runs = {w: [] for w in way_args}
    with common.CpuMonitor() as mon:
        for r in range(repeats):
            for w, args in way_args.items():
                runs[w].append(runner(ckpt, spec, args))
                common.log(f"{w} #{r + 1}: " + ", ".join(f"{k}={runs[w][-1][k]}" for k in speed_keys))
    outputs = {w: {x.pop("_out") for x in rs} for w, rs in runs.items()}
    out = {"others_cpu_share": round(mon.share, 3), "loadavg_end": mon.loadavg_end, "ways": {}}
    for w, rs in runs.items():
        out["ways"][w] = {"runs": rs, **{f"median_{k}": common.median([x[k] for x in rs]) for k in speed_keys},
                          "median_wall_s": common.median([x["wall_s"] for x in rs])}
    for w in way_args:
        if w != "full":
            for k in speed_keys:
                out[f"speedup_{w}_{k}"] = round(out["ways"][w][f"median_{k}"] / out["ways"]["full"][f"median_{k}"], 3)
    if "pruned_file" in outputs:  # same weights, same computation: identical output expected
        out["pruned_file_output_equals_load_time_pruned"] = outputs["pruned_file"] == outputs["full_load_time_pruned"]
    out["output_deterministic_across_repeats"] = all(len(o) == 1 for o in outputs.values())
    return out


def parse_args(argv):
    ap = OneLineParser(prog="bench_inference.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny models and data (< 1 minute)")
    ap.add_argument("--threads", type=positive_int, default=2, help="OMP/MKL threads of the fairseq tools")
    ap.add_argument("--repeats", type=positive_int, default=3, help="alternating repeats of each way")
    ap.add_argument("--max-wait", type=nonnegative_float, default=300, help="seconds to wait for a quiet machine")
    ap.add_argument("--out", default=None, help="also write the JSON here", type=common.out_path)
    opts = ap.parse_args(argv)
    if not common.starts(evaluation.tool_command("fairseq-layerdrop-prune")):
        ap.error("fairseq-layerdrop-prune does not start: install the project first (scripts/setup_env.sh)")
    if opts.quick:
        opts.repeats, opts.max_wait = 1, 0
    return opts


def main(argv=None) -> Dict:
    opts = parse_args(argv)
    common.set_threads(opts.threads)
    mt_spec, lm_spec = (QUICK_MT, QUICK_LM) if opts.quick else (MT, LM)
    result = common.result_head("inference", opts, argv, mt={}, lm={},
                                weights="random (fairseq init, untrained); output lengths forced")
    with tempfile.TemporaryDirectory(prefix="ld_bench_inf_") as tmp:
        tmp = Path(tmp)
        for key, spec, make, runner, speed_keys in (
                ("mt", mt_spec, mt_checkpoints, run_generate, ("sentences_per_s", "tokens_per_s")),
                ("lm", lm_spec, lm_checkpoints, run_eval_lm, ("tokens_per_s",))):
            ckpt = make(tmp, spec)
            pruned = tmp / f"{key}_pruned.pt"
            ckpt["prune"] = prune(ckpt, pruned)
            result[key]["model"] = {k: v for k, v in spec.items()}
            result[key]["model"].update(params=ckpt["params"], file_bytes=ckpt["file_bytes"],
                                        decoder_layers_kept=ckpt["keep"], prune=ckpt["prune"])
            if key == "mt" or "load" not in result:
                result["load"] = common.wait_for_quiet(opts.max_wait)
            result[key].update(compare(runner, ckpt, spec, ways(ckpt, pruned), opts.repeats, speed_keys))
    result["machine"] = common.machine_info(opts.threads)
    result["targets"] = targets(result)
    common.write_result(result, "inference", opts.out)
    return result


def targets(result: Dict) -> Dict:
    """generate >= 1.6x (12 -> 6 decoder layers), eval-lm >= 1.7x (16 -> 8), pruned file ~ overrides."""
    out = {}
    for key, metric, goal in (("mt", "sentences_per_s", 1.6), ("lm", "tokens_per_s", 1.7)):
        r = result[key]
        value = r[f"speedup_pruned_file_{metric}"]
        out[f"{key}_speedup_ge_{goal}"] = {"way": "pruned_file", "value": value, "met": value >= goal}
        out[f"{key}_pruned_file_over_load_time_pruned"] = round(
            r["ways"]["pruned_file"][f"median_{metric}"] / r["ways"]["full_load_time_pruned"][f"median_{metric}"], 3)
    return out


if __name__ == "__main__":
    main()
