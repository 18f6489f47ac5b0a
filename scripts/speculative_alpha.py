"""Acceptance rate of LayerDrop sub-networks as drafts for self-speculative decoding (issue 13).

    python scripts/speculative_alpha.py CHECKPOINT DATA_BIN --depths 2,4,6 \\
        --strategies every-other,first --prompts 100 --prompt-tokens 32 --new-tokens 32 -o alpha.json

Language models (task language_modeling): prompts are the first P tokens of the first N samples
of the subset; the full model continues each greedily for T tokens (batch 1, KV cache).
Translation models (task translation): the first N source sentences, each encoded once at full
depth; the full decoder translates greedily from end-of-sentence (fairseq's first decoder token)
until it emits end-of-sentence, at most T tokens; only the decoder is drafted. Every draft
(strategy x depth) is scored with one parallel forward per prompt (fairseq_layerdrop.speculative). CPU, float32, one thread. Prints a markdown table; the JSON has
per-position alpha, tokens per verify step for k = 1..8 and the continuations. Every bad input
is one line ``speculative_alpha.py: error: ...`` and exit status 2.
"""
import sys
import time
from pathlib import Path

from fairseq_layerdrop.cli.boundary import OneLineParser, choice_list, int_list, positive_int
from fairseq_layerdrop.errors import PruneError, one_line, show
from fairseq_layerdrop.result_files import write_json
from fairseq_layerdrop.speculative import STRATEGIES, drafts_of

PROG = "speculative_alpha.py"
TASKS = ("language_modeling", "translation")


class UsageError(Exception):
    """A bad input; the message is one line."""


def parse_args(argv):
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path, help="fairseq language-model checkpoint (.pt)")
    p.add_argument("data", type=Path, help="binarized data directory (dict.txt, SUBSET.bin/.idx)")
    p.add_argument("--depths", type=int_list, default=[2, 4, 6], help="draft depths E (default 2,4,6)")
    p.add_argument("--strategies", type=choice_list(STRATEGIES, "strategy"), default=["every-other", "first"],
                   help=f"draft layer choices, from {', '.join(STRATEGIES)} (default every-other,first)")
    p.add_argument("--prompts", type=positive_int, default=100, help="number of prompts N (default 100)")
    p.add_argument("--prompt-tokens", type=positive_int, default=32, help="prompt length P (default 32)")
    p.add_argument("--new-tokens", type=positive_int, default=32, help="greedy tokens T per prompt (default 32)")
    p.add_argument("--subset", default="test", help="data subset of the prompts (default test)")
    p.add_argument("-o", "--output", type=Path, help="write the full results as JSON here")
    args = p.parse_args(argv)
    if not args.checkpoint.is_file():
        raise UsageError(f"no checkpoint file {show(args.checkpoint)}")
    if not any(args.data.glob("dict.*txt")):
        raise UsageError(f"{show(args.data)} is not a binarized data directory (no dict.txt)")
    return args


def load_model(checkpoint, data):
    """``(model, cfg, task)``: the checkpoint's model in eval mode, CPU, float32, prepared for
    inference as fairseq-generate prepares it; ``UsageError`` (one line) for a file fairseq cannot load."""
    import fairseq  # noqa: F401  (imported first: the plugin then registers with it)
    import torch
    from fairseq import checkpoint_utils

    import fairseq_layerdrop

    fairseq_layerdrop.register()
    torch.set_num_threads(1)
    try:
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
            [str(checkpoint)], arg_overrides={"data": str(data)})
    except Exception as err:  # fairseq raises many kinds for a file it cannot read
        raise UsageError(f"cannot load {show(checkpoint)}: {show(type(err).__name__)}: {show(err)}") from None
    model = models[0].float().cpu().eval()
    model.prepare_for_inference_(cfg)  # no attention weights kept (print_alignment off), as in fairseq-generate
    return model, cfg, task


def load(args):
    """The model (:func:`load_model`) and its task with ``args.subset`` loaded."""
    model, cfg, task = load_model(args.checkpoint, args.data)
    if cfg.task._name not in TASKS or not hasattr(model, "decoder"):
        raise UsageError(f"{show(args.checkpoint)} is not a language or translation model "
                         f"(task {show(cfg.task._name)})")
    try:
        task.load_dataset(args.subset, combine=False, epoch=1)
    except Exception as err:
        raise UsageError(f"cannot read subset {show(args.subset)} of {show(args.data)}: {show(err)}") from None
    return model, task


def prompts_of(dataset, n: int, length: int) -> list:
    """The first ``length`` input tokens of the first ``n`` samples at least that long."""
    out = []
    for i in range(len(dataset)):
        source = dataset[i]["source"]
        if source.numel() >= length:
            out.append(source[:length].clone())
            if len(out) == n:
                break
    if not out:
        raise UsageError(f"no sample has {length} tokens")
    return out


def sources_of(model, dataset, n: int) -> tuple:
    """Translation: the decoder prompt (end-of-sentence) and the encoded first ``n`` sources."""
    import torch

    prompts, encoded = [], []
    eos = model.decoder.dictionary.eos()
    with torch.no_grad():
        for i in range(min(n, len(dataset))):
            src = dataset[i]["source"].view(1, -1)
            encoded.append(model.encoder(src, src_lengths=torch.tensor([src.size(1)])))
            prompts.append(torch.tensor([eos]))
    if not prompts:
        raise UsageError("the subset has no sentences")
    return prompts, encoded


def table(result: dict) -> str:
    rows = ["| draft | layers | alpha | alpha (repeated bigram) | alpha (novel) | tokens/step k=2 | k=4 |",
            "|---|---|---|---|---|---|---|"]
    for name, r in {"full (parallel)": result["full_parallel"], **result["drafts"]}.items():
        fmt = [("-" if v is None else f"{v:.3f}") for v in (r["alpha"], r["alpha_repeated"], r["alpha_novel"])]
        layers = "all" if r["layers"] is None else ",".join(map(str, r["layers"]))
        rows.append(f"| {name} | {layers} | {' | '.join(fmt)} | {r['tokens_per_step'][2]:.2f} | "
                    f"{r['tokens_per_step'][4]:.2f} |")
    return "\n".join(rows)


def run(args) -> dict:
    from fairseq_layerdrop.speculative import measure_alpha

    model, task = load(args)
    drafts = drafts_of(model.decoder, args.depths, args.strategies)
    prompt_length = 1 if hasattr(model, "encoder") else args.prompt_tokens  # translation: end-of-sentence
    if prompt_length + args.new_tokens - 1 > model.decoder.max_positions():
        raise UsageError(f"prompt + --new-tokens - 1 = {prompt_length + args.new_tokens - 1} exceeds "
                         f"the model's {model.decoder.max_positions()} positions")
    if hasattr(model, "encoder"):  # translation
        prompts, encoded = sources_of(model, task.dataset(args.subset), args.prompts)
        eos = model.decoder.dictionary.eos()
    else:
        prompts, encoded, eos = prompts_of(task.dataset(args.subset), args.prompts, args.prompt_tokens), None, None
    start = time.time()
    result = measure_alpha(model.decoder, prompts, args.new_tokens, drafts, encoded, eos)
    result["setup"] = {"checkpoint": str(args.checkpoint), "data": str(args.data), "subset": args.subset,
                       "prompts": len(prompts), "prompt_tokens": prompts[0].numel(),
                       "new_tokens": args.new_tokens, "num_layers": len(model.decoder.layers),
                       "seconds": round(time.time() - start, 1)}
    return result


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if args.output and not args.output.parent.is_dir():  # found now, not after the measurement
            raise UsageError(f"no directory for -o: {show(args.output.parent)}")
        result = run(args)
        if args.output:
            write_json(args.output, result)
    except (UsageError, PruneError, OSError) as err:
        print(f"{PROG}: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    s = result["setup"]
    print(f"{s['prompts']} prompts x {s['prompt_tokens']} tokens, {s['new_tokens']} greedy tokens, "
          f"{s['num_layers']} layers; continuations: {result['distinct_fraction']:.2f} distinct tokens, "
          f"{result['repeated_fraction']:.2f} repeated bigrams ({s['seconds']} s)\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
