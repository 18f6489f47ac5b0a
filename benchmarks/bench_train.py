"""Training speed of LayerDrop: this plugin vs fairseq's built-in, p in {0, 0.2, 0.5}.

Each variant is a real fairseq ``Trainer`` (built with fairseq's own parser, task, model,
criterion and optimizer, in process) that repeatedly trains on one fixed synthetic batch, so
a timed update is forward + backward + optimizer step and nothing else (no data loading, no
process start). Variants of a configuration differ only in the LayerDrop implementation:

* ``ours-layer-pP`` / ``ours-sublayer-pP``: ``transformer_layerdrop`` (or ``_lm_``) with
  ``--layerdrop-granularity layer|sublayer``;
* ``stock-pP``: fairseq's ``transformer`` (or ``transformer_lm``) with the same sizes and its
  built-in ``--encoder-layerdrop/--decoder-layerdrop P``.

All variants start from the same weights (same seed before ``build_model``) and the same batch,
and are measured interleaved (round robin, a few updates each) so machine noise hits them alike.
The number of layers a draw runs is random and differs between implementations, so we record
it per update, fit ``time = a + b_enc * enc_layers + b_dec * dec_layers`` on all layer-granularity
updates of the configuration, and also report times adjusted to the *expected* depth
``L * (1 - p)`` (``adj``); raw medians are reported next to them.

    .venv/bin/python benchmarks/bench_train.py [--quick] [--threads 2] [--out results/train.json]
"""
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import train_stats  # noqa: E402

from fairseq_layerdrop.cli import boundary  # noqa: E402

# --- configurations ----------------------------------------------------------------------
# "layers" maps stack -> number of layers; "batch" = (sentences, source tokens, target tokens)
MT_ARGS = ["--task", "translation", "--source-lang", "src", "--target-lang", "tgt",
           "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
LM_ARGS = ["--task", "language_modeling", "--criterion", "cross_entropy", "--tokens-per-sample", "512"]

CONFIGS = {
    # many layers, small vocabulary: the transformer layers are nearly all the compute
    # (256/1024 wide rather than 512/2048 so that 8 variants with Adam state fit in ~3 GB)
    "mt_layer_dominated_12_12": dict(
        task="translation", ours="transformer_layerdrop", stock="transformer",
        layers={"encoder": 12, "decoder": 12}, vocab=1000, batch=(16, 32, 32),
        model_args=["--encoder-embed-dim", "256", "--encoder-ffn-embed-dim", "1024",
                    "--encoder-attention-heads", "4", "--decoder-embed-dim", "256",
                    "--decoder-ffn-embed-dim", "1024", "--decoder-attention-heads", "4",
                    "--encoder-layers", "12", "--decoder-layers", "12", "--share-all-embeddings"]),
    # realistic small: IWSLT14 De-En sizes (6-6, 512/1024, 4 heads), ~8k vocabulary, short batch
    "mt_iwslt_de_en_8k": dict(
        task="translation", ours="transformer_layerdrop_iwslt_de_en", stock="transformer_iwslt_de_en",
        layers={"encoder": 6, "decoder": 6}, vocab=8000, batch=(32, 16, 16), model_args=[]),
    # decoder-only LM, 16 layers as the paper's WikiText-103 model (narrower), small vocabulary
    "lm_layer_dominated_16": dict(
        task="language_modeling", ours="transformer_lm_layerdrop", stock="transformer_lm",
        layers={"decoder": 16}, vocab=1000, batch=(4, 128, 128),
        model_args=["--decoder-embed-dim", "384", "--decoder-ffn-embed-dim", "1536",
                    "--decoder-attention-heads", "6", "--decoder-layers", "16",
                    "--share-decoder-input-output-embed"]),
}
QUICK_CONFIGS = {
    "mt_tiny": dict(
        task="translation", ours="transformer_layerdrop", stock="transformer",
        layers={"encoder": 4, "decoder": 4}, vocab=100, batch=(4, 8, 8),
        model_args=["--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
                    "--encoder-attention-heads", "2", "--decoder-embed-dim", "32",
                    "--decoder-ffn-embed-dim", "64", "--decoder-attention-heads", "2",
                    "--encoder-layers", "4", "--decoder-layers", "4"]),
}
RATES = (0.0, 0.2, 0.5)
SUBLAYER_RATES = (0.2, 0.5)


def variants():
    """(name, implementation, granularity, p) of every variant of a configuration."""
    out = [(f"ours-layer-p{p:g}", "ours", "layer", p) for p in RATES]
    out += [(f"ours-sublayer-p{p:g}", "ours", "sublayer", p) for p in SUBLAYER_RATES]
    out += [(f"stock-p{p:g}", "stock", "layer", p) for p in RATES]
    return out


# --- building -----------------------------------------------------------------------------
def write_dicts(data_dir: Path, spec: Dict) -> None:
    """Dictionaries only: fairseq's translation/LM tasks load nothing else at setup."""
    data_dir.mkdir(parents=True, exist_ok=True)
    body = "".join(f"w{i} 1\n" for i in range(spec["vocab"] - 4))  # + 4 special symbols
    names = ["dict.src.txt", "dict.tgt.txt"] if spec["task"] == "translation" else ["dict.txt"]
    for name in names:
        (data_dir / name).write_text(body)


def build_trainer(spec: Dict, impl: str, granularity: str, p: float, data_dir: Path, seed: int):
    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    argv = [str(data_dir), "--user-dir", common.PLUGIN_DIR, "--arch", spec[impl], "--cpu",
            "--seed", str(seed), "--optimizer", "adam", "--lr", "1e-4", "--max-tokens", "100000",
            "--dropout", "0.1", "--num-workers", "0"]
    argv += MT_ARGS if spec["task"] == "translation" else LM_ARGS
    argv += spec["model_args"]
    for stack in spec["layers"]:
        argv += [f"--{stack}-layerdrop", str(p)]
    if impl == "ours":
        argv += ["--layerdrop-granularity", granularity]
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    utils.set_torch_seed(seed)  # identical initial weights in every variant
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return Trainer(cfg, task, model, criterion)


def make_sample(spec: Dict, seed: int) -> Dict:
    """One fixed batch without padding: ``B x T`` token ids drawn from the real vocabulary."""
    bsz, src_len, tgt_len = spec["batch"]
    gen = torch.Generator().manual_seed(seed)
    eos, first, vocab = 2, 4, spec["vocab"]

    def tokens(length):
        t = torch.randint(first, vocab, (bsz, length), generator=gen)
        t[:, -1] = eos
        return t

    target = tokens(tgt_len)
    if spec["task"] == "translation":
        prev = torch.cat([torch.full((bsz, 1), eos), target[:, :-1]], dim=1)
        net_input = {"src_tokens": tokens(src_len), "src_lengths": torch.full((bsz,), src_len),
                     "prev_output_tokens": prev}
    else:  # language model: input is the target shifted right
        net_input = {"src_tokens": torch.cat([torch.full((bsz, 1), eos), target[:, :-1]], dim=1),
                     "src_lengths": torch.full((bsz,), tgt_len)}
    return {"id": torch.arange(bsz), "nsentences": bsz, "ntokens": bsz * tgt_len,
            "net_input": net_input, "target": target}


class LayerCounter:
    """Counts the layer modules actually called per stack (forward pre-hooks, both implementations).

    Sublayer mode calls a partial forward instead of the layer, so there our own
    ``last_layers_run`` / ``last_branches_run`` are read as well.
    """

    def __init__(self, model, stacks):
        self.counts = dict.fromkeys(stacks, 0)
        self.stacks = {s: getattr(model, s) for s in stacks}
        for stack, module in self.stacks.items():
            for layer in torch.nn.ModuleList.__iter__(module.layers):
                layer.register_forward_pre_hook(self._hook(stack))

    def _hook(self, stack):
        def hook(module, args):
            self.counts[stack] += 1
        return hook

    def take(self) -> Dict[str, Dict[str, int]]:
        out = {}
        for stack, module in self.stacks.items():
            called = self.counts[stack]
            layers = getattr(module.layers, "last_layers_run", None)
            branches = getattr(module.layers, "last_branches_run", None)
            out[stack] = {"called": called, "layers": called if layers is None else layers,
                          "branches": branches}
            self.counts[stack] = 0
        return out


# --- measuring ------------------------------------------------------------------------------
def measure_config(name: str, spec: Dict, opts, tmp: Path) -> Dict:
    """Build every variant, warm each up, then time updates round robin; returns per-update data."""
    write_dicts(tmp / name, spec)
    sample = make_sample(spec, opts.seed)
    runs = {}
    for vname, impl, gran, p in variants():
        trainer = build_trainer(spec, impl, gran, p, tmp / name, opts.seed)
        runs[vname] = {"impl": impl, "granularity": gran, "p": p, "trainer": trainer,
                       "counter": LayerCounter(trainer.model, spec["layers"]), "times": [], "layers": []}
    for run in runs.values():  # warm-up: allocator, Adam state, first-call paths
        for _ in range(opts.warmup):
            run["trainer"].train_step([sample])
            run["counter"].take()
    names = list(runs)
    with common.CpuMonitor() as mon:
        for r in range(opts.rounds):
            for vname in names[r % len(names):] + names[: r % len(names)]:  # rotate the order
                run = runs[vname]
                for _ in range(opts.block):
                    t0 = time.perf_counter()
                    run["trainer"].train_step([sample])
                    run["times"].append(time.perf_counter() - t0)
                    run["layers"].append(run["counter"].take())
            common.log(f"{name}: round {r + 1}/{opts.rounds}")
    for run in runs.values():
        del run["trainer"], run["counter"]
    gc.collect()  # the next configuration builds its own eight models
    return {"runs": runs, "others_cpu_share": round(mon.share, 3), "loadavg_end": mon.loadavg_end,
            "ntokens": sample["ntokens"]}


def parse_args(argv):
    ap = boundary.OneLineParser(prog="bench_train.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny model, few updates (< 1 minute)")
    ap.add_argument("--configs", default=None, type=boundary.choice_list([*CONFIGS, *QUICK_CONFIGS], "configuration"),
                    help="comma-separated subset of " + ",".join(CONFIGS))
    ap.add_argument("--threads", type=boundary.positive_int, default=2, help="torch intra-op threads")
    common.add_round_robin_options(ap, warmup=3, rounds=10, block=3)
    opts = ap.parse_args(argv)
    common.quick_round_robin(opts)
    return opts


def main(argv=None) -> Dict:
    opts = parse_args(argv)
    configs = QUICK_CONFIGS if opts.quick else CONFIGS
    if opts.configs:
        configs = {k: CONFIGS.get(k) or QUICK_CONFIGS[k] for k in opts.configs}
    result = common.start_training_result("train", opts, argv, configs={})
    with tempfile.TemporaryDirectory(prefix="ld_bench_train_") as tmp:
        for name, spec in configs.items():
            common.log(f"{name}: building {len(variants())} variants")
            data = measure_config(name, spec, opts, Path(tmp))
            fit = train_stats.fit_costs(data["runs"], list(spec["layers"]))
            times, summary = {}, {}
            for v, run in data["runs"].items():
                adj = train_stats.adjusted_times(run, fit, spec["layers"])
                times[v] = {"raw": run["times"], "adj": adj}
                branches = {st: 3 if (st == "decoder" and spec["task"] == "translation") else 2 for st in spec["layers"]}
                summary[v] = train_stats.summarize_variant(run, adj, spec["layers"], branches, data["ntokens"])
            result["configs"][name] = {
                "layers": spec["layers"], "vocab": spec["vocab"], "batch_sent_src_tgt": spec["batch"],
                "ntokens_per_update": data["ntokens"], "others_cpu_share": data["others_cpu_share"],
                "loadavg_end": data["loadavg_end"], "cost_fit": fit,
                "ratios": train_stats.ratios(times, RATES, SUBLAYER_RATES), "variants": summary,
                "per_update": {v: {"s": [round(t, 5) for t in run["times"]],
                                   "layers": [{s: lay[s]["layers"] for s in spec["layers"]} for lay in run["layers"]]}
                               for v, run in data["runs"].items()}}
    result["iteration_overhead_us"] = iteration_overhead(opts.quick)
    result["peak_rss_gb"] = round(__import__("resource").getrusage(0).ru_maxrss / 2**20, 2)
    result["targets"] = train_stats.targets(result["configs"], RATES)
    common.write_result(result, "train", opts.out)
    return result


def iteration_overhead(quick: bool) -> Dict:
    """Microseconds to start iterating a 12-layer stack in training (draw + plan), p = 0.5.

    The per-forward cost of the LayerDrop implementation itself, without any layer compute:
    ours (seeded generator, plan of callables) vs fairseq's ``LayerDropModuleList``.
    """
    from fairseq.modules.layer_drop import LayerDropModuleList

    from fairseq_layerdrop import sublayer
    from fairseq_layerdrop.layerdrop import LayerDropList
    from fairseq_layerdrop.settings import LayerDropSettings

    reps = 200 if quick else 5000

    def make(kind):
        layers = [torch.nn.Linear(1, 1) for _ in range(12)]
        if kind == "stock":
            return LayerDropModuleList(0.5, layers).train()
        return LayerDropList(layers, LayerDropSettings("encoder", 0.5, granularity=kind),
                             partial_forward=sublayer.encoder_partial_forward,
                             branch_count=sublayer.encoder_branch_count).train()

    out = {}
    for kind in ("stock", "layer", "sublayer"):
        stack = make(kind)
        best = float("inf")
        for _ in range(3):  # best of 3 blocks: the cost itself, not the machine's noise
            t0 = time.perf_counter()
            for i in range(reps):
                if kind != "stock":
                    stack.set_num_updates(i)
                for _f in stack:
                    pass
            best = min(best, (time.perf_counter() - t0) / reps)
        out["ours_" + kind if kind != "stock" else "stock"] = round(best * 1e6, 1)
    return out


if __name__ == "__main__":
    main()
