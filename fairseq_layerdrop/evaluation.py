"""Run fairseq's own evaluation tools on a checkpoint and read their results.

BLEU comes from ``fairseq-generate --scoring sacrebleu``; we also re-score the
detokenized hypotheses with sacrebleu's API to report its signature, and check
that the two numbers agree (:func:`check_bleu_agrees`). Perplexity comes from
``fairseq-eval-lm``; ROUGE-1/2/L from Google's ``rouge-score`` package on the
generated summaries; how varied the generated outputs are from :func:`output_diversity`.
Speeds are the ones the tools print (sentences/s, tokens/s).

Every tool (fairseq's and ours) is started here, as ``python -m MODULE`` with this
interpreter (:func:`tool_command`): that works wherever pip put the console scripts
(a user-site install puts them in ``~/.local/bin``, not beside ``sys.executable``).
Tests and benchmarks start tools and read their output through this module too.
"""
import os
import re
import subprocess
import sys
from collections import Counter
from typing import Dict, List, Sequence, Tuple

# console script -> the module it runs (fairseq's from its setup.py entry points, ours from ours)
TOOL_MODULES = {
    "fairseq-preprocess": "fairseq_cli.preprocess",
    "fairseq-train": "fairseq_cli.train",
    "fairseq-hydra-train": "fairseq_cli.hydra_train",
    "fairseq-generate": "fairseq_cli.generate",
    "fairseq-eval-lm": "fairseq_cli.eval_lm",
    "fairseq-validate": "fairseq_cli.validate",
    "fairseq-layerdrop-prune": "fairseq_layerdrop.cli.prune",
    "fairseq-layerdrop-sweep": "fairseq_layerdrop.cli.sweep",
    "fairseq-layerdrop-plot": "fairseq_layerdrop.cli.plot",
    "fairseq-layerdrop-generate": "fairseq_layerdrop.cli.generate",
}
# sacrebleu's score as fairseq prints it (2 decimals) and our rounding of the same number
BLEU_TOLERANCE = 0.011
# fairseq 0.12 silently drops a last batch smaller than --required-batch-size-multiple
# (default 8), so a test set of 1001 sentences would be scored on 1000: never at eval time.
_ALL_SENTENCES = ["--required-batch-size-multiple", "1"]


class EvalError(RuntimeError):
    """A fairseq tool failed; the message is the last line of its error output."""


def tool_command(tool: str) -> List[str]:
    """The command line that starts ``tool`` (a console-script name) with this interpreter."""
    if tool not in TOOL_MODULES:
        raise ValueError(f"unknown tool {tool!r}; known: {', '.join(TOOL_MODULES)}")
    return [sys.executable, "-m", TOOL_MODULES[tool]]


def run_tool(tool: str, args: Sequence[str], threads: int = 0) -> str:
    """Run ``tool`` (see :func:`tool_command`); return stdout + stderr (raises EvalError)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run([*tool_command(tool), *map(str, args)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        last = [line for line in out.stderr.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
        raise EvalError(f"{tool} failed (exit {out.returncode}): {last[0]}")
    return out.stdout + "\n" + out.stderr


def parse_generate(text: str) -> Dict:
    """Hypotheses, references and speed from ``fairseq-generate`` output."""
    hyps, refs = {}, {}
    for line in text.splitlines():
        if line.startswith("D-"):
            idx, _score, hyp = (line.split("\t") + ["", ""])[:3]
            hyps[int(idx[2:])] = hyp
        elif line.startswith("T-"):
            idx, ref = (line.split("\t", 1) + [""])[:2]
            refs[int(idx[2:])] = ref
    speed = re.search(r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in ([\d.]+)s "
                      r"\(([\d.]+) sentences/s, ([\d.]+) tokens/s\)", text)
    bleu = re.search(r"Generate \S+ with beam=\d+: BLEU = ([\d.]+)", text)
    order = sorted(hyps)
    return {
        "hyps": [hyps[i] for i in order], "refs": [refs.get(i, "") for i in order],
        "sentences": int(speed.group(1).replace(",", "")) if speed else len(order),
        "tokens": int(speed.group(2).replace(",", "")) if speed else None,
        "gen_seconds": float(speed.group(3)) if speed else None,
        "sentences_per_s": float(speed.group(4)) if speed else None,
        "tokens_per_s": float(speed.group(5)) if speed else None,
        "fairseq_bleu": float(bleu.group(1)) if bleu else None,
    }


def parse_eval_lm(text: str) -> Dict:
    """Loss, perplexity and speed from ``fairseq-eval-lm`` output."""
    ppl = re.search(r"Loss \(base 2\): ([\d.]+), Perplexity: ([\d.]+)", text)
    speed = re.search(r"Evaluated ([\d,]+) tokens in ([\d.]+)s \(([\d.]+) tokens/s\)", text)
    if not ppl:
        raise EvalError("fairseq-eval-lm printed no perplexity")
    return {"loss_base2": float(ppl.group(1)), "ppl": float(ppl.group(2)),
            "tokens": int(speed.group(1).replace(",", "")) if speed else None,
            "eval_seconds": float(speed.group(2)) if speed else None,
            "tokens_per_s": float(speed.group(3)) if speed else None}


def sacrebleu_score(hyps: List[str], refs: List[str]) -> Tuple[float, str]:
    """Corpus BLEU and its sacrebleu signature."""
    import sacrebleu

    metric = sacrebleu.BLEU()
    score = metric.corpus_score(hyps, [refs])
    return round(score.score, 2), str(metric.get_signature())


def check_bleu_agrees(result: Dict) -> None:
    """Raise EvalError unless fairseq's printed BLEU equals our sacrebleu re-score (to rounding).

    Both score the same detokenized strings (``D-`` and ``T-`` lines); a difference means the
    hypotheses were read wrongly. No check when fairseq printed no sacrebleu BLEU (other
    ``--scoring`` in the extra arguments).
    """
    ours, theirs = result["bleu"], result.get("fairseq_bleu")
    if theirs is not None and abs(ours - theirs) > BLEU_TOLERANCE:
        raise EvalError(f"BLEU mismatch: fairseq-generate printed {theirs}, sacrebleu on its D-/T- lines "
                        f"gives {ours} ({len(result['hyps'])} sentences)")


def rouge_scores(hyps: List[str], refs: List[str]) -> Dict[str, float]:
    """Mean ROUGE-1/2/L F1 (x100) with Porter stemming, as usually reported."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hyp, ref in zip(hyps, refs):
        for key, value in scorer.score(ref, hyp).items():
            totals[key] += value.fmeasure
    n = max(len(hyps), 1)
    return {key: round(100 * value / n, 2) for key, value in totals.items()}


def output_diversity(hyps: List[str]) -> Dict[str, float]:
    """How varied the outputs are: a degenerate model (one summary for every input) shows at once.

    ``distinct_outputs``: distinct hypotheses / hypotheses; ``top_output_share``: the share of the
    most frequent hypothesis (1.0 = a constant output).
    """
    if not hyps:
        return {"distinct_outputs": None, "top_output_share": None}
    counts = Counter(hyps)
    return {"distinct_outputs": round(len(counts) / len(hyps), 4),
            "top_output_share": round(max(counts.values()) / len(hyps), 4)}


def generate(ckpt: str, data: str, subset: str = "test", beam: int = 5, max_tokens: int = 4096,
             post_process: str = "sentencepiece", extra: Sequence[str] = (), threads: int = 0) -> Dict:
    """``fairseq-generate`` with sacrebleu scoring; returns hypotheses, BLEU and speed."""
    args = [data, "--path", ckpt, "--gen-subset", subset, "--beam", beam, "--max-tokens", max_tokens,
            "--scoring", "sacrebleu", "--num-workers", "0", *_ALL_SENTENCES, *extra]
    if post_process:
        args += ["--post-process", post_process]
    result = parse_generate(run_tool("fairseq-generate", args + _cpu_flag(), threads))
    result["bleu"], result["bleu_signature"] = sacrebleu_score(result["hyps"], result["refs"])
    check_bleu_agrees(result)
    return result


def eval_lm(ckpt: str, data: str, subset: str = "test", tokens_per_sample: int = 128,
            max_tokens: int = 4096, extra: Sequence[str] = (), threads: int = 0) -> Dict:
    """``fairseq-eval-lm`` perplexity and speed."""
    args = [data, "--path", ckpt, "--gen-subset", subset, "--tokens-per-sample", tokens_per_sample,
            "--max-tokens", max_tokens, "--num-workers", "0", *_ALL_SENTENCES, *extra]
    return parse_eval_lm(run_tool("fairseq-eval-lm", args + _cpu_flag(), threads))


def _cpu_flag() -> List[str]:
    import torch

    return [] if torch.cuda.is_available() else ["--cpu"]
