"""Self-speculative greedy decoding: a LayerDrop model drafts with a sub-network of its own decoder
layers and verifies with all of them (issue 13, step 2: the decoding loop).

Each round, the draft (the kept layers, :func:`fairseq_layerdrop.subnetwork.only_layers`) proposes
``k`` tokens one at a time; the full decoder reads the last accepted token and the ``k`` drafts in
ONE forward with its KV cache (:func:`fairseq_layerdrop.speculative.extend_cached`). The drafts
that equal the full model's greedy choice at their position are kept, up to the first that does
not, then the full model's own next token. So every token emitted is the full model's greedy
token given the tokens before it: the output is that of greedy decoding with the full model, up to
the rounding of a forward over several tokens instead of one (a near-tie of the top two scores
can flip; in float64 it does not).

Two caches, never mixed: the full decoder's and the draft's (``incremental_state`` dicts keyed by
each attention module, so the draft's layers keep their own keys and values). Both are cut back to
what was accepted after each round (:func:`fairseq_layerdrop.speculative.truncate_cache`); the
draft catches up on the tokens it has not read (the full model's correction) in one forward.

Batch 1, greedy only. Plain torch on a fairseq decoder object, like ``speculative.py``.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from fairseq_layerdrop.speculative import extend_cached, truncate_cache
from fairseq_layerdrop.subnetwork import only_layers


@dataclass
class DecodeStats:
    """What one decoding did: tokens emitted, full-model forwards (the prefill and each verify
    step), drafted and accepted tokens."""
    tokens: int = 0
    verify_steps: int = 0
    drafted: int = 0
    accepted: int = 0
    accepted_per_step: List[int] = field(default_factory=list)

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else float("nan")

    @property
    def tokens_per_step(self) -> float:
        return self.tokens / self.verify_steps if self.verify_steps else float("nan")

    def add(self, other: "DecodeStats") -> None:
        self.tokens += other.tokens
        self.verify_steps += other.verify_steps
        self.drafted += other.drafted
        self.accepted += other.accepted
        self.accepted_per_step += other.accepted_per_step


def _argmax(logits: Tensor) -> Tensor:
    """Greedy tokens (1-D) from logits 1 x T x V."""
    return logits[0].argmax(-1)


def _draft(decoder: nn.Module, keep: Sequence[int], tokens: Tensor, cached: int, k: int, state: dict,
           encoder_out) -> List[int]:
    """``k`` greedy tokens of the draft after ``tokens`` (1 x L); its cache holds the first
    ``cached`` of them. Returns the drafts; the cache then holds ``L + k - 1`` positions."""
    drafts = []
    with only_layers(decoder, keep):
        seq = tokens
        new = tokens.size(1) - cached
        for _ in range(k):
            nxt = _argmax(extend_cached(decoder, seq, new, state, encoder_out))[-1:]
            drafts.append(int(nxt))
            seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
            new = 1
    return drafts


@torch.no_grad()
def speculative_greedy(decoder: nn.Module, prompt: Tensor, new_tokens: int, keep: Sequence[int], k: int,
                       encoder_out=None, eos: Optional[int] = None):
    """At most ``new_tokens`` greedy tokens after ``prompt`` (1-D), drafted ``k`` at a time by the
    decoder layers ``keep`` and verified by all of them; ``(tokens, DecodeStats)``.

    As :func:`fairseq_layerdrop.speculative.greedy_continuation`: a translation decoder reads
    ``encoder_out`` and stops after ``eos``; a language model (``eos`` None) does not stop.
    """
    if k < 1:
        raise ValueError(f"k (draft tokens per step) must be at least 1, got {k}")
    stats, full_state, draft_state = DecodeStats(), {}, {}
    tokens = prompt.view(1, -1)
    start = tokens.size(1)
    # the full model reads the prompt once; its cache then holds every prompt position
    nxt = _argmax(extend_cached(decoder, tokens, start, full_state, encoder_out))[-1:]
    stats.verify_steps += 1
    tokens = torch.cat([tokens, nxt.view(1, 1)], dim=1)
    draft_cached = 0
    while not _done(tokens, start, new_tokens, eos):
        length = tokens.size(1)  # the full cache holds length - 1 positions: all but the last token
        steps = min(k, new_tokens - (length - start) - 1)  # the full model adds one token: the budget
        drafts = _draft(decoder, keep, tokens, draft_cached, steps, draft_state, encoder_out) if steps else []
        candidate = torch.cat([tokens, torch.tensor([drafts], dtype=tokens.dtype, device=tokens.device)], dim=1)
        greedy = _argmax(extend_cached(decoder, candidate, steps + 1, full_state, encoder_out)).tolist()
        accepted = 0
        while accepted < steps and drafts[accepted] == greedy[accepted]:
            accepted += 1
        emitted = drafts[:accepted] + [greedy[accepted]]
        tokens = torch.cat([tokens, torch.tensor([emitted], dtype=tokens.dtype, device=tokens.device)], dim=1)
        truncate_cache(decoder, full_state, tokens.size(1) - 1)
        if steps:  # the draft's cache keeps the drafts that were right
            draft_cached = length + min(accepted, steps - 1)
            truncate_cache(decoder, draft_state, draft_cached)
        stats.verify_steps += 1
        stats.drafted += steps
        stats.accepted += accepted
        stats.accepted_per_step.append(accepted)
    out = _cut(tokens[0, start:], new_tokens, eos)
    stats.tokens = out.numel()
    return out, stats


def _done(tokens: Tensor, start: int, new_tokens: int, eos: Optional[int]) -> bool:
    new = tokens[0, start:]
    return new.numel() >= new_tokens or (eos is not None and bool((new == eos).any()))


def _cut(new: Tensor, new_tokens: int, eos: Optional[int]) -> Tensor:
    """The continuation up to its first ``eos`` (kept) and at most ``new_tokens`` long."""
    if eos is not None and bool((new == eos).any()):
        new = new[: int((new == eos).nonzero()[0]) + 1]
    return new[:new_tokens]


@torch.no_grad()
def plain_greedy(decoder: nn.Module, prompt: Tensor, new_tokens: int, encoder_out=None,
                 eos: Optional[int] = None) -> Tensor:
    """The same loop without drafting: the prompt read in one forward, then one full step per
    token (what a speed-up of :func:`speculative_greedy` is measured against)."""
    state, tokens = {}, prompt.view(1, -1)
    start, new = tokens.size(1), tokens.size(1)
    while not _done(tokens, start, new_tokens, eos):
        nxt = _argmax(extend_cached(decoder, tokens, new, state, encoder_out))[-1:]
        tokens = torch.cat([tokens, nxt.view(1, 1)], dim=1)
        new = 1
    return _cut(tokens[0, start:], new_tokens, eos)
