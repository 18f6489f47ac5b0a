"""Early-exit loss: train a decoder's first E layers to predict through its own output head.

Issue 13 (self-speculative decoding) drafts with a sub-network of the model's own layers. The
draft that keeps the first E layers is cheapest to run beside the full model, but LayerDrop
alone trains it only indirectly. The early-exit loss trains it directly: for each exit depth E
in a set, the decoder's output head (final layer norm if any, output projection, output layer)
is applied to the hidden state after the first E layer positions, and the task's loss on those
logits is added to the full model's:

    loss = loss_full + weight * mean over exits of loss_E

The head is shared, so at test time the exit is exactly the network a checkpoint pruned to layers
``0..E-1`` builds (the "first" draft; a test checks the logits are equal). Under LayerDrop the
state after position E is what this draw computed there (a dropped layer passes its input on).
Each exit costs at most one more output layer per training forward (exits that read the same
state share one: ``criterions/early_exit.py``); off unless exits are given.

Plain torch: ``decoder`` is a fairseq ``TransformerDecoder`` (or anything with ``layers``, an
optional ``layer_norm`` / ``project_out_dim`` and ``output_layer``) and ``hidden`` one of the
``inner_states`` it returns (time x batch x channels).
"""
import math
from typing import Sequence, Tuple

from torch import Tensor, nn


def parse_exit_layers(text) -> Tuple[int, ...]:
    """``"2,3"`` -> ``(2, 3)`` (sorted, unique); ``""`` or ``None`` -> ``()`` (no exit).

    Raises ``ValueError`` (one line) for anything but positive whole numbers.
    """
    if text is None or str(text).strip() == "":
        return ()
    exits = []
    for item in str(text).split(","):
        item = item.strip()
        if not (item.isascii() and item.isdigit()) or len(item) > 6 or int(item) < 1:
            raise ValueError(f"layerdrop_early_exit_layers must be depths >= 1 separated by commas, got {text!r}")
        exits.append(int(item))
    return tuple(sorted(set(exits)))


def check_exit_weight(weight) -> float:
    """The early-exit loss weight as a float if finite and > 0, else ``ValueError``."""
    w = float(weight)
    if not (w > 0.0 and math.isfinite(w)):
        raise ValueError(f"layerdrop_early_exit_weight must be a finite number > 0, got {weight}")
    return w


def check_exits(exits: Sequence[int], num_layers: int) -> None:
    """An exit must leave at least one layer after it: depths ``1..num_layers-1``."""
    bad = [e for e in exits if not 1 <= e < num_layers]
    if bad:
        raise ValueError(f"layerdrop_early_exit_layers {','.join(map(str, bad))}: the decoder has {num_layers} "
                         f"layers, so an exit depth must be 1..{num_layers - 1}")


def exit_logits(decoder: nn.Module, hidden: Tensor) -> Tensor:
    """The decoder's output head on one of its ``inner_states`` (T x B x C): B x T x vocab.

    The same steps the decoder takes after its last layer (layer norm of pre-norm stacks,
    batch-first, projection to the output dimension, output layer; with an adaptive softmax the
    output layer returns the features and the criterion's normalisation does the rest).
    """
    x = hidden
    if getattr(decoder, "layer_norm", None) is not None:
        x = decoder.layer_norm(x)
    x = x.transpose(0, 1)
    if getattr(decoder, "project_out_dim", None) is not None:
        x = decoder.project_out_dim(x)
    return decoder.output_layer(x)
