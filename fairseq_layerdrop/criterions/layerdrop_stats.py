"""Cross-entropy criteria that also log how many layers LayerDrop actually ran.

``cross_entropy_layerdrop`` and ``label_smoothed_cross_entropy_layerdrop`` are
fairseq's criteria plus, per stack, the mean number of layers (and, in
sublayer mode, residual branches) computed per training forward, shown in
fairseq's logs as ``ld_encoder_layers`` / ``ld_decoder_layers``. Values come
from Python ints the LayerDrop list records while drawing: no device sync.
Both also take ``--layerdrop-early-exit-layers`` (``criterions/early_exit.py``).
"""
from dataclasses import dataclass

from fairseq import metrics
from fairseq.criterions import register_criterion
from fairseq.criterions.cross_entropy import CrossEntropyCriterion, CrossEntropyCriterionConfig
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)

from fairseq_layerdrop.criterions.early_exit import EarlyExitMixin
from fairseq_layerdrop.models.common import layerdrop_lists
from fairseq_layerdrop.options import EarlyExitOptions


class LayerDropStatsMixin:
    """Adds ``ld_<stack>_layers`` / ``ld_<stack>_branches`` counters to the logging output."""

    def forward(self, model, sample, reduce=True):
        loss, sample_size, logging_output = super().forward(model, sample, reduce=reduce)
        if not model.training:
            return loss, sample_size, logging_output
        lists = getattr(self, "_ld_lists", None)
        if lists is None or lists[0] is not model:
            lists = self._ld_lists = (model, layerdrop_lists(model))
        logging_output["ld_forwards"] = 1
        learned = []
        for stack, layers in lists[1].items():
            if layers.last_layers_run is not None:
                logging_output[f"ld_{stack}_layers"] = layers.last_layers_run
                if layers.settings.granularity == "sublayer":
                    logging_output[f"ld_{stack}_branches"] = layers.last_branches_run
            if layers.settings.learned:
                learned.append(layers)
                rates = layers.current_rates()  # CPU copy, refreshed once per update
                logging_output[f"ld_{stack}_rate_max"] = float(rates.max()) if rates.numel() else 0.0
        if learned:
            loss = loss + self._score_term(learned, loss, sample_size, logging_output)
        return loss, sample_size, logging_output

    def _score_term(self, learned, loss, sample_size, logging_output):
        """Score-function term that trains learned drop rates (value ~0, gradient only)."""
        per_token = loss.detach() / max(float(sample_size), 1.0)
        surrogate = sum(layers.score_surrogate(per_token) for layers in learned)
        weight = learned[0].settings.score_weight  # one option: every stack has the same
        logging_output["ld_score"] = surrogate.detach()
        return weight * float(sample_size) * surrogate

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        forwards = sum(log.get("ld_forwards", 0) for log in logging_outputs)
        if forwards == 0:
            return
        keys = sorted({k for log in logging_outputs for k in log if k.startswith("ld_") and k != "ld_forwards"})
        for key in keys:
            total = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(key, total / forwards, forwards, round=2)


@dataclass
class CrossEntropyLayerDropConfig(CrossEntropyCriterionConfig, EarlyExitOptions):
    pass


@dataclass
class LabelSmoothedCrossEntropyLayerDropConfig(LabelSmoothedCrossEntropyCriterionConfig, EarlyExitOptions):
    pass


@register_criterion("cross_entropy_layerdrop", dataclass=CrossEntropyLayerDropConfig)
class CrossEntropyLayerDropCriterion(EarlyExitMixin, LayerDropStatsMixin, CrossEntropyCriterion):
    pass


@register_criterion("label_smoothed_cross_entropy_layerdrop", dataclass=LabelSmoothedCrossEntropyLayerDropConfig)
class LabelSmoothedCrossEntropyLayerDropCriterion(EarlyExitMixin, LayerDropStatsMixin,
                                                  LabelSmoothedCrossEntropyCriterion):
    pass
