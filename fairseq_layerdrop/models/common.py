"""Swap a fairseq encoder/decoder's ``layers`` for a :class:`LayerDropList`.

fairseq builds its stacks with its own ``LayerDropModuleList`` (one rate,
unseeded draw, positions renumbered) or a plain ``ModuleList``; we keep the
layer modules it built (same parameter names: ``encoder.layers.N.*``) and only
replace the container.
"""
from torch import nn

from fairseq_layerdrop import sublayer
from fairseq_layerdrop.layerdrop import LayerDropList
from fairseq_layerdrop.options import stack_settings

_PARTIAL = {"encoder": (sublayer.encoder_partial_forward, sublayer.encoder_branch_count),
            "decoder": (sublayer.decoder_partial_forward, sublayer.decoder_branch_count)}


def attach_layerdrop(module: nn.Module, cfg, stack: str) -> nn.Module:
    """Give ``module`` (a fairseq TransformerEncoder/Decoder) a LayerDrop stack.

    ``stack`` is ``"encoder"`` or ``"decoder"``: it selects the rate
    (``cfg.encoder_layerdrop`` / ``cfg.decoder_layerdrop``), what a skipped
    layer returns, and the mask stream.
    """
    settings = stack_settings(cfg, stack)  # validated here, once
    layers = list(nn.ModuleList.__iter__(module.layers))
    fwd, count = _PARTIAL[stack]
    if settings.granularity == "sublayer":
        for layer in layers:
            sublayer.check_sublayer_support(layer)
    module.layers = LayerDropList(layers, settings, partial_forward=fwd, branch_count=count)
    # fairseq's own list is gone; keep its attribute meaningful for code that reads it
    setattr(module, f"{stack}_layerdrop", settings.p)
    return module


def subset_learned_logits(state_dict, model_cfg):
    """Load-time pruning (``--model-overrides`` ``*_layers_to_keep``) for learned drop logits.

    fairseq's ``prune_state_dict`` renumbers ``.layers.N.`` keys but leaves
    ``<stack>.layers.layerdrop_logits`` (one entry per original layer) whole.
    """
    if model_cfg is None:
        return state_dict
    out = None
    for stack in ("encoder", "decoder"):
        keep = getattr(model_cfg, f"{stack}_layers_to_keep", None)
        key = f"{stack}.layers.layerdrop_logits"
        if keep and key in state_dict:
            out = dict(state_dict) if out is None else out
            idx = sorted(int(i) for i in str(keep).split(","))
            if len(idx) < state_dict[key].numel():
                out[key] = state_dict[key][idx]
    return state_dict if out is None else out


def layerdrop_lists(model: nn.Module):
    """``{stack: LayerDropList}`` for every LayerDrop stack in ``model``.

    Keyed by the list's own stack name (``"encoder"``, ``"decoder"``), not by its module path,
    which a data-parallel wrapper prefixes with ``module.`` (the log columns must not change).
    """
    return {m.settings.stack: m for m in model.modules() if isinstance(m, LayerDropList)}


def expose_learned_log_probs(model: nn.Module, output):
    """Put the learned-rate mask log-probabilities of this forward into the model's output.

    The score-function term of the criterion is the only user of the drop logits. Torch's DDP
    with ``find_unused_parameters`` (fairseq's ``c10d`` backend) walks the autograd graph from
    the forward's outputs: logits not reachable from there are declared unused, then receive
    a gradient anyway ("Expected to mark a variable ready only once"). Listing the log-probs
    under ``extra["layerdrop_log_prob"]`` of the ``(x, extra)`` output makes them reachable.
    Nothing is computed here; a no-op outside training or without learned rates.
    """
    learned = model.__dict__.get("_layerdrop_learned_lists")
    if learned is None:  # found once: no module walk on the training hot path
        learned = [m for m in layerdrop_lists(model).values() if m.settings.learned]
        model.__dict__["_layerdrop_learned_lists"] = learned
    if not learned or not model.training or not isinstance(output, tuple) or len(output) < 2:
        return output
    extra = output[1]
    log_probs = [m.last_log_prob for m in learned if m.last_log_prob is not None]
    if log_probs and isinstance(extra, dict):
        extra["layerdrop_log_prob"] = log_probs
    return output


class LayerDropModelMixin:
    """``forward`` and ``load_state_dict`` of every LayerDrop model (encoder-decoder and LM).

    Put before the fairseq model class in the bases.
    """

    def forward(self, *args, **kwargs):
        return expose_learned_log_probs(self, super().forward(*args, **kwargs))

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        state_dict = subset_learned_logits(state_dict, model_cfg if model_cfg is not None else args)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)


# the "_tiny" preset of the encoder-decoder architectures (transformer_layerdrop_tiny, bart_layerdrop_tiny)
TINY_ENCODER_DECODER = dict(encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_layers=6,
                            encoder_attention_heads=4, decoder_embed_dim=64, decoder_ffn_embed_dim=128,
                            decoder_layers=6, decoder_attention_heads=4, encoder_layerdrop=0.2,
                            decoder_layerdrop=0.2)


def set_defaults(args, **values) -> None:
    """Architecture presets: fill options the user did not set (fairseq's getattr idiom)."""
    for name, value in values.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
