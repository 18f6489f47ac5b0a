"""Write the small gzipped slice of the built corpora that the repository ships (data/embedded).

Run through ``python scripts/build_corpora.py embed CORPORA_DIR data/embedded`` after
``scripts/fetch_corpora.sh CORPORA_DIR``. Slices take the first lines of each split, which
build_corpora.py already ordered by group hash (a fixed pseudo-random order), so a slice is a
spread-out sample of pages/documents, and the same corpora always give byte-identical files
(gzip header without name or time). README.md and LICENSES/ are written alongside.

Everything is read and checked first (the built corpora and SOURCES.tsv must be UTF-8, the sides
of a split as long as each other), then written all or nothing (corpus_io.write_outputs): a
failure leaves the destination as it was.
"""
import gzip
import io
from pathlib import Path

from corpus_io import CorpusError, check_output, read_own, write_outputs  # scripts/ (sibling)

# corpus dir: (suffixes, {split: (unit, limit)}); unit "lines" or "bytes"/"words" of the first side
SLICES = {
    "mt_en_de": (("en", "de"), {"train": ("lines", 40000), "valid": ("lines", 500), "test": ("lines", 2000)}),
    "lm_kernel": (("txt",), {"train": ("bytes", 2_150_000), "valid": ("words", 60000),
                             "test": ("words", 60000)}),
    "sum_debian": (("doc", "sum"), {"train": ("lines", 7500), "valid": ("lines", 400), "test": ("lines", 400)}),
}
LICENSE_FILES = {  # name in LICENSES/ -> path under raw/
    "libreoffice-help.copyright.txt": "root/usr/share/doc/libreoffice-help-en-us/copyright",
    "linux-doc-6.1.copyright.txt": "root/usr/share/doc/linux-doc-6.1/copyright",
    "MPL-2.0.txt": "common-licenses/MPL-2.0",
    "GPL-2.0.txt": "common-licenses/GPL-2",
    "GFDL-1.3.txt": "common-licenses/GFDL-1.3",  # kernel media docs: GFDL-1.1-or-later
}


def take(lines: list, unit: str, limit: int) -> int:
    """How many leading lines fit in ``limit`` lines, bytes (utf-8, with newline) or words."""
    if unit == "lines":
        return min(limit, len(lines))
    total = 0
    for n, line in enumerate(lines):
        total += len(line.encode("utf-8")) + 1 if unit == "bytes" else len(line.split())
        if total > limit:
            return n
    return len(lines)


def gz_bytes(lines: list) -> bytes:
    """Deterministic gzip of ``lines``: no file name or time stamp in the header."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as f:
        f.write("".join(line + "\n" for line in lines).encode("utf-8"))
    return buffer.getvalue()


def read_sides(src: Path, split: str, suffixes) -> list:
    """The lines of each side of one split (``train.en``, ``train.de``); the sides must align."""
    sides = [read_own(src / f"{split}.{s}").splitlines() for s in suffixes]
    if len({len(lines) for lines in sides}) > 1:
        raise CorpusError(f"{src}: {' and '.join(f'{split}.{s}' for s in suffixes)} differ in length")
    return sides


def slice_corpus(src: Path, name: str, suffixes, limits, files: dict) -> dict:
    """The first lines of each split of ``src`` as ``name/{split}.{suffix}.gz`` into ``files``; returns counts."""
    counts = {}
    for split, (unit, limit) in limits.items():
        sides = read_sides(src, split, suffixes)
        n = take(sides[0], unit, limit)
        for suffix, lines in zip(suffixes, sides):
            files[f"{name}/{split}.{suffix}.gz"] = gz_bytes(lines[:n])
        counts[split] = {"lines": n, "full": len(sides[0]), "words": [sum(len(x.split()) for x in lines[:n]) for lines in sides]}
    return counts


def read_sources(raw: Path) -> list:
    """Rows of fetch_corpora.sh's SOURCES.tsv (without its header); each has a source and a version."""
    path = raw / "SOURCES.tsv"
    if not path.is_file():
        return []
    rows = [line.split("\t") for line in read_own(path).splitlines()[1:] if line]
    for number, row in enumerate(rows, start=2):
        if len(row) < 2:
            raise CorpusError(f"{path}: line {number} is not tab-separated (source, version, ...)")
    return rows


README = """# Embedded real-text corpora

Small slices of three corpora built from Debian packages, shipped so that the demos and tests
run on real text without network access. The full corpora are rebuilt by the command below.

## Regenerate

```bash
bash scripts/fetch_corpora.sh work/corpora            # downloads, extracts, builds full corpora
.venv/bin/python scripts/build_corpora.py embed work/corpora data/embedded
```

Splits are by a stable SHA-1 hash of a grouping key (MT: help page path, LM: source document
path, SUM: first paragraph of the description), so a page/document/boilerplate paragraph never
straddles two splits; valid/test lines that also occur in train (for MT: either side; for SUM:
the document) are removed, and exact duplicates are kept once. Slices are the first lines of
each split in hash order. Cleaning rules: `scripts/build_corpora.py`, `scripts/corpus_text.py`.

## Contents

| dir | split | lines | words (per side) | lines in the full corpus |
| --- | --- | ---: | ---: | ---: |
{rows}

## Sources, versions, licences

| source | version | licence |
| --- | --- | --- |
{sources}

- `mt_en_de/`: LibreOffice help pages (`usr/share/libreoffice/help/{en-US,de}`), text of the
  paragraphs (`par_id`/`hd_id`) paired by id within a page. Licence: **MPL-2.0**
  (The Document Foundation and LibreOffice contributors); see `LICENSES/`.
- `lm_kernel/`: Linux kernel documentation, reStructuredText sources under
  `usr/share/doc/linux-doc-6.1/html/_sources` (without `translations/`), cleaned to prose
  paragraphs. Licence: mostly **GPL-2.0** (the kernel's default). Each source file states its
  licence in an SPDX line: of the 1,622 that have one, 1,143 say GPL-2.0; 312 (chiefly the media
  API documentation) say GFDL-1.1-no-invariants-or-later and 37 GPL-2.0 OR GFDL-1.1; a few say
  MIT or (GPL-2.0 OR BSD-2-Clause). Copyright the Linux kernel authors; see `LICENSES/`
  (GPL-2.0, GFDL-1.3 as the "or later" version, and Debian's copyright file).
- `sum_debian/`: Debian package descriptions from the archive's `Translation-en` index
  (long description -> document, one-line synopsis -> summary). Each description is part of
  its package and is distributed under that package's licence; every package in Debian main
  is free software under the Debian Free Software Guidelines (DFSG). Attribution: the
  Debian package maintainers and upstream authors.
- `cls_debian/`: package description -> section, a sentence-classification task; built and
  sliced by `scripts/sentence_task.py` (its own README: splits, counts, sources, licence).
"""


def readme(counts: dict, sources: list) -> bytes:
    rows = []
    for name, per_split in counts.items():
        suffixes = SLICES[name][0]
        for split, c in per_split.items():
            words = " / ".join(f"{w} ({s})" for w, s in zip(c["words"], suffixes))
            rows.append(f"| {name} | {split} | {c['lines']} | {words} | {c['full']} |")
    src_rows = [f"| {s[0]} | {s[1]} | " + ("Debian package descriptions (DFSG)" if s[0].startswith("Translation")
                                          else "GPL-2.0" if s[0].startswith("linux") else "MPL-2.0") + " |"
                for s in sources if not s[0].startswith("Packages")]  # cls_debian's, in its README
    text = README.replace("{rows}", "\n".join(rows)).replace("{sources}", "\n".join(src_rows))
    return text.encode("utf-8")


def write_embedded(corpora: Path, out: Path) -> dict:
    """Slice ``corpora/{mt_en_de,lm_kernel,sum_debian}`` into ``out``; returns train line counts."""
    corpora, out = Path(corpora), Path(out)
    check_output(out)
    counts, files = {}, {}
    for name, (suffixes, limits) in SLICES.items():
        if not (corpora / name / f"train.{suffixes[0]}").is_file():
            raise CorpusError(f"missing {corpora / name}/train.{suffixes[0]} (run fetch_corpora.sh first)")
        counts[name] = slice_corpus(corpora / name, name, suffixes, limits, files)
    for name, rel in LICENSE_FILES.items():
        if (corpora / "raw" / rel).is_file():
            files[f"LICENSES/{name}"] = (corpora / "raw" / rel).read_bytes()
    files["README.md"] = readme(counts, read_sources(corpora / "raw"))
    write_outputs(out, files)
    return {name: c["train"]["lines"] for name, c in counts.items()}
