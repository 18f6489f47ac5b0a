"""search.greedy_search: the removal rule of --strategy search-on-valid, on a known loss table."""
import pytest

from fairseq_layerdrop import search


class TableLoss:
    """A stand-in for ``search.ValidLoss``: the loss of a set of kept layers is a fixed table of
    each removed layer's cost plus a penalty for removing both of a named pair."""

    def __init__(self, layers, cost, pair_penalty=None):
        self.layers, self.cost, self.pair_penalty, self.calls = layers, cost, pair_penalty or {}, []

    def loss(self, keep):
        self.calls.append({stack: list(kept) for stack, kept in keep.items()})
        removed = {(stack, i) for stack, n in self.layers.items() if stack in keep
                   for i in range(n) if i not in keep[stack]}
        extra = sum(p for pair, p in self.pair_penalty.items() if set(pair) <= removed)
        return 1.0 + sum(self.cost[r] for r in removed) + extra


def test_each_step_removes_the_layer_whose_absence_costs_least():
    layers = {"decoder": 4}
    cost = {("decoder", 0): 0.9, ("decoder", 1): 0.2, ("decoder", 2): 0.1, ("decoder", 3): 0.5}
    # once layer 2 is gone, removing 1 as well costs 1.0 more: the second step must take 3, not 1
    evaluator = TableLoss(layers, cost, {(("decoder", 1), ("decoder", 2)): 1.0})
    keep, history = search.greedy_search(evaluator, layers, {"decoder": 2}, quiet=True)
    assert keep == {"decoder": [0, 1]}
    assert [(h["stack"], h["removed"]) for h in history] == [(None, None), ("decoder", 2), ("decoder", 3)]
    assert [h["loss"] for h in history] == pytest.approx([1.0, 1.1, 1.6])
    # the full model once, then every remaining layer at each step: 1 + 4 + 3
    assert len(evaluator.calls) == 8


def test_ties_go_to_the_earlier_stack_then_the_lower_index():
    layers = {"encoder": 3, "decoder": 3}
    cost = {(s, i): 0.3 for s in layers for i in range(3)}
    keep, history = search.greedy_search(TableLoss(layers, cost), layers, {"encoder": 2, "decoder": 2}, quiet=True)
    assert [(h["stack"], h["removed"]) for h in history[1:]] == [("encoder", 0), ("decoder", 0)]
    assert keep == {"encoder": [1, 2], "decoder": [1, 2]}


def test_a_stack_not_searched_or_at_its_target_loses_nothing_and_the_steps_are_printed(capsys):
    layers = {"encoder": 2, "decoder": 3}
    cost = {("encoder", 0): 0.0, ("encoder", 1): 0.0, ("decoder", 0): 0.4, ("decoder", 1): 0.3, ("decoder", 2): 0.35}
    evaluator = TableLoss(layers, cost)
    keep, history = search.greedy_search(evaluator, layers, {"decoder": 2}, quiet=True)
    assert keep == {"decoder": [0, 2]} and all("encoder" not in call for call in evaluator.calls)
    # an encoder already at its target stays whole although removing its layers costs nothing
    both, _ = search.greedy_search(TableLoss(layers, cost), layers, {"encoder": 2, "decoder": 2}, quiet=True)
    assert both == {"encoder": [0, 1], "decoder": [0, 2]}
    out = capsys.readouterr().out.splitlines()[:2]
    assert out == ["search-on-valid: all layers: valid loss 1.0000 bits/token",
                   "search-on-valid: removed decoder layer 1: valid loss 1.3000 bits/token (kept decoder [0, 2])"]
