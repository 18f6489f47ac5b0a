"""Prune a fairseq checkpoint to chosen layers: pure functions over state dicts and configs.

No fairseq imports (torch and the standard library only), so every rule here is testable on
hand-built dicts; which keys are layers and how layers are chosen lives in
:mod:`fairseq_layerdrop.layer_keys`. :func:`prune_state` is the core (``state -> new state``):

* model keys ``<stack>...layers.<i>.*`` of kept layers are renumbered ``0..k-1`` per stack
  (``encoder.layers.N``, ``decoder.layers.N``, RoBERTa's ``encoder.sentence_encoder.layers.N``),
  keys of dropped layers disappear, everything else (embeddings, shared weights, BART's extra
  layer norms) is passed through as the *same tensor objects* (mmap-loaded tensors are not read);
* the saved config becomes plain containers (no ``argparse.Namespace``), so stock fairseq loads
  the file with torch's safe loader; layer counts are set, ``*_layers_to_keep`` cleared, the
  LayerDrop rates (``encoder_layerdrop`` ...) kept as they were;
* plugin architectures go to the stock one they extend (``arch_names.STOCK_ARCH``) and lose their
  ``layerdrop_*`` options and parameters, unless ``to_stock=False``;
* optimizer state is dropped (it holds moments of removed parameters), EMA weights are pruned
  like the model, and a provenance record is added under :data:`PROVENANCE_KEY`.
"""
import argparse
import enum
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional

import torch

from fairseq_layerdrop.arch_names import PLUGIN_OPTION_PREFIX, PLUGIN_PARAM_PREFIX, STOCK_ARCH, STOCK_MODEL
from fairseq_layerdrop.errors import PruneError, show
from fairseq_layerdrop.layer_keys import (  # noqa: F401  (re-exported: callers use pruning.*)
    LAYER_RE,
    LEARNED_SUFFIX,
    STACKS,
    check_depth,
    every_other,
    layer_key,
    layer_stacks,
    learned_keep,
    parse_keep_list,
)

PROVENANCE_KEY = "layerdrop_pruning"
PROVENANCE_FORMAT = 1
_LAYER = LAYER_RE  # the first canonical ".layers.<i>." of a key (search.py finds the stacks with it)
# config sections that a flat argparse-era Namespace fills, and the key naming each one's class
_LEGACY_SECTIONS = {"model": "arch", "task": "task", "criterion": "criterion", "optimizer": "optimizer",
                    "lr_scheduler": "lr_scheduler", "bpe": "bpe", "tokenizer": "tokenizer", "common": None}
_PLUGIN_SUFFIX = "_layerdrop"  # our criteria: "<stock criterion>_layerdrop"
# Families whose model config must stay an argparse.Namespace. Stock fairseq 0.12 builds them
# through TransformerConfig.from_namespace, which keeps only its own fields of a DictConfig (a
# plain config loads as one), and BARTModel.upgrade_state_dict_named then reads ``args.task``
# (AttributeError). Such files need TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 or the plugin's allow-list.
NAMESPACE_ARCH_PREFIXES = ("bart_", "mbart_")


# -- model state ----------------------------------------------------------------------------
def _is_plugin_param(key: str) -> bool:
    return key.rsplit(".", 1)[-1].startswith(PLUGIN_PARAM_PREFIX)


def prune_model_state(model_state: Mapping, keep: Dict[str, List[int]], to_stock: bool) -> "OrderedDict":
    """Renumber kept layers per stack, drop the others; tensors are referenced, not copied.

    With ``to_stock`` the plugin's own parameters (``*.layerdrop_*``) are removed; otherwise a
    per-layer plugin tensor (learned logits, one entry per layer) keeps the kept entries.
    """
    maps = {stack: {old: new for new, old in enumerate(idx)} for stack, idx in keep.items()}
    out = OrderedDict()
    for key, value in model_state.items():
        stack = key.split(".", 1)[0]
        if to_stock and _is_plugin_param(key):
            continue
        parsed = layer_key(key)
        if stack in maps and parsed:
            prefix, index, rest = parsed
            new = maps[stack].get(index)
            if new is not None:
                out[f"{prefix}.layers.{new}.{rest}"] = value
            continue
        if stack in maps and _is_plugin_param(key) and key.endswith(LEARNED_SUFFIX):
            value = value[keep[stack]].clone()
        out[key] = value
    return out


def count_parameters(model_state: Mapping) -> int:
    """Elements of the distinct floating-point tensors (shared weights counted once)."""
    seen, total = set(), 0
    for key, t in model_state.items():
        if not torch.is_tensor(t) or not t.is_floating_point() or _is_plugin_param(key):
            continue
        ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if ident not in seen:
            seen.add(ident)
            total += t.numel()
    return total


# -- config -----------------------------------------------------------------------------------
def plain(obj, where: str = "cfg"):
    """A copy of a saved config made of dict / list / str / int / float / bool / None only."""
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if isinstance(obj, Mapping):
        return {str(k): plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, enum.Enum):
        return obj.value if isinstance(obj.value, (str, int, float)) else obj.name
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise PruneError(f"{show(where)} holds a {show(type(obj).__module__)}.{show(type(obj).__qualname__)}, "
                     f"which cannot be written as a plain config")


def _upgrade_legacy_args(flat: dict) -> dict:
    """The argparse-era upgrades of fairseq's ``_upgrade_state_dict`` (it skips them once ``args`` is gone)."""
    if "max_positions" in flat and "max_source_positions" not in flat:
        flat["max_source_positions"] = flat["max_target_positions"] = flat["max_positions"]
    flat.setdefault("task", "translation")
    if flat.get("raw_text"):
        flat["dataset_impl"] = "raw"
    elif flat.get("lazy_load"):
        flat["dataset_impl"] = "lazy"
    if "remove_bpe" in flat:
        flat["post_process"] = flat["remove_bpe"]
    if "min_lr" in flat:
        flat["stop_min_lr"] = flat.pop("min_lr")
    if isinstance(flat.get("lr"), float):
        flat["lr"] = [flat["lr"]]
    if isinstance(flat.get("data"), list) and flat["data"]:
        flat["data"] = flat["data"][0]
    return flat


def config_from_args(args) -> dict:
    """A plain ``cfg`` for an argparse-era ``args`` Namespace.

    Like fairseq's ``convert_namespace_to_omegaconf`` for legacy components, every section
    that names a registered class gets the whole flat namespace plus ``_name``; fairseq's
    loaders read the fields they know from it.
    """
    flat = _upgrade_legacy_args(plain(args, "args"))
    cfg = {"_name": None}
    for section, name_key in _LEGACY_SECTIONS.items():
        name = flat.get(name_key) if name_key else None
        cfg[section] = dict(flat, _name=name) if (name or name_key is None) else None
    return cfg


def stock_arch_name(name: Optional[str]) -> Optional[str]:
    """The stock fairseq arch/model for one of ours; ``None`` if ``name`` is unknown plugin-only."""
    if name in STOCK_ARCH:
        return STOCK_ARCH[name]
    if name in STOCK_MODEL:
        return STOCK_MODEL[name]
    return None if name and "layerdrop" in name else name


def _fix_section(section: dict, counts: Dict[str, int], to_stock: bool) -> dict:
    for stack, n in counts.items():
        if f"{stack}_layers" in section:
            section[f"{stack}_layers"] = n
        if f"{stack}_layers_to_keep" in section:
            section[f"{stack}_layers_to_keep"] = None
        nested = section.get(stack)
        if isinstance(nested, dict) and "layers" in nested:  # hydra TransformerConfig: encoder.layers
            nested["layers"], nested["layers_to_keep"] = n, None
    if to_stock:
        section = {k: v for k, v in section.items() if not k.startswith(PLUGIN_OPTION_PREFIX)}
        for key in ("arch", "_name"):
            if isinstance(section.get(key), str):
                section[key] = stock_arch_name(section[key]) or section[key]
        if isinstance(section.get("criterion"), str) and section["criterion"].endswith(_PLUGIN_SUFFIX):
            section["criterion"] = section["criterion"][: -len(_PLUGIN_SUFFIX)]
        if "user_dir" in section:
            section["user_dir"] = None
    return section


def fix_config(cfg: dict, counts: Dict[str, int], to_stock: bool) -> dict:
    """Layer counts, cleared ``*_layers_to_keep``, and (``to_stock``) stock names, in every section."""
    cfg = dict(cfg)
    for name, section in cfg.items():
        if isinstance(section, dict):
            cfg[name] = _fix_section(dict(section), counts, to_stock)
    crit = cfg.get("criterion")
    if to_stock and isinstance(crit, dict) and str(crit.get("_name", "")).endswith(_PLUGIN_SUFFIX):
        crit["_name"] = crit["_name"][: -len(_PLUGIN_SUFFIX)]
    return cfg


def saved_config(state: Mapping) -> dict:
    """The config fairseq would use (``args`` wins over ``cfg``), as plain containers."""
    if state.get("args") is not None:
        return config_from_args(state["args"])
    if state.get("cfg") is not None:
        return plain(state["cfg"])
    raise PruneError("not a fairseq checkpoint: it has neither 'args' nor 'cfg'")


def needs_namespace(arch: Optional[str]) -> bool:
    """True for families stock fairseq cannot build from a plain model config (see above)."""
    return bool(arch) and arch.startswith(NAMESPACE_ARCH_PREFIXES)


def model_arch(cfg: Mapping) -> Optional[str]:
    model = cfg.get("model") or {}
    return model.get("_name") or model.get("arch")


# -- the whole checkpoint -------------------------------------------------------------------------
def prune_state(state: Mapping, keep: Dict[str, List[int]], *, strategy: str = "manual",
                to_stock: bool = True, source_sha256: Optional[str] = None,
                source_name: Optional[str] = None, extra_record: Optional[dict] = None) -> dict:
    """A new checkpoint dict keeping ``keep[stack]`` layers of each stack named in ``keep``.

    Stacks not in ``keep`` are left whole. ``to_stock`` is ignored (the plugin arch is kept) when
    the architecture is ours but has no stock counterpart in ``arch_names``. ``state`` itself is
    not modified.
    """
    if not isinstance(state, Mapping) or not isinstance(state.get("model"), Mapping):
        raise PruneError("not a fairseq checkpoint: no 'model' state dict")
    layers = layer_stacks(state["model"])
    for stack, idx in keep.items():
        if stack not in layers:
            have = ", ".join(layers) or "none"
            raise PruneError(f"the model has no {stack} layers (layer stacks: {have})")
        if not idx or sorted(set(idx)) != list(idx) or idx[-1] >= layers[stack]:
            raise PruneError(f"bad {stack} keep list {idx} for {layers[stack]} layers")
    cfg = saved_config(state)
    arch = model_arch(cfg)
    stock = to_stock and stock_arch_name(arch) is not None
    full = {stack: keep.get(stack, list(range(n))) for stack, n in layers.items()}
    counts = {stack: len(idx) for stack, idx in full.items()}

    new = dict(state)
    new["args"] = None
    new["cfg"] = fix_config(cfg, counts, stock)
    after = model_arch(new["cfg"])
    safe = not needs_namespace(after)
    if not safe:
        new["cfg"]["model"] = argparse.Namespace(**new["cfg"]["model"])
    new["model"] = prune_model_state(state["model"], keep, stock)
    new.pop("last_optimizer_state", None)  # moments of removed parameters; fine-tune with --reset-optimizer
    new["optimizer_history"] = [{k: v for k, v in h.items() if k != "optimizer"}
                                for h in state.get("optimizer_history") or []]
    extra = dict(state.get("extra_state") or {})
    for key in ("ema", "ema_fp32_params"):  # EMA copies of the weights: pruned like the model
        if isinstance(extra.get(key), Mapping):
            extra[key] = prune_model_state(extra[key], keep, stock)
    new["extra_state"] = extra
    record = {
        "format": PROVENANCE_FORMAT, "tool": "fairseq-layerdrop-prune", "strategy": strategy,
        "source_file": source_name, "source_sha256": source_sha256,
        "layers_before": dict(layers), "kept": {s: list(i) for s, i in full.items()},
        "arch_before": arch, "arch_after": after, "stock": bool(stock), "plain_config": safe,
        "layerdrop_rates": "kept", "previous": plain(state.get(PROVENANCE_KEY)),
    }
    record.update(plain(extra_record or {}))
    new[PROVENANCE_KEY] = record
    return new
