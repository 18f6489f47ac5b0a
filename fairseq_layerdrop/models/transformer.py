"""``transformer_layerdrop``: fairseq's translation Transformer with plugin LayerDrop.

Presets follow the paper's translation setups (Fan et al. 2020, Sec. 5):
IWSLT14 De-En (6-6 layers, ``transformer_iwslt_de_en`` sizes) and WMT16 En-De
"big" with a 12-layer encoder and 6-layer decoder; ``*_tiny`` is for tests and
the CPU demo. Only the defaults differ from stock; every option can be overridden.
"""
from fairseq.models import register_model, register_model_architecture
from fairseq.models.transformer import TransformerModel
from fairseq.models.transformer.transformer_legacy import (
    base_architecture,
    transformer_iwslt_de_en,
    transformer_vaswani_wmt_en_de_big,
)

from fairseq_layerdrop.models.common import TINY_ENCODER_DECODER, set_defaults
from fairseq_layerdrop.models.encdec import LayerDropEncoderDecoderMixin


@register_model("transformer_layerdrop")
class TransformerLayerDropModel(LayerDropEncoderDecoderMixin, TransformerModel):
    """TransformerModel whose encoder and decoder stacks use :class:`LayerDropList`."""


@register_model_architecture("transformer_layerdrop", "transformer_layerdrop")
def transformer_layerdrop(args):
    base_architecture(args)


@register_model_architecture("transformer_layerdrop", "transformer_layerdrop_tiny")
def transformer_layerdrop_tiny(args):
    set_defaults(args, **TINY_ENCODER_DECODER)
    base_architecture(args)


@register_model_architecture("transformer_layerdrop", "transformer_layerdrop_iwslt_de_en")
def transformer_layerdrop_iwslt_de_en(args):
    set_defaults(args, encoder_layerdrop=0.2, decoder_layerdrop=0.2)
    transformer_iwslt_de_en(args)


@register_model_architecture("transformer_layerdrop", "transformer_layerdrop_wmt_en_de_big")
def transformer_layerdrop_wmt_en_de_big(args):
    # the paper's WMT16 En-De model: 12 encoder layers, 6 decoder layers, LayerDrop 0.2
    set_defaults(args, encoder_layers=12, decoder_layers=6, encoder_layerdrop=0.2,
              decoder_layerdrop=0.2)
    transformer_vaswani_wmt_en_de_big(args)
