"""Run a sub-network of a built model: a subset of a stack's layers, sharing their weights.

The stack's ``layers`` container is swapped for a plain ``ModuleList`` of the kept modules, in
order (the network a checkpoint pruned to those layers builds), and restored on the way out.
Dropped layers are never called. Used by the search on valid (``search.py``) and by the
self-speculative drafts (``speculative.py``). Plain torch.
"""
import contextlib
from typing import Optional, Sequence

from torch import nn


@contextlib.contextmanager
def only_layers(owner: nn.Module, keep: Optional[Sequence[int]]):
    """Inside, ``owner`` (a module with ``layers``) runs the layers ``keep`` only (``None``: all).

    ``num_layers`` follows when the owner has one, so fairseq's default ``alignment_layer`` (the
    last one) stays in range.
    """
    if keep is None:
        yield owner
        return
    layers, num = owner.layers, getattr(owner, "num_layers", None)
    modules = list(nn.ModuleList.__iter__(layers))  # the modules themselves, not a LayerDrop plan
    owner.layers = nn.ModuleList([modules[i] for i in keep])
    if num is not None:
        owner.num_layers = len(keep)
    try:
        yield owner
    finally:
        owner.layers = layers
        if num is not None:
            owner.num_layers = num
