"""A real sentence-classification task from Debian's archive: package description -> section.

Input: apt's ``Packages`` indexes (``Package``, ``Source``, ``Section``, ``Description-md5``) and
the ``Translation-en`` index (the English descriptions, keyed by package and ``Description-md5``),
as plain text (``scripts/fetch_corpora.sh`` decompresses both into ``raw/debian``). One example
per binary package: the synopsis and long description, at most ``MAX_WORDS`` words, labelled
with the package's section.

Rules (deterministic: the same indexes always give byte-identical files):

* labels: the ``NUM_SECTIONS`` most frequent sections among described packages (ties by name);
* splits by **source package** (``Source:``, else the package name) with build_corpora's stable
  hash, so ``libfoo1``, ``libfoo-dev`` and ``libfoo-doc`` always land in the same split; valid and
  test texts that also occur in train are dropped (and test texts seen in valid), duplicates
  are kept once;
* balance: every split keeps the same number of examples per section (the rarest section's
  count in that split), written round-robin over the sections in hash order, so every prefix of
  ``k * NUM_SECTIONS`` lines is balanced too (the embedded slice is such a prefix).

Output: ``{train,valid,test}.input0`` (text) and ``.label`` (section), the layout of
``scripts/prepare_sentence_task.sh``. ``embed`` writes the small gzipped slice under
``data/embedded/cls_debian`` with its README (counts, sources, licence).

Hostile input (rules in corpus_io.py): a description or section holding bytes that are not
UTF-8 is dropped, a truncated or corrupt compressed index (.gz, .bz2, .xz) is refused, and the
files are written all or nothing; failures are one line ``sentence_task.py: error: ...``, exit 2
(a bug 1, Ctrl-C 130).

    python scripts/sentence_task.py build RAW_DEBIAN_DIR OUT_DIR
    python scripts/sentence_task.py embed OUT_DIR data/embedded/cls_debian [--raw RAW_DIR]
"""
import re
import sys
from collections import Counter
from pathlib import Path

from build_corpora import SPLITS, assign_splits, check_raw, write_splits  # scripts/ (siblings)
from corpus_io import CorpusError, OneLineParser, index_files, positive_int, read_raw, run
from corpus_text import normalise, parse_descriptions, undecodable

NUM_SECTIONS = 8
MAX_WORDS = 64  # a description's first words; the synopsis comes first
PERMILLE = 60  # valid and test: 6% of the source packages each (before balancing)
SALT = "cls"
SUFFIXES = ("input0", "label")
_FIELD = re.compile(r"^([A-Za-z0-9-]+):[ \t]*(.*)$")


def parse_packages(text: str):
    """``{field: value}`` per stanza of a ``Packages`` index (first line of each field only)."""
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            m = _FIELD.match(line)
            if m:
                fields[m.group(1)] = m.group(2).strip()
        if "Package" in fields:
            yield fields


def parse_translations(text: str) -> dict:
    """``{(package, description md5): (synopsis, [paragraphs])}`` from a Translation-en index."""
    out = {}
    for stanza in re.split(r"\n\s*\n", text):
        package = re.search(r"^Package: *(\S+)", stanza, re.M)
        md5 = re.search(r"^Description-md5: *(\S+)", stanza, re.M)
        described = list(parse_descriptions(stanza))
        if package and md5 and described:
            out[(package.group(1), md5.group(1))] = described[0]
    return out


def example_text(synopsis: str, paragraphs, max_words: int = MAX_WORDS) -> str:
    """Synopsis, then the long description, cut to ``max_words`` words, one line."""
    words = normalise(" ".join([synopsis.rstrip(".") + "."] + list(paragraphs))).split()
    return " ".join(words[:max_words])


def described_packages(raw: Path):
    """``(source package, text, section)`` per described binary package (first index wins)."""
    packages, indexes = index_files(raw, "*_Packages*"), index_files(raw, "*Translation-en*")
    if not packages or not indexes:
        raise CorpusError(f"need *_Packages and *Translation-en* indexes (plain, .gz, .bz2 or .xz) under {raw}")
    texts = {}
    for path in indexes:
        for key, value in parse_translations(read_raw(path)).items():
            texts.setdefault(key, value)
    seen = set()
    for path in packages:
        for fields in parse_packages(read_raw(path)):
            name, section = fields["Package"], fields.get("Section", "").rsplit("/", 1)[-1]
            described = texts.get((name, fields.get("Description-md5", "")))
            if name in seen or not section or undecodable(section) or described is None:
                continue  # a section with bytes that were not UTF-8 is no label
            seen.add(name)
            source = fields.get("Source", name).split(" ", 1)[0]
            yield source, example_text(*described), section


def top_sections(rows, k: int = NUM_SECTIONS) -> list:
    counts = Counter(section for _, _, section in rows)
    return sorted(counts, key=lambda s: (-counts[s], s))[:k]


def balance(examples, sections) -> list:
    """The same number of examples per section, interleaved round-robin (hash order within)."""
    by_section = {s: [ex for ex in examples if ex[1] == s] for s in sections}
    n = min(len(v) for v in by_section.values())
    return [by_section[s][i] for i in range(n) for s in sections]


def build(raw: Path, out: Path, k: int = NUM_SECTIONS, permille: int = PERMILLE) -> dict:
    """Build the task from ``raw`` into ``out`` (all read first, then written); returns ``{split: examples}``."""
    check_raw(raw, out)
    rows = list(described_packages(Path(raw)))
    sections = top_sections(rows, k)
    if not sections:
        raise CorpusError(f"no package under {raw} has both a section and a description")
    groups = {}
    for source, text, section in rows:
        if section in sections:
            groups.setdefault(source, []).append((text, section))
    splits = assign_splits(list(groups.items()), SALT, (0,), None, permille)
    splits = {name: balance(splits[name], sections) for name in SPLITS}
    if not splits["train"] or not splits["test"]:
        raise CorpusError(f"too few examples under {raw} for {k} balanced sections")
    return write_splits(splits, Path(out), SUFFIXES)


def main(argv=None) -> int:
    parser = OneLineParser(prog="sentence_task.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["build", "embed"])
    parser.add_argument("src", type=Path, help="build: dir with the apt indexes; embed: the built task")
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--sections", type=positive_int, default=NUM_SECTIONS, help="number of sections (labels)")
    parser.add_argument("--raw", type=Path, help="embed: the raw/ dir of fetch_corpora.sh (SOURCES.tsv)")
    args = parser.parse_args(argv)

    def work():
        if args.mode == "build":
            counts = build(args.src, args.out, args.sections)
        else:
            from embed_sentence_task import write_embedded_task  # sibling; only when embedding
            counts = write_embedded_task(args.src, args.out, args.raw)
        print(f"cls ({args.mode}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    return run("sentence_task.py", work)


if __name__ == "__main__":
    sys.exit(main())
