"""Helpers of the corpus-script tests (test_corpus_hostile.py, test_corpus_output.py): running a
script as fetch_corpora.sh does, the state of a directory, a small Translation-en index."""
import subprocess
import sys
from pathlib import Path

from tests.test_corpora import TRANSLATION

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def cli(script, *args, code: str = None):
    """Run ``script`` (or ``code``, with the scripts importable) with ``python -S -E -s``: no
    site-packages, as the scripts must run under the system python3 with the standard library."""
    head = ["-c", code] if code else [str(SCRIPTS / script)]
    return subprocess.run([sys.executable, "-S", "-E", "-s", *head, *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=SCRIPTS)


def tree(path: Path) -> dict:
    """Every file (its bytes) and directory (None) under ``path``: the state a failure must keep."""
    return {p.relative_to(path).as_posix(): None if p.is_dir() else p.read_bytes() for p in sorted(path.rglob("*"))}


def descriptions(n: int = 40, extra: str = "") -> str:
    """A Translation-en index of ``n`` long descriptions (enough for a train split), then ``extra``."""
    return "\n".join(TRANSLATION.format(name=f"p{i}", synopsis=f"summary {i}", second=f"This is package {i}.",
                                        first=f"Package {i} opens with words about topic {i} " * 5)
                     for i in range(n)) + extra


def sum_raw_dir(raw: Path) -> Path:
    """``raw`` holding one plain Translation-en index of :func:`descriptions`."""
    raw.mkdir()
    (raw / "x_Translation-en.txt").write_text(descriptions(), "utf-8")
    return raw
