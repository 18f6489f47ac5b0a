"""RoBERTa-shaped checkpoints in the prune tool: old key names, and what is refused before writing.

Plain Python and torch, no fairseq. The prune tool calls :func:`check_roberta` once, right after
loading; checkpoints without classification heads, without a ``sentence_prediction`` task and
without RoBERTa's old key names pass through untouched.

* **Old key names.** RoBERTa files of fairseq <= 0.9 (the released ``roberta.base`` /
  ``roberta.large`` and the LayerDrop RoBERTa models among them) store the encoder as
  ``decoder.sentence_encoder.*``; fairseq renames ``decoder.`` to ``encoder.`` when it loads them.
  We rename the same way first, so ``--encoder-depth`` finds the layers and the pruned file
  carries today's names (stock fairseq loads both).
* **Refused** (:class:`PruneError`, one line, nothing written), because stock fairseq would fail
  on the output or silently replace a fine-tuned classifier by a random one:

  - a classification head whose input size is not the encoder's hidden size, or whose two
    layers do not fit each other (``dense`` gives ``d``, ``out_proj`` takes another size);
  - a head without its parameter dictionary: a ``classification_heads.<name>.`` entry lacking one
    of ``dense.weight``, ``dense.bias``, ``out_proj.weight``, ``out_proj.bias``; or a
    ``sentence_prediction`` checkpoint whose configured head (``classification_head_name``) has
    no parameters at all;
  - a head whose number of outputs differs from the label dictionary of the saved
    ``sentence_prediction`` task (``num_classes``);
  - a ``sentence_prediction`` checkpoint of a RoBERTa-family model without
    ``encoder.sentence_encoder.*`` keys (BART's heads sit on ``encoder.layers``: not refused).
"""
from typing import Dict, Mapping, Optional

import torch

from fairseq_layerdrop import pruning
from fairseq_layerdrop.errors import PruneError, show

HEAD_PREFIX = "classification_heads."
HEAD_PARAMS = ("dense.weight", "dense.bias", "out_proj.weight", "out_proj.bias")
ENCODER_PREFIX = "encoder.sentence_encoder."
OLD_ENCODER_PREFIX = "decoder.sentence_encoder."
# families that classify from another encoder (encoder.layers): BART, mBART
OTHER_ENCODER_ARCHS = ("bart", "mbart")
_WIDTH_KEYS = ("encoder.sentence_encoder.embed_tokens.weight", "encoder.embed_tokens.weight")


def renamed_old_keys(state: Mapping) -> Mapping:
    """``state`` with ``decoder.*`` model keys named ``encoder.*`` if it is an old RoBERTa file."""
    model = state["model"]
    if not any(k.startswith(OLD_ENCODER_PREFIX) for k in model) or any(k.startswith("encoder.") for k in model):
        return state
    renamed = {("encoder." + k[len("decoder."):] if k.startswith("decoder.") else k): v for k, v in model.items()}
    return {**state, "model": renamed}


def heads(model: Mapping) -> Dict[str, Dict[str, object]]:
    """``{head name: {parameter name: tensor}}`` of the ``classification_heads.<name>.*`` keys."""
    out: Dict[str, Dict[str, object]] = {}
    for key, value in model.items():
        if key.startswith(HEAD_PREFIX) and "." in key[len(HEAD_PREFIX):]:
            name, param = key[len(HEAD_PREFIX):].split(".", 1)
            out.setdefault(name, {})[param] = value
    return out


def encoder_width(model: Mapping, model_cfg: Mapping) -> Optional[tuple]:
    """``(hidden size, where it was read)``: the encoder's embedding width, else the saved config."""
    for key in _WIDTH_KEYS:
        t = model.get(key)
        if torch.is_tensor(t) and t.dim() == 2:
            return int(t.shape[1]), key
    width = model_cfg.get("encoder_embed_dim")
    return (width, "encoder_embed_dim") if isinstance(width, int) and not isinstance(width, bool) else None


def _check_head(name: str, params: Mapping, width: Optional[tuple], num_classes) -> None:
    head = f"classification head {show(repr(name))}"
    missing = [p for p in HEAD_PARAMS if p not in params]
    if missing:
        raise PruneError(f"{head} lacks {show(HEAD_PREFIX + name)}.{missing[0]} (a head needs "
                         f"{', '.join(HEAD_PARAMS)})")
    dense, out = params["dense.weight"], params["out_proj.weight"]
    if dense.dim() != 2 or out.dim() != 2:
        raise PruneError(f"{head}: dense.weight and out_proj.weight must be matrices, got shapes "
                         f"{list(dense.shape)} and {list(out.shape)}")
    if out.shape[1] != dense.shape[0]:
        raise PruneError(f"{head} does not fit together: dense gives {dense.shape[0]} features, "
                         f"out_proj.weight {list(out.shape)} takes {out.shape[1]}")
    if width is not None and dense.shape[1] != width[0]:
        raise PruneError(f"{head} expects hidden size {dense.shape[1]} (dense.weight {list(dense.shape)}), "
                         f"but the encoder's hidden size is {width[0]} ({show(width[1])})")
    if num_classes is not None and out.shape[0] != num_classes:
        raise PruneError(f"{head} has {out.shape[0]} outputs, but the label dictionary of the saved "
                         f"sentence_prediction task has num_classes {num_classes}")


def _section(cfg: Mapping, name: str) -> Mapping:
    value = cfg.get(name)
    return value if isinstance(value, Mapping) else {}


def check_roberta(state: Mapping) -> Mapping:
    """The checkpoint to prune (old RoBERTa keys renamed); :class:`PruneError` for the cases above."""
    state = renamed_old_keys(state)
    model, cfg = state["model"], pruning.saved_config(state)
    task, model_cfg = _section(cfg, "task"), _section(cfg, "model")
    classifier = task.get("_name") == "sentence_prediction"
    found = heads(model)
    if not classifier and not found:
        return state
    arch = str(pruning.model_arch(cfg) or "")
    if classifier and not arch.startswith(OTHER_ENCODER_ARCHS) and not any(k.startswith(ENCODER_PREFIX)
                                                                              for k in model):
        raise PruneError(f"this sentence_prediction checkpoint (arch {show(arch or '?')}) has no "
                         f"{ENCODER_PREFIX}* keys: the RoBERTa encoder its classification head reads is missing")
    head_name = _section(cfg, "criterion").get("classification_head_name") or task.get("classification_head_name")
    if classifier and isinstance(head_name, str) and head_name not in found:
        raise PruneError(f"the saved sentence_prediction task classifies with head {show(repr(head_name))}, but "
                         f"the checkpoint has no {show(HEAD_PREFIX + head_name)}.* parameters "
                         f"(heads: {show(', '.join(sorted(found)) or 'none')})")
    num_classes = task.get("num_classes") if classifier else None
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        num_classes = None
    width = encoder_width(model, model_cfg)
    for name, params in sorted(found.items()):
        _check_head(name, params, width, num_classes if name == head_name else None)
    return state
