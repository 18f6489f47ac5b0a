"""Accuracy of sentence_prediction fine-tunings (scripts/reproduce_roberta.sh), and their table.

    python scripts/roberta_scores.py score ft/NAME/train.log -o ft/NAME/score.json
    python scripts/roberta_scores.py table ft/*/score.json          # markdown, one row per model

A fine-tuning validates on ``valid`` and ``test`` after every epoch (``--valid-subset valid,test``);
its score is the test accuracy at the epoch of the best valid accuracy (the first one on ties),
i.e. model selection on valid only. Score files carry the run's name ``<model>_d<depth>_s<seed>``.
"""
import json
import re
import statistics
import sys
from pathlib import Path

from fairseq_layerdrop.cli.boundary import OneLineParser
from fairseq_layerdrop.result_files import write_json

VALID = re.compile(r"\| epoch (\d+) \| valid on '(\w+)' subset \| .*?\| accuracy ([0-9.]+)")
NAME = re.compile(r"^(?P<model>.+)_d(?P<depth>\d+)_s(?P<seed>\d+)$")


def score_log(text: str) -> dict:
    """``{"epoch", "valid", "test", "epochs"}`` from a fairseq-train log (accuracies in %)."""
    acc = {}
    for epoch, subset, value in VALID.findall(text):
        acc.setdefault(int(epoch), {})[subset] = float(value)
    epochs = sorted(e for e, a in acc.items() if "valid" in a and "test" in a)
    if not epochs:
        raise ValueError("no epoch with both 'valid' and 'test' accuracy in the log")
    best = max(epochs, key=lambda e: (acc[e]["valid"], -e))
    return {"epoch": best, "valid": acc[best]["valid"], "test": acc[best]["test"], "epochs": len(epochs)}


def read_score(path: Path) -> dict:
    """A score file of ``score``: a name ``MODEL_dDEPTH_sSEED`` and numeric accuracies, else ValueError."""
    s = json.loads(path.read_text("utf-8"))
    if not (isinstance(s, dict) and isinstance(s.get("name"), str) and NAME.match(s["name"])
            and all(isinstance(s.get(k), (int, float)) for k in ("test", "valid"))):
        raise ValueError(f"{path}: not a score file of 'roberta_scores.py score' (name MODEL_dN_sK, test, valid)")
    return s


def table(scores) -> str:
    """Markdown: model, layers fine-tuned, test accuracy mean and per seed, valid mean."""
    cells = {}
    for s in scores:
        m = NAME.match(s["name"])
        if m:
            cells.setdefault((m["model"], int(m["depth"])), []).append((int(m["seed"]), s))
    lines = ["| pretrained model | layers fine-tuned | test acc. (mean) | per seed | valid acc. (mean) |",
             "|---|---|---|---|---|"]
    for (model, depth), runs in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        runs.sort(key=lambda r: r[0])
        test = statistics.mean(r["test"] for _, r in runs)
        valid = statistics.mean(r["valid"] for _, r in runs)
        seeds = ", ".join(f"s{seed} {r['test']:.1f}" for seed, r in runs)
        lines.append(f"| {model} | {depth} | {test:.1f} | {seeds} | {valid:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("score", help="score one fine-tuning log")
    one.add_argument("log", type=Path)
    one.add_argument("-o", "--output", type=Path, required=True)
    many = sub.add_parser("table", help="markdown table of score files")
    many.add_argument("scores", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "score":
            result = dict(score_log(args.log.read_text("utf-8", errors="replace")), name=args.log.parent.name)
            write_json(args.output, result)
            print(f"{result['name']}: test {result['test']:.1f} (valid {result['valid']:.1f}, epoch {result['epoch']})")
        else:
            print(table([read_score(p) for p in args.scores]), end="")
    except (OSError, ValueError) as err:
        print(f"roberta_scores.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
