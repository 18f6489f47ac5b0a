"""Print a markdown table of one or more sweep.json files (fairseq-layerdrop-sweep output).

    python scripts/results_table.py work/reproduce_lm/sweeps/*/sweep.json
"""
import argparse
import json

COLUMNS = [("label", "model"), ("depth", "layers kept"), ("bleu", "BLEU"), ("rouge1", "R-1"),
           ("rouge2", "R-2"), ("rougeL", "R-L"), ("ppl", "ppl"), ("params", "params"),
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


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweeps", nargs="+", help="sweep.json files")
    args = p.parse_args()
    rows = []
    for path in args.sweeps:
        with open(path) as f:
            rows += json.load(f)["rows"]
    print(table(rows))


if __name__ == "__main__":
    main()
