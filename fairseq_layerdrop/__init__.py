"""fairseq-layerdrop: LayerDrop (Fan, Grave & Joulin, ICLR 2020) for fairseq.

Use as ``fairseq-train --user-dir PATH/TO/fairseq_layerdrop`` (or after
``pip install -e .``). Importing the package registers the architectures and
criteria, and allow-lists the data-only classes fairseq checkpoints pickle for
torch's safe loader. The plain-torch core (``layerdrop``, ``sublayer``,
``pruning``) imports no fairseq code.

One exception: the ``fairseq-layerdrop-prune`` console script rewrites state dicts
and needs no fairseq, whose import costs it ~2 s and ~100 MB; there registration
waits for :func:`register` (called by ``search``, the one part that builds models).
"""
import os
import sys

from fairseq_layerdrop.safe_load import register_safe_globals

register_safe_globals()


def register() -> None:
    """Register the architectures and criteria with fairseq (idempotent: imports run once)."""
    from fairseq_layerdrop import criterions, models  # noqa: F401


_PRUNE_SCRIPT = bool(sys.argv) and os.path.basename(sys.argv[0] or "") == "fairseq-layerdrop-prune"
if not _PRUNE_SCRIPT:
    try:
        import fairseq  # noqa: F401
    except ImportError:  # the plain-torch core (layerdrop, learned, sublayer, pruning) needs no fairseq
        fairseq = None
    if fairseq is not None:
        register()
