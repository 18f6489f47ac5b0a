"""Validation curves of fairseq-train runs: parse, summarise, plot.

    python scripts/curves.py work/x/ckpt/lm8_p0/train.log --name lm8_p0 -o curves/lm8_p0.json
    python scripts/curves.py --summary curves/*.json          # markdown: best epoch, stop reason
    python scripts/curves.py --plot valid_curves.png curves/*.json

A run counts as converged when fairseq stopped it early (``--patience`` validations without a
new best validation loss); a run that reached ``--max-update`` first is marked "cap reached", and
one stopped by hand (``--stopped-by-hand REASON``, from a ``STOP`` file in its save directory, see
``scripts/reproduce_common.sh``) "by hand: REASON".
Logs of resumed runs hold several sittings: a validation repeated after a resume (same update
count) is kept once, the later one. fairseq counts ``--patience`` afresh in each sitting, so a
resumed run would stop late; ``--stalled`` applies the rule to the whole log instead
(``scripts/reproduce_common.sh`` stops a run with it), and ``-o ... --patience N`` records such a
stop as an early stop.

    python scripts/curves.py work/x/ckpt/lm8_p0/train.log --stalled 3   # exit 0 once on the plateau
"""
import argparse
import json
import re
import sys
from datetime import datetime
from pathlib import Path

VALID = re.compile(r"\| valid on 'valid' subset \| (.*)$")
FIELD = re.compile(r"(\w+) ([-+0-9.e]+|inf|nan)(?: \||$)")
EARLY_STOP = "early stop since valid performance hasn't improved"
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \| ")
SITTING_START = "| fairseq_cli.train | {"  # fairseq-train logs its config first, once per sitting


def logged_seconds(text: str) -> int:
    """Training wall time of a log: the span of logged times of each sitting, summed (a sitting
    stopped by a kill counts up to its last line; the pauses between sittings do not count)."""
    total, first, last = 0.0, None, None
    for line in text.splitlines():
        match = STAMP.match(line)
        if not match:
            continue
        when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
        if SITTING_START in line and first is not None:
            total += (last - first).total_seconds()
            first = None
        first, last = first or when, when
    if first is not None:
        total += (last - first).total_seconds()
    return int(total)


def parse_log(text: str) -> dict:
    """``{"points": [{epoch, num_updates, loss, nll_loss, ppl}], "early_stop": bool}``."""
    by_update = {}
    for line in text.splitlines():
        match = VALID.search(line)
        if not match:
            continue
        fields = dict(FIELD.findall(match.group(1) + " |"))
        epoch = re.search(r"\| epoch (\d+) \|", line)
        point = {"epoch": int(epoch.group(1)) if epoch else None,
                 "num_updates": int(float(fields["num_updates"]))}
        for key in ("loss", "nll_loss", "ppl"):
            if key in fields:
                point[key] = float(fields[key])
        by_update[point["num_updates"]] = point
    return {"points": [by_update[k] for k in sorted(by_update)], "early_stop": EARLY_STOP in text}


def stop_index(points, patience: int):
    """Index of the validation at which fairseq's ``--patience`` rule (``patience`` validations in
    a row without a strictly lower loss than the best so far), applied to every sitting of the
    log as one run, stops training; None while it would go on."""
    best, since = None, 0
    for i, point in enumerate(points):
        if best is None or point["loss"] < best:
            best, since = point["loss"], 0
        else:
            since += 1
            if since >= patience:
                return i
    return None


def summarise(run: dict) -> dict:
    points = run["points"]
    if not points:
        return {"name": run["name"], "validations": 0}
    # fairseq's checkpoint_best takes ties as better, so the best checkpoint is the last minimum
    best = min(reversed(points), key=lambda p: p["loss"])
    return {"name": run["name"], "validations": len(points), "updates": points[-1]["num_updates"],
            "best_updates": best["num_updates"], "best_loss": best["loss"],
            "best_nll_loss": best.get("nll_loss"), "best_ppl": best.get("ppl"),
            "stopped": stop_reason(run),
            "train_seconds": run.get("train_seconds")}


def stop_reason(run: dict) -> str:
    if run["early_stop"]:
        return "early stop (plateau)"
    if run.get("stopped_by_hand"):
        return f"by hand: {run['stopped_by_hand']}"
    return "cap reached" if run.get("finished", True) else "still training"


def summary_table(runs) -> str:
    lines = ["| run | updates | best at | best valid loss | valid ppl | stopped by | train time |",
             "|---|---|---|---|---|---|---|"]
    for s in map(summarise, runs):
        if not s["validations"]:
            lines.append(f"| {s['name']} | 0 | | | | no validation yet | |")
            continue
        secs = s["train_seconds"]
        wall = f"{secs / 60:.0f} min" if secs is not None else ""
        ppl = f"{s['best_ppl']:.2f}" if s["best_ppl"] is not None else ""
        lines.append(f"| {s['name']} | {s['updates']} | {s['best_updates']} | {s['best_loss']:.3f} | "
                     f"{ppl} | {s['stopped']} | {wall} |")
    return "\n".join(lines)


def plot(runs, out_png: str) -> None:
    from fairseq_layerdrop.plotting import import_pyplot  # Agg backend, matplotlib's logging quiet

    plt = import_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        pts = run["points"]
        ax.plot([p["num_updates"] for p in pts], [p["loss"] for p in pts], marker=".", label=run["name"])
    ax.set(xlabel="updates", ylabel="validation loss (bits/token)", title="validation curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def _patience(text: str) -> int:
    """argparse type: a number of validations >= 1 (0 would call every run stalled)."""
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 10**6):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (the plugin's OneLineParser imports torch: too slow for --stalled,
    which reproduce_common.sh polls during training)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv=None) -> int:
    p = _Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", help="a train.log (with -o) or curve .json files")
    p.add_argument("--name", help="run name stored in the JSON (default: the log's directory)")
    p.add_argument("-o", "--output", help="write the parsed curve of one train.log here (JSON)")
    p.add_argument("--running", action="store_true",
                   help="with -o: the run has not finished (a snapshot of its curve so far)")
    p.add_argument("--patience", type=_patience, help="with -o: a plateau of this many validations is an early "
                   "stop, whichever sitting of the log it spans")
    p.add_argument("--stopped-by-hand", metavar="REASON", help="with -o: the run was stopped by hand before "
                   "its plateau or cap, for this reason (one line, shown in --summary)")
    p.add_argument("--stalled", type=_patience, metavar="PATIENCE", help="exit 0 if the train.log (all sittings) "
                   "has reached the plateau that stops a run with --patience PATIENCE, else 1")
    p.add_argument("--summary", action="store_true", help="print a markdown table of curve files")
    p.add_argument("--plot", metavar="PNG", help="plot the curve files")
    args = p.parse_args(argv)
    try:
        return _run(args)
    except (OSError, ValueError, KeyError, TypeError) as err:  # unreadable log or curve file
        p.exit(2, f"{p.prog}: error: {type(err).__name__}: {err}\n")


def read_curve(path: str) -> dict:
    """A curve .json file; a file that is not JSON is named in the error."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a curve file: {err}") from None


def _run(args) -> int:
    if args.stalled is not None:
        stop = stop_index(parse_log(Path(args.inputs[0]).read_text(encoding="utf-8", errors="replace"))["points"],
                          args.stalled)
        return 1 if stop is None else 0
    if args.output:
        log = Path(args.inputs[0])
        text = log.read_text(encoding="utf-8", errors="replace")
        run = parse_log(text)
        if args.patience:
            run["early_stop"] = run["early_stop"] or stop_index(run["points"], args.patience) is not None
        run["name"] = args.name or log.parent.name
        run["finished"] = not args.running
        if args.stopped_by_hand:
            run["stopped_by_hand"] = " ".join(args.stopped_by_hand.split())
        run["train_seconds"] = logged_seconds(text)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        # imported here: the package imports torch, and --stalled (polled during training) must stay fast
        from fairseq_layerdrop.result_files import write_json
        write_json(args.output, run)
        print(json.dumps(summarise(run)))
        return 0
    runs = [read_curve(f) for f in args.inputs]
    if args.plot:
        plot(runs, args.plot)
    if args.summary:
        print(summary_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
