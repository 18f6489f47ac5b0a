"""``bart_layerdrop``: fairseq's BART (summarization) with plugin LayerDrop in both stacks.

Presets mirror ``bart_base`` / ``bart_large``; the paper fine-tunes BART-style
summarization models with LayerDrop 0.2 on CNN/DailyMail. ``_tiny`` is for tests
and the CPU demo.
"""
from fairseq.models import register_model, register_model_architecture
from fairseq.models.bart import BARTModel
from fairseq.models.bart.model import bart_base_architecture, bart_large_architecture

from fairseq_layerdrop.models.common import TINY_ENCODER_DECODER, set_defaults
from fairseq_layerdrop.models.encdec import LayerDropEncoderDecoderMixin


@register_model("bart_layerdrop")
class BARTLayerDropModel(LayerDropEncoderDecoderMixin, BARTModel):
    """BARTModel whose encoder and decoder stacks use :class:`LayerDropList`."""


@register_model_architecture("bart_layerdrop", "bart_layerdrop_tiny")
def bart_layerdrop_tiny(args):
    set_defaults(args, **TINY_ENCODER_DECODER)
    bart_base_architecture(args)


@register_model_architecture("bart_layerdrop", "bart_layerdrop_base")
def bart_layerdrop_base(args):
    set_defaults(args, encoder_layerdrop=0.2, decoder_layerdrop=0.2)
    bart_base_architecture(args)


@register_model_architecture("bart_layerdrop", "bart_layerdrop_large")
def bart_layerdrop_large(args):
    set_defaults(args, encoder_layerdrop=0.2, decoder_layerdrop=0.2)
    bart_large_architecture(args)
