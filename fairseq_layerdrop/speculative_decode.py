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

:class:`Rules` are the constraints fairseq's ``SequenceGenerator`` puts on a greedy choice (never
pad, no end-of-sentence before ``--min-len``, only end-of-sentence at the length limit), applied
alike to the drafts and the verification, so the output is ``fairseq-generate --beam 1``'s. Each
emitted token's log-probability comes from the full model (fairseq's positional scores). An
optional confidence stop ends a round's drafting when the draft's own top probability is low.

Batch 1, greedy only. Plain torch on a fairseq decoder object, like ``speculative.py``.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

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


@dataclass(frozen=True)
class Rules:
    """The constraints on a greedy choice, by new-token index (0: the first token generated).

    ``eos`` ends the output (None: a language model that never stops); it is not allowed before
    index ``min_new`` (fairseq's ``--min-len``) and is the only token allowed at index
    ``force_eos_at`` (fairseq's length limit); ``banned`` tokens are never chosen (fairseq: pad).
    """
    eos: Optional[int] = None
    min_new: int = 0
    force_eos_at: Optional[int] = None
    banned: Tuple[int, ...] = ()

    def choose(self, logits: Tensor, first: int) -> Tuple[Tensor, Tensor]:
        """Greedy tokens (1-D) and their log-probabilities for logits rows ``T x V`` at new-token
        indices ``first .. first + T - 1``."""
        lprobs = torch.log_softmax(logits, dim=-1)
        masked = lprobs.masked_fill(lprobs.isnan(), float("-inf"))
        if self.banned:
            masked[:, list(self.banned)] = float("-inf")
        index = torch.arange(first, first + logits.size(0), device=logits.device)
        if self.eos is not None and first < self.min_new:
            masked[index < self.min_new, self.eos] = float("-inf")
        if self.force_eos_at is not None and first + logits.size(0) > self.force_eos_at:
            forced = index >= self.force_eos_at
            keep = masked[forced, self.eos]
            masked[forced] = float("-inf")
            masked[forced, self.eos] = keep
        tokens = masked.argmax(-1)
        return tokens, masked.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _draft(decoder: nn.Module, keep: Sequence[int], tokens: Tensor, cached: int, k: int, state: dict,
           encoder_out, rules: Rules, start: int, confidence: Optional[float]) -> Tuple[List[int], int]:
    """Up to ``k`` greedy tokens of the draft after ``tokens`` (1 x L; its cache holds the first
    ``cached``); fewer when a draft is end-of-sentence or (``confidence``) its probability is lower.
    Returns the drafts and the number of positions the draft's cache then holds."""
    drafts = []
    with only_layers(decoder, keep):
        seq, new = tokens, tokens.size(1) - cached
        while len(drafts) < k:
            logits = extend_cached(decoder, seq, new, state, encoder_out)[0, -1:]
            nxt, lprob = rules.choose(logits, seq.size(1) - start)
            cached = seq.size(1)
            if confidence is not None and float(lprob.exp()) < confidence:
                break
            drafts.append(int(nxt))
            if drafts[-1] == rules.eos:
                break
            seq, new = torch.cat([seq, nxt.view(1, 1)], dim=1), 1
    return drafts, cached


def prompt_scores(logits: Tensor, prompt: Tensor) -> Tensor:
    """Log-probabilities of ``prompt[1:]`` from the logits (1 x P x V) of a forward over the prompt."""
    return torch.log_softmax(logits[0, :-1], dim=-1).gather(-1, prompt[1:].view(-1, 1)).view(-1)


def _append(tokens: Tensor, new: Sequence[int]) -> Tensor:
    return torch.cat([tokens, torch.tensor([list(new)], dtype=tokens.dtype, device=tokens.device)], dim=1)


@torch.no_grad()
def speculative_greedy(decoder: nn.Module, prompt: Tensor, new_tokens: int, keep: Sequence[int], k: int,
                       encoder_out=None, rules: Optional[Rules] = None, confidence: Optional[float] = None,
                       score_prompt: bool = False):
    """At most ``new_tokens`` greedy tokens after ``prompt`` (1-D), drafted ``k`` at a time by the
    decoder layers ``keep`` and verified by all of them; ``(tokens, log-probabilities, DecodeStats)``.

    A translation decoder reads ``encoder_out``; decoding stops after ``rules.eos``. ``confidence``
    (0 < c < 1, optional) stops a round's drafting at a draft token below that probability.
    ``score_prompt``: the log-probabilities start with those of ``prompt[1:]`` (fairseq's prefix).
    """
    if k < 1:
        raise ValueError(f"k (draft tokens per step) must be at least 1, got {k}")
    rules = rules or Rules()
    stats, full_state, draft_state = DecodeStats(), {}, {}
    tokens = prompt.view(1, -1)
    start = tokens.size(1)
    # the full model reads the prompt once; its cache then holds every prompt position
    logits = extend_cached(decoder, tokens, start, full_state, encoder_out)
    nxt, score = rules.choose(logits[0, -1:], 0)
    scores = [prompt_scores(logits, prompt.view(-1))] if score_prompt else []
    scores.append(score)
    stats.verify_steps += 1
    tokens, draft_cached = _append(tokens, [int(nxt)]), 0
    while not _done(tokens, start, new_tokens, rules.eos):
        length = tokens.size(1)  # the full cache holds length - 1 positions: all but the last token
        budget = min(k, new_tokens - (length - start) - 1)  # the full model adds one token: the budget
        drafts, held = ([], draft_cached) if budget < 1 else _draft(
            decoder, keep, tokens, draft_cached, budget, draft_state, encoder_out, rules, start, confidence)
        logits = extend_cached(decoder, _append(tokens, drafts), len(drafts) + 1, full_state, encoder_out)[0]
        greedy, lprobs = rules.choose(logits, length - start)
        greedy = greedy.tolist()
        accepted = 0
        while accepted < len(drafts) and drafts[accepted] == greedy[accepted]:
            accepted += 1
        tokens = _append(tokens, drafts[:accepted] + [greedy[accepted]])
        scores.append(lprobs[:accepted + 1])
        truncate_cache(decoder, full_state, tokens.size(1) - 1)
        draft_cached = min(held, length + accepted)  # the draft's cache keeps the drafts that were right
        truncate_cache(decoder, draft_state, draft_cached)
        stats.verify_steps += 1
        stats.drafted += len(drafts)
        stats.accepted += accepted
        stats.accepted_per_step.append(accepted)
    out = _cut(tokens[0, start:], new_tokens, rules.eos)
    stats.tokens = out.numel()
    return out, torch.cat(scores)[:out.numel() + (start - 1 if score_prompt else 0)], stats


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
                 rules: Optional[Rules] = None, score_prompt: bool = False) -> Tuple[Tensor, Tensor]:
    """The same loop without drafting: the prompt read in one forward, then one full step per
    token (what a speed-up of :func:`speculative_greedy` is measured against); ``(tokens,
    log-probabilities)``, as :func:`speculative_greedy`'s."""
    rules = rules or Rules()
    state, tokens, scores = {}, prompt.view(1, -1), []
    start, new = tokens.size(1), tokens.size(1)
    while not _done(tokens, start, new_tokens, rules.eos):
        logits = extend_cached(decoder, tokens, new, state, encoder_out)
        if score_prompt and new > 1:
            scores.append(prompt_scores(logits, prompt.view(-1)))
        nxt, score = rules.choose(logits[0, -1:], tokens.size(1) - start)
        tokens, new = torch.cat([tokens, nxt.view(1, 1)], dim=1), 1
        scores.append(score)
    out = _cut(tokens[0, start:], new_tokens, rules.eos)
    return out, torch.cat(scores)[:out.numel() + (start - 1 if score_prompt else 0)]
