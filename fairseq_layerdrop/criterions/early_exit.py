"""``--layerdrop-early-exit-layers`` / ``-weight`` of the decoder criteria (maths: ``early_exit.py``).

:class:`EarlyExitMixin` goes first in the bases of ``cross_entropy_layerdrop`` and
``label_smoothed_cross_entropy_layerdrop``. It reads the decoder's ``inner_states`` of the
forward the criterion already runs (a forward hook, for that call only), applies the decoder's
own output head at each exit depth and adds ``weight * mean(exit losses)`` to the training loss.
Validation losses (early stopping, ``checkpoint_best.pt``) stay the full model's; the exit loss
is logged in both as ``exit_loss`` (base 2, per token, like ``loss``). The options carry the
plugin's ``layerdrop_`` prefix, so the prune tool drops them from files written for stock fairseq.

An exit depth the decoder cannot have is refused when the criterion is built, like a bad
option: fairseq-train builds the model first and its criterion options sit in the same config,
so the decoder's depth is known then (one line ``<program>: error: ...``, exit 2). A criterion built from a config that
is not part of a whole training config only finds out at its first forward (``ValueError``).
"""
import math
import os
import sys

from fairseq import metrics

from fairseq_layerdrop.early_exit import check_exit_weight, check_exits, exit_logits, parse_exit_layers
from fairseq_layerdrop.options import tighten_parser


def _decoder(model):
    """The model's decoder, under any data-parallel wrappers (``.module``)."""
    while not hasattr(model, "decoder") and hasattr(model, "module"):
        model = model.module
    return model.decoder


def _configured_decoder_depth(cfg):
    """The decoder depth the training config builds, or None when ``cfg`` stands alone.

    ``cfg`` is fairseq-train's criterion node; its parent is the whole config, whose ``model``
    is an OmegaConf node (dataclass models) or an argparse Namespace (legacy ones).
    """
    parent = cfg._get_parent() if hasattr(cfg, "_get_parent") else None
    model_cfg = getattr(parent, "model", None) if parent is not None else None
    keep = getattr(model_cfg, "decoder_layers_to_keep", None)
    if keep:
        return len(str(keep).split(","))
    depth = getattr(model_cfg, "decoder_layers", None)
    return depth if isinstance(depth, int) else None


class EarlyExitMixin:
    """Adds ``weight * mean(exit losses)`` to a decoder criterion's training loss (first in the bases)."""

    early_exits = ()  # set by build_criterion from the options; a criterion built by hand has none
    early_exit_weight = 1.0
    share_exit_states = True  # False computes every exit separately (benchmarks/bench_early_exit.py)

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        tighten_parser(parser)  # bad values: argparse's one line and exit 2

    @classmethod
    def build_criterion(cls, cfg, task):
        criterion = super().build_criterion(cfg, task)
        criterion.early_exits = parse_exit_layers(getattr(cfg, "layerdrop_early_exit_layers", ""))
        criterion.early_exit_weight = check_exit_weight(getattr(cfg, "layerdrop_early_exit_weight", 1.0))
        depth = _configured_decoder_depth(cfg)
        if criterion.early_exits and depth is not None:
            try:
                check_exits(criterion.early_exits, depth)
            except ValueError as error:  # a bad option: reported as argparse reports one
                print(f"{os.path.basename(sys.argv[0]) or 'fairseq'}: error: {error}", file=sys.stderr)
                raise SystemExit(2) from None
        return criterion

    def forward(self, model, sample, reduce=True):
        if not self.early_exits:
            return super().forward(model, sample, reduce=reduce)
        decoder, seen = _decoder(model), []
        handle = decoder.register_forward_hook(lambda module, args, output: seen.append(output))
        try:
            loss, sample_size, logging_output = super().forward(model, sample, reduce=reduce)
        finally:
            handle.remove()
        exit_loss = self._exit_loss(model, sample, decoder, seen[-1], reduce)
        logging_output["exit_loss"] = exit_loss.data
        if model.training:
            loss = loss + self.early_exit_weight * exit_loss
        return loss, sample_size, logging_output

    def _exit_loss(self, model, sample, decoder, decoder_out, reduce):
        """Mean over exits of the criterion's own loss on the exit logits (summed over tokens).

        A layer LayerDrop skipped passes its input on as the same tensor, so two exits with only
        skipped layers between them read one state: its loss is computed once and counted for
        each (the same value and gradient, one output layer less per repeat). Not with an
        adaptive softmax, whose tail has its own dropout: there each exit draws its own.
        """
        extra = decoder_out[1]
        inner = extra["inner_states"]
        check_exits(self.early_exits, len(inner) - 1)
        share = self.share_exit_states and getattr(decoder, "adaptive_softmax", None) is None
        by_state = {}  # id of a state in ``inner`` (alive until we return) -> its loss
        losses = []
        for e in self.early_exits:
            key = id(inner[e]) if share else e
            if key not in by_state:
                logits = exit_logits(decoder, inner[e])
                by_state[key] = self.compute_loss(model, (logits, extra), sample, reduce=reduce)[0]
            losses.append(by_state[key])
        return sum(losses) / len(losses)

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        if not any("exit_loss" in log for log in logging_outputs):
            return
        total = sum(log.get("exit_loss", 0) for log in logging_outputs)
        size = sum(log.get("sample_size", 0) for log in logging_outputs)
        metrics.log_scalar("exit_loss", total / max(size, 1) / math.log(2), size, round=3)
