"""fairseq-layerdrop-prune: rewrite a checkpoint to chosen layers, loadable by stock fairseq.

    fairseq-layerdrop-prune INPUT.pt OUTPUT.pt --decoder-depth 3 [--strategy every-other]
    fairseq-layerdrop-prune INPUT.pt OUTPUT.pt --encoder-layers-to-keep 0,2,4 --dry-run
    python -m fairseq_layerdrop.cli.prune ...

Parses, loads safely (``checkpoint_io``), picks the layers, calls the pure
``pruning.prune_state`` and writes atomically. Bad input: exit status 2 and one line
``fairseq-layerdrop-prune: error: ...``; the input is never modified. See docs/pruning.md.
"""
import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from fairseq_layerdrop import checkpoint_io, pruning
from fairseq_layerdrop.checkpoint_io import CheckpointError
from fairseq_layerdrop.pruning import STACKS, PruneError

PROG = "fairseq-layerdrop-prune"
STRATEGIES = ("every-other", "search-on-valid", "learned")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the same single line as every other bad input."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _depth(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of layers, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Prune a LayerDrop-trained fairseq checkpoint to fewer layers; "
                "the output loads in stock fairseq-generate / fairseq-eval-lm with no extra flags.")
    p.add_argument("input", help="fairseq checkpoint to prune (never modified)")
    p.add_argument("output", nargs="?", help="where to write the pruned checkpoint (not needed with --dry-run)")
    for stack in STACKS:
        group = p.add_mutually_exclusive_group()
        group.add_argument(f"--{stack}-layers-to-keep", metavar="LIST",
                           help=f"{stack} layers to keep, fairseq's format: increasing indices, e.g. 0,2,4")
        group.add_argument(f"--{stack}-depth", type=_depth, metavar="N",
                           help=f"keep N {stack} layers, chosen by --strategy")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="how --*-depth picks layers: every-other (default; layer floor(i*L/N) for "
                        "i=0..N-1, i.e. 0,2,4,... at half depth), search-on-valid (greedy removal "
                        "by validation loss, needs --data), learned (lowest learned drop rates)")
    p.add_argument("--data", help="search-on-valid: binarized data directory of the task")
    p.add_argument("--valid-subset", default="valid", help="search-on-valid: subset to score (default: valid)")
    p.add_argument("--max-batches", type=int, default=20,
                   help="search-on-valid: score only the first N batches (default: 20)")
    p.add_argument("--max-tokens", type=int, default=4096,
                   help="search-on-valid: tokens per batch (default: 4096)")
    p.add_argument("--keep-plugin-arch", action="store_true",
                   help="keep this plugin's architecture (the output then needs --user-dir) instead "
                        "of writing it under the stock fairseq architecture it extends")
    p.add_argument("--dry-run", action="store_true", help="print what would be kept and the sizes; write nothing")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists (never the input)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="load INPUT with full pickle (runs code from the file!) when it needs classes "
                        "outside the safe allow-list; only for files from a trusted source")
    p.add_argument("--quiet", action="store_true", help="no progress output (the summary line stays)")
    return p


def requested_layers(args, layers: dict):
    """``(keep, targets, how)``: explicit keep lists and target depths, validated; no search yet."""
    keep, targets, how = {}, {}, {}
    for stack in STACKS:
        text, depth = getattr(args, f"{stack}_layers_to_keep"), getattr(args, f"{stack}_depth")
        if text is None and depth is None:
            continue
        if stack not in layers:
            raise PruneError(f"the model has no {stack} layers (layer stacks: {', '.join(layers) or 'none'})")
        if text is not None:
            keep[stack], how[stack] = pruning.parse_keep_list(text, layers[stack], stack), "layers-to-keep"
        else:
            targets[stack] = pruning.check_depth(depth, layers[stack], stack)
    if args.strategy and not targets:
        raise PruneError("--strategy applies to --encoder-depth / --decoder-depth, none given")
    if not keep and not targets:
        raise PruneError("nothing to prune: give --encoder-layers-to-keep/--encoder-depth and/or "
                         "--decoder-layers-to-keep/--decoder-depth")
    how.update({s: args.strategy or "every-other" for s in targets})
    return keep, targets, how


def choose_layers(args, state: dict, layers: dict, cfg: dict):
    """``(keep, strategy per stack, depths left to search)``. every-other and learned are decided
    here; for search-on-valid only its options are checked (the search runs once the file is
    verified, see :func:`run`)."""
    keep, targets, how = requested_layers(args, layers)
    strategy = args.strategy or "every-other"
    if strategy == "every-other":
        keep.update({s: pruning.every_other(layers[s], d) for s, d in targets.items()})
    elif strategy == "learned":
        model_cfg = cfg.get("model") or {}
        keep.update({s: pruning.learned_keep(state["model"], s, d, model_cfg.get(f"{s}_layerdrop"))
                     for s, d in targets.items()})
    else:
        _check_search_options(args)
        return keep, how, targets
    return keep, how, {}


def _check_search_options(args):
    if not args.data:
        raise PruneError("--strategy search-on-valid needs --data (the task's binarized data directory)")
    if not Path(args.data).is_dir():
        raise PruneError(f"--data {args.data}: no such directory")
    if args.max_batches < 1 or args.max_tokens < 1:
        raise PruneError("--max-batches and --max-tokens must be >= 1")


def _search(args, state, layers, targets):
    from fairseq_layerdrop import search  # imports fairseq's task machinery: only when searching

    try:
        evaluator = search.ValidLoss(state, args.data, args.valid_subset, args.max_batches, args.max_tokens)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise PruneError(f"search-on-valid: cannot load {args.valid_subset!r} from {args.data}: {err}") from None
    keep, history = search.greedy_search(evaluator, layers, targets, quiet=args.quiet)
    record = {"data": str(args.data), "subset": args.valid_subset, "max_batches": args.max_batches,
              "max_tokens": args.max_tokens, "loss_bits": history}
    return keep, record


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f} MB"


def summary(record: dict, params: tuple, sizes: tuple, out, dry_run: bool) -> str:
    stacks = []
    for stack, kept in record["kept"].items():
        before = record["layers_before"][stack]
        detail = "all" if len(kept) == before else ",".join(map(str, kept))
        stacks.append(f"{stack} {before} -> {len(kept)} [{detail}]")
    before, after = record["arch_before"], record["arch_after"]
    if record["stock"]:
        arch = f"{before} -> {after}" if before != after else f"{after}"
        arch += " (stock fairseq: loads without --user-dir)"
    else:
        arch = f"{after} (plugin architecture: load with --user-dir)"
    size = f"file {_mb(sizes[0])} -> {'~' if dry_run else ''}{_mb(sizes[1])}"
    head = "dry run, nothing written: would keep" if dry_run else "pruned:"
    tail = "" if dry_run else f"; wrote {out}"
    return f"{head} {', '.join(stacks)}; parameters {params[0]:,} -> {params[1]:,}; {size}; arch {arch}{tail}"


def run(args) -> str:
    """Validate everything cheap first (paths, file type, options), so bad input costs no reading:
    the load is memory-mapped; the full read (sha256 + CRC check) comes after, then any search."""
    if not args.dry_run:
        if not args.output:
            raise PruneError("the output path is required (or pass --dry-run)")
        checkpoint_io.check_output_path(args.input, args.output, args.force)
    path = checkpoint_io.check_input_path(args.input)
    state = checkpoint_io.load_checkpoint(path, trust=args.trust_checkpoint)
    pages = checkpoint_io.mapped_pages(path)  # the input's mapping, released while writing
    layers = pruning.layer_stacks(state["model"])
    cfg = pruning.saved_config(state)
    keep, how, to_search = choose_layers(args, state, layers, cfg)  # bad options raise before any output
    log = (lambda msg: None) if args.quiet else (lambda msg: print(f"{PROG}: {msg}", file=sys.stderr))
    log(f"loaded {path} (memory-mapped, {'TRUSTED full pickle' if args.trust_checkpoint else 'safe loader'}); "
        f"architecture {pruning.model_arch(cfg)}; layers " + ", ".join(f"{s} {n}" for s, n in layers.items()))
    size = path.stat().st_size
    with tqdm(total=size, unit="B", unit_scale=True, desc="verify + sha256", file=sys.stderr,
              disable=args.quiet, leave=False) as bar:
        sha = checkpoint_io.hash_and_verify(path, progress=bar.update)
    extra = {}
    if to_search:
        found, extra["search"] = _search(args, state, layers, to_search)
        keep.update(found)
    new = pruning.prune_state(state, keep, strategy=how, to_stock=not args.keep_plugin_arch,
                              source_sha256=sha, source_name=path.name, extra_record=extra)
    params = (pruning.count_parameters(state["model"]), pruning.count_parameters(new["model"]))
    if args.dry_run:
        return summary(new[pruning.PROVENANCE_KEY], params, (size, checkpoint_io.serialized_size(new)),
                       None, True)
    log(f"writing {args.output} (temporary file, then rename)")
    checkpoint_io.atomic_save(new, args.output, release=pages)
    return summary(new[pruning.PROVENANCE_KEY], params, (size, Path(args.output).stat().st_size),
                   args.output, False)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        line = run(args)
    except (PruneError, CheckpointError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
