"""Plots of depth sweeps: quality vs depth for several models, speed in a second panel.

matplotlib is optional (``pip install matplotlib``): it is imported only to draw.
"""
import importlib.util
import logging
import textwrap
from collections import defaultdict
from pathlib import Path

from fairseq_layerdrop.errors import show
from fairseq_layerdrop.result_files import write_file

METRICS = (("bleu", "BLEU (sacrebleu)"), ("rougeL", "ROUGE-L F1"), ("ppl", "perplexity (lower is better)"))
TITLE_WIDTH = 90  # characters per title line that fit a 10-inch figure
MAX_LINES = 40  # models on one figure: more would not be read (and the legend alone takes minutes)


TASK_METRIC = {"summarization": "rougeL"}  # a summarization sweep scores BLEU too; ROUGE is its measure


def main_metric(rows):
    """The metric to plot: the rows' task's own (ROUGE-L for summarization), else the first of
    METRICS that the rows have."""
    titles = dict(METRICS)
    preferred = sorted({TASK_METRIC[row["task"]] for row in rows if row.get("task") in TASK_METRIC})
    for key in preferred + list(titles):
        if any(row.get(key) is not None for row in rows):
            return key, titles[key]
    raise ValueError("no BLEU, ROUGE or perplexity in the sweep rows")


def available() -> bool:
    """Whether matplotlib can be imported (checked without importing it)."""
    return importlib.util.find_spec("matplotlib") is not None


def import_pyplot():
    """matplotlib's pyplot on the Agg backend, with matplotlib's logging kept quiet.

    fairseq's import configures the root logger at DEBUG (a wav2vec module calls
    ``logging.basicConfig``), so matplotlib's import-time DEBUG lines (data path, CONFIGDIR,
    platform) would reach stderr: the level is set before the first import.
    """
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_log_axis(axis) -> None:
    """Label a log-scale axis with plain numbers (300, 1000), never ``3x10^2``."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def _num_to_string(self, x, vmin, vmax):
            return f"{x:.0f}" if x >= 10 else f"{x:g}"

    # LogFormatter keeps matplotlib's choice of which minor ticks get a label (none over many decades)
    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def _clip(values, ymax):
    """``values`` capped at ``ymax`` (None: no cap), and the (index, value) pairs that were capped."""
    if ymax is None:
        return values, []
    return [min(v, ymax) for v in values], [(i, v) for i, v in enumerate(values) if v > ymax]


def sweep_figure(rows, title=None, speed=True, ymax=None):
    """The figure: one line per ``label``, metric vs kept depth (left), tokens/s vs depth (right).

    ``title`` is the figure's title, wrapped to fit its width. ``speed=False`` leaves out the
    speed panel (speeds measured beside other work do not compare). ``ymax`` caps the quality
    axis (linear then): a point above it is drawn on the cap as a triangle, its value written in
    the line's colour (several at one depth: one under the other).
    """
    key, ylabel = main_metric(rows)
    by_label = defaultdict(list)
    for row in rows:
        if not isinstance(row.get(key), (int, float)):
            raise ValueError(f"{show(row['label'])} at depth {row['depth']} has no {key}")
        by_label[row["label"]].append(row)
    if len(by_label) > MAX_LINES:
        raise ValueError(f"{len(by_label)} models (labels): more than the {MAX_LINES} lines one figure shows")
    plt = import_pyplot()
    fig, axes = plt.subplots(1, 2 if speed else 1, figsize=(10, 4) if speed else (6, 4), squeeze=False)
    ax_q, ax_s = axes[0][0], axes[0][-1] if speed else None
    stacked = defaultdict(int)  # capped values written so far at each depth: the next goes below
    for label, group in by_label.items():
        group = sorted(group, key=lambda r: int(r["depth"]))
        depths = [int(r["depth"]) for r in group]
        values, capped = _clip([float(r[key]) for r in group], ymax)
        one = len(depths) == 1  # a model trained at one depth (from scratch): a bigger marker
        line, = ax_q.plot(depths, values, marker="D" if one else "o", markersize=8 if one else 6, label=label)
        for i, value in capped:
            ax_q.plot(depths[i], ymax, marker="^", markersize=9, color=line.get_color())
            ax_q.annotate(f"{value:.3g}", (depths[i], ymax), textcoords="offset points",
                          xytext=(6, -12 - 10 * stacked[depths[i]]), fontsize=7, color=line.get_color())
            stacked[depths[i]] += 1
        speeds = [r.get("tokens_per_s") for r in group]
        if speed and all(s is not None for s in speeds):
            ax_s.plot(depths, [float(s) for s in speeds], marker="s", label=label)
    ax_q.set(xlabel="layers kept", ylabel=ylabel, title="quality vs depth")
    if key == "ppl" and ymax is None:
        ax_q.set_yscale("log")
        _plain_log_axis(ax_q.yaxis)
    panels = [ax_q]
    if speed:
        ax_s.set(xlabel="layers kept", ylabel="tokens / s", title="speed vs depth")
        panels.append(ax_s)
    for ax in panels:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # the speed panel of rows without speeds has no lines
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(textwrap.fill(title, int(TITLE_WIDTH * fig.get_figwidth() / 10)))
    fig.tight_layout()
    return fig


def plot_sweeps(rows, out_png, title=None, speed=True, ymax=None) -> Path:
    """Write :func:`sweep_figure` as a PNG, all or nothing."""
    fig = sweep_figure(rows, title, speed=speed, ymax=ymax)
    try:
        write_file(out_png, lambda f: fig.savefig(f, dpi=120, format="png"))
    finally:
        import_pyplot().close(fig)
    return Path(out_png)
