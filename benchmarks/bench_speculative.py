"""Costs of self-speculative decoding with LayerDrop drafts (issue 13): c and v(k), batch 1.

* ``t_full``: one incremental step of the full model (one new token, KV cache of ``--context``;
  a translation model's decoder also attends to one random source of ``--source-tokens``);
* ``c`` per draft: one incremental step of the draft (its own layers and its own cache) / t_full;
* ``v(k)``: one forward of the full model over k drafted tokens + 1 with the cache / t_full.

All three go through ``speculative.extend_cached`` (the same code path; fairseq's own one-token
step is timed too, ``t_fairseq_step``, for reference). Each repeat times every operation once,
interleaved in an order shuffled each repeat, the cache cut back after each (``truncate_cache``);
medians are reported. One
thread, float32, CPU. ``alpha_needed``: the acceptance rate each draft and k would need for a
predicted speed-up of ``--target`` (costs do not depend on the weights, so a model of the right
shape that is not trained yet already answers this). With ``--alpha-json`` (from
``scripts/speculative_alpha.py``) the predicted speed-up ``S(k)`` of every draft is added, both
from alpha (independence assumed) and from the replayed tokens per verify step. Needs a quiet machine (it waits up to ``--max-wait``).

    .venv/bin/python benchmarks/bench_speculative.py CHECKPOINT DATA_BIN --depths 2,4,6 \\
        --strategies every-other,first --ks 1,2,3,4 --alpha-json alpha.json -o results/speculative.json
"""
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import common  # noqa: E402
import speculative_alpha  # noqa: E402  (one loader for these checkpoints)

from fairseq_layerdrop import speculative as sp  # noqa: E402
from fairseq_layerdrop.cli.boundary import (  # noqa: E402
    OneLineParser,
    choice_list,
    int_list,
    nonnegative_float,
    positive_float,
    positive_int,
)
from fairseq_layerdrop.errors import one_line, show  # noqa: E402
from fairseq_layerdrop.subnetwork import only_layers  # noqa: E402

PROG = "bench_speculative.py"


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(decoder, drafts: dict, ks: list, context: int, repeats: int, vocab: int, encoder_out=None) -> dict:
    """Median seconds of each operation at a cache of ``context`` tokens (random tokens); a
    translation decoder also attends to ``encoder_out`` (encoded once, as in decoding)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(4, vocab, (1, context + max(ks) + 1), generator=gen)
    caches = {}
    for name, keep in {"full": None, **drafts}.items():  # prefill each network's own cache
        caches[name] = {}
        with only_layers(decoder, keep):
            sp.extend_cached(decoder, tokens[:, :context], context, caches[name], encoder_out)
    ops = {"fairseq_step": lambda: decoder(tokens[:, :context + 1], encoder_out=encoder_out,
                                           incremental_state=caches["full"])}
    for name, keep in {"full": None, **drafts}.items():
        ops[f"step/{name}"] = (lambda keep=keep, name=name:
                               _draft_step(decoder, keep, tokens, context, caches[name], encoder_out))
    for k in ks:
        ops[f"verify/{k}"] = lambda k=k: sp.extend_cached(decoder, tokens[:, :context + k + 1], k + 1,
                                                          caches["full"], encoder_out)
    times = {op: [] for op in ops}
    common.log(f"timing {len(ops)} operations x {repeats} repeats")
    with torch.no_grad():
        for repeat in range(repeats):
            if repeat and repeat % 50 == 0:
                common.log(f"{repeat}/{repeats} repeats")
            for op in timing_order(list(ops), repeat):
                times[op].append(_timed(ops[op]))
                cache = caches["full"] if not op.startswith("step/") else caches[op.split("/", 1)[1]]
                sp.truncate_cache(decoder, cache, context)
    return {op: common.median(ts) for op, ts in times.items()}


def timing_order(names: list, repeat: int) -> list:
    """The operations of one repeat in a shuffled order (seeded by the repeat, so runs are alike).
    An operation timed right after the full step comes out slower (in a fixed order, and in one
    only rotated, the one-layer draft timed after the full step read 0.36 of a step where the
    same network timed after another draft read 0.25); shuffling spreads that over all of them."""
    return random.Random(repeat).sample(names, len(names))


def _draft_step(decoder, keep, tokens, context, cache, encoder_out):
    with only_layers(decoder, keep):
        sp.extend_cached(decoder, tokens[:, :context + 1], 1, cache, encoder_out)


def encode_source(model, length: int):
    """A translation model's encoder output for one random source of ``length`` tokens, else None."""
    import torch

    if not hasattr(model, "encoder"):
        return None
    vocab = model.encoder.embed_tokens.num_embeddings
    src = torch.randint(4, vocab, (1, length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.encoder(src, src_lengths=torch.tensor([length]))


def speedups(alpha_result: dict, costs: dict, ks: list) -> dict:
    out = {}
    for name, draft in alpha_result["drafts"].items():
        if name not in costs["c"]:
            continue
        c = costs["c"][name]
        out[name] = {str(k): {"from_alpha": sp.predicted_speedup(draft["alpha"], k, c, costs["v"][str(k)]),
                              "from_replay": draft["tokens_per_step"][str(k)] / (k * c + costs["v"][str(k)])}
                     for k in ks if str(k) in draft["tokens_per_step"]}
    return out


def refuse(message: str) -> int:
    """A bad request: one line on stderr, exit status 2, nothing measured or written."""
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    return 2


def parse_args(argv):
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("data", help="binarized data directory of the checkpoint (its dictionary)")
    p.add_argument("--depths", type=int_list, default=[2, 4, 6])
    p.add_argument("--strategies", type=choice_list(sp.STRATEGIES, "strategy"), default=["every-other", "first"])
    p.add_argument("--ks", type=int_list, default=[1, 2, 3, 4], help="drafted tokens per verify step")
    p.add_argument("--context", type=positive_int, default=48, help="tokens in the KV cache when timing")
    p.add_argument("--source-tokens", type=positive_int, default=24, help="source length (translation models)")
    p.add_argument("--repeats", type=positive_int, default=200)
    p.add_argument("--max-wait", type=nonnegative_float, default=1800, help="seconds to wait for a quiet machine")
    p.add_argument("--alpha-json", help="output of scripts/speculative_alpha.py for the same checkpoint")
    p.add_argument("--target", type=positive_float, default=1.25,
                   help="report the alpha each draft and k needs for this predicted speed-up (issue 13's go: 1.25)")
    p.add_argument("-o", "--out", type=common.out_path)
    return p.parse_args(argv)


def read_alpha(path):
    """The alpha JSON as a dict, or ``ValueError`` (one line) if it cannot be read or has no drafts."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--alpha-json {show(path)}: {type(err).__name__}: {err}") from None
    drafts = result.get("drafts") if isinstance(result, dict) else None
    if not isinstance(drafts, dict) or not all(
            isinstance(d, dict) and isinstance(d.get("alpha"), (int, float)) and isinstance(d.get("tokens_per_step"), dict)
            for d in drafts.values()):
        raise ValueError(f"--alpha-json {show(path)} is not an output of scripts/speculative_alpha.py "
                         "(drafts with alpha and tokens_per_step)")
    return result


def check_model(args, model) -> dict:
    """The drafts ``{strategy/depth: layers}`` of the request, or ``ValueError`` / ``PruneError``
    (one line) if the request does not fit the model's layers or positions."""
    decoder = model.decoder
    need = args.context + max(args.ks) + 1
    if need > decoder.max_positions():
        raise ValueError(f"--context {args.context} + the largest of --ks {max(args.ks)} + 1 = {need} exceeds the "
                         f"decoder's {decoder.max_positions()} positions")
    if hasattr(model, "encoder") and args.source_tokens > model.encoder.max_positions():
        raise ValueError(f"--source-tokens {args.source_tokens} exceeds the encoder's {model.encoder.max_positions()} "
                         "positions")
    return sp.drafts_of(decoder, args.depths, args.strategies)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        alpha = read_alpha(args.alpha_json) if args.alpha_json else None
        if not Path(args.checkpoint).is_file():
            raise ValueError(f"no checkpoint file {show(args.checkpoint)}")
        if not any(Path(args.data).glob("dict.*txt")):
            raise ValueError(f"{show(args.data)} is not a binarized data directory (no dict.txt)")
        common.set_threads(1)
        try:
            model = speculative_alpha.load_model(args.checkpoint, args.data)[0]
        except speculative_alpha.UsageError as err:  # a file fairseq cannot load: its own error, in one line
            raise ValueError(str(err)) from None
        if not hasattr(model, "decoder"):
            raise ValueError(f"{show(args.checkpoint)} has no decoder to draft from")
        drafts = check_model(args, model)
    except (ValueError, OSError) as err:  # PruneError is a ValueError
        return refuse(str(err))
    quiet = common.wait_for_quiet(args.max_wait)
    decoder, ks = model.decoder, args.ks
    with common.CpuMonitor() as mon:
        t = measure(decoder, drafts, ks, args.context, args.repeats, decoder.embed_tokens.num_embeddings,
                    encode_source(model, args.source_tokens))
    full = t["step/full"]
    costs = {"t_full_ms": 1e3 * full, "t_fairseq_step_ms": 1e3 * t["fairseq_step"],
             "c": {name: t[f"step/{name}"] / full for name in drafts},
             "v": {str(k): t[f"verify/{k}"] / full for k in ks},
             "layers": drafts}
    costs["alpha_needed"] = {name: {str(k): sp.alpha_needed(k, costs["c"][name], costs["v"][str(k)], args.target)
                                    for k in ks} for name in drafts}
    result = {"benchmark": "speculative", "checkpoint": args.checkpoint, "context": args.context,
              "source_tokens": args.source_tokens if hasattr(model, "encoder") else None,
              "repeats": args.repeats, "target": args.target, "num_layers": len(decoder.layers), "costs": costs,
              "quiet": quiet, "others_cpu_share": round(mon.share, 3), "machine": common.machine_info(1)}
    if alpha is not None:
        result["speedup"] = speedups(alpha, costs, ks)
    common.write_result(result, "speculative", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
