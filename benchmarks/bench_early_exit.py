"""Training speed of the early-exit loss: exits that read one state share its loss, or not.

The shape of ``scripts/reproduce_speculative_mt.sh``'s first model: a 6-12 translation
transformer, d = 128, FFN 512, 4 heads, 4k shared vocabulary, LayerDrop p = 0.5 in both stacks,
label-smoothed cross-entropy with exits after decoder layers 1, 2 and 4, one fixed synthetic batch
of about 3000 target tokens (the real run's ``wpb``). Variants, built from the same weights and
timed round robin so machine noise hits them alike:

* ``shared``: the criterion as it trains (``share_exit_states``: an exit whose state is the same
  tensor as an earlier exit's, only skipped layers between them, reuses that loss);
* ``separate``: every exit computed on its own (``share_exit_states = False``);
* ``no-exits``: the same model and criterion without exits, for the cost of the exits themselves.

Every variant draws the same LayerDrop masks (they depend on the seed and the update number), so
the difference is the exit heads computed: ``heads_per_update`` counts them.

    .venv/bin/python benchmarks/bench_early_exit.py [--quick] [--threads 1] [--out results/early_exit.json]
"""
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_train  # noqa: E402  (its dictionaries and synthetic batch)
import common  # noqa: E402

from fairseq_layerdrop.cli import boundary  # noqa: E402

SHAPE = dict(task="translation", vocab=4000, batch=(150, 21, 21), layers={"encoder": 6, "decoder": 12},
             model_args=["--encoder-embed-dim", "128", "--encoder-ffn-embed-dim", "512", "--encoder-attention-heads",
                         "4", "--decoder-embed-dim", "128", "--decoder-ffn-embed-dim", "512",
                         "--decoder-attention-heads", "4", "--encoder-layers", "6", "--decoder-layers", "12",
                         "--encoder-normalize-before", "--decoder-normalize-before", "--share-all-embeddings"])
QUICK_SHAPE = dict(SHAPE, vocab=200, batch=(8, 8, 8))
EXITS = "1,2,4"
VARIANTS = ("shared", "separate", "no-exits")


def build_trainer(spec: Dict, variant: str, data_dir: Path, seed: int, p: float):
    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    argv = [str(data_dir), "--user-dir", common.PLUGIN_DIR, "--arch", "transformer_layerdrop", "--cpu",
            "--seed", str(seed), "--optimizer", "adam", "--lr", "1e-4", "--max-tokens", "100000",
            "--dropout", "0.1", "--num-workers", "0", *bench_train.MT_ARGS[:6],
            "--criterion", "label_smoothed_cross_entropy_layerdrop", "--label-smoothing", "0.1",
            *spec["model_args"], "--encoder-layerdrop", str(p), "--decoder-layerdrop", str(p)]
    if variant != "no-exits":
        argv += ["--layerdrop-early-exit-layers", EXITS]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    task = tasks.setup_task(cfg.task)
    utils.set_torch_seed(seed)  # the same initial weights in every variant
    model, criterion = task.build_model(cfg.model), task.build_criterion(cfg.criterion)
    criterion.share_exit_states = variant != "separate"
    return Trainer(cfg, task, model, criterion)


def measure(spec: Dict, opts, tmp: Path) -> Dict:
    from fairseq_layerdrop.criterions import early_exit as exit_module

    bench_train.write_dicts(tmp, spec)
    sample = bench_train.make_sample(spec, opts.seed)
    heads, head_fn = [0], exit_module.exit_logits
    exit_module.exit_logits = lambda *args: heads.__setitem__(0, heads[0] + 1) or head_fn(*args)
    try:
        runs = {v: {"trainer": build_trainer(spec, v, tmp, opts.seed, opts.p), "times": [], "heads": 0}
                for v in VARIANTS}
        for run in runs.values():
            for _ in range(opts.warmup):
                run["trainer"].train_step([sample])
        with common.CpuMonitor() as mon:
            for r in range(opts.rounds):
                for v in VARIANTS[r % 3:] + VARIANTS[:r % 3]:  # rotate the order
                    run = runs[v]
                    for _ in range(opts.block):
                        heads[0] = 0
                        t0 = time.perf_counter()
                        run["trainer"].train_step([sample])
                        run["times"].append(time.perf_counter() - t0)
                        run["heads"] += heads[0]
                common.log(f"round {r + 1}/{opts.rounds}")
    finally:
        exit_module.exit_logits = head_fn
    out = {v: {"median_s": round(common.median(run["times"]), 4), "updates": len(run["times"]),
               "heads_per_update": round(run["heads"] / len(run["times"]), 3),
               "s": [round(t, 4) for t in run["times"]]} for v, run in runs.items()}
    return {"variants": out, "others_cpu_share": round(mon.share, 3), "loadavg_end": mon.loadavg_end,
            "ntokens_per_update": sample["ntokens"]}


def parse_args(argv):
    ap = boundary.OneLineParser(prog="bench_early_exit.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny vocabulary and batch, few updates (< 1 minute)")
    ap.add_argument("--threads", type=boundary.positive_int, default=1, help="torch intra-op threads (the runs use 1)")
    ap.add_argument("--p", type=boundary.nonnegative_float, default=0.5, help="LayerDrop rate of both stacks")
    common.add_round_robin_options(ap, warmup=2, rounds=8, block=4)
    opts = ap.parse_args(argv)
    if opts.p >= 1:
        ap.error(f"argument --p: expected a rate below 1, got {opts.p}")
    common.quick_round_robin(opts)
    return opts


def main(argv=None) -> Dict:
    opts = parse_args(argv)
    spec = QUICK_SHAPE if opts.quick else SHAPE
    result = common.start_training_result("early_exit", opts, argv, exits=EXITS,
                                          shape={k: spec[k] for k in ("vocab", "batch", "layers")})
    with tempfile.TemporaryDirectory(prefix="ld_bench_exit_") as tmp:
        result.update(measure(spec, opts, Path(tmp)))
    v = result["variants"]
    result["separate_over_shared"] = round(v["separate"]["median_s"] / v["shared"]["median_s"], 3)
    result["exits_share_of_update"] = round(1 - v["no-exits"]["median_s"] / v["separate"]["median_s"], 3)
    common.write_result(result, "early_exit", opts.out)
    return result


if __name__ == "__main__":
    main()
