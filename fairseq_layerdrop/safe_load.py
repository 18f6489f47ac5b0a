"""Allow-list the few classes that fairseq checkpoints pickle, for torch's safe loader.

torch >= 2.6 loads with ``weights_only=True`` by default; fairseq stores its
legacy config as an ``argparse.Namespace``. We register only plain, data-only
classes, and never switch safe loading off globally.
"""
import argparse
import collections

import torch

SAFE_CHECKPOINT_GLOBALS = [argparse.Namespace, collections.OrderedDict]


def register_safe_globals() -> None:
    """Idempotently allow-list :data:`SAFE_CHECKPOINT_GLOBALS` in torch.serialization."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:  # torch < 2.4 has no safe-globals registry (and no weights_only default)
        add(SAFE_CHECKPOINT_GLOBALS)
