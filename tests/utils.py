"""Test helpers in one place (as fairseq's own ``tests/utils.py``): toy data, tool runs, tiny training.

* :func:`make_translation_data` / :func:`make_lm_data`: binarized toy corpora (reverse a
  sequence of 50 symbols: learnable in a few updates, so a trained model measurably beats
  chance); real-text tests use data/embedded;
* :func:`run_cli` runs a tool (fairseq's or ours) single-threaded, started the way the package
  starts it (``evaluation.tool_command``: ``python -m MODULE``);
* :func:`train` runs the real ``fairseq-train`` for a few updates on tiny data and returns the
  checkpoint path; the family (``"mt"``, ``"lm"``, ``"bart"``, ``"roberta"``) picks task,
  criterion and a tiny shape, ``arch`` and ``user_dir`` are free, so the same call trains a
  stock model or one of the plugin's; :func:`run_train` is the bare run, returning the log;
* :func:`run_stock` runs a fairseq tool as a user without the plugin would: no ``--user-dir``
  and no ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (removed from the environment if set);
* :func:`load_module` imports a script of ``scripts/`` or ``benchmarks/`` by its path;
* :func:`to_argparse_era` rewrites a checkpoint into the argparse-era layout (fairseq <= 0.9:
  ``args`` Namespace, no ``cfg``) that fairseq 0.12 still loads.
"""
import argparse
import importlib.util
import os
import subprocess
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch

from fairseq_layerdrop.evaluation import tool_command


def load_module(path):
    """The module of the script at ``path`` (a fresh import each call)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PLUGIN_DIR = str(Path(__file__).resolve().parents[1] / "fairseq_layerdrop")
SPLITS = {"train": 400, "valid": 40, "test": 20}

# small enough to train in a few seconds on one core; 4 layers so that pruning has choices
_ENC = ["--encoder-layers", "4", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2"]
_DEC = ["--decoder-layers", "4", "--decoder-embed-dim", "32", "--decoder-ffn-embed-dim", "64",
        "--decoder-attention-heads", "2"]
FAMILY_ARGS: Dict[str, list] = {
    "mt": ["--task", "translation", "--criterion", "label_smoothed_cross_entropy", "--label-smoothing",
           "0.1", "--max-tokens", "2000", *_ENC, *_DEC],
    "bart": ["--task", "translation", "--criterion", "label_smoothed_cross_entropy", "--label-smoothing",
             "0.1", "--max-tokens", "2000", *_ENC, *_DEC],
    "lm": ["--task", "language_modeling", "--criterion", "cross_entropy", "--tokens-per-sample", "32",
           "--max-tokens", "1024", "--sample-break-mode", "none", *_DEC],
    "roberta": ["--task", "masked_lm", "--criterion", "masked_lm", "--tokens-per-sample", "32",
                "--max-tokens", "1024", "--sample-break-mode", "none", *_ENC],
}
TRAIN_COMMON = ["--optimizer", "adam", "--lr", "1e-3", "--max-update", "3", "--cpu", "--num-workers", "0",
                "--log-format", "simple", "--no-epoch-checkpoints", "--required-batch-size-multiple", "1",
                "--seed", "3", "--disable-validation"]
# fairseq 0.12 drops a last batch smaller than --required-batch-size-multiple (8) when evaluating
EVAL_COMMON = ["--cpu", "--num-workers", "0", "--required-batch-size-multiple", "1"]


def run_cli(tool: str, args, env_extra=None, timeout=600) -> subprocess.CompletedProcess:
    """Run a tool single-threaded (two torch processes on 2 cores thrash); never raises on failure."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.update(env_extra or {})
    return subprocess.run([*tool_command(tool), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


# -- toy data ----------------------------------------------------------------------------
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


# -- training and stock tools --------------------------------------------------------------
def run_train(args: Sequence) -> str:
    """The real ``fairseq-train`` with ``args`` (asserting success); returns its log."""
    out = run_cli("fairseq-train", list(args))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout + out.stderr


def train(data: Path, save_dir: Path, family: str, arch: str, extra: Sequence[str] = (),
          user_dir: Optional[str] = None) -> Path:
    """Train ``arch`` for 3 updates with the real ``fairseq-train``; returns ``checkpoint_last.pt``."""
    args = [str(data), "--arch", arch, "--save-dir", str(save_dir), *FAMILY_ARGS[family], *TRAIN_COMMON,
            *extra]
    if user_dir:
        args += ["--user-dir", user_dir]
    run_train(args)
    return Path(save_dir) / "checkpoint_last.pt"


def run_stock(tool: str, args: Sequence, env_extra: Optional[dict] = None):
    """A fairseq tool as stock fairseq sees it: no plugin, torch's default (safe) loader."""
    saved = os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    try:
        return run_cli(tool, list(args), env_extra=env_extra)
    finally:
        if saved is not None:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = saved


def hypotheses(stdout: str) -> list:
    """``fairseq-generate``'s ``H-`` and ``P-`` lines (tokens, scores, positional scores), sorted."""
    return sorted(line for line in stdout.splitlines() if line.startswith(("H-", "P-")))


def to_argparse_era(src: Path, dst: Path) -> Path:
    """Rewrite a legacy-arch checkpoint as fairseq <= 0.9 saved it: ``args`` Namespace, no ``cfg``.

    fairseq 0.12 keeps the complete flat Namespace of a legacy architecture as ``cfg["model"]``;
    that is exactly what the argparse era stored as ``args``.
    """
    state = torch.load(src, map_location="cpu", weights_only=False)
    flat = dict(vars(state["cfg"]["model"]))
    flat.pop("_name", None)
    state["args"] = argparse.Namespace(**flat)
    state.pop("cfg")
    torch.save(state, dst)
    return Path(dst)
