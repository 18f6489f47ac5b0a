"""Learned per-layer drop rates: constraint, gradients, and recovery of useless layers."""
import pytest
import torch
from torch import nn

from fairseq_layerdrop import pruning
from fairseq_layerdrop.layerdrop import LayerDropList
from fairseq_layerdrop.learned import keep_order, mask_log_prob, rates_from_logits, update_baseline
from fairseq_layerdrop.pruning import learned_keep
from fairseq_layerdrop.settings import LayerDropSettings


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.8])
def test_rates_satisfy_the_average_constraint(p):
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        logits = torch.randn(12, generator=gen, dtype=torch.float64) * 3
        rates = rates_from_logits(logits, p)
        assert rates.mean().item() == pytest.approx(p, abs=1e-9)
        assert bool(((rates > 0) & (rates < 1)).all())
        order = torch.argsort(logits)
        assert bool((rates[order].diff() >= 0).all())  # monotone in the logits


def test_gradient_respects_the_constraint():
    logits = torch.randn(8, dtype=torch.float64, requires_grad=True)
    rates = rates_from_logits(logits, 0.3)
    (grad,) = torch.autograd.grad(rates.mean(), logits)
    assert grad.abs().max().item() < 1e-9  # the mean cannot move
    (grad,) = torch.autograd.grad(rates_from_logits(logits, 0.3)[0], logits)
    assert grad[0].item() > 0 and bool((grad[1:] <= 0).all())  # raising one lowers the others


def test_log_prob_of_a_mask():
    rates = torch.tensor([0.25, 0.5], dtype=torch.float64)
    keep = torch.tensor([[True], [False]])
    expected = torch.log(torch.tensor(0.75 * 0.5, dtype=torch.float64))
    assert mask_log_prob(keep, rates).item() == pytest.approx(expected.item())


def test_baseline_moves_towards_the_loss():
    b = torch.tensor(float("nan"))
    assert update_baseline(b, torch.tensor(2.0)).item() == 0.0 and b.item() == 2.0
    assert update_baseline(b, torch.tensor(3.0)).item() == pytest.approx(1.0)
    assert b.item() == pytest.approx(2.1)


class Residual(nn.Module):
    """x + tanh(W x): ``useful=False`` freezes the branch to zero (the layer is the identity)."""

    def __init__(self, dim, useful, gen):
        super().__init__()
        scale = 1.5 if useful else 0.0
        self.w = nn.Parameter(torch.randn(dim, dim, generator=gen) * scale / dim ** 0.5, requires_grad=False)

    def forward(self, x):
        return x + torch.tanh(x @ self.w)


def test_learned_rates_find_the_useless_layers():
    gen = torch.Generator().manual_seed(0)
    useful = [True, False, True, False, False, True]
    layers = LayerDropList([Residual(16, u, gen) for u in useful],
                           LayerDropSettings("encoder", 0.5, seed=0, learned=True)).train()
    opt = torch.optim.Adam([layers.layerdrop_logits], lr=0.05)
    x = torch.randn(64, 16, generator=gen)
    with torch.no_grad():
        target = x
        for layer in nn.ModuleList.__iter__(layers):
            target = layer(target)
    for step in range(300):
        layers.set_num_updates(step)
        out = x
        for layer in layers:
            out = layer(out)
        loss = (out - target).pow(2).mean()
        opt.zero_grad()
        layers.score_surrogate(loss).backward()
        opt.step()
    rates = rates_from_logits(layers.layerdrop_logits.detach(), 0.5)
    assert rates.mean().item() == pytest.approx(0.5, abs=1e-6)
    assert sorted(keep_order(layers.layerdrop_logits, 0.5)[:3]) == [0, 2, 5]
    assert min(rates[[1, 3, 4]]).item() > max(rates[[0, 2, 5]]).item()
    # the prune tool's "learned" strategy reads the same logits from a checkpoint's state dict
    state = {f"encoder.layers.{k}": v for k, v in layers.state_dict().items()}
    assert learned_keep(state, "encoder", 3, 0.5) == [0, 2, 5]


def test_learned_logits_are_saved_and_strippable():
    layers = LayerDropList([nn.Linear(3, 3) for _ in range(4)], LayerDropSettings("encoder", 0.2, learned=True))
    state = {f"encoder.layers.{k}": v for k, v in layers.state_dict().items()}
    assert {"encoder.layers.layerdrop_logits", "encoder.layers.layerdrop_baseline"} <= set(state)
    # the prune tool's stock output drops the plugin's tensors; the rest loads into a plain ModuleList
    stock = pruning.prune_model_state(state, {"encoder": [0, 1, 2, 3]}, to_stock=True)
    assert not any("layerdrop_" in k for k in stock) and len(stock) == len(state) - 2
    plain = nn.ModuleList([nn.Linear(3, 3) for _ in range(4)])
    plain.load_state_dict({k[len("encoder.layers."):]: v for k, v in stock.items()})  # strict: every key matches
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(plain, nn.ModuleList.__iter__(layers)))


def test_training_forwards_make_no_host_device_sync(monkeypatch):
    """The rate offset is found once per update on a CPU copy of the logits; a forward only reuses it."""
    layers = LayerDropList([nn.Identity() for _ in range(6)], LayerDropSettings("encoder", 0.4, learned=True)).train()
    with torch.no_grad():
        layers.layerdrop_logits.copy_(torch.linspace(-1, 1, 6))
    counts = {"item": 0, "cpu": 0}
    item, cpu = torch.Tensor.item, torch.Tensor.cpu

    def counting(name, fn):
        def wrapper(self, *args, **kwargs):
            counts[name] += 1
            return fn(self, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(torch.Tensor, "item", counting("item", item))
    monkeypatch.setattr(torch.Tensor, "cpu", counting("cpu", cpu))
    for update in range(3):
        layers.set_num_updates(update)
        for _ in range(4):  # --update-freq 4: four forwards per update
            x = torch.zeros(2)
            for step in layers:
                x = step(x)
            layers.score_surrogate(torch.tensor(1.0)).backward()
    assert counts == {"item": 0, "cpu": 3}  # one device->host copy per update, none per forward
    monkeypatch.undo()
    # the reused offset gives the rates (and the gradient) of a fresh bisection
    expected = rates_from_logits(layers.layerdrop_logits, 0.4)
    assert torch.allclose(layers.learned_rates(), expected, atol=1e-12)
