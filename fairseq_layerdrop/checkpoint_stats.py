"""Size facts of a fairseq checkpoint: layers per stack, parameters, bytes, pruning record.

Loads through the prune tool's loader (:func:`checkpoint_io.load_checkpoint`: checked archive,
torch's safe loader, ``mmap=True``, checked structure), so a bad file is one
:class:`~fairseq_layerdrop.errors.CheckpointError` and tensors are not read into RAM.
"""
from fairseq_layerdrop import checkpoint_io
from fairseq_layerdrop.pruning import PROVENANCE_KEY, count_parameters, layer_stacks


def checkpoint_stats(path) -> dict:
    with checkpoint_io.open_input(path) as src:
        state = checkpoint_io.load_checkpoint(src)
        size = src.stat.st_size
    model = state["model"]
    params = count_parameters(model)  # shared embeddings once, not once per name
    record = state.get(PROVENANCE_KEY) or {}
    return {"layers": layer_stacks(model), "params": int(params), "bytes": size,
            "kept": record.get("kept", {}), "plain_config": record.get("plain_config", True)}
