"""Plots of depth sweeps: quality vs depth for several models, speed in a second panel."""
import logging
from collections import defaultdict
from pathlib import Path

METRICS = (("bleu", "BLEU (sacrebleu)"), ("rougeL", "ROUGE-L F1"), ("ppl", "perplexity (lower is better)"))


def main_metric(rows):
    for key, title in METRICS:
        if any(key in row and row[key] is not None for row in rows):
            return key, title
    raise ValueError("no BLEU, ROUGE or perplexity in the sweep rows")


def plot_sweeps(rows, out_png, title=None) -> Path:
    """One line per ``label``: metric vs kept depth (left), tokens/s vs depth (right)."""
    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's root logger would print font lookups
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, ylabel = main_metric(rows)
    by_label = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    fig, (ax_q, ax_s) = plt.subplots(1, 2, figsize=(10, 4))
    for label, group in by_label.items():
        group = sorted(group, key=lambda r: int(r["depth"]))
        depths = [int(r["depth"]) for r in group]
        ax_q.plot(depths, [float(r[key]) for r in group], marker="o", label=label)
        speeds = [r.get("tokens_per_s") for r in group]
        if all(s is not None for s in speeds):
            ax_s.plot(depths, [float(s) for s in speeds], marker="s", label=label)
    ax_q.set(xlabel="layers kept", ylabel=ylabel, title=title or "quality vs depth")
    ax_s.set(xlabel="layers kept", ylabel="tokens / s", title="speed vs depth")
    if key == "ppl":
        ax_q.set_yscale("log")
    for ax in (ax_q, ax_s):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return Path(out_png)
