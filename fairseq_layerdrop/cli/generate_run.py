"""The work of ``fairseq-layerdrop-generate`` once its options are checked: load as fairseq-generate
does, pick the draft, decode every sentence of the subset in fairseq-generate's order (batch 1) and
print its lines, the score line and the statistics."""
import ast
import logging
import random
import re
import sys

from fairseq_layerdrop import checkpoint_io
from fairseq_layerdrop import speculative as sp
from fairseq_layerdrop import speculative_decode as sd
from fairseq_layerdrop import speculative_generate as sg
from fairseq_layerdrop.errors import CheckpointError, PruneError, show

TASKS = ("translation", "language_modeling")  # tasks whose generator is a plain SequenceGenerator


def load(cfg):
    """(task, model in eval mode) as fairseq-generate loads them; one line for what fairseq cannot read."""
    import torch
    from fairseq import checkpoint_utils, tasks

    if cfg.task._name not in TASKS:
        raise PruneError(f"task {show(cfg.task._name)} is not supported (only {', '.join(TASKS)})")
    # the prune tool's loader first, on the very file fairseq will read (a "-shard0" file beside the
    # checkpoint replaces it): its checks refuse a hostile or malformed file in one line
    path = checkpoint_utils.get_maybe_sharded_checkpoint_filename(cfg.common_eval.path, "", 0, 1)
    try:
        checkpoint_io.load_checkpoint(path)
    except CheckpointError as err:  # no --trust-checkpoint here: fairseq's own loader is safe-only as well
        raise CheckpointError(re.sub(rf"(;|, or) {checkpoint_io.TRUST_HINT}", "", str(err))) from None
    try:
        task = tasks.setup_task(cfg.task)
    except (OSError, MemoryError):
        raise
    except Exception as err:  # e.g. a data directory without the language pair's dictionaries
        raise PruneError(f"cannot set up task {show(cfg.task._name)} on {show(cfg.task.data)}: {show(err)}") from None
    try:
        models, saved_cfg = checkpoint_utils.load_model_ensemble(
            [cfg.common_eval.path], arg_overrides=ast.literal_eval(cfg.common_eval.model_overrides), task=task)
    except (OSError, MemoryError):
        raise
    except Exception as err:  # fairseq raises many kinds for a file it cannot use
        raise PruneError(f"cannot load {show(cfg.common_eval.path)}: {show(type(err).__name__)}: {show(err)}") from None
    model = models[0]
    if not hasattr(getattr(model, "decoder", None), "layers"):
        raise PruneError(f"{show(cfg.common_eval.path)} has no transformer decoder (translation and language "
                         f"models only)")
    if getattr(model.decoder, "adaptive_softmax", None) is not None:
        raise PruneError(f"{show(cfg.common_eval.path)} has an adaptive softmax output, which is not supported")
    try:
        task.load_dataset(cfg.dataset.gen_subset, task_cfg=saved_cfg.task)
    except Exception as err:
        raise PruneError(f"cannot read subset {show(cfg.dataset.gen_subset)}: {show(err)}") from None
    if torch.cuda.is_available() and not cfg.common.cpu:
        model.cuda()
    model.prepare_for_inference_(cfg)  # eval mode (and fairseq's train() then returns None)
    return task, model


def draft_of(args, decoder) -> list:
    """The decoder layers the draft runs (``PruneError`` for indices or a depth the model lacks)."""
    layers = len(decoder.layers)
    if args.draft_layers is not None:
        if args.draft_layers[-1] >= layers:
            raise PruneError(f"--draft-layers: layer {args.draft_layers[-1]} does not exist (the decoder has "
                             f"layers 0..{layers - 1})")
        return list(args.draft_layers)
    if args.draft_depth > layers:
        raise PruneError(f"--draft-depth {args.draft_depth} is more than the decoder's {layers} layers")
    logits, mean = sp.learned_rates_of(decoder)
    return sp.draft_layers(layers, args.draft_depth, args.draft_strategy, logits, mean)


def batches(cfg, task, model):
    """fairseq-generate's iterator over the subset with one sentence a batch (its order)."""
    from fairseq import utils
    from fairseq.logging import progress_bar

    itr = task.get_batch_iterator(
        dataset=task.dataset(cfg.dataset.gen_subset), max_tokens=cfg.dataset.max_tokens, max_sentences=1,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        ignore_invalid_inputs=cfg.dataset.skip_invalid_size_inputs_valid_test,
        required_batch_size_multiple=cfg.dataset.required_batch_size_multiple, seed=cfg.common.seed,
        num_workers=cfg.dataset.num_workers, data_buffer_size=cfg.dataset.data_buffer_size,
    ).next_epoch_itr(shuffle=False)
    return progress_bar.progress_bar(itr, log_format=cfg.common.log_format, log_interval=cfg.common.log_interval,
                                     default_log_format="tqdm" if not cfg.common.no_progress_bar else "simple")


class Printer:
    """fairseq-generate's per-sentence lines and its scorer (same dictionaries, post-processing, BPE)."""

    def __init__(self, cfg, task):
        from fairseq import scoring

        self.cfg, self.src_dict, self.tgt_dict = cfg, task.source_dictionary, task.target_dictionary
        self.tokenizer, self.bpe = task.build_tokenizer(cfg.tokenizer), task.build_bpe(cfg.bpe)
        self.scorer = scoring.build_scorer(cfg.scoring, self.tgt_dict)
        self.strip = {self.tgt_dict.eos()}
        self.has_target = False

    def _decode(self, text: str) -> str:
        if self.bpe is not None:
            text = self.bpe.decode(text)
        return text if self.tokenizer is None else self.tokenizer.decode(text)

    def sentence(self, sample: dict, decoded: sg.Decoded) -> None:
        from fairseq import utils

        post, quiet = self.cfg.common_eval.post_process, self.cfg.common_eval.quiet
        sample_id, pad = int(sample["id"][0]), self.tgt_dict.pad()
        src_str = self._decode(self.src_dict.string(utils.strip_pad(sample["net_input"]["src_tokens"][0], pad), post))
        target = sample.get("target")
        self.has_target = target is not None
        if not quiet:
            print(f"S-{sample_id}\t{src_str}")
        if target is not None:
            target_str = self._decode(self.tgt_dict.string(utils.strip_pad(target[0], pad).int().cpu(), post,
                                                           escape_unk=True, extra_symbols_to_ignore=self.strip))
            if not quiet:
                print(f"T-{sample_id}\t{target_str}")
        _, hypo_str, _ = utils.post_process_prediction(
            hypo_tokens=decoded.tokens.int().cpu(), src_str=src_str, alignment=None, align_dict=None,
            tgt_dict=self.tgt_dict, remove_bpe=post, extra_symbols_to_ignore=self.strip)
        detok = self._decode(hypo_str)
        if not quiet:
            print("\n".join(sg.lines(sample_id, decoded, hypo_str, detok)))
        if target is not None:  # as fairseq-generate scores: strings, or token ids (re-encoded after post-processing)
            if hasattr(self.scorer, "add_string"):
                self.scorer.add_string(target_str, detok)
            elif post is not None:
                self.scorer.add(self.tgt_dict.encode_line(target_str, add_if_not_exist=True),
                                self.tgt_dict.encode_line(detok, add_if_not_exist=True))
            else:
                self.scorer.add(utils.strip_pad(target[0], pad).int().cpu(), decoded.tokens.int().cpu())


def run(args) -> None:
    from fairseq import utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    logging.getLogger().setLevel(logging.WARNING)  # importing fairseq sets DEBUG: its chatter would bury the lines
    cfg = convert_namespace_to_omegaconf(args)
    utils.import_user_module(cfg.common)
    task, model = load(cfg)
    keep = draft_of(args, model.decoder)
    dictionary = model.decoder.dictionary  # a language model may start from bos (--add-bos-token)
    bos = dictionary.bos() if getattr(getattr(task, "args", None), "add_bos_token", False) else dictionary.eos()
    printer, total, seconds, sentences = Printer(cfg, task), sd.DecodeStats(), 0.0, 0
    compare = generator = None
    if args.compare:
        compare, generator = sg.Comparison(), task.build_generator([model], cfg.generation)
    for sample in batches(cfg, task, model):
        if "net_input" not in sample:
            continue
        sample = utils.move_to_cuda(sample) if next(model.parameters()).is_cuda else sample
        decoders = {"ours": lambda: sg.decode(model, sample, cfg.generation, keep, args.draft_tokens,
                                              args.draft_confidence, bos)}
        if compare is not None:
            decoders.update(plain=lambda: sg.decode(model, sample, cfg.generation, None, args.draft_tokens, bos=bos),
                            stock=lambda: sg.stock(task, generator, model, sample, cfg.generation))
        order = random.Random(int(sample["id"][0])).sample(sorted(decoders), len(decoders))
        out = {name: decoders[name]() for name in order}  # --compare: an order of its own for each sentence
        ours = out["ours"]
        printer.sentence(sample, ours)
        if ours.stats is not None:  # None: nothing was decoded (an end-of-sentence inside the forced prefix)
            total.add(ours.stats)
        seconds, sentences = seconds + ours.seconds, sentences + 1
        if compare is not None:
            line = compare.add(model, sample, ours, out["plain"], out["stock"], bos)
            if line:
                print(f"{line}", file=sys.stderr)
    if printer.has_target:
        print(f"Generate {cfg.dataset.gen_subset} with beam=1: {printer.scorer.result_string()}")
    print(sg.summary(total, sentences, seconds, keep, len(model.decoder.layers), args.draft_tokens))
    if compare is not None:
        print(compare.summary())
