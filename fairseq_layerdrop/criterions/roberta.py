"""RoBERTa's criteria plus the LayerDrop log columns (``ld_encoder_layers`` ...).

``masked_lm_layerdrop`` (pretraining) and ``sentence_prediction_layerdrop`` (fine-tuning a model
that still has LayerDrop) are fairseq's ``masked_lm`` and ``sentence_prediction`` with
:class:`~fairseq_layerdrop.criterions.layerdrop_stats.LayerDropStatsMixin`: the mean number of
encoder layers run per training forward, and the score-function term of learned rates.
"""
from fairseq.criterions import register_criterion
from fairseq.criterions.masked_lm import MaskedLmConfig, MaskedLmLoss
from fairseq.criterions.sentence_prediction import SentencePredictionConfig, SentencePredictionCriterion

from fairseq_layerdrop.criterions.layerdrop_stats import LayerDropStatsMixin


@register_criterion("masked_lm_layerdrop", dataclass=MaskedLmConfig)
class MaskedLmLayerDropCriterion(LayerDropStatsMixin, MaskedLmLoss):
    pass


@register_criterion("sentence_prediction_layerdrop", dataclass=SentencePredictionConfig)
class SentencePredictionLayerDropCriterion(LayerDropStatsMixin, SentencePredictionCriterion):
    pass
