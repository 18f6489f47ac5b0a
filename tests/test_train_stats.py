"""The statistics of benchmarks/bench_train.py on synthetic timings whose answer is known: the
per-layer cost fit (with a burst of load to ignore), the move to the expected depth, and the
issue's targets read from the ratios."""
from pathlib import Path

import pytest

from tests.utils import load_module

stats = load_module(Path(__file__).resolve().parents[1] / "benchmarks" / "train_stats.py")


def run(p, layers_run, cost=lambda enc, dec: 0.01 + 0.002 * enc + 0.003 * dec, granularity="layer"):
    return {"p": p, "granularity": granularity, "times": [cost(e, d) for e, d in layers_run],
            "layers": [{"encoder": {"layers": e}, "decoder": {"layers": d}} for e, d in layers_run]}


DRAWS = [(6, 6), (3, 4), (5, 2), (1, 6), (4, 4), (2, 3), (6, 1), (3, 3), (5, 5), (0, 2)]


def test_fit_costs_recovers_the_costs_and_drops_a_burst_of_load():
    runs = {"a": run(0.5, DRAWS), "b": run(0.2, DRAWS[::-1])}
    for i, name in enumerate(["a", "b"] * 10):  # a little noise, +-0.2 ms
        runs[name]["times"][i // 2] += 0.0002 * ((i * 7) % 5 - 2)
    runs["a"]["times"][3] += 1.0  # one update hit by load
    fit = stats.fit_costs(runs, ["encoder", "decoder"])
    assert fit["intercept_s"] == pytest.approx(0.01, abs=3e-4)
    assert (fit["per_encoder_layer_s"], fit["per_decoder_layer_s"]) == pytest.approx((0.002, 0.003), abs=1e-4)
    assert (fit["updates_used"], fit["updates_total"]) == (19, 20)  # only the burst left out


def test_adjusted_times_are_the_times_at_the_expected_depth():
    fit = {"per_encoder_layer_s": 0.002, "per_decoder_layer_s": 0.003}
    adj = stats.adjusted_times(run(0.5, DRAWS), fit, {"encoder": 6, "decoder": 6})
    assert adj == pytest.approx([0.01 + 0.002 * 3 + 0.003 * 3] * len(DRAWS))
    assert stats.adjusted_times(run(0.5, DRAWS, granularity="sublayer"), fit, {"encoder": 6}) is None


def ratios(speedup, over_stock):
    out = {"speedup_ours_layer_p0.5_adj": speedup, "speedup_ours_layer_p0.5_raw": speedup}
    out.update({f"ours_over_stock_p{p:g}_adj": over_stock for p in (0.0, 0.2, 0.5)})
    return {"ratios": out}


@pytest.mark.parametrize("speedup, over_stock, met", [
    ([1.8, 1.9, 2.0], [0.98, 1.0, 1.02], (True, True, True)),
    ([1.6, 1.9, 2.0], [1.01, 1.02, 1.05], (False, True, False)),  # lower bounds decide "met"
    ([1.8, 1.9, 2.0], [1.04, 1.05, 1.06], (True, False, False)),
])
def test_targets_read_the_lower_bounds_of_the_intervals(speedup, over_stock, met):
    configs = {"mt_layer_dominated_6_6": ratios(speedup, over_stock), "lm_small": ratios(speedup, [0.9, 0.95, 1.0])}
    out = stats.targets(configs, (0.0, 0.2, 0.5))
    got = out["ours_over_stock_le_1.03"]
    assert (out["speedup_p0.5_ge_1.7"]["met"], got["met"], got["all_ci_below_1.03"]) == met
    assert got["config"] == "mt_layer_dominated_6_6" and got["worst_adj_ci90"] == over_stock
