"""Self-speculative decoding with LayerDrop sub-networks: how often would a draft be accepted?

Issue 13, step 1. A LayerDrop model of depth L contains drafts: sub-networks of E < L of its own
layers (every other layer, the first E, or the E with the lowest learned drop rates). With greedy
verification, a drafted token is accepted iff it equals the full model's greedy token. Given that
every earlier token of the block was accepted, the draft's prefix *is* the full model's greedy
prefix, so the acceptance of one drafted token is exactly the teacher-forced agreement measured
here: the full model decodes greedily (fairseq's incremental decoding, batch 1), then each draft
reads prompt + continuation in ONE parallel forward and we compare its argmax at every
continuation position with the full model's token.

* :func:`draft_layers` picks the layers (the pruning module's own rules, not a copy);
* :func:`only_layers` (:mod:`fairseq_layerdrop.subnetwork`, shared with the search on valid)
  runs a decoder with a subset of its layer modules (dropped layers are not computed);
* :func:`measure_alpha` returns alpha, alpha per position, the full model's own parallel-vs-
  incremental agreement (a sanity check: ~1.0), repetition statistics and, from the agreement
  masks, the tokens one verify step yields for k drafted tokens (:func:`verify_steps`);
* :func:`extend_cached` (the verify step: several new tokens in one forward with the KV cache)
  and :func:`truncate_cache` serve ``benchmarks/bench_speculative.py``, which measures c and v(k);
* :func:`predicted_speedup` is the issue's ``S(k) = (1 - a^(k+1)) / ((1 - a)(k c + v(k)))``.

Plain torch: the decoder is any fairseq ``FairseqIncrementalDecoder`` whose ``layers`` is a
module list and whose ``forward(tokens, incremental_state=...)`` returns ``(logits, extra)``.
"""
import math
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from fairseq_layerdrop.early_exit import exit_logits
from fairseq_layerdrop.errors import PruneError
from fairseq_layerdrop.pruning import LEARNED_SUFFIX, check_depth, every_other, learned_keep
from fairseq_layerdrop.subnetwork import only_layers

STRATEGIES = ("every-other", "first", "learned")
MAX_K = 8  # tokens per verify step is reported for k = 1..MAX_K drafted tokens


def draft_layers(num_layers: int, depth: int, strategy: str, learned_logits: Optional[Tensor] = None,
                 mean_rate: Optional[float] = None) -> List[int]:
    """Indices of the ``depth`` layers a draft keeps (increasing).

    ``every-other``: the prune tool's rule (``pruning.every_other``); ``first``: ``0..depth-1``;
    ``learned``: the prune tool's ``learned_keep`` on ``learned_logits`` (the decoder's
    ``layerdrop_logits``) at the model's mean drop rate. Raises ``PruneError`` (one line) for a
    depth outside ``1..num_layers`` or learned rates that are missing.
    """
    check_depth(depth, num_layers, "decoder")
    if strategy == "every-other":
        return every_other(num_layers, depth)
    if strategy == "first":
        return list(range(depth))
    if strategy == "learned":
        state = {} if learned_logits is None else {"decoder" + LEARNED_SUFFIX: learned_logits}
        return learned_keep(state, "decoder", depth, mean_rate)
    raise ValueError(f"unknown draft strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def drafts_of(decoder: nn.Module, depths: Sequence[int], strategies: Sequence[str]) -> Dict[str, List[int]]:
    """``{"strategy/depth": layers}`` of every requested draft of ``decoder``; ``PruneError`` (one
    line, naming ``--depths``) for a depth outside ``1..layers``, or learned rates that are missing."""
    num_layers = len(decoder.layers)
    bad = [e for e in depths if not 1 <= e <= num_layers]
    if bad:
        raise PruneError(f"--depths: {bad[0]} is outside 1..{num_layers} (the model's decoder layers)")
    logits, mean = learned_rates_of(decoder)
    return {f"{s}/{e}": draft_layers(num_layers, e, s, logits, mean) for s in strategies for e in depths}


def learned_rates_of(decoder: nn.Module):
    """``(logits or None, mean drop rate)`` of a decoder's LayerDrop stack (no stack: ``(None, None)``)."""
    logits = getattr(decoder.layers, "layerdrop_logits", None)
    settings = getattr(decoder.layers, "settings", None)
    return (None if logits is None else logits.detach()), (None if settings is None else settings.p)


@torch.no_grad()
def greedy_continuation(decoder: nn.Module, prompt: Tensor, new_tokens: int, encoder_out=None,
                        eos: Optional[int] = None) -> Tensor:
    """At most ``new_tokens`` greedy tokens after ``prompt`` (1-D), with the KV cache, batch 1.

    fairseq's incremental decoder embeds only the last token of what it is given (earlier ones
    come from the cache), so the prompt enters one token per call, as in ``SequenceGenerator``.
    A translation decoder reads ``encoder_out`` (its source sentence) and stops after ``eos``;
    a language model (``eos`` None) does not stop: the LMs here are trained on a token stream.
    """
    state: Dict[str, Dict[str, Optional[Tensor]]] = {}
    tokens = prompt.view(1, -1)
    for t in range(1, tokens.size(1)):  # fill the cache with prompt[:-1]
        decoder(tokens[:, :t], encoder_out=encoder_out, incremental_state=state)
    for _ in range(new_tokens):
        logits = decoder(tokens, encoder_out=encoder_out, incremental_state=state)[0]  # 1 x 1 x V
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        if eos is not None and tokens[0, -1].item() == eos:
            break
    return tokens[0, prompt.numel():]


@torch.no_grad()
def parallel_argmax(decoder: nn.Module, prompt: Tensor, continuation: Tensor, encoder_out=None) -> Tensor:
    """The argmax at each continuation position from one forward over prompt + continuation[:-1]."""
    seq = torch.cat([prompt, continuation[:-1]]).view(1, -1)
    logits = decoder(seq, encoder_out=encoder_out)[0][0]  # (P + T - 1) x V
    return logits[prompt.numel() - 1:].argmax(-1)


@torch.no_grad()
def extend_cached(decoder: nn.Module, tokens: Tensor, n_new: int, state: dict, encoder_out=None) -> Tensor:
    """Logits (1 x n_new x V) of the last ``n_new`` of ``tokens`` (1 x L) in ONE forward, reading
    the first ``L - n_new`` from the KV cache ``state`` and appending the new ones to it.

    The verify step of speculative decoding. fairseq's own incremental forward takes one token
    per call and no causal mask, so this repeats its embedding and output steps (the order of
    ``TransformerDecoderBase.extract_features_scriptable``, eval mode) around the layer calls.
    A translation decoder reads ``encoder_out`` (the encoder's output dict) in every layer.
    """
    x = layers_cached(decoder.layers, embed_new(decoder, tokens, n_new), tokens.size(1), state, encoder_out)
    return exit_logits(decoder, x)


def embed_new(decoder: nn.Module, tokens: Tensor, n_new: int) -> Tensor:
    """The decoder's input (n_new x 1 x C) for the last ``n_new`` of ``tokens`` (1 x L): token and
    position embeddings, as ``TransformerDecoderBase`` computes them before its first layer."""
    x = decoder.embed_scale * decoder.embed_tokens(tokens[:, -n_new:])
    if decoder.project_in_dim is not None:
        x = decoder.project_in_dim(x)
    if decoder.embed_positions is not None and n_new == 1:  # fairseq's incremental call: the last position only
        x = x + decoder.embed_positions(tokens, incremental_state={})
    elif decoder.embed_positions is not None:
        x = x + decoder.embed_positions(tokens)[:, -n_new:]
    if decoder.layernorm_embedding is not None:
        x = decoder.layernorm_embedding(x)
    return x.transpose(0, 1)  # T x B x C


def layers_cached(layers: Sequence[nn.Module], x: Tensor, length: int, state: dict, encoder_out=None) -> Tensor:
    """Run ``layers`` in order on ``x`` (T x 1 x C): the states of the last T of ``length``
    positions, the earlier ones read from each layer's KV cache in ``state`` (the new ones are
    appended to it). Each new position sees the cache and the new positions up to itself."""
    enc = padding = None
    if encoder_out is not None and len(encoder_out["encoder_out"]) > 0:
        enc = encoder_out["encoder_out"][0]
    if encoder_out is not None and len(encoder_out["encoder_padding_mask"]) > 0:
        padding = encoder_out["encoder_padding_mask"][0]
    n_new = x.size(0)
    mask = None if n_new == 1 else torch.triu(x.new_full((n_new, length), float("-inf")), diagonal=length - n_new + 1)
    for layer in layers:
        x = layer(x, enc, padding, state, self_attn_mask=mask)[0]
    return x


def truncate_cache(decoder: nn.Module, state: dict, length: int) -> None:
    """Forget the self-attention keys and values after the first ``length`` positions (rejected
    drafts). The encoder-attention buffers of a translation decoder (the source) stay whole."""
    for layer in decoder.layers:
        buffers = layer.self_attn._get_input_buffer(state)  # fairseq's own accessor of a layer's cache
        if not buffers:
            continue
        for name in ("prev_key", "prev_value"):  # B x heads x L x head_dim
            if buffers.get(name) is not None:
                buffers[name] = buffers[name][:, :, :length]
        if buffers.get("prev_key_padding_mask") is not None:  # B x L
            buffers["prev_key_padding_mask"] = buffers["prev_key_padding_mask"][:, :length]
        layer.self_attn._set_input_buffer(state, buffers)


def repeated_bigrams(prompt: Tensor, continuation: Tensor) -> Tensor:
    """Bool per continuation token: the pair (previous token, token) occurred earlier in the text.

    Such tokens continue a loop or copy the context; a weak LM's greedy output is full of them
    and even a shallow draft predicts them, so alpha is reported on both kinds separately.
    """
    seq = torch.cat([prompt, continuation]).tolist()
    seen, out = set(), []
    for i in range(1, len(seq)):
        pair = (seq[i - 1], seq[i])
        if i >= prompt.numel():
            out.append(pair in seen)
        seen.add(pair)
    return torch.tensor(out, dtype=torch.bool)


def verify_steps(agree: Tensor, k: int) -> int:
    """Full-model forwards that greedy self-speculative decoding with ``k`` drafted tokens needs.

    Replays decoding over a known agreement mask (1-D bool, one entry per token): each step
    accepts the leading agreeing drafts and adds the full model's own next token. Exact for these
    continuations, with no independence assumption (``(1 - a^(k+1)) / (1 - a)`` assumes one).
    """
    pos, steps, n = 0, 0, agree.numel()
    while pos < n:
        block = agree[pos:pos + k].tolist()
        accepted = block.index(False) if False in block else len(block)
        pos, steps = pos + accepted + 1, steps + 1
    return steps


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if len(values) else float("nan")


def _summary(agree: Sequence[Tensor], repeat: Sequence[Tensor]) -> Dict:
    """``agree``/``repeat``: one 1-D bool per continuation (lengths may differ: translations stop at
    end-of-sentence). alpha overall, per position (over the continuations that long), on
    repeated and novel tokens, and tokens per verify step."""
    flat, rep = torch.cat(list(agree)), torch.cat(list(repeat))
    longest = max(a.numel() for a in agree)
    per_position = [_mean([a[j].item() for a in agree if a.numel() > j]) for j in range(longest)]
    return {
        "alpha": flat.float().mean().item(),
        "per_position": [round(v, 4) for v in per_position],
        "alpha_repeated": flat[rep].float().mean().item() if rep.any() else None,
        "alpha_novel": flat[~rep].float().mean().item() if (~rep).any() else None,
        # all tokens over all verify steps: the corpus-level rate a speed-up divides by the step cost
        "tokens_per_step": {k: flat.numel() / sum(verify_steps(a, k) for a in agree) for k in range(1, MAX_K + 1)},
    }


@torch.no_grad()
def measure_alpha(decoder: nn.Module, prompts: Sequence[Tensor], new_tokens: int,
                  drafts: Dict[str, Sequence[int]], encoder_outs: Optional[Sequence] = None,
                  eos: Optional[int] = None) -> Dict:
    """Greedy-decode every prompt with the full decoder, then score every draft on the result.

    ``drafts`` maps a name to the kept decoder layers. For translation, ``encoder_outs`` holds
    each prompt's source sentence encoded once at full depth (the drafts share it: only the
    decoder is drafted) and decoding stops after ``eos``. Returns the summary of each draft and
    of the full model's own parallel forward (``full_parallel``; its alpha should be ~1.0), the
    continuations, and ``distinct_fraction`` / ``repeated_fraction`` of their tokens.
    """
    encoder_outs = list(encoder_outs) if encoder_outs is not None else [None] * len(prompts)
    was_training = decoder.training
    decoder.eval()
    try:
        conts = [greedy_continuation(decoder, p, new_tokens, enc, eos) for p, enc in zip(prompts, encoder_outs)]
        repeat = [repeated_bigrams(p, c) for p, c in zip(prompts, conts)]
        results = {}
        for name, keep in {"full_parallel": None, **drafts}.items():
            with only_layers(decoder, keep):
                agree = [parallel_argmax(decoder, p, c, enc) == c for p, c, enc in zip(prompts, conts, encoder_outs)]
            results[name] = dict(_summary(agree, repeat), layers=None if keep is None else list(keep))
    finally:
        decoder.train(was_training)
    return {
        "full_parallel": results.pop("full_parallel"),
        "drafts": results,
        "distinct_fraction": _mean([c.unique().numel() / c.numel() for c in conts]),
        "repeated_fraction": torch.cat(repeat).float().mean().item(),
        "continuations": [c.tolist() for c in conts],
    }


def predicted_speedup(alpha: float, k: int, c: float, v: float) -> float:
    """``S(k)``: expected tokens per step ``(1 - a^(k+1)) / (1 - a)`` over the step's cost
    ``k c + v`` (``c``: one draft step, ``v``: verifying k drafts + 1, both in full-step units)."""
    tokens = k + 1.0 if alpha >= 1.0 else (1.0 - alpha ** (k + 1)) / (1.0 - alpha)
    return tokens / (k * c + v)


def alpha_needed(k: int, c: float, v: float, target: float) -> Optional[float]:
    """The smallest alpha with ``predicted_speedup(alpha, k, c, v) >= target`` (to 1e-4), or None
    when even a draft that is always accepted (alpha = 1) falls short. S grows with alpha, so a
    bisection finds it."""
    if predicted_speedup(1.0, k, c, v) < target:
        return None
    if predicted_speedup(0.0, k, c, v) >= target:
        return 0.0
    low, high = 0.0, 1.0
    while high - low > 1e-5:
        mid = (low + high) / 2
        low, high = (low, mid) if predicted_speedup(mid, k, c, v) >= target else (mid, high)
    return min(1.0, math.ceil(high * 1e4) / 1e4)  # rounded up: the value returned still reaches the target
