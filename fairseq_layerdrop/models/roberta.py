"""``roberta_layerdrop``: fairseq's RoBERTa (masked LM, sentence classification) with plugin LayerDrop.

The paper's sentence-representation setting (Fan et al. 2020, Sec. 5): RoBERTa pretrained with
LayerDrop 0.2, pruned (to 6 of 12 layers for ``_base``), then fine-tuned on the task. fairseq
builds the model; we only swap the ``layers`` container of its sentence encoder
(``encoder.sentence_encoder.layers.N``, parameter names unchanged) for a :class:`LayerDropList`.
Presets mirror ``roberta_base`` / ``roberta_large``; ``_tiny`` is for tests and the CPU runs.
"""
from fairseq.dataclass.utils import gen_parser_from_dataclass
from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta import RobertaModel
from fairseq.models.roberta.model import base_architecture, roberta_base_architecture, roberta_large_architecture

from fairseq_layerdrop.models.common import LayerDropModelMixin, attach_layerdrop, set_defaults
from fairseq_layerdrop.options import LayerDropOptions, tighten_parser

# learned drop logits of the sentence encoder, one per layer (see models/common.py)
LEARNED_LOGITS = "encoder.sentence_encoder.layers.layerdrop_logits"


def subset_roberta_logits(state_dict, model_cfg):
    """fairseq's load-time pruning (``encoder_layers_to_keep``) for the learned drop logits.

    ``prune_state_dict`` renumbers ``.layers.N.`` keys but leaves the per-layer logits whole.
    """
    keep = getattr(model_cfg, "encoder_layers_to_keep", None) if model_cfg is not None else None
    if not keep or LEARNED_LOGITS not in state_dict:
        return state_dict
    idx = sorted(int(i) for i in str(keep).split(","))
    if len(idx) >= state_dict[LEARNED_LOGITS].numel():
        return state_dict
    return {**state_dict, LEARNED_LOGITS: state_dict[LEARNED_LOGITS][idx]}


@register_model("roberta_layerdrop")
class RobertaLayerDropModel(LayerDropModelMixin, RobertaModel):
    """RobertaModel whose sentence encoder stack uses :class:`LayerDropList`."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        gen_parser_from_dataclass(parser, LayerDropOptions())
        tighten_parser(parser)
        # stock RoBERTa gives --encoder-layerdrop the default 0, which would hide the presets' rate
        parser.set_defaults(encoder_layerdrop=None)

    @classmethod
    def build_model(cls, args, task):
        model = super().build_model(args, task)
        attach_layerdrop(model.encoder.sentence_encoder, args, "encoder")
        return model

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        state_dict = subset_roberta_logits(state_dict, model_cfg if model_cfg is not None else args)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)


@register_model_architecture("roberta_layerdrop", "roberta_layerdrop")
def roberta_layerdrop(args):
    set_defaults(args, encoder_layerdrop=0.0)
    base_architecture(args)


@register_model_architecture("roberta_layerdrop", "roberta_layerdrop_tiny")
def roberta_layerdrop_tiny(args):
    set_defaults(args, encoder_layers=8, encoder_embed_dim=64, encoder_ffn_embed_dim=256,
                 encoder_attention_heads=4, encoder_layerdrop=0.2)
    base_architecture(args)


@register_model_architecture("roberta_layerdrop", "roberta_layerdrop_base")
def roberta_layerdrop_base(args):
    # the paper's RoBERTa: 12 layers pretrained with LayerDrop 0.2, pruned to 6 for fine-tuning
    set_defaults(args, encoder_layerdrop=0.2)
    roberta_base_architecture(args)


@register_model_architecture("roberta_layerdrop", "roberta_layerdrop_large")
def roberta_layerdrop_large(args):
    set_defaults(args, encoder_layerdrop=0.2)
    roberta_large_architecture(args)
