"""fairseq-layerdrop: LayerDrop (Fan, Grave & Joulin, ICLR 2020) for fairseq.

Use as ``fairseq-train --user-dir PATH/TO/fairseq_layerdrop`` (or after
``pip install -e .``). Importing the package allow-lists the data-only classes
fairseq checkpoints pickle for torch's safe loader, and registers the
architectures and criteria when fairseq is already imported, as it is when a
fairseq tool loads a ``--user-dir``. In your own code, call :func:`register`
(or import fairseq first).

The plain-torch core (``layerdrop``, ``sublayer``, ``pruning``) and the prune
tool import no fairseq, whose import would cost the tool ~2 s and ~100 MB.
"""
import sys

from fairseq_layerdrop.safe_load import register_safe_globals

register_safe_globals()


def register() -> None:
    """Register the architectures and criteria with fairseq (idempotent: imports run once)."""
    from fairseq_layerdrop import criterions, models  # noqa: F401


if sys.modules.get("fairseq") is not None:  # imported (a None entry blocks the import)
    register()
