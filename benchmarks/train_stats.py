"""Statistics of the training benchmark: per-layer cost fit, depth adjustment, ratios with CIs.

A LayerDrop draw runs a random number of layers, and two implementations draw differently, so
raw times mix implementation speed with luck of the draw. We fit
``time = a + sum_s b_s * layers_run_s`` (s = encoder, decoder) on every layer-granularity update
of a configuration and move each update's time to the expected depth ``L_s * (1 - p)``:
``adj = time - sum_s b_s * (layers_run_s - L_s * (1 - p))``. Ratios are ratios of medians; their
90% intervals come from a bootstrap over updates (the fit is held fixed).
"""
from typing import Dict, List, Optional, Sequence

import torch


def fit_costs(runs: Dict, stacks: Sequence[str]) -> Dict[str, float]:
    """Least squares ``time ~ a + sum_s b_s * layers_s`` over layer-granularity updates.

    Updates whose residual is over 5 MADs (a burst of load) are left out and the fit repeated
    until the set left out stops changing (at most 5 fits): one burst can pull the first fit far
    enough to push good updates out, which the next fit lets back in.
    """
    rows, ys = [], []
    for run in runs.values():
        if run["granularity"] == "layer":
            for t, lay in zip(run["times"], run["layers"]):
                rows.append([1.0] + [float(lay[s]["layers"]) for s in stacks])
                ys.append(t)
    x, y = torch.tensor(rows, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
    ok = torch.ones(len(ys), dtype=torch.bool)
    for _ in range(5):
        used = ok
        coef = torch.linalg.lstsq(x[used], y[used].unsqueeze(1)).solution.squeeze(1)
        residual = y - x @ coef
        dev = (residual - residual[used].median()).abs()
        ok = dev <= 5 * dev[used].median() + 1e-12
        if torch.equal(ok, used):
            break
    coef = coef.tolist()
    return {"intercept_s": round(coef[0], 5), **{f"per_{s}_layer_s": round(c, 5) for s, c in zip(stacks, coef[1:])},
            "updates_used": int(used.sum()), "updates_total": len(ys)}


def adjusted_times(run: Dict, fit: Dict, layers: Dict[str, int]) -> Optional[List[float]]:
    """Update times moved to the expected depth; ``None`` for sublayer runs (cost is per branch)."""
    if run["granularity"] != "layer":
        return None
    expected = {s: n * (1 - run["p"]) for s, n in layers.items()}
    return [t - sum(fit[f"per_{s}_layer_s"] * (lay[s]["layers"] - expected[s]) for s in layers)
            for t, lay in zip(run["times"], run["layers"])]


def summarize_variant(run: Dict, adj: Optional[List[float]], layers: Dict[str, int], branches: Dict[str, int],
                      ntokens: int) -> Dict:
    """Median / mean time per update, words (target tokens) per second, mean layers run."""
    times = torch.tensor(run["times"], dtype=torch.float64)
    med = float(times.median())
    med_adj = float(torch.tensor(adj, dtype=torch.float64).median()) if adj else None
    out = {"updates": len(run["times"]), "median_s": round(med, 5), "mean_s": round(float(times.mean()), 5),
           "median_adj_s": med_adj and round(med_adj, 5), "wps": round(ntokens / med, 1),
           "wps_adj": med_adj and round(ntokens / med_adj, 1)}
    n = len(run["layers"])
    for s, total in layers.items():
        out[f"{s}_layers_mean"] = round(sum(lay[s]["layers"] for lay in run["layers"]) / n, 3)
        out[f"{s}_layers_expected"] = round(total * (1 - run["p"]), 3)
        if run["granularity"] == "sublayer":  # residual branches: 2 per encoder / LM layer, 3 per MT decoder layer
            out[f"{s}_branches_mean"] = round(sum(lay[s]["branches"] for lay in run["layers"]) / n, 3)
            out[f"{s}_branches_expected"] = round(total * branches[s] * (1 - run["p"]), 3)
    return out


def ratio_ci(a: Sequence[float], b: Sequence[float], seed: int = 0, n_boot: int = 2000) -> List[float]:
    """``median(a) / median(b)`` and its bootstrap 5% and 95% quantiles, rounded."""
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    ia = torch.randint(0, len(ta), (n_boot, len(ta)), generator=gen)
    ib = torch.randint(0, len(tb), (n_boot, len(tb)), generator=gen)
    boot = ta[ia].median(dim=1).values / tb[ib].median(dim=1).values
    lo, hi = torch.quantile(boot, torch.tensor([0.05, 0.95], dtype=torch.float64)).tolist()
    return [round(float(ta.median() / tb.median()), 3), round(lo, 3), round(hi, 3)]


def ratios(times: Dict[str, Dict[str, Optional[List[float]]]], rates, sublayer_rates) -> Dict:
    """Speed-ups over p = 0 and ours / stock time ratios as ``[ratio, ci5, ci95]``.

    ``times[variant]`` holds ``raw`` and ``adj`` (depth-adjusted, layer granularity only) lists.
    ``ours_over_stock_p0`` compares identical computations: it shows the noise floor.
    """
    out = {}
    for tag in ("adj", "raw"):
        for p in rates[1:]:
            out[f"speedup_ours_layer_p{p:g}_{tag}"] = ratio_ci(times["ours-layer-p0"][tag], times[f"ours-layer-p{p:g}"][tag])
            out[f"speedup_stock_p{p:g}_{tag}"] = ratio_ci(times["stock-p0"][tag], times[f"stock-p{p:g}"][tag])
        for p in rates:
            out[f"ours_over_stock_p{p:g}_{tag}"] = ratio_ci(times[f"ours-layer-p{p:g}"][tag], times[f"stock-p{p:g}"][tag])
    for p in sublayer_rates:  # sublayer: raw only
        out[f"speedup_ours_sublayer_p{p:g}_raw"] = ratio_ci(times["ours-layer-p0"]["raw"], times[f"ours-sublayer-p{p:g}"]["raw"])
        out[f"sublayer_over_layer_p{p:g}_raw"] = ratio_ci(times[f"ours-sublayer-p{p:g}"]["raw"], times[f"ours-layer-p{p:g}"]["raw"])
    return out


def targets(configs: Dict, rates: Sequence[float]) -> Dict:
    """The issue's targets: >= 1.7x at p = 0.5 on the layer-dominated config; ours/stock <= 1.03."""
    out = {}
    dom = next((c for n, c in configs.items() if n.startswith("mt_layer_dominated")), None)
    if dom is not None:
        s = dom["ratios"]["speedup_ours_layer_p0.5_adj"]
        out["speedup_p0.5_ge_1.7"] = {"adj_ci90": s, "raw_ci90": dom["ratios"]["speedup_ours_layer_p0.5_raw"],
                                      "met": s[0] >= 1.7}
    checks = [(c["ratios"][f"ours_over_stock_p{p:g}_adj"], n, p) for n, c in configs.items() for p in rates]
    worst = max(checks, key=lambda c: c[0][0])
    out["ours_over_stock_le_1.03"] = {"worst_adj_ci90": worst[0], "config": worst[1], "p": worst[2],
                                      "met": worst[0][0] <= 1.03,
                                      "all_ci_below_1.03": all(c[0][2] <= 1.03 for c in checks)}
    return out
