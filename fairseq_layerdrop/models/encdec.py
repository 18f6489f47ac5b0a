"""Shared build hooks for encoder-decoder models (translation, BART summarization)."""
from fairseq.dataclass.utils import gen_parser_from_dataclass

from fairseq_layerdrop.models.common import LayerDropModelMixin, attach_layerdrop
from fairseq_layerdrop.options import LayerDropOptions, tighten_parser


class LayerDropEncoderDecoderMixin(LayerDropModelMixin):
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
