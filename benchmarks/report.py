"""Print the Markdown tables of docs/benchmarks.md from benchmarks/results/*.json.

    .venv/bin/python benchmarks/report.py [RESULTS_DIR]
"""
import json
import sys
from pathlib import Path

from fairseq_layerdrop.cli.boundary import OneLineParser

RESULTS = Path(__file__).resolve().parent / "results"


def ci(r):
    """``[ratio, lo, hi]`` -> ``1.97 (1.90-2.03)``."""
    return f"{r[0]:.3f} ({r[1]:.3f}-{r[2]:.3f})"


def machine(res):
    m, load = res["machine"], res.get("load", {})
    return (f"{m['cpu']}, {m['cores']} cores, {m['mem_gb']} GB; Python {m['python']}, torch {m['torch']}, "
            f"fairseq {m['fairseq']}; {m['torch_threads']} torch threads (OMP_NUM_THREADS={m['OMP_NUM_THREADS']}); "
            f"git {m['git_commit']}; 1-min load at start {load.get('loadavg_at_start', ['?'])[0]} "
            f"(waited {load.get('waited_s', '?')} s)")


def train_tables(res):
    out = [f"Machine: {machine(res)}.", ""]
    for name, c in res["configs"].items():
        layers = "-".join(str(v) for v in c["layers"].values())
        out += [f"**{name}** (layers {layers}, vocab {c['vocab']}, batch {c['batch_sent_src_tgt'][0]} sentences x "
                f"{c['batch_sent_src_tgt'][2]} target tokens = {c['ntokens_per_update']} words/update; "
                f"other processes' CPU share during the run {c['others_cpu_share']}; fitted cost "
                + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in c["cost_fit"].items() if k.endswith("_s")) + ")", "",
                "| variant | s/update (median) | s/update (adj.) | words/s (adj.) | mean layers run | expected |",
                "|---|---|---|---|---|---|"]
        for v, s in c["variants"].items():
            stacks = list(c["layers"])
            run = " / ".join(f"{s[f'{st}_layers_mean']:.2f}" for st in stacks)
            if f"{stacks[0]}_branches_mean" in s:
                run += " (branches " + " / ".join(f"{s[f'{st}_branches_mean']:.1f}" for st in stacks) + ")"
            exp = " / ".join(f"{s[f'{st}_layers_expected']:.1f}" for st in stacks)
            if f"{stacks[0]}_branches_expected" in s:
                exp = "branches " + " / ".join(f"{s[f'{st}_branches_expected']:.1f}" for st in stacks)
            adj = f"{s['median_adj_s']:.3f}" if s["median_adj_s"] else "-"
            wps = f"{s['wps_adj']:.0f}" if s["wps_adj"] else f"{s['wps']:.0f} (raw)"
            out.append(f"| {v} | {s['median_s']:.3f} | {adj} | {wps} | {run} | {exp} |")
        r = c["ratios"]
        out += ["", "| ratio (90% bootstrap CI) | adjusted | raw |", "|---|---|---|"]
        for key in ("speedup_ours_layer_p0.2", "speedup_ours_layer_p0.5", "speedup_stock_p0.2", "speedup_stock_p0.5",
                    "ours_over_stock_p0", "ours_over_stock_p0.2", "ours_over_stock_p0.5"):
            out.append(f"| {key} | {ci(r[key + '_adj'])} | {ci(r[key + '_raw'])} |")
        for key in ("speedup_ours_sublayer_p0.2", "speedup_ours_sublayer_p0.5", "sublayer_over_layer_p0.2",
                    "sublayer_over_layer_p0.5"):
            out.append(f"| {key} | - | {ci(r[key + '_raw'])} |")
        out.append("")
    out.append("LayerDrop bookkeeping per forward of a 12-layer stack (p = 0.5, no layer compute): "
               + ", ".join(f"{k} {v} us" for k, v in res["iteration_overhead_us"].items()) + ".")
    return out


def inference_tables(res):
    out = [f"Machine: {machine(res)}.", ""]
    for key, tool, metrics in (("mt", "fairseq-generate --beam 5", ("sentences_per_s", "tokens_per_s")),
                               ("lm", "fairseq-eval-lm", ("tokens_per_s",))):
        r, m = res[key], res[key]["model"]
        out += [f"**{tool}**: layers {m['layers']}, dims {m['dims']}, vocab {m['vocab']}, {m['params'] / 1e6:.1f} M params, "
                f"decoder layers kept {m['decoder_layers_kept']}; other processes' CPU share {r['others_cpu_share']}", "",
                "| way | " + " | ".join(metrics) + " | speed-up | process wall s |", "|---|" + "---|" * (len(metrics) + 2)]
        for way, w in r["ways"].items():
            speed = r.get(f"speedup_{way}_{metrics[0]}", 1.0)
            out.append(f"| {way} | " + " | ".join(f"{w['median_' + k]:.1f}" for k in metrics)
                       + f" | {speed:.3f} | {w['median_wall_s']:.1f} |")
        if "pruned_file_output_equals_load_time_pruned" in r:
            out.append(f"\nPruned file output identical to load-time pruning: {r['pruned_file_output_equals_load_time_pruned']}.")
        out.append("")
    return out


def prune_tables(res):
    out = [f"Machine: {machine(res)}; other processes' CPU share {res.get('others_cpu_share')}.", "",
           "| checkpoint | file GB | pruned GB | cp s | prune s | prune / cp | prune peak RSS GB | RSS / file |",
           "|---|---|---|---|---|---|---|---|"]
    for name, c in res["checkpoints"].items():
        out.append(f"| {name} | {c['file_gb']:.2f} | {c['pruned_file_gb']:.2f} | {c['median_wall_s']['cp']:.2f} | "
                   f"{c['median_wall_s']['prune']:.2f} | {c['prune_over_cp_wall']:.2f} | {c['prune_peak_rss_gb']:.2f} | "
                   f"{c['prune_rss_over_file']:.2f} |")
    s = res.get("startup", {})
    out.append("\nStart-up floor: " + ", ".join(f"`{k}` {v['wall_s']} s / {v['peak_rss_mb']} MB" for k, v in s.items()) + ".")
    return out


def main(argv=None) -> int:
    ap = OneLineParser(prog="report.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="?", default=str(RESULTS), help="directory of the benchmarks' JSON files")
    root = Path(ap.parse_args(argv).results)
    if not root.is_dir():
        ap.error(f"{str(root)!r} is not a directory")
    parts = []
    for name, render in (("train", train_tables), ("inference", inference_tables), ("prune", prune_tables)):
        path = root / f"{name}.json"
        if not path.exists():
            continue
        try:
            res = json.loads(path.read_text(encoding="utf-8"))
            parts.append(f"### {name}\n\nCommand: `{res['command']}`\n\n" + "\n".join(render(res)) + "\n")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
            ap.error(f"{path}: not a readable {name} benchmark result ({type(err).__name__}: {err})")
    if not parts:
        ap.error(f"no train.json, inference.json or prune.json in {str(root)!r}")
    print("\n".join(parts))  # all tables or none
    return 0


if __name__ == "__main__":
    sys.exit(main())
