"""fairseq-layerdrop-prune: rewrite a checkpoint to chosen layers, loadable by stock fairseq.

    fairseq-layerdrop-prune INPUT.pt OUTPUT.pt --decoder-depth 3 [--strategy every-other]
    fairseq-layerdrop-prune INPUT.pt OUTPUT.pt --encoder-layers-to-keep 0,2,4 --dry-run
    python -m fairseq_layerdrop.cli.prune ...

Parses, loads safely (``checkpoint_io``), picks the layers, calls the pure
``pruning.prune_state`` and writes all or nothing (``output_file``). Every failure: one line
``fairseq-layerdrop-prune: error: ...`` and exit status 2 (``cli.boundary``); the input is never
modified. Progress goes to stderr only when it is a terminal. See docs/pruning.md.
"""
import argparse
import contextlib
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from fairseq_layerdrop import checkpoint_io, output_file, pruning, roberta_checks
from fairseq_layerdrop.cli import boundary
from fairseq_layerdrop.errors import PruneError, show
from fairseq_layerdrop.layer_keys import parse_index
from fairseq_layerdrop.pruning import STACKS

PROG = "fairseq-layerdrop-prune"
STRATEGIES = ("every-other", "search-on-valid", "learned")


def _index_type(kind: str, expected: str):
    """argparse type: a plain ASCII-digit number (``parse_index``), else the one-line ``expected`` error."""
    def parse(value: str) -> int:
        try:
            return parse_index(value, kind)
        except PruneError:
            raise argparse.ArgumentTypeError(f"expected {expected} (ASCII digits), got {show(ascii(value))}") from None
    return parse


_depth = _index_type("depth", "a number of layers")
_count = _index_type("count", "a positive number")


def build_parser() -> argparse.ArgumentParser:
    p = boundary.OneLineParser(prog=PROG, description="Prune a LayerDrop-trained fairseq checkpoint to fewer "
                               "layers; the output loads in stock fairseq-generate / fairseq-eval-lm with no extra flags.")
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
    p.add_argument("--max-batches", type=_count, default=20,
                   help="search-on-valid: score only the first N batches (default: 20)")
    p.add_argument("--max-tokens", type=_count, default=4096,
                   help="search-on-valid: tokens per batch (default: 4096)")
    p.add_argument("--keep-plugin-arch", action="store_true",
                   help="keep this plugin's architecture (the output then needs --user-dir) instead "
                        "of writing it under the stock fairseq architecture it extends")
    p.add_argument("--dry-run", action="store_true", help="print what would be kept and the sizes; write nothing")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists (never the input)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="load INPUT with full pickle (runs code from the file!) when it needs classes "
                        "outside the safe allow-list; only for files from a trusted source")
    p.add_argument("--quiet", action="store_true",
                   help="no progress output, fairseq's log lines included (results on stdout stay: the "
                        "summary line, search-on-valid's loss after each removal); progress is only "
                        "shown when stderr is a terminal")
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
        raise PruneError(f"--data {show(args.data)}: no such directory")
    if args.max_batches < 1 or args.max_tokens < 1:
        raise PruneError("--max-batches and --max-tokens must be >= 1")


@contextlib.contextmanager
def _fairseq_logs(quiet: bool):
    """With ``quiet``, fairseq's loggers print nothing below ERROR while searching (its INFO lines
    are progress: on a terminal only, and never with --quiet)."""
    logger, level = logging.getLogger("fairseq"), logging.getLogger("fairseq").level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _search(args, state, layers, targets):
    """Run the search; any failure of fairseq on this data and checkpoint is one line."""
    where = f"search-on-valid: cannot score {show(repr(args.valid_subset))} of {show(args.data)}"
    quiet = not _progress(args)
    with _fairseq_logs(quiet):
        try:
            from fairseq_layerdrop import search  # imports fairseq's task machinery: only when searching

            evaluator = search.ValidLoss(state, args.data, args.valid_subset, args.max_batches, args.max_tokens)
            keep, history = search.greedy_search(evaluator, layers, targets, quiet=quiet)
        except (PruneError, MemoryError, boundary.Interrupted, KeyboardInterrupt):
            raise
        except Exception as err:  # fairseq raises anything on a data set that does not fit the model
            raise PruneError(f"{where} with this checkpoint: {show(type(err).__name__)}: "
                             f"{show(str(err).strip().splitlines()[0] if str(err).strip() else '')}") from None
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


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def run(args) -> str:
    """Validate everything cheap first (paths, file type, options), so bad input costs no reading:
    the load is memory-mapped; the full read (sha256 + CRC check) comes after, then any search."""
    if not args.dry_run:
        if not args.output:
            raise PruneError("the output path is required (or pass --dry-run)")
        output_file.check_output_path(args.input, args.output, args.force)
    with checkpoint_io.open_input(args.input) as src:
        return _prune(args, src)


def _prune(args, src) -> str:
    state = checkpoint_io.load_checkpoint(src, trust=args.trust_checkpoint)
    state = roberta_checks.check_roberta(state)  # RoBERTa: old key names renamed, bad heads refused
    pages = output_file.mapped_pages(src)  # the input's mapping, released while writing
    layers = pruning.layer_stacks(state["model"])
    cfg = pruning.saved_config(state)
    keep, how, to_search = choose_layers(args, state, layers, cfg)  # bad options raise before any output
    show_progress = _progress(args)
    log = (lambda msg: print(f"{PROG}: {msg}", file=sys.stderr)) if show_progress else (lambda msg: None)
    log(f"loaded {src.where} (memory-mapped, {'TRUSTED full pickle' if args.trust_checkpoint else 'safe loader'}); "
        f"architecture {show(pruning.model_arch(cfg))}; layers " + ", ".join(f"{s} {n}" for s, n in layers.items()))
    size = src.stat.st_size
    with tqdm(total=size, unit="B", unit_scale=True, desc="verify + sha256", file=sys.stderr,
              disable=not show_progress, leave=False) as bar:
        sha = checkpoint_io.hash_and_verify(src, progress=bar.update)
    extra = {}
    if to_search:
        found, extra["search"] = _search(args, state, layers, to_search)
        keep.update(found)
    new = pruning.prune_state(state, keep, strategy=how, to_stock=not args.keep_plugin_arch,
                              source_sha256=sha, source_name=src.path.name, extra_record=extra)
    params = (pruning.count_parameters(state["model"]), pruning.count_parameters(new["model"]))
    if args.dry_run:
        return summary(new[pruning.PROVENANCE_KEY], params, (size, output_file.serialized_size(new)),
                       None, True)
    log(f"writing {show(args.output)} (unnamed until complete, then linked)")
    written = output_file.save_exclusive(new, args.output, force=args.force, release=pages, source=src.stat)
    return summary(new[pruning.PROVENANCE_KEY], params, (size, written), show(args.output), False)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return boundary.run(PROG, lambda: print(run(args)))


if __name__ == "__main__":
    sys.exit(main())
