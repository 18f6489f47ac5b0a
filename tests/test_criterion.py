"""The criteria's ``ld_*`` log columns, on hand-built modules (no fairseq training run)."""
import argparse

import torch
from fairseq import metrics
from torch import nn

from fairseq_layerdrop.criterions.layerdrop_stats import LayerDropStatsMixin
from fairseq_layerdrop.models.common import attach_layerdrop, layerdrop_lists


class _Base:
    def forward(self, model, sample, reduce=True):
        return torch.tensor(1.0), 1, {}

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        pass


class Criterion(LayerDropStatsMixin, _Base):
    pass


class Wrapper(nn.Module):
    """What DDP (and fairseq's ModuleProxyWrapper around it) look like: the model is ``.module``."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def encoder_decoder(p=0.5):
    cfg = argparse.Namespace(encoder_layerdrop=p, decoder_layerdrop=p, seed=1)
    model = nn.Module()
    for stack in ("encoder", "decoder"):
        part = nn.Module()
        part.layers = nn.ModuleList([nn.Identity() for _ in range(4)])
        setattr(model, stack, attach_layerdrop(part, cfg, stack))
    return model.train()


def test_columns_are_keyed_by_stack_even_under_ddp_wrappers():
    model = encoder_decoder()
    wrapped = Wrapper(Wrapper(model)).train()
    assert set(layerdrop_lists(wrapped)) == {"encoder", "decoder"}
    for stack in ("encoder", "decoder"):
        list(getattr(model, stack).layers)  # one training draw per stack
    _, _, log = Criterion().forward(wrapped, None)
    assert {k for k in log if k.endswith("_layers")} == {"ld_encoder_layers", "ld_decoder_layers"}
    for stack in ("encoder", "decoder"):  # the value is what this forward's draw ran
        assert log[f"ld_{stack}_layers"] == getattr(model, stack).layers.last_layers_run


def test_reduce_metrics_averages_the_layer_counts_over_forwards():
    logs = [{"ld_forwards": 1, "ld_decoder_layers": 3}, {"ld_forwards": 1, "ld_decoder_layers": 2},
            {"ld_forwards": 2, "ld_decoder_layers": 7}]  # a log already summed over two forwards
    with metrics.aggregate() as agg:
        Criterion.reduce_metrics(logs)
    assert agg.get_smoothed_values()["ld_decoder_layers"] == 3.0  # (3 + 2 + 7) / 4 forwards
    with metrics.aggregate() as agg:
        Criterion.reduce_metrics([{"loss": 1.0}])  # no LayerDrop columns: nothing logged
    assert "ld_decoder_layers" not in agg.get_smoothed_values()
