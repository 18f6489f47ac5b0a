"""Print a markdown table of one or more sweep.json files (fairseq-layerdrop-sweep output).

    python scripts/results_table.py work/reproduce_lm/sweeps/*/sweep.json
"""
import re
import statistics

from fairseq_layerdrop.cli.boundary import OneLineParser
from fairseq_layerdrop.result_files import read_sweep

COLUMNS = [("label", "model"), ("depth", "layers kept"), ("bleu", "BLEU"), ("rouge1", "R-1"),
           ("rouge2", "R-2"), ("rougeL", "R-L"), ("ppl", "ppl"), ("distinct_outputs", "distinct outputs"),
           ("top_output_share", "top output share"), ("params", "params"),
           ("file_mb", "MB"), ("sentences_per_s", "sent/s"), ("tokens_per_s", "tok/s")]


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value / 1e6:.2f}M"
    return str(value)


def table(rows) -> str:
    cols = [(k, title) for k, title in COLUMNS if any(row.get(k) is not None for row in rows)]
    lines = ["| " + " | ".join(t for _, t in cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(k, "")) for k, _ in cols) + " |")
    return "\n".join(lines)


def pivot(rows, metric: str) -> str:
    """Depths down, models across: ``metric`` per (depth, model), plus parameters and tokens/s."""
    labels = list(dict.fromkeys(row["label"] for row in rows))
    depths = sorted({row["depth"] for row in rows})
    cell = {(row["depth"], row["label"]): row for row in rows}
    lines = ["| layers kept | " + " | ".join(labels) + " | params | tok/s |", "|" + "---|" * (len(labels) + 3)]
    for d in depths:
        any_row = next(cell[(d, lab)] for lab in labels if (d, lab) in cell)
        values = [fmt(cell[(d, lab)].get(metric, "")) if (d, lab) in cell else "" for lab in labels]
        lines.append(f"| {d} | " + " | ".join(values) + f" | {fmt(any_row.get('params', ''))} | "
                     f"{fmt(any_row.get('tokens_per_s'))} |")
    return "\n".join(lines)


SEED = re.compile(r"^(.*) \(seed (\d+)\)$")


def merge_seeds(rows, metric: str):
    """Rows of runs labelled ``NAME (seed K)`` merged into one row per (NAME, depth) whose
    ``metric`` reads ``mean (v1 / v2 / ...)``, values in seed order; other labels unchanged."""
    groups = {}
    for row in rows:
        match = SEED.match(row["label"])
        name, seed = (match.group(1), int(match.group(2))) if match else (row["label"], None)
        groups.setdefault((name, row["depth"]), []).append((seed, row))
    merged = []
    for (name, _), members in groups.items():
        members.sort(key=lambda m: (m[0] is None, m[0]))
        row = dict(members[0][1], label=name)
        values = [m[1][metric] for m in members if m[1].get(metric) is not None]
        if len(values) > 1:
            row[metric] = f"{statistics.mean(values):.2f} ({' / '.join(f'{v:.2f}' for v in values)})"
        merged.append(row)
    return merged


def main():
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweeps", nargs="+", help="sweep.json files")
    p.add_argument("--pivot", metavar="METRIC", help="one row per depth, one column per model (e.g. ppl, bleu)")
    p.add_argument("--merge-seeds", action="store_true",
                   help="with --pivot: one column per model over its '(seed K)' runs: mean (each seed)")
    args = p.parse_args()
    rows = []
    for path in args.sweeps:
        try:
            rows += read_sweep(path, args.pivot)
        except (OSError, ValueError) as err:
            p.exit(2, f"{p.prog}: error: {path}: not a readable sweep.json ({type(err).__name__}: {err})\n")
    if args.pivot and not any(args.pivot in row for row in rows):
        p.exit(2, f"{p.prog}: error: --pivot {args.pivot}: no such metric in these sweeps\n")
    if args.merge_seeds and not args.pivot:
        p.exit(2, f"{p.prog}: error: --merge-seeds needs --pivot METRIC\n")
    if args.merge_seeds:
        rows = merge_seeds(rows, args.pivot)
    print(pivot(rows, args.pivot) if args.pivot else table(rows))


if __name__ == "__main__":
    main()
