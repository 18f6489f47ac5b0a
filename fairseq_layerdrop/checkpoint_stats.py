"""Size facts of a fairseq checkpoint: layers per stack, parameters, bytes, pruning record.

Loads with torch's safe loader and ``mmap=True``: tensors are not read into RAM.
"""
import os

import torch

from fairseq_layerdrop.pruning import count_parameters, layer_stacks
from fairseq_layerdrop.safe_load import register_safe_globals


def checkpoint_stats(path: str) -> dict:
    register_safe_globals()
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    model = state["model"]
    params = count_parameters(model)  # shared embeddings once, not once per name
    record = state.get("layerdrop_pruning") or {}
    return {"layers": layer_stacks(model), "params": int(params), "bytes": os.path.getsize(path),
            "kept": record.get("kept", {}), "plain_config": record.get("plain_config", True)}
