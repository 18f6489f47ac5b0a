"""fairseq-layerdrop: LayerDrop (Fan, Grave & Joulin, ICLR 2020) for fairseq.

Use as ``fairseq-train --user-dir PATH/TO/fairseq_layerdrop`` (or after
``pip install -e .``). Importing the package registers the architectures and
criteria, and allow-lists the data-only classes fairseq checkpoints pickle for
torch's safe loader. The plain-torch core (``layerdrop``, ``sublayer``,
``pruning``) imports no fairseq code.
"""
from fairseq_layerdrop.safe_load import register_safe_globals

register_safe_globals()

try:
    import fairseq  # noqa: F401
except ImportError:  # the plain-torch core (layerdrop, learned, sublayer, pruning) needs no fairseq
    fairseq = None
if fairseq is not None:
    from fairseq_layerdrop import criterions, models  # noqa: F401  (registration with fairseq)
