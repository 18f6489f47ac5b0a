"""fairseq-layerdrop-sweep: prune one checkpoint to many depths and evaluate each.

For every requested depth the checkpoint is pruned with ``fairseq-layerdrop-prune``
(any strategy) and scored with fairseq's own tools: BLEU (translation), ROUGE
(summarization) from ``fairseq-generate``, perplexity (lm) from
``fairseq-eval-lm``. Writes ``sweep.csv``, ``sweep.json`` and ``sweep.png``.

    fairseq-layerdrop-sweep CKPT DATA_BIN --task translation --stack decoder \\
        --depths all --strategy every-other --out-dir sweeps/mt_p02 --label "p=0.2"
"""
import csv
import io
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from fairseq_layerdrop import evaluation, plotting
from fairseq_layerdrop.checkpoint_stats import checkpoint_stats  # loads through the prune tool's loader
from fairseq_layerdrop.cli import boundary
from fairseq_layerdrop.cli.prune import STRATEGIES
from fairseq_layerdrop.errors import show
from fairseq_layerdrop.result_files import write_json, write_text

PROG = "fairseq-layerdrop-sweep"
TASKS = ("translation", "summarization", "lm")


def parse_args(argv):
    p = boundary.OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="full-depth checkpoint trained with LayerDrop (or not)")
    p.add_argument("data", help="fairseq-preprocess'ed data directory")
    p.add_argument("--task", choices=TASKS, required=True, help="which metric to compute")
    p.add_argument("--stack", choices=("encoder", "decoder", "both"), default="decoder",
                   help="stack(s) to prune; 'both' prunes both to the same depth")
    p.add_argument("--depths", default="all", help="comma-separated depths, or 'all' (1..N)")
    p.add_argument("--strategy", default="every-other", choices=STRATEGIES,
                   help="prune strategy (see fairseq-layerdrop-prune)")
    p.add_argument("--prune-args", default="", help="extra arguments for fairseq-layerdrop-prune, one "
                   "string split like a shell command line, e.g. \"--data 'my data'\"")
    p.add_argument("--out-dir", required=True, help="where pruned models and results go")
    p.add_argument("--label", default=None, help="model name in the table and plot (default: file name)")
    p.add_argument("--subset", default="test", help="data split to evaluate")
    p.add_argument("--beam", type=boundary.positive_int, default=5, help="beam size for generation")
    p.add_argument("--max-tokens", type=boundary.positive_int, default=4096, help="tokens per evaluation batch")
    p.add_argument("--tokens-per-sample", type=boundary.positive_int, default=128, help="LM context (eval-lm)")
    p.add_argument("--post-process", default="sentencepiece", help="fairseq-generate --post-process")
    p.add_argument("--gen-args", default="", help="extra fairseq-generate / fairseq-eval-lm arguments "
                   "(one string, split like --prune-args)")
    p.add_argument("--threads", type=boundary.whole_number, default=0, help="OMP threads for evaluation (0: inherit)")
    p.add_argument("--keep-models", action="store_true", help="keep the pruned checkpoints")
    args = p.parse_args(argv)
    try:
        args.prune_args, args.gen_args = shlex.split(args.prune_args), shlex.split(args.gen_args)
    except ValueError as err:
        p.error(f"--prune-args / --gen-args: {err}")
    return args


def full_depths(ckpt: str) -> dict:
    """``{stack: number of layers}`` read from the checkpoint's weights."""
    return checkpoint_stats(ckpt)["layers"]


def depth_list(spec: str, n: int) -> list:
    if spec == "all":
        return list(range(1, n + 1))
    try:
        depths = sorted({int(d) for d in spec.split(",")})
    except ValueError:
        raise ValueError(f"--depths must be 'all' or comma-separated integers, got {spec!r}") from None
    bad = [d for d in depths if not 1 <= d <= n]
    if bad:
        raise ValueError(f"--depths {bad} out of range 1..{n}")
    return depths


def prune(args, depth: int, out: Path) -> None:
    stacks = ("encoder", "decoder") if args.stack == "both" else (args.stack,)
    cmd = [args.checkpoint, out, "--strategy", args.strategy, "--force"]
    for stack in stacks:
        cmd += [f"--{stack}-depth", depth]
    evaluation.run_tool("fairseq-layerdrop-prune", cmd + args.prune_args)


def evaluate(args, ckpt: Path, plain_config: bool = True) -> dict:
    extra = list(args.gen_args)
    if not plain_config:  # BART keeps an argparse.Namespace (docs/pruning.md): the plugin allow-lists it
        extra += ["--user-dir", str(Path(__file__).resolve().parents[1])]
    if args.task == "lm":
        return evaluation.eval_lm(str(ckpt), args.data, args.subset, args.tokens_per_sample,
                                  args.max_tokens, extra, args.threads)
    res = evaluation.generate(str(ckpt), args.data, args.subset, args.beam, args.max_tokens,
                              args.post_process, extra, args.threads)
    if args.task == "summarization":
        res.update(evaluation.rouge_scores(res["hyps"], res["refs"]))
    res.update(evaluation.output_diversity(res["hyps"]))
    res.pop("hyps"), res.pop("refs")
    return res


def check_data(data: str, subset: str, task: str) -> None:
    """Refuse a data directory without the split to score before anything is pruned (fairseq's
    ``DIR1:DIR2`` shards: each a directory, the split read from the first)."""
    shards = data.split(os.pathsep)
    for shard in shards:
        if not os.path.isdir(shard):
            raise ValueError(f"data directory not found: {show(shard)}")
    pattern = f"{subset}.bin" if task == "lm" else f"{subset}.*-*.*.bin"
    if not any(Path(shards[0]).glob(pattern)):
        raise ValueError(f"{show(shards[0])}: no {show(subset)} split ({show(pattern)}); binarize it with fairseq-preprocess")


def depth_row(args, depth: int, pruned: Path, label: str) -> dict:
    """Prune to ``depth`` into ``pruned``, score it, and describe it as one row of the sweep."""
    prune(args, depth, pruned)
    stats = checkpoint_stats(str(pruned))
    start = time.perf_counter()
    metrics = evaluate(args, pruned, stats["plain_config"])
    return {"label": label, "task": args.task, "stack": args.stack, "strategy": args.strategy,
            "depth": depth, "layers": json.dumps(stats["layers"]), "kept": json.dumps(stats["kept"]),
            "params": stats["params"], "file_mb": round(stats["bytes"] / 2**20, 2),
            "eval_wall_s": round(time.perf_counter() - start, 2), **metrics}


def sweep(args) -> list:
    layers = full_depths(args.checkpoint)  # a bad checkpoint or request is refused before anything is created
    stacks = [s for s in (("encoder", "decoder") if args.stack == "both" else (args.stack,))]
    missing = [s for s in stacks if s not in layers]
    if missing:
        raise ValueError(f"the checkpoint has no {missing[0]} stack (it has: {', '.join(layers)})")
    depths = depth_list(args.depths, min(layers[s] for s in stacks))
    check_data(args.data, args.subset, args.task)
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {show(args.out_dir)} exists and is not a directory")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    label = args.label or Path(args.checkpoint).stem
    rows, pruned = [], None
    try:
        for depth in tqdm(depths, desc=f"{label}: depths", unit="depth", file=sys.stderr):
            pruned = out_dir / f"depth{depth}.pt"
            rows.append(depth_row(args, depth, pruned, label))
            if not args.keep_models:
                pruned.unlink()
    except BaseException:  # a failed depth leaves neither its pruned model nor a directory we made
        if pruned is not None and not args.keep_models:
            pruned.unlink(missing_ok=True)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    return rows


def write_results(rows: list, out_dir: Path) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    write_text(out_dir / "sweep.csv", table.getvalue())
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    write_json(out_dir / "sweep.json", {"machine": meta, "rows": rows})


def run(args) -> None:
    if not os.path.isfile(args.checkpoint):
        raise ValueError(f"checkpoint not found: {show(args.checkpoint)}")
    rows = sweep(args)
    out_dir = Path(args.out_dir)
    write_results(rows, out_dir)
    png = plot(rows, out_dir)
    print(f"{PROG}: {len(rows)} depths -> {out_dir / 'sweep.csv'}" + (f", {png}" if png else ""), file=sys.stderr)


def main(argv=None) -> int:
    """Bad input (ValueError, PruneError, a failed fairseq tool), a full disk or a signal: one line
    and exit 2 (128 + N after signal N), as for the prune tool (``cli/boundary.py``)."""
    args = parse_args(argv)
    return boundary.run(PROG, lambda: run(args), expected=(ValueError, evaluation.EvalError))


def plot(rows: list, out_dir: Path):
    """``sweep.png``; without matplotlib (optional: ``pip install matplotlib``) a one-line notice."""
    if not plotting.available():
        print(f"{PROG}: matplotlib is not installed: no sweep.png (pip install matplotlib)", file=sys.stderr)
        return None
    return plotting.plot_sweeps(rows, out_dir / "sweep.png")


if __name__ == "__main__":
    sys.exit(main())
