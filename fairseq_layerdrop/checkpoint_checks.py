"""The structure of a loaded checkpoint, checked as a whole before anything uses it.

Plain torch, no fairseq. :func:`check_checkpoint` walks the whole object tree once and refuses:

* trees deeper than :data:`MAX_DEPTH`, cycles, and trees with more than :data:`MAX_NODES` objects
  counted *as a tree* (a container reached twice counts twice), or configs over
  :data:`MAX_CONFIG_NODES`: a tiny pickle can share one list 2^40 times ("billion laughs"), and
  converting the config would expand every copy. Counting takes one step per distinct container;
* a ``model`` (and EMA weights) that is not a flat map from names to dense CPU tensors, or holds a
  view larger than its storage;
* ``args`` / ``cfg`` / ``optimizer_history`` / ``extra_state`` / the pruning record of the wrong
  type, a config that is not plain data, an architecture name that is not a string;
* layers: non-canonical indices, gaps, two layer lists in one stack, a layer whose parameters
  differ from its siblings', learned drop logits that are not one finite number per layer.

Everything later (layer choice, config conversion, search, writing) can then trust the types.
"""
import argparse
from collections.abc import Mapping

import torch

from fairseq_layerdrop import layer_keys, pruning
from fairseq_layerdrop.errors import CheckpointError, PruneError, show

MAX_DEPTH = 100  # containers inside containers (fairseq configs use ~5; each pruning record adds 1)
MAX_NODES = 1_000_000  # objects in the whole tree, counted as a tree
MAX_CONFIG_NODES = 200_000  # objects in args, cfg and the pruning record, counted as a tree
MAX_KEY_CHARS = 1000
_CONFIG_KEYS = ("args", "cfg", pruning.PROVENANCE_KEY)
_EMA_KEYS = ("ema", "ema_fp32_params")


def _children(obj):
    """``(number of leaves, iterator of (key, container child))``, or ``None`` for a leaf."""
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if isinstance(obj, Mapping):
        items = ((k, v) for key, value in obj.items() for k, v in (("<key>", key), (key, value)))
        return 2 * len(obj), items
    if isinstance(obj, (list, tuple, set, frozenset)):
        return len(obj), enumerate(obj)
    return None


def _path(top: str, frames) -> str:
    """``top.key[1]...`` down to the child being walked (the last 8 steps)."""
    keys = [frame[4] for frame in frames if frame[4] is not None]
    steps = "".join(f".{k}" if isinstance(k, str) and k.isidentifier() else f"[{k!r}]" for k in keys[-8:])
    return show(f"{top}{'(...)' if len(keys) > 8 else ''}{steps}")


def tree_size(root, top: str, where: str, memo: dict, limit: int = MAX_NODES, budget: str = "") -> int:
    """Objects in ``root`` counted as a tree: a container reached twice counts twice. Linear in the
    distinct containers (sizes are memoized by identity), so 2^40 shared copies cost 40 steps.
    Refuses cycles, nesting deeper than :data:`MAX_DEPTH` and sizes over ``limit`` (``budget``
    says which limit it is in the message)."""
    first = _children(root)
    if first is None:
        return 1
    # frame: [container, child iterator, size so far, depth below, key of the child being walked]
    frames, active = [[root, first[1], 1 + first[0], 0, None]], {id(root)}
    while True:
        frame = frames[-1]
        key, child = next(frame[1], (None, None))
        if key is None and child is None:
            frames.pop()
            active.discard(id(frame[0]))
            memo[id(frame[0])] = (frame[2], frame[3] + 1)
            if not frames:
                return frame[2]
            frames[-1][2] += frame[2] - 1  # the child was counted as a leaf already
            frames[-1][3] = max(frames[-1][3], frame[3] + 1)
            continue
        if id(child) in memo:
            size, _ = memo[id(child)]
            frame[2] += size - 1
        elif id(child) in active:
            frame[4] = key
            raise CheckpointError(f"{where}: refused: {_path(top, frames)} refers back to a container "
                                  f"that holds it (a cycle)")
        else:
            grand = _children(child)
            if grand is None:
                continue
            frame[4] = key
            if len(frames) >= MAX_DEPTH:
                raise CheckpointError(f"{where}: refused: containers nested more than {MAX_DEPTH} deep "
                                      f"(at {_path(top, frames)})")
            frames.append([child, grand[1], 1 + grand[0], 0, key])
            active.add(id(child))
        if frame[2] > limit:
            raise CheckpointError(f"{where}: refused: {budget or f'more than {limit:,} objects'} counted "
                                  f"as a tree (reached under {_path(top, frames)})")


def check_tree(state: Mapping, where: str) -> None:
    """Depth, cycles and size budgets of the whole tree (tensors are leaves)."""
    memo, left = {}, MAX_NODES
    for key, value in state.items():
        budget = f"the checkpoint has more than {MAX_NODES:,} objects"
        if key in _CONFIG_KEYS and left > MAX_CONFIG_NODES:
            budget = f"its {show(key)} has more than {MAX_CONFIG_NODES:,} objects"
        left -= tree_size(value, show(key), where, memo, min(left, MAX_CONFIG_NODES) if key in _CONFIG_KEYS else left,
                          budget)


def check_tensors(tensors, name: str, where: str) -> None:
    """``tensors`` is a map from names to dense CPU tensors that are no larger than their storage."""
    if not isinstance(tensors, Mapping):
        raise CheckpointError(f"{where}: not a fairseq checkpoint ({name} is not a state dict)")
    for key, t in tensors.items():
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
            raise CheckpointError(f"{where}: {name} has a key that is not a parameter name: {show(repr(key))}")
        if not torch.is_tensor(t):
            raise CheckpointError(f"{where}: not a fairseq checkpoint ({name} holds non-tensors, e.g. "
                                  f"{show(key)})")
        if type(t) not in (torch.Tensor, torch.nn.Parameter) or t.layout != torch.strided \
                or t.is_quantized or t.is_nested or t.device.type != "cpu":
            raise CheckpointError(f"{where}: {name} {show(key)} is a {show(t.layout)} {show(type(t).__name__)} "
                                  f"on {show(t.device)}; only dense CPU tensors can be pruned")
        if t.numel() * t.element_size() > t.untyped_storage().nbytes():
            raise CheckpointError(f"{where}: {name} {show(key)} is a view larger than its storage")


def _check_learned_logits(model: Mapping, layers: dict, where: str) -> None:
    for key, t in model.items():
        if not key.endswith(layer_keys.LEARNED_SUFFIX):
            continue
        stack = key.split(".", 1)[0]
        if stack not in layers:
            raise CheckpointError(f"{where}: learned drop rates {show(key)}, but the model has no "
                                  f"{show(stack)} layers")
        if t.dim() != 1 or not t.is_floating_point() or t.numel() != layers[stack] \
                or not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{where}: learned drop rates {show(key)} must be {layers[stack]} finite "
                                  f"numbers (one per {stack} layer), got shape {list(t.shape)} {t.dtype}")


def check_model(model, name: str, where: str) -> dict:
    """Tensors, layer indices, alike layers, learned logits; returns ``{stack: layers}``."""
    check_tensors(model, name, where)
    try:
        layers = layer_keys.layer_stacks(model)
        layer_keys.check_layers_alike(model, name)
    except PruneError as err:
        raise CheckpointError(f"{where}: {err}") from None
    _check_learned_logits(model, layers, where)
    return layers


def _check_type(state: Mapping, key: str, types: tuple, where: str, what: str) -> None:
    value = state.get(key)
    if value is not None and not isinstance(value, types):
        raise CheckpointError(f"{where}: not a fairseq checkpoint (its {key!r} is a "
                              f"{show(type(value).__name__)}, not {what})")


def _check_extra_state(extra, layers: dict, where: str) -> None:
    for key in _EMA_KEYS:
        ema = (extra or {}).get(key)
        if ema is None:
            continue
        if check_model(ema, f"extra_state[{key!r}]", where) != layers:
            raise CheckpointError(f"{where}: extra_state[{key!r}] has other layers than the model")


def _check_config(state: Mapping, where: str) -> None:
    try:
        cfg = pruning.saved_config(state)
    except PruneError as err:
        raise CheckpointError(f"{where}: {err}") from None
    model = cfg.get("model")
    if model is not None and not isinstance(model, dict):
        raise CheckpointError(f"{where}: its model config is a {show(type(model).__name__)}, not a mapping")
    for key in ("_name", "arch"):
        name = (model or {}).get(key)
        if name is not None and not isinstance(name, str):
            raise CheckpointError(f"{where}: its architecture name ({key}) is {show(repr(name))}, not a string")


def check_checkpoint(state, where: str) -> None:
    """Refuse anything but a well-formed fairseq checkpoint (:class:`CheckpointError`, one line)."""
    if not isinstance(state, Mapping) or "model" not in state:
        raise CheckpointError(f"{where}: not a fairseq checkpoint (no 'model' state dict)")
    check_tree(state, where)
    layers = check_model(state["model"], "'model'", where)
    if state.get("args") is None and state.get("cfg") is None:
        raise CheckpointError(f"{where}: not a fairseq checkpoint (no saved config 'args' or 'cfg')")
    mapping = "a mapping"
    _check_type(state, "args", (argparse.Namespace, Mapping), where, "a Namespace or mapping")
    _check_type(state, "cfg", (argparse.Namespace, Mapping), where, "a Namespace or mapping")
    _check_type(state, "extra_state", Mapping, where, mapping)
    _check_type(state, pruning.PROVENANCE_KEY, Mapping, where, mapping)
    _check_type(state, "optimizer_history", (list, tuple), where, "a list")
    if not all(isinstance(h, Mapping) for h in state.get("optimizer_history") or []):
        raise CheckpointError(f"{where}: not a fairseq checkpoint (its 'optimizer_history' holds non-mappings)")
    _check_extra_state(state.get("extra_state"), layers, where)
    _check_config(state, where)
