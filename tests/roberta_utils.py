"""Helpers of the RoBERTa tests: a toy sentence task, tool runs without the plugin, hub features.

* :func:`make_sentence_data` writes fairseq's ``input0/`` + ``label/`` layout for a toy
  two-class task over the toy monolingual corpus (label: is the first word's number even), with
  the masked-LM data's dictionary, so a model pretrained on that data can be fine-tuned on it;
* :func:`run_without_plugin` runs a fairseq tool in a Python where ``import fairseq_layerdrop``
  fails (the module is blocked in ``sys.modules``): what a user of stock fairseq has;
* :func:`stock_hub_features` runs :mod:`tests.hub_probe` (``RobertaModel.from_pretrained`` with
  ``bpe=None``: features and head outputs of fixed token sequences) in such a Python.
"""
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from fairseq_layerdrop.evaluation import TOOL_MODULES

TINY = ["--encoder-layers", "4", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2"]
MLM = ["--task", "masked_lm", "--tokens-per-sample", "32", "--sample-break-mode", "none",
       "--max-tokens", "1024", *TINY]
COMMON = ["--optimizer", "adam", "--lr", "1e-3", "--cpu", "--num-workers", "0", "--log-format", "simple",
          "--log-interval", "1", "--no-epoch-checkpoints", "--required-batch-size-multiple", "1", "--seed", "3"]
# the stock fine-tuning command of a pruned file (fairseq's GLUE recipe, tiny)
FINETUNE = ["--task", "sentence_prediction", "--num-classes", "2", "--init-token", "0", "--max-positions", "32",
            "--shorten-method", "truncate", "--criterion", "sentence_prediction", "--batch-size", "16",
            "--reset-optimizer", "--reset-dataloader", "--reset-meters", "--best-checkpoint-metric", "accuracy",
            "--maximize-best-checkpoint-metric", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
            "--encoder-attention-heads", "2", *COMMON]
BLOCK_PLUGIN = "import sys; sys.modules['fairseq_layerdrop'] = None  # stock fairseq: no plugin\n"


def preprocess(args) -> None:
    """fairseq's own ``fairseq-preprocess`` in this process (saves a Python start and fairseq import)."""
    from fairseq import options
    from fairseq_cli import preprocess as tool

    logger = logging.getLogger("fairseq_cli.preprocess")
    handlers = list(logger.handlers)
    try:
        tool.main(options.get_preprocessing_parser().parse_args([str(a) for a in args]))
    finally:  # it adds a log-file handler per call
        for handler in logger.handlers[len(handlers):]:
            handler.close()
        logger.handlers = handlers


def make_sentence_data(lm_bin: Path, root: Path) -> Path:
    """Binarized ``input0/`` (with ``lm_bin``'s dictionary) and ``label/`` of a toy task."""
    root = Path(root)
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    splits = ("train", "valid", "test")
    for split in splits:
        lines = (Path(lm_bin).parent / f"{split}.txt").read_text().splitlines()
        (raw / f"{split}.input0").write_text("".join(line + "\n" for line in lines))
        labels = ["even" if int(line.split()[0][1:]) % 2 == 0 else "odd" for line in lines]
        (raw / f"{split}.label").write_text("".join(label + "\n" for label in labels))
    for side, extra in (("input0", ["--srcdict", Path(lm_bin) / "dict.txt"]), ("label", [])):
        prefixes = [arg for split in splits for arg in (f"--{split}pref", raw / f"{split}.{side}")]
        preprocess(["--only-source", *prefixes, "--destdir", root / side, "--workers", "1", *extra])
    return root


def run_without_plugin(tool: str, args, cwd) -> subprocess.CompletedProcess:
    """``tool`` (a fairseq console script, or a script path) in a Python that cannot import the plugin.

    Started from ``cwd`` (not the repository, whose directory would be importable), without
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``: torch's safe loader, fairseq's own registry only.
    """
    if tool in TOOL_MODULES:
        module = TOOL_MODULES[tool]
        run = f"import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    else:
        module, run = tool, f"import runpy; runpy.run_path({tool!r}, run_name='__main__')"
    code = BLOCK_PLUGIN + f"sys.argv = [{module!r}, *sys.argv[1:]]\n" + run
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore", PYTHONPATH="")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def stock_hub_features(model_dir, checkpoints, out: Path, data=".", head=None) -> list:
    """:func:`tests.hub_probe.hub_features` of each checkpoint, computed by stock fairseq (the
    plugin blocked), in one process."""
    done = run_without_plugin(str(Path(__file__).with_name("hub_probe.py")),
                              [model_dir, data, head or "", out, *checkpoints], cwd=Path(out).parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out, weights_only=True)


def plugin_hub_features(*args, **kwargs):
    """:func:`tests.hub_probe.hub_features` in this process, as a plugin user loads (the reference side),
    with the plugin's allow-list (``argparse.Namespace``) registered as importing the plugin does."""
    from fairseq_layerdrop.safe_load import register_safe_globals
    from tests.hub_probe import hub_features

    register_safe_globals()
    return hub_features(*args, **kwargs)


def model_dir(root: Path, data_dict: Path, *checkpoints: Path) -> Path:
    """A from_pretrained directory: the checkpoints and the dictionary beside them."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(data_dict, root / "dict.txt")
    for ckpt in checkpoints:
        if Path(ckpt).parent != root:
            shutil.copyfile(ckpt, root / Path(ckpt).name)
    return root
