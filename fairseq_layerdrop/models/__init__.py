"""Registered fairseq models (thin: build and configure only)."""
from fairseq_layerdrop.models import bart, roberta, transformer, transformer_lm  # noqa: F401
