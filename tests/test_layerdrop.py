"""Unit tests of the plain-torch LayerDrop core (no fairseq import)."""
import pytest
import torch
from torch import nn

from fairseq_layerdrop.layerdrop import LayerDropList, draw_keep_mask, layer_rates, mask_seed, stack_id, warmup_factor
from fairseq_layerdrop.settings import LayerDropSettings


class Counting(nn.Module):
    """y = x + w, counting calls: a stand-in for a transformer layer (T x B x C)."""

    def __init__(self, dim=4):
        super().__init__()
        self.w = nn.Parameter(torch.randn(dim))
        self.calls = 0

    def forward(self, x, *args, **kwargs):
        self.calls += 1
        return x + self.w


def make_list(n=6, p=0.5, partial_forward=None, branch_count=None, stack="encoder", **settings):
    torch.manual_seed(0)
    return LayerDropList([Counting() for _ in range(n)], LayerDropSettings(stack, p, **settings),
                         partial_forward=partial_forward, branch_count=branch_count)


def run(layers, x):
    for layer in layers:
        x = layer(x)
    return x


# -- rates ---------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["uniform", "linear", "exponential"])
@pytest.mark.parametrize("p", [0.0, 0.2, 0.4])
def test_rates_have_mean_p(schedule, p):
    rates = layer_rates(p, 12, schedule)
    assert len(rates) == 12
    assert sum(rates) / 12 == pytest.approx(p)
    assert all(0.0 <= r <= 1.0 for r in rates)


@pytest.mark.parametrize("schedule", ["linear", "exponential"])
def test_shaped_rates_grow_with_depth(schedule):
    rates = layer_rates(0.3, 8, schedule)
    assert all(a < b for a, b in zip(rates, rates[1:]))


def test_exponential_ratio_first_to_last():
    rates = layer_rates(0.2, 6, "exponential")
    assert rates[-1] / rates[0] == pytest.approx(4.0)


def test_linear_too_high_rate_is_refused():
    with pytest.raises(ValueError, match="too high for the linear schedule"):
        layer_rates(0.9, 6, "linear")


def test_warmup_factor_ramps_linearly():
    assert [warmup_factor(u, 10) for u in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


# -- masks ---------------------------------------------------------------------------
def test_mask_is_a_pure_function_of_its_coordinates():
    rates = torch.full((8,), 0.5, dtype=torch.float64)
    a = draw_keep_mask(rates, mask_seed(3, 17, 1, stack_id("decoder")))
    b = draw_keep_mask(rates, mask_seed(3, 17, 1, stack_id("decoder")))
    assert torch.equal(a, b)
    seeds = {mask_seed(3, u, m, s) for u in range(5) for m in range(3) for s in (stack_id("encoder"), stack_id("decoder"))}
    assert len(seeds) == 30  # every coordinate changes the stream


@pytest.mark.parametrize("p,expect_kept", [(0.0, 8), (1.0, 1)])
def test_extreme_rates(p, expect_kept):
    rates = torch.full((8,), p, dtype=torch.float64)
    for seed in range(20):
        assert int(draw_keep_mask(rates, seed).sum()) == expect_kept


def test_allow_empty_can_drop_everything():
    rates = torch.ones(5, dtype=torch.float64)
    assert int(draw_keep_mask(rates, 0, allow_empty=True).sum()) == 0


def test_never_empty_keeps_the_layer_closest_to_surviving():
    rates = torch.tensor([0.95, 0.9, 0.97], dtype=torch.float64)
    rescued = 0
    for seed in range(200):
        keep = draw_keep_mask(rates, seed)
        u = torch.rand((3, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        margin = u[:, 0] - rates
        if bool((margin < 0).all()):  # every layer drew "drop": exactly the one closest to surviving stays
            rescued += 1
            assert keep[:, 0].tolist() == [i == int(margin.argmax()) for i in range(3)]
        else:
            assert keep[:, 0].tolist() == (margin >= 0).tolist()
    assert rescued > 100  # the rescue ran often (P(all dropped) ~ 0.83)


# -- the module list -----------------------------------------------------------------
def test_eval_runs_every_layer():
    layers = make_list(p=1.0).eval()
    out = run(layers, torch.zeros(4))
    assert [m.calls for m in nn.ModuleList.__iter__(layers)] == [1] * 6
    assert torch.allclose(out, sum(m.w for m in nn.ModuleList.__iter__(layers)))


def test_p0_runs_every_layer_in_training():
    layers = make_list(p=0.0).train()
    run(layers, torch.zeros(4))
    assert all(m.calls == 1 for m in nn.ModuleList.__iter__(layers))


def test_dropped_layers_are_not_called_and_get_no_gradient():
    layers = make_list(n=8, p=0.5).train()
    plan = layers.plan(layers.draw())
    out = run(plan, torch.zeros(4))
    out.sum().backward()
    modules = list(nn.ModuleList.__iter__(layers))
    for m, step in zip(modules, plan):
        kept = step is m
        assert m.calls == int(kept)
        assert (m.w.grad is not None) == kept
    assert 0 < sum(step is m for m, step in zip(modules, plan)) < 8


def test_positions_are_kept_in_training():
    layers = make_list(n=6, p=0.5).train()
    modules = list(nn.ModuleList.__iter__(layers))
    for _ in range(20):  # until a draw drops some but not all layers
        keep = layers.draw()
        if 0 < int(keep.sum()) < 6:
            break
    steps = layers.plan(keep)
    assert len(steps) == 6  # skipped layers are placeholders at their position
    kept = [step is module for step, module in zip(steps, modules)]
    assert kept == [bool(row) for row in keep.view(6, -1)[:, 0].tolist()] and not all(kept) and any(kept)


@pytest.mark.parametrize("schedule", ["uniform", "linear", "exponential"])
def test_empirical_drop_rate_matches_schedule(schedule):
    n, draws = 12, 4000
    layers = make_list(n=n, p=0.3, schedule=schedule).train()
    dropped = torch.zeros(n)
    for u in range(draws):
        layers.set_num_updates(u)
        dropped += (~layers.draw()[:, 0]).double()
    expected = torch.tensor(layer_rates(0.3, n, schedule))
    # binomial std <= sqrt(0.25 / 4000) = 0.008; allow 4 sigma
    assert torch.allclose(dropped / draws, expected.float(), atol=0.032)


def test_same_seed_same_masks_and_micro_batches_differ():
    a, b = make_list(n=10, seed=7).train(), make_list(n=10, seed=7).train()
    a.set_num_updates(5)
    b.set_num_updates(5)
    first = [a.draw() for _ in range(4)]
    assert all(torch.equal(x, b.draw()) for x in first)
    assert not all(torch.equal(first[0], x) for x in first[1:])
    c = make_list(n=10, seed=8).train()
    c.set_num_updates(5)
    assert not all(torch.equal(x, c.draw()) for x in first)


def test_resume_reproduces_masks():
    """A list built fresh and set to update K draws what a long-running one drew at K."""
    long_run = make_list(n=10).train()
    seen = {}
    for u in range(6):
        long_run.set_num_updates(u)
        seen[u] = [long_run.draw() for _ in range(2)]  # --update-freq 2
        long_run.set_num_updates(u)  # fairseq may call it repeatedly: no reset
    resumed = make_list(n=10).train()
    resumed.set_num_updates(4)
    assert torch.equal(resumed.draw(), seen[4][0]) and torch.equal(resumed.draw(), seen[4][1])


def test_warmup_starts_with_nothing_dropped():
    layers = make_list(n=8, p=0.5, warmup_updates=100).train()
    layers.set_num_updates(0)
    assert bool(layers.draw().all())
    layers.set_num_updates(50)
    assert layers.current_rates()[0].item() == pytest.approx(0.25)


def test_repr_lists_every_layer_in_training():
    layers = make_list(n=6, p=0.9).train()
    text = repr(layers)
    assert all(f"({i}): Counting()" in text for i in range(6))


def test_stats_are_recorded():
    layers = make_list(n=6, p=1.0).train()
    run(layers, torch.zeros(4))
    assert layers.last_layers_run == 1


def test_decoder_skip_returns_fairseq_triple():
    layers = make_list(n=3, p=1.0, stack="decoder", allow_empty=True).train()
    x = torch.ones(2)
    assert all(step(x) == (x, None, None) for step in layers)


def test_sublayer_mode_drops_branches_independently():
    calls = []

    def partial(layer, keep, x):
        calls.append(keep)
        return x

    layers = make_list(n=12, p=0.5, granularity="sublayer", partial_forward=partial,
                       branch_count=lambda layer: 2).train()
    keep = layers.draw()
    assert keep.shape == (12, 2)
    masks = torch.stack([layers.draw() for _ in range(2000)]).double()
    # both branches dropped at ~p, and independently: P(both dropped) ~ p^2
    assert masks.mean().item() == pytest.approx(0.5, abs=0.02)
    both_dropped = ((1 - masks[..., 0]) * (1 - masks[..., 1])).mean().item()
    assert both_dropped == pytest.approx(0.25, abs=0.02)
    plan, rows = layers.plan(keep), keep.tolist()
    modules = list(torch.nn.ModuleList.__iter__(layers))
    for step, row, module in zip(plan, rows, modules):
        if sum(row) == 2:
            assert step is module  # whole layer: fairseq's own forward
        elif sum(row) == 0:
            assert step(torch.ones(1)).item() == 1.0 and step is not module  # skipped: identity
        else:
            step(torch.zeros(1))
    partial_rows = [tuple(r) for r in rows if sum(r) == 1]
    assert partial_rows and calls == partial_rows  # each partial layer got exactly its own row
