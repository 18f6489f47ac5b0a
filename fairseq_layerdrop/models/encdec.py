"""Shared build hooks for encoder-decoder models (translation, BART summarization)."""
from fairseq.dataclass.utils import gen_parser_from_dataclass

from fairseq_layerdrop.models.common import attach_layerdrop, expose_learned_log_probs, subset_learned_logits
from fairseq_layerdrop.options import LayerDropOptions, tighten_parser


class LayerDropEncoderDecoderMixin:
    """Put before a fairseq ``TransformerModel`` subclass in the bases: adds options and
    replaces the encoder's and decoder's layer lists by LayerDrop lists."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        gen_parser_from_dataclass(parser, LayerDropOptions())
        tighten_parser(parser)

    @classmethod
    def build_encoder(cls, args, src_dict, embed_tokens):
        return attach_layerdrop(super().build_encoder(args, src_dict, embed_tokens), args, "encoder")

    @classmethod
    def build_decoder(cls, args, tgt_dict, embed_tokens):
        return attach_layerdrop(super().build_decoder(args, tgt_dict, embed_tokens), args, "decoder")

    def forward(self, *args, **kwargs):
        return expose_learned_log_probs(self, super().forward(*args, **kwargs))

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        state_dict = subset_learned_logits(state_dict, model_cfg if model_cfg is not None else args)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
