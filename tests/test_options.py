"""Options -> per-stack LayerDrop settings, and how the criterion uses them (no training run)."""
import argparse
import dataclasses

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from fairseq_layerdrop.criterions.layerdrop_stats import LayerDropStatsMixin
from fairseq_layerdrop.layerdrop import LayerDropList
from fairseq_layerdrop.models.common import attach_layerdrop
from fairseq_layerdrop.options import stack_settings
from fairseq_layerdrop.settings import LayerDropSettings


def test_settings_from_options_with_defaults_and_seed_fallback():
    cfg = argparse.Namespace(encoder_layerdrop=0.2, decoder_layerdrop=None, seed=7, layerdrop_seed=None)
    assert stack_settings(cfg, "encoder") == LayerDropSettings("encoder", 0.2, seed=7)
    assert stack_settings(cfg, "decoder") == LayerDropSettings("decoder", 0.0, seed=7)
    cfg.layerdrop_seed, cfg.layerdrop_schedule, cfg.layerdrop_warmup_updates = 3, "linear", 10
    assert stack_settings(cfg, "encoder") == LayerDropSettings("encoder", 0.2, "linear", warmup_updates=10, seed=3)


def test_settings_from_a_hydra_node():
    node = OmegaConf.create({"decoder_layerdrop": 0.3, "layerdrop_granularity": "sublayer",
                             "layerdrop_learned_rates": True, "layerdrop_score_weight": 0.5, "seed": 2})
    settings = stack_settings(node, "decoder")
    assert (settings.p, settings.granularity, settings.learned, settings.score_weight, settings.seed) == (
        0.3, "sublayer", True, 0.5, 2)


@pytest.mark.parametrize("change,message", [
    (dict(p=1.5), r"encoder_layerdrop must be in \[0, 1\], got 1.5"),
    (dict(p=float("nan")), r"encoder_layerdrop must be in \[0, 1\], got nan"),
    (dict(schedule="cosine"), "unknown layerdrop_schedule 'cosine'; choose from uniform, linear, exponential"),
    (dict(granularity="head"), "unknown layerdrop_granularity 'head'; choose from layer, sublayer"),
    (dict(warmup_updates=-3), "layerdrop_warmup_updates must be a whole number >= 0, got -3"),
    (dict(warmup_updates=2.5), "layerdrop_warmup_updates must be a whole number >= 0, got 2.5"),
    (dict(score_weight=-1.0), "layerdrop_score_weight must be a finite number >= 0, got -1.0"),
    (dict(stack="middle"), "layerdrop stack must be 'encoder' or 'decoder', got 'middle'"),
])
def test_bad_settings_are_refused_with_one_line(change, message):
    with pytest.raises(ValueError, match=message):
        LayerDropSettings(**{"stack": "encoder", "p": 0.2, **change})
    if "stack" not in change:  # the same check reached from a (hydra) config
        cfg = argparse.Namespace(encoder_layerdrop=change.get("p", 0.2),
                                 **{f"layerdrop_{k}": v for k, v in change.items() if k != "p"})
        with pytest.raises(ValueError, match=message):
            stack_settings(cfg, "encoder")


def test_settings_are_frozen_and_typed():
    settings = LayerDropSettings("decoder", 1, warmup_updates=2.0, seed="5", learned=1)
    assert (settings.p, settings.warmup_updates, settings.seed, settings.learned) == (1.0, 2, 5, True)
    assert type(settings.p) is float and type(settings.seed) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.p = 0.5


def test_sublayer_settings_need_the_partial_forward():
    with pytest.raises(ValueError, match="sublayer granularity needs partial_forward"):
        LayerDropList([nn.Identity()], LayerDropSettings("encoder", 0.2, granularity="sublayer"))


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
