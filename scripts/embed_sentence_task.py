"""Write the shipped slice of the description -> section task (data/embedded/cls_debian).

Run through ``python scripts/sentence_task.py embed CORPORA/cls_debian data/embedded/cls_debian
--raw CORPORA/raw`` after ``scripts/fetch_corpora.sh CORPORA``. The slice is the first lines of
each split; sentence_task.py writes them round-robin over the sections, so a prefix of a
multiple of the number of sections is balanced. Files are deterministic gzip (embed_corpora.py).
As there, everything is read and checked first and then written all or nothing (corpus_io.py).
"""
from pathlib import Path

from corpus_io import CorpusError, check_output, read_own, write_outputs  # scripts/ (siblings)
from embed_corpora import gz_bytes, read_sides, read_sources, take
from sentence_task import SUFFIXES

LIMITS = {"train": 2400, "valid": 400, "test": 400}  # lines; multiples of 8 sections

README = """# cls_debian: Debian package description -> section

A sentence-classification task (fairseq's `sentence_prediction` layout after
`scripts/prepare_sentence_task.sh`): the English description of a Debian package (synopsis, then
the long description, at most 64 words) -> the package's archive section, over the {k} most
frequent sections, balanced ({per_class}). Chance is {chance:.1f}%.

## Regenerate

```bash
bash scripts/fetch_corpora.sh work/corpora        # apt indexes -> raw/debian, builds work/corpora/cls_debian
.venv/bin/python scripts/sentence_task.py embed work/corpora/cls_debian data/embedded/cls_debian --raw work/corpora/raw
```

## Splits

By **source package** (the `Source:` field, else the package name), with a stable SHA-1 hash
(6% of the source packages each for valid and test), so the binary packages of one source
(`libfoo1`, `libfoo-dev`, `libfoo-doc`, whose descriptions share paragraphs) never straddle two
splits. Valid/test texts that also occur in train are dropped, duplicates kept once, then each
split is balanced over the sections and written round-robin; this slice is the first lines.
Rules: `scripts/sentence_task.py`.

| split | examples | words | examples in the full task |
| --- | ---: | ---: | ---: |
{rows}

Sections (labels): {sections}.

## Sources and licence

| index | version |
| --- | --- |
{sources}

Texts: the English package descriptions of Debian's `Translation-en` index; labels: the
`Section:` field of the `Packages` indexes (Debian bookworm, main). Each description is part of
its package and is distributed under that package's licence; every package in Debian main is free
software under the Debian Free Software Guidelines (DFSG). Attribution: the Debian package
maintainers and upstream authors. The section labels are Debian archive metadata.
"""


def write_embedded_task(corpus: Path, out: Path, raw=None) -> dict:
    """Slice the built task ``corpus`` into ``out`` (gzipped) with a README; returns line counts."""
    corpus, out = Path(corpus), Path(out)
    check_output(out)
    if not (corpus / "train.input0").is_file():
        raise CorpusError(f"missing {corpus}/train.input0 (run sentence_task.py build first)")
    rows, counts, files = [], {}, {}
    for split, limit in LIMITS.items():
        sides = read_sides(corpus, split, SUFFIXES)
        n = take(sides[0], "lines", limit)
        for suffix, lines in zip(SUFFIXES, sides):
            files[f"{split}.{suffix}.gz"] = gz_bytes(lines[:n])
        counts[split] = n
        rows.append(f"| {split} | {n} | {sum(len(x.split()) for x in sides[0][:n])} | {len(sides[0])} |")
    sections = sorted(set(read_own(corpus / "train.label").splitlines()))
    if not sections:
        raise CorpusError(f"{corpus}/train.label has no sections (an empty task)")
    per_class = ", ".join(f"{split} {counts[split] // len(sections)}" for split in LIMITS) + " per section"
    sources = [f"| {s[0]} | {s[1]} |" for s in read_sources(Path(raw)) if s[0].startswith(("Translation", "Packages"))] \
        if raw else []
    text = README.format(k=len(sections), per_class=per_class, chance=100 / len(sections), rows="\n".join(rows),
                         sections=", ".join(f"`{s}`" for s in sections), sources="\n".join(sources) or "| - | - |")
    files["README.md"] = text.encode("utf-8")
    write_outputs(out, files)
    return counts
