"""Registered fairseq criteria (logging of LayerDrop statistics)."""
from fairseq_layerdrop.criterions import layerdrop_stats, roberta  # noqa: F401
