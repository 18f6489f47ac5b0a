"""fairseq-layerdrop-generate: fairseq-generate --beam 1 with self-speculative decoding.

A sub-network of the decoder's own layers (a LayerDrop model's pruned depth) drafts --draft-tokens
tokens; the full decoder checks them in one forward and keeps the agreeing ones plus its own next
token. The output is the full model's greedy output, the H-/D-/P- lines of fairseq-generate
--beam 1 (up to float32 near-ties; --compare checks and logs them), faster when drafts are right.

    fairseq-layerdrop-generate DATA_BIN --path CKPT --beam 1 --batch-size 1 \\
        --draft-depth 3 --draft-strategy first --draft-tokens 3 [--compare]

Translation and language models (a language model continues each input, or its first
--prefix-size target tokens, as fairseq-generate does), greedy, one sentence at a time. Every option
of fairseq-generate that would decode another way (beam > 1, sampling, ensembles, constraints,
n-gram blocking, LM fusion, ...) is refused with exit status 2 and one line.
"""
import sys

from fairseq_layerdrop.cli import boundary
from fairseq_layerdrop.errors import PruneError, one_line, show

PROG = "fairseq-layerdrop-generate"


def _layer_list(text: str) -> list:
    import argparse

    try:
        layers = [boundary.whole_number(item.strip()) for item in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer indices, got {show(repr(text))}") from None
    if layers != sorted(set(layers)):
        raise argparse.ArgumentTypeError(f"layer indices must increase without repeats, got {show(repr(text))}")
    return layers


def _probability(text: str) -> float:
    import argparse

    value = boundary.positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {show(repr(text))}")
    return value


def build_parser():
    """fairseq-generate's parser plus the draft options; usage errors are one line, exit 2."""
    from fairseq import options

    parser = options.get_generation_parser()
    parser.prog = PROG
    parser.error = lambda message: parser.exit(2, f"{PROG}: error: {one_line(message)}\n")
    group = parser.add_argument_group("self-speculative decoding (fairseq-layerdrop)")
    which = group.add_mutually_exclusive_group(required=True)
    which.add_argument("--draft-layers", type=_layer_list, help="the decoder layers the draft runs, e.g. 0,2,4")
    which.add_argument("--draft-depth", type=boundary.positive_int, help="the draft's number of decoder layers")
    from fairseq_layerdrop.speculative import STRATEGIES

    group.add_argument("--draft-strategy", choices=STRATEGIES, default="every-other",
                       help="which --draft-depth layers: the prune tool's every other, the first N, or the "
                            "N with the lowest learned drop rates")
    group.add_argument("--draft-tokens", type=boundary.positive_int, default=3, help="tokens drafted per verify step")
    group.add_argument("--draft-confidence", type=_probability, default=None,
                       help="stop a step's drafting at a draft token whose probability is below this")
    group.add_argument("--compare", action="store_true",
                       help="also decode each sentence without drafting and with fairseq's SequenceGenerator: "
                            "time all three, check the output is the same, log each difference's top-two gap")
    return parser


# (option, value fairseq-generate uses by default, what to say): anything else decodes another way
_MUST_BE = (
    ("beam", 1, "only greedy decoding: pass --beam 1"),
    ("nbest", 1, "one hypothesis per sentence: --nbest 1"),
    ("sampling", False, "--sampling is not supported (greedy only)"),
    ("sampling_topk", -1, "--sampling-topk is not supported (greedy only)"),
    ("sampling_topp", -1.0, "--sampling-topp is not supported (greedy only)"),
    ("constraints", None, "--constraints are not supported"),
    ("diverse_beam_groups", -1, "--diverse-beam-groups is not supported"),
    ("diversity_rate", -1.0, "--diversity-rate is not supported"),
    ("match_source_len", False, "--match-source-len is not supported"),
    ("no_repeat_ngram_size", 0, "--no-repeat-ngram-size is not supported"),
    ("lm_path", None, "--lm-path (language model fusion) is not supported"),
    ("unkpen", 0, "--unkpen is not supported"),
    ("temperature", 1.0, "--temperature is not supported"),
    ("print_alignment", None, "--print-alignment is not supported"),
    ("replace_unk", None, "--replace-unk is not supported"),
    ("score_reference", False, "--score-reference is not supported"),
    ("retain_dropout", False, "--retain-dropout is not supported"),
    ("print_step", False, "--print-step is not supported"),
    ("retain_iter_history", False, "--retain-iter-history is not supported"),
    ("fp16", False, "--fp16 is not supported (float32)"),
    ("bf16", False, "--bf16 is not supported (float32)"),
    ("results_path", None, "--results-path is not supported: redirect standard output"),
    ("checkpoint_suffix", "", "--checkpoint-suffix is not supported: give --path the file itself"),
    ("checkpoint_shard_count", 1, "sharded checkpoints are not supported"),
)


def check(args) -> None:
    """Refuses (``PruneError``, one line) what would not be ``fairseq-generate --beam 1``'s decoding."""
    for name, default, message in _MUST_BE:
        value = getattr(args, name, default)
        if value != default:
            raise PruneError(f"{message} (got --{name.replace('_', '-')} {show(repr(value))})")
    if args.batch_size not in (None, 1):
        raise PruneError(f"decodes one sentence at a time: pass --batch-size 1 (got {args.batch_size})")
    if args.path is None:
        raise PruneError("--path is required")
    if len(args.path.split(":")) > 1:
        raise PruneError(f"ensembles are not supported: give --path one checkpoint (got {show(args.path)})")
    if args.min_len > args.max_len_b and args.max_len_a == 0:
        raise PruneError(f"--min-len {args.min_len} is larger than --max-len-b {args.max_len_b}")
    args.batch_size = 1


def parse_args(argv):
    from fairseq import options

    import fairseq_layerdrop

    fairseq_layerdrop.register()
    return options.parse_args_and_arch(build_parser(), argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def work():
        from fairseq_layerdrop.cli import generate_run

        check(args)
        generate_run.run(args)
    return boundary.run(PROG, work)


if __name__ == "__main__":
    sys.exit(main())
