"""``transformer_lm_layerdrop``: fairseq's decoder-only language model with plugin LayerDrop.

The ``_wiki103`` preset is the adaptive-input WikiText-103 model (16 decoder
layers) that the paper trains with LayerDrop 0.2 and prunes to 8 layers;
``_tiny`` is for tests and the CPU demo.
"""
from dataclasses import dataclass, field
from typing import Optional

from fairseq.models import register_model, register_model_architecture
from fairseq.models.transformer_lm import (
    TransformerLanguageModel,
    TransformerLanguageModelConfig,
    base_lm_architecture,
    transformer_lm_baevski_wiki103,
)
from omegaconf import II

from fairseq_layerdrop.models.common import LayerDropModelMixin, attach_layerdrop, set_defaults
from fairseq_layerdrop.options import LayerDropOptions, tighten_parser


@dataclass
class TransformerLMLayerDropConfig(TransformerLanguageModelConfig, LayerDropOptions):
    layerdrop_seed: Optional[int] = field(
        default=II("common.seed"), metadata={"help": "seed of the LayerDrop masks (default: --seed)"}
    )


@register_model("transformer_lm_layerdrop", dataclass=TransformerLMLayerDropConfig)
class TransformerLMLayerDropModel(LayerDropModelMixin, TransformerLanguageModel):
    """TransformerLanguageModel whose decoder stack uses :class:`LayerDropList`."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        tighten_parser(parser)

    @classmethod
    def build_model(cls, args, task):
        model = super().build_model(args, task)
        attach_layerdrop(model.decoder, args, "decoder")
        return model


@register_model_architecture("transformer_lm_layerdrop", "transformer_lm_layerdrop_tiny")
def transformer_lm_layerdrop_tiny(args):
    set_defaults(args, decoder_embed_dim=64, decoder_ffn_embed_dim=128, decoder_layers=8,
              decoder_attention_heads=4, decoder_layerdrop=0.2)
    base_lm_architecture(args)


@register_model_architecture("transformer_lm_layerdrop", "transformer_lm_layerdrop_wiki103")
def transformer_lm_layerdrop_wiki103(args):
    set_defaults(args, decoder_layers=16, decoder_layerdrop=0.2)
    transformer_lm_baevski_wiki103(args)
