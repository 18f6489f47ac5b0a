"""Layer indices: in state-dict keys (``<stack>...layers.<i>.*``) and on the command line.

Plain Python and torch, no fairseq. An index is canonical ASCII: ``0`` or ``[1-9][0-9]*``, at most
six digits. Python's ``int``, ``str.isdigit`` and ``\\d`` also accept ``00``, ``1_0``, ``+3``,
``²``, full-width ``３`` and Arabic-Indic ``٣``: in a key that lets two names address one layer
(``layers.00.`` beside ``layers.0.``), on the command line it hides typos. Such text is refused
everywhere (keys, keep lists, depths) instead of being read as a number.
"""
import re
from collections import Counter
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from fairseq_layerdrop.errors import PruneError, show
from fairseq_layerdrop.learned import keep_order

STACKS = ("encoder", "decoder")
LEARNED_SUFFIX = ".layers.layerdrop_logits"  # learned drop scores, one per layer of the stack
_CANONICAL = re.compile(r"(?:0|[1-9][0-9]{0,5})", re.ASCII)
_SEGMENT = re.compile(r"\.layers\.([^.]+)\.")
# first ".layers.<i>." of a key, as fairseq's prune_state_dict matches it (but ASCII only)
LAYER_RE = re.compile(r"\.layers\.(0|[1-9][0-9]*)\.", re.ASCII)


def parse_index(text: str, what: str) -> int:
    """A canonical ASCII index, else :class:`PruneError` naming ``what``."""
    if not isinstance(text, str) or not _CANONICAL.fullmatch(text):
        raise PruneError(f"{what}: {show(ascii(text))} is not a layer index (ASCII digits without "
                         f"leading zeros, at most 6)")
    return int(text)


def _looks_numeric(segment: str) -> bool:
    return any(c.isnumeric() for c in segment) and all(c.isnumeric() or c in "_+- " for c in segment)


def layer_key(key: str) -> Optional[Tuple[str, int, str]]:
    """``(prefix, index, rest)`` of a ``<stack>...layers.<i>.rest`` key, ``None`` for other keys.

    Only keys of the two stacks count. A numeric-looking index that is not canonical is refused.
    """
    if key.split(".", 1)[0] not in STACKS:
        return None
    for match in _SEGMENT.finditer(key):
        segment = match.group(1)
        if not _looks_numeric(segment):
            continue
        index = parse_index(segment, f"model key {show(key)}")
        return key[:match.start()], index, key[match.end():]
    return None


def layer_groups(model_state: Mapping) -> Dict[str, Dict[int, Dict[str, torch.Tensor]]]:
    """``{stack: {index: {rest of key: tensor}}}``; one layer list per stack."""
    groups: Dict[str, Dict[int, Dict[str, torch.Tensor]]] = {}
    prefixes: Dict[str, str] = {}
    for key, value in model_state.items():
        parsed = layer_key(key)
        if parsed is None:
            continue
        prefix, index, rest = parsed
        stack = key.split(".", 1)[0]
        if prefixes.setdefault(stack, prefix) != prefix:
            raise PruneError(f"the {stack} has two layer lists ({show(prefixes[stack])}.layers and "
                             f"{show(prefix)}.layers)")
        groups.setdefault(stack, {}).setdefault(index, {})[rest] = value
    return groups


def layer_stacks(model_state: Mapping) -> Dict[str, int]:
    """``{stack: number of layers}`` from ``<stack>...layers.<i>.`` keys; indices must be 0..N-1."""
    groups = layer_groups(model_state)
    for stack, layers in groups.items():
        if set(layers) != set(range(len(layers))):
            raise PruneError(f"the {stack} layers are not numbered 0..{len(layers) - 1}: "
                             f"{show(sorted(layers))}")
    return {stack: len(groups[stack]) for stack in STACKS if stack in groups}


def _signature(params: Mapping) -> tuple:
    return tuple(sorted((name, tuple(t.shape), str(t.dtype)) for name, t in params.items()))


def check_layers_alike(model_state: Mapping, where: str = "model") -> None:
    """Every layer of a stack must have the same parameter names, shapes and dtypes.

    A layer that lacks a parameter, has an extra one or another shape would be written as is and
    fail later in fairseq; the most common layout of the stack is taken as the right one.
    """
    for stack, layers in layer_groups(model_state).items():
        shapes = {i: _signature(p) for i, p in layers.items()}
        usual = Counter(shapes[i] for i in sorted(shapes)).most_common(1)[0][0]
        for i in sorted(shapes):
            if shapes[i] != usual:
                raise PruneError(f"{where}: {stack} layer {i} differs from its siblings: "
                                 f"{_difference(dict((n, s) for n, *s in usual), layers[i])}")


def _difference(usual: dict, params: Mapping) -> str:
    for name in sorted(usual):
        if name not in params:
            return f"it lacks {show(name)}"
    for name in sorted(params):
        if name not in usual:
            return f"it has an extra parameter {show(name)}"
        got = [tuple(params[name].shape), str(params[name].dtype)]
        if got != usual[name]:
            return (f"{show(name)} is {list(got[0])} {got[1]}, in the other layers "
                    f"{list(usual[name][0])} {usual[name][1]}")
    return "its parameters differ"


def parse_keep_list(text: str, num_layers: int, stack: str) -> List[int]:
    """fairseq's ``"0,2,4"`` format, strictly: canonical indices, increasing, unique, in range."""
    what = f"--{stack}-layers-to-keep"
    if not isinstance(text, str) or not text.strip(" "):
        raise PruneError(f"{what}: empty list")
    items = [s.strip(" ") for s in text.split(",")]
    if any(s == "" for s in items):
        raise PruneError(f"{what}: empty item in {show(repr(text))}")
    idx = [parse_index(s, what) for s in items]
    out = [i for i in idx if i >= num_layers]
    if out:
        raise PruneError(f"{what}: index {out[0]} out of range for a {num_layers}-layer "
                         f"{stack} (0..{num_layers - 1})")
    if len(set(idx)) != len(idx):
        raise PruneError(f"{what}: duplicate index in {show(repr(text))}")
    if idx != sorted(idx):
        raise PruneError(f"{what}: indices must be increasing, got {show(repr(text))}")
    return idx


def check_depth(depth: int, num_layers: int, stack: str) -> int:
    if not 1 <= depth <= num_layers:
        raise PruneError(f"--{stack}-depth must be in 1..{num_layers} for a {num_layers}-layer {stack}, "
                         f"got {depth}")
    return depth


def every_other(num_layers: int, depth: int) -> List[int]:
    """Keep ``depth`` of ``num_layers`` layers at stride ``num_layers / depth`` from layer 0.

    Index ``i`` of the result is ``floor(i * num_layers / depth)``. For ``depth = num_layers / 2``
    this is 0, 2, 4, ... (the paper's and fairseq's LayerDrop README rule); for
    ``depth = num_layers / k`` it is every k-th layer; ``depth = num_layers`` keeps all.
    """
    check_depth(depth, num_layers, "stack")
    return [(i * num_layers) // depth for i in range(depth)]


def learned_keys(model_state: Mapping, stack: str) -> List[str]:
    return [k for k in model_state if k.split(".", 1)[0] == stack and k.endswith(LEARNED_SUFFIX)]


def learned_keep(model_state: Mapping, stack: str, depth: int, mean_rate) -> List[int]:
    """The ``depth`` layers with the lowest learned drop rates (``<stack>...layers.layerdrop_logits``)."""
    keys = learned_keys(model_state, stack)
    if not keys:
        raise PruneError(f"--strategy learned: the checkpoint has no learned {stack} rates "
                         f"({stack}.layers.layerdrop_logits); train with --layerdrop-learned-rates "
                         f"or choose another --strategy")
    if mean_rate is None:
        mean_rate = 0.2
    if isinstance(mean_rate, bool) or not isinstance(mean_rate, (int, float)) or not 0 <= mean_rate <= 1:
        raise PruneError(f"--strategy learned: the saved {stack}_layerdrop is {show(repr(mean_rate))}, "
                         f"not a drop rate in [0, 1]")
    order = keep_order(model_state[keys[0]].detach().double(), float(mean_rate or 0.2))
    return sorted(order[:depth])
