"""Tiny binarized data sets and a runner for fairseq's command-line tools (tests only).

The toy task (reverse a sequence of 50 symbols) is learnable in a few updates,
so a trained model measurably beats chance; real-text tests use data/embedded.
"""
import os
import subprocess
import sys
from pathlib import Path

import torch

FAIRSEQ_BIN = Path(sys.executable).parent
PLUGIN_DIR = str(Path(__file__).resolve().parents[1] / "fairseq_layerdrop")
SPLITS = {"train": 400, "valid": 40, "test": 20}


def run_cli(tool: str, args, env_extra=None, timeout=600) -> subprocess.CompletedProcess:
    """Run a console script of this venv single-threaded (two torch processes on 2 cores thrash)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.update(env_extra or {})
    return subprocess.run([str(FAIRSEQ_BIN / tool), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _sentences(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        length = int(torch.randint(3, 11, (1,), generator=gen))
        yield [f"w{int(i)}" for i in torch.randint(0, 50, (length,), generator=gen)]


def make_translation_data(root: Path) -> Path:
    """Binarized ``src -> tgt`` (reversed) data with a joined dictionary; returns the data dir."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate(SPLITS.items()):
        sents = list(_sentences(n, seed=i))
        (root / f"{split}.src").write_text("".join(" ".join(s) + "\n" for s in sents))
        (root / f"{split}.tgt").write_text("".join(" ".join(reversed(s)) + "\n" for s in sents))
    out = run_cli("fairseq-preprocess", ["--source-lang", "src", "--target-lang", "tgt", "--trainpref",
                                         root / "train", "--validpref", root / "valid", "--testpref",
                                         root / "test", "--destdir", root / "bin", "--joined-dictionary",
                                         "--workers", "1"])
    assert out.returncode == 0, out.stderr[-2000:]
    return root / "bin"


def make_lm_data(root: Path) -> Path:
    """Binarized monolingual data (the target side of the toy task); returns the data dir."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate(SPLITS.items()):
        sents = list(_sentences(n, seed=10 + i))
        (root / f"{split}.txt").write_text("".join(" ".join(s) + "\n" for s in sents))
    out = run_cli("fairseq-preprocess", ["--only-source", "--trainpref", root / "train.txt", "--validpref",
                                         root / "valid.txt", "--testpref", root / "test.txt", "--destdir",
                                         root / "bin", "--workers", "1"])
    assert out.returncode == 0, out.stderr[-2000:]
    return root / "bin"
