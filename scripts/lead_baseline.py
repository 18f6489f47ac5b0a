"""Lead baselines for summarization: the first words / first sentence of each document, scored
with the same ROUGE as the models (fairseq_layerdrop.evaluation.rouge_scores).

    python scripts/lead_baseline.py CORPUS_DIR [--split test] [-o lead.json]

"lead-K" takes the first K words, K from 5 to 12 and K = the mean reference length rounded;
"first sentence" cuts at the first '.', '!' or '?' followed by a space. "coverage" is how much
a summary could copy: the share of its words found anywhere in its document and in the words
lead-12 takes (words compared as lower-cased runs of letters, digits and underscores, so
"command-line" is two).
"""
import gzip
import re
import sys
import zlib
from pathlib import Path

from fairseq_layerdrop.cli.boundary import OneLineParser
from fairseq_layerdrop.evaluation import rouge_scores
from fairseq_layerdrop.result_files import write_json


def read(corpus: Path, name: str) -> list:
    for path in (corpus / name, corpus / f"{name}.gz"):
        if path.is_file():
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as f:
                return f.read().splitlines()
    raise FileNotFoundError(f"{corpus}/{name}[.gz]")


def _words(text: str) -> list:
    return re.findall(r"\w+", text.lower())


def coverage(docs: list, refs: list, lead: int = 12) -> dict:
    """Percent of summary words (all summaries pooled) found in the document / in its first ``lead`` words."""
    total = in_doc = in_lead = 0
    for doc, ref in zip(docs, refs):
        everywhere, first = set(_words(doc)), set(_words(" ".join(doc.split()[:lead])))
        for word in _words(ref):
            total += 1
            in_doc += word in everywhere
            in_lead += word in first
    share = (lambda n: round(100.0 * n / total, 2)) if total else (lambda n: 0.0)
    return {"summary_words": total, "in_document": share(in_doc), f"in_first_{lead}_words": share(in_lead)}


def baselines(docs: list, refs: list) -> dict:
    mean_len = round(sum(len(r.split()) for r in refs) / len(refs))
    out = {}
    for k in sorted({5, 8, 10, 12, mean_len}):
        out[f"lead-{k}"] = rouge_scores([" ".join(d.split()[:k]) for d in docs], refs)
    first = [re.split(r"(?<=[.!?])\s", d, maxsplit=1)[0] for d in docs]
    out["first sentence"] = rouge_scores(first, refs)
    return {"mean_reference_words": mean_len, "lines": len(refs), "scores": out, "coverage": coverage(docs, refs)}


def main(argv=None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus", type=Path, help="directory with SPLIT.doc and SPLIT.sum (plain or .gz)")
    p.add_argument("--split", default="test")
    p.add_argument("-o", "--output", type=Path, help="write the scores here (JSON)")
    args = p.parse_args(argv)
    if args.output and not args.output.parent.is_dir():  # found now, not after the scoring
        p.exit(2, f"{p.prog}: error: no directory for -o: {args.output.parent}\n")
    try:
        docs, refs = read(args.corpus, f"{args.split}.doc"), read(args.corpus, f"{args.split}.sum")
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as err:  # EOFError, zlib.error: a broken .gz
        p.exit(2, f"{p.prog}: error: {type(err).__name__}: {err}\n")
    if len(docs) != len(refs) or not refs:
        p.exit(2, f"{p.prog}: error: {len(docs)} documents but {len(refs)} summaries\n")
    result = baselines(docs, refs)
    if args.output:
        try:
            write_json(args.output, result)
        except OSError as err:
            p.exit(2, f"{p.prog}: error: {type(err).__name__}: {err}\n")
    for name, s in result["scores"].items():
        print(f"{name}: ROUGE-1 {s['rouge1']:.2f}  ROUGE-2 {s['rouge2']:.2f}  ROUGE-L {s['rougeL']:.2f}")
    cov = result["coverage"]
    print(f"summary words found in the document: {cov['in_document']:.1f}%, "
          f"in its first 12 words: {cov['in_first_12_words']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
