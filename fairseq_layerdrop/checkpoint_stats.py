"""Size facts of a fairseq checkpoint: layers per stack, parameters, bytes, pruning record.

Loads with torch's safe loader and ``mmap=True``: tensors are not read into RAM.
"""
import os
import re
from collections import defaultdict

import torch

from fairseq_layerdrop.arch_names import PLUGIN_PARAM_PREFIX
from fairseq_layerdrop.safe_load import register_safe_globals

_LAYER_KEY = re.compile(r"^(.*?)\.layers\.(\d+)\.")


def layer_counts(model_state) -> dict:
    """``{"encoder": N, "decoder": M}`` from ``<stack>.layers.<i>.`` keys (any prefix depth)."""
    seen = defaultdict(set)
    for key in model_state:
        match = _LAYER_KEY.match(key)
        if match:
            stack = match.group(1).split(".")[0]
            seen[stack].add(int(match.group(2)))
    return {stack: len(idx) for stack, idx in sorted(seen.items())}


def checkpoint_stats(path: str) -> dict:
    register_safe_globals()
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    model = state["model"]
    params = sum(t.numel() for k, t in model.items()
                 if torch.is_tensor(t) and not k.rsplit(".", 1)[-1].startswith(PLUGIN_PARAM_PREFIX)
                 and not k.endswith("version"))
    record = state.get("layerdrop_pruning") or {}
    return {"layers": layer_counts(model), "params": int(params), "bytes": os.path.getsize(path),
            "kept": record.get("kept", {}), "plain_config": record.get("plain_config", True)}
