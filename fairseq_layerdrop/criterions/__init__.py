"""Registered fairseq criteria (logging of LayerDrop statistics)."""
from fairseq_layerdrop.criterions import layerdrop_stats  # noqa: F401
