"""Options -> per-stack LayerDrop settings, and how the criterion uses them (no training run)."""
import argparse

import pytest
import torch
from torch import nn

from fairseq_layerdrop.criterions.layerdrop_stats import LayerDropStatsMixin
from fairseq_layerdrop.models.common import attach_layerdrop


def learned_stack(weight):
    cfg = argparse.Namespace(encoder_layerdrop=0.5, layerdrop_learned_rates=True, layerdrop_score_weight=weight,
                             seed=1)
    module = nn.Module()
    module.layers = nn.ModuleList([nn.Identity() for _ in range(4)])
    return attach_layerdrop(module, cfg, "encoder").layers.train()


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_score_weight_is_used_as_given_even_zero(weight):
    layers = learned_stack(weight)
    terms = []
    for loss in (2.0, 3.0):  # the first draw only sets the baseline (advantage 0)
        layers.draw()
        terms.append(LayerDropStatsMixin()._score_term([layers], torch.tensor(loss * 10), 10, {}))
    reference = learned_stack(1.0)
    for loss in (2.0, 3.0):
        reference.draw()
        ref = LayerDropStatsMixin()._score_term([reference], torch.tensor(loss * 10), 10, {})
    assert ref.item() != 0.0
    assert terms[1].item() == pytest.approx(weight * ref.item())
