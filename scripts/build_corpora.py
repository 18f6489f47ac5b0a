"""Build clean real-text corpora from Debian packages extracted by scripts/fetch_corpora.sh.

Three corpora, each split train/valid/test by a stable hash of a grouping key, so the same
input always gives the same files and a group never straddles two splits:

  mt   LibreOffice help pages (HTML) en-US/de, paragraphs paired by their shared ``id``
       attribute within the same page; key = page path.          -> {train,valid,test}.{en,de}
  lm   Linux kernel documentation (reStructuredText under html/_sources), cleaned to prose
       paragraphs, one per line; key = source document path.    -> {train,valid,test}.txt
  sum  Debian package descriptions (apt's Translation-en index): long description -> synopsis;
       key = the FIRST paragraph, since many packages share a boilerplate first paragraph
       and a shared paragraph must not sit in train and test at once.  -> {...}.doc / .sum

Standard library only (no fairseq); the format readers live in corpus_text.py, reading,
writing and exit statuses in corpus_io.py: bytes that are not UTF-8 cost only the paragraphs
holding them, a truncated or corrupt compressed index is refused, and a build writes all of its
files or none (one line ``build_corpora.py: error: ...``, exit 2; Ctrl-C 130).
``embed`` writes the small gzipped slice committed under data/embedded (see embed_corpora.py).
"""
import hashlib
import sys
from pathlib import Path

# siblings in scripts/: reading, writing and exit statuses; the format readers
from corpus_io import CorpusError, OneLineParser, check_output, index_files, positive_int, read_raw, run, write_outputs
from corpus_text import pair_pages, parse_descriptions, rst_paragraphs

SPLITS = ("train", "valid", "test")


# ---------------------------------------------------------------- splitting (all corpora)
def group_hash(key: str, salt: str) -> str:
    # surrogateescape: a file name that is not UTF-8 keeps its own bytes (others hash as before)
    return hashlib.sha1(f"{salt}\0{key}".encode("utf-8", "surrogateescape")).hexdigest()


def split_of(key: str, salt: str, permille: int = 20) -> str:
    """'train' / 'valid' / 'test' from the hash alone (``permille``/1000 each for valid and
    test): stable across runs and machines."""
    bucket = int(group_hash(key, salt)[:8], 16) % 1000
    if bucket < permille:
        return "valid"
    return "test" if bucket < 2 * permille else "train"


def assign_splits(groups, salt: str, check_sides=(0,), max_train=None, permille=20) -> dict:
    """Split ``(key, [example tuple, ...])`` groups; dedupe; remove leakage.

    Groups are visited in hash order (a fixed pseudo-random order, so ``max_train`` keeps a
    spread-out sample rather than one alphabetical corner). Exact duplicate examples are kept
    once per split. A valid/test example is dropped when any of its ``check_sides`` also occurs
    in train (and, for test, in valid): no line of an evaluation split is seen in training.
    """
    splits = {name: [] for name in SPLITS}
    for key, examples in sorted(groups, key=lambda g: group_hash(g[0], salt)):
        splits[split_of(key, salt, permille)].extend(examples)
    seen = [set() for _ in range(max(check_sides) + 1)]
    for name in SPLITS:
        kept, uniq = [], set()
        for ex in splits[name]:
            leaks = name != "train" and any(ex[i] in seen[i] for i in check_sides)
            if ex not in uniq and not leaks:
                uniq.add(ex)
                kept.append(ex)
        splits[name] = kept
        for ex in kept:  # train lines guard valid and test; valid lines guard test
            for i in check_sides:
                seen[i].add(ex[i])
    if max_train is not None:
        splits["train"] = splits["train"][:max_train]
    return splits


def write_splits(splits: dict, out_dir: Path, suffixes) -> dict:
    """Write one file per split and side (``train.en`` ...), all or nothing; returns {split: line count}."""
    files = {f"{name}.{suffix}": "".join(ex[side] + "\n" for ex in examples).encode("utf-8")
             for name, examples in splits.items() for side, suffix in enumerate(suffixes)}
    write_outputs(out_dir, files)
    return {name: len(examples) for name, examples in splits.items()}


def find_dir(raw: Path, pattern: str) -> Path:
    """``raw`` itself, or the single directory under it matching ``pattern`` (glob)."""
    hits = sorted(p for p in raw.glob(pattern) if p.is_dir())
    return hits[-1] if hits else raw


# ---------------------------------------------------------------- MT: LibreOffice help
def mt_groups(raw: Path):
    help_dir = find_dir(raw, "**/libreoffice/help")
    en_dir, de_dir = help_dir / "en-US", help_dir / "de"
    if not en_dir.is_dir() or not de_dir.is_dir():
        raise CorpusError(f"no LibreOffice help en-US/ and de/ under {raw}")
    for en_file in sorted(en_dir.rglob("*.html")):
        rel = en_file.relative_to(en_dir).as_posix()
        de_file = de_dir / rel
        if de_file.is_file():
            pairs = pair_pages(read_raw(en_file), read_raw(de_file))
            yield rel, pairs


# ---------------------------------------------------------------- LM: kernel docs (reST)
def lm_groups(raw: Path):
    src = find_dir(raw, "**/html/_sources")
    files = sorted(p for p in src.rglob("*.txt") if p.is_file())
    if not files:
        raise CorpusError(f"no reStructuredText sources (*.txt) under {raw}")
    for path in files:
        rel = path.relative_to(src).as_posix()
        if not rel.startswith("translations/"):
            paras = rst_paragraphs(read_raw(path))
            yield rel, [(p,) for p in paras]


# ---------------------------------------------------------------- SUM: Debian descriptions
def sum_groups(raw: Path, min_words: int = 40):
    files = index_files(raw, "*Translation-en*")
    if not files:
        raise CorpusError(f"no Translation-en index under {raw}")
    groups = {}
    for path in files:
        for synopsis, paras in parse_descriptions(read_raw(path)):
            doc = " ".join(paras)
            if synopsis and len(doc.split()) >= min_words:
                groups.setdefault(paras[0], []).append((doc, synopsis))
    return list(groups.items())


# ---------------------------------------------------------------- command line
CORPORA = {  # mode: (groups function, salt, sides checked for leakage, suffixes, permille)
    # MT takes 3% per evaluation split: its 2.5k pages vary a lot in size, 2% gave < 300 pairs.
    "mt": (mt_groups, "mt", (0, 1), ("en", "de"), 30),
    "lm": (lm_groups, "lm", (0,), ("txt",), 20),
    # SUM checks only the document for leakage: a repeated synopsis ("transitional package")
    # given a different document is not a leak.
    "sum": (sum_groups, "sum", (0,), ("doc", "sum"), 20),
}


def check_raw(raw: Path, out: Path) -> None:
    """The checks every build makes before reading: an input directory, a usable output path."""
    raw = Path(raw)
    if not raw.is_dir():
        problem = "is not a directory" if raw.exists() else "not found"
        raise CorpusError(f"raw directory {problem}: {raw}")
    check_output(Path(out), inputs=raw)  # an output inside raw/ would be searched as input next time


def build(mode: str, raw: Path, out: Path, max_train=None) -> dict:
    """Build one corpus from ``raw`` into ``out`` (all read first, then written); returns {split: line count}."""
    check_raw(raw, out)
    groups_fn, salt, sides, suffixes, permille = CORPORA[mode]
    splits = assign_splits(list(groups_fn(Path(raw))), salt, sides, max_train, permille)
    if not splits["train"]:
        raise CorpusError(f"no {mode} examples found under {raw}")
    return write_splits(splits, Path(out), suffixes)


def main(argv=None) -> int:
    parser = OneLineParser(prog="build_corpora.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=[*CORPORA, "embed"],
                        help="corpus to build, or 'embed': slice built corpora into data/embedded")
    parser.add_argument("raw_dir", type=Path, help="extracted packages (embed: the built corpora dir)")
    parser.add_argument("out_dir", type=Path, help="where the split files are written")
    parser.add_argument("--max-train", type=positive_int, default=None, metavar="N",
                        help="keep at most N train examples")
    args = parser.parse_args(argv)

    def work():
        if args.mode == "embed":
            from embed_corpora import write_embedded  # sibling script; imported only when used
            counts = write_embedded(args.raw_dir, args.out_dir)
        else:
            counts = build(args.mode, args.raw_dir, args.out_dir, args.max_train)
        print(f"{args.mode}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    return run("build_corpora.py", work)


if __name__ == "__main__":
    sys.exit(main())
