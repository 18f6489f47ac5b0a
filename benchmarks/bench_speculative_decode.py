"""Measured speed-up of self-speculative greedy decoding (issue 13): tokens per second of
``speculative_decode.speculative_greedy`` against the same loop without drafting, batch 1.

Prompts as in ``scripts/speculative_alpha.py`` (its loader): a language model continues the first
``--prompt-tokens`` of the first ``--prompts`` test samples by ``--new-tokens``; a translation model
translates the first ``--prompts`` sources (until end-of-sentence). Per repeat every method decodes
every prompt, each prompt by all methods in turn in an order shuffled per prompt and repeat (side
by side); the time of a method is its median over repeats of the summed time over prompts. Methods:

* ``plain``: ``speculative_decode.plain_greedy`` (prompt in one forward, then one full step per
  token): the baseline every speed-up divides;
* ``fairseq_step``: the same with fairseq's own one-token incremental step (prompt one token per
  call, as fairseq's SequenceGenerator feeds it), for reference;
* ``<strategy>/<depth>/k<k>``: speculative decoding with that draft and k drafted tokens per step
  (a draft of the first layers shares the full model's cache: ``speculative_decode.SharedPrefix``);
* ``<strategy>/<depth>/k<k>/own-cache``: for those drafts, the same with a cache of the draft's
  own (``speculative_decode.OwnCache``, what every other draft does), to measure what sharing buys.

Every method's tokens are compared with ``plain``'s (``identical``: the fraction of prompts with
the same output). One thread, float32, CPU; needs a quiet machine (waits up to ``--max-wait``).

    .venv/bin/python benchmarks/bench_speculative_decode.py CHECKPOINT DATA_BIN \\
        --drafts first/1,first/2,every-other/2 --ks 1,2,3,4 -o results/speculative_decode.json
"""
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
import common  # noqa: E402
import speculative_alpha  # noqa: E402  (one loader for these checkpoints)

from fairseq_layerdrop import speculative as sp  # noqa: E402
from fairseq_layerdrop import speculative_decode as sd  # noqa: E402
from fairseq_layerdrop.cli.boundary import OneLineParser, int_list, nonnegative_float, positive_int  # noqa: E402
from fairseq_layerdrop.errors import PruneError, one_line  # noqa: E402

PROG = "bench_speculative_decode.py"


def draft_list(text: str) -> list:
    """argparse type: ``strategy/depth,...`` (e.g. ``first/1,every-other/2``)."""
    import argparse

    out = []
    for item in text.split(","):
        strategy, _, depth = item.partition("/")
        if strategy not in sp.STRATEGIES or not (depth.isascii() and depth.isdigit()) or int(depth) < 1:
            raise argparse.ArgumentTypeError(f"expected strategy/depth with strategy one of "
                                             f"{', '.join(sp.STRATEGIES)}, got {item!r}")
        out.append((strategy, int(depth)))
    return out


def parse_args(argv):
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("data", help="binarized data directory of the checkpoint")
    p.add_argument("--drafts", type=draft_list, default=[("first", 1), ("first", 2), ("every-other", 2)])
    p.add_argument("--ks", type=int_list, default=[1, 2, 3, 4], help="drafted tokens per verify step")
    p.add_argument("--subset", default="test")
    p.add_argument("--prompts", type=positive_int, default=20)
    p.add_argument("--prompt-tokens", type=positive_int, default=32, help="language models only")
    p.add_argument("--new-tokens", type=positive_int, default=32)
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--max-wait", type=nonnegative_float, default=1800, help="seconds to wait for a quiet machine")
    p.add_argument("-o", "--out", type=common.out_path)
    return p.parse_args(argv)


def inputs(args):
    """(model, drafts {name: layers}, prompts, encoder outputs, eos), through speculative_alpha's loader."""
    model, task = speculative_alpha.load(args)
    dataset = task.dataset(args.subset)
    if hasattr(model, "encoder"):
        prompts, encoded = speculative_alpha.sources_of(model, dataset, args.prompts)
        eos = model.decoder.dictionary.eos()
    else:
        prompts = speculative_alpha.prompts_of(dataset, args.prompts, args.prompt_tokens)
        encoded, eos = [None] * len(prompts), None
    need = prompts[0].numel() + args.new_tokens  # drafts never run past the budget
    if need > model.decoder.max_positions():
        raise PruneError(f"prompt + --new-tokens = {need} exceeds the model's {model.decoder.max_positions()} positions")
    drafts = {}
    for strategy, depth in args.drafts:
        try:
            drafts.update(sp.drafts_of(model.decoder, [depth], [strategy]))
        except PruneError as err:  # it names --depths, the option of the other tools
            raise PruneError(str(err).replace("--depths:", "--drafts:", 1)) from None
    return model, drafts, prompts, encoded, eos


def methods(decoder, drafts, ks, new_tokens, eos):
    """``{name: fn(prompt, encoder_out) -> (tokens, stats or None)}``."""
    rules = sd.Rules(eos=eos)
    out = {"plain": lambda p, e: (sd.plain_greedy(decoder, p, new_tokens, e, rules)[0], None),
           "fairseq_step": lambda p, e: (sp.greedy_continuation(decoder, p, new_tokens, e, eos), None)}
    for name, keep in drafts.items():
        for k in ks:
            out[f"{name}/k{k}"] = lambda p, e, keep=keep, k=k: sd.speculative_greedy(
                decoder, p, new_tokens, keep, k, e, rules)[::2]
            if sd.is_prefix(keep):
                out[f"{name}/k{k}/own-cache"] = lambda p, e, keep=keep, k=k: sd.speculative_greedy(
                    decoder, p, new_tokens, keep, k, e, rules, share_cache=False)[::2]
    return out


def measure(fns, prompts, encoded, repeats):
    """Summed seconds per method and repeat, each method's outputs and stats (from the first repeat).

    Side by side: each prompt is decoded by every method in turn, in an order shuffled per prompt
    and repeat, so a slow spell of the machine falls on all methods alike."""
    times = {name: [0.0] * repeats for name in fns}
    outputs, stats = {name: [] for name in fns}, {name: sd.DecodeStats() for name in fns}
    order = random.Random(0)
    for repeat in range(repeats):
        for prompt, enc in zip(prompts, encoded):
            for name in order.sample(list(fns), len(fns)):
                t0 = time.perf_counter()
                tokens, s = fns[name](prompt, enc)
                times[name][repeat] += time.perf_counter() - t0
                if repeat == 0:
                    outputs[name].append(tokens.tolist())
                    if s is not None:
                        stats[name].add(s)
    return times, outputs, stats


def summary(times, outputs, stats, drafts) -> dict:
    base = common.median(times["plain"])
    tokens = sum(len(o) for o in outputs["plain"])
    out = {}
    for name, ts in times.items():
        median = common.median(ts)
        same = sum(a == b for a, b in zip(outputs[name], outputs["plain"])) / len(outputs["plain"])
        row = {"seconds": round(median, 4), "tokens_per_s": round(tokens / median, 1),
               "speedup_over_plain": round(base / median, 3), "identical": same,
               "seconds_per_repeat": [round(t, 4) for t in ts]}
        if name + "/own-cache" in times:  # paired by repeat: the same prompts in the same spell
            row["shared_over_own_cache"] = round(common.median(
                [own / shared for own, shared in zip(times[name + "/own-cache"], ts)]), 3)
        if stats[name].verify_steps:
            st, layers = stats[name], drafts["/".join(name.split("/")[:2])]  # strategy/depth
            shared = sd.is_prefix(layers) and not name.endswith("/own-cache")
            row.update(acceptance=round(st.acceptance, 4), tokens_per_step=round(st.tokens_per_step, 3),
                       layers=layers, cache="shared" if shared else "own")
        out[name] = row
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    common.set_threads(1)
    try:
        model, drafts, prompts, encoded, eos = inputs(args)
    except (PruneError, speculative_alpha.UsageError) as err:
        print(f"{PROG}: error: {one_line(err)}", file=sys.stderr)
        return 2
    quiet = common.wait_for_quiet(args.max_wait)
    fns = methods(model.decoder, drafts, args.ks, args.new_tokens, eos)
    with common.CpuMonitor() as mon:
        times, outputs, stats = measure(fns, prompts, encoded, args.repeats)
    result = {"benchmark": "speculative_decode", "checkpoint": args.checkpoint, "prompts": len(prompts),
              "prompt_tokens": prompts[0].numel(), "new_tokens": args.new_tokens, "repeats": args.repeats,
              "num_layers": len(model.decoder.layers), "methods": summary(times, outputs, stats, drafts),
              "quiet": quiet, "others_cpu_share": round(mon.share, 3), "machine": common.machine_info(1)}
    common.write_result(result, "speculative_decode", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
