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

Caches, never mixed by accident: a draft keeps a cache of its own (``incremental_state`` dicts
are keyed by attention module, so its layers hold their own keys and values), and both caches are
cut back to what was accepted after each round (:func:`fairseq_layerdrop.speculative.truncate_cache`);
the draft catches up on the tokens it has not read (the full model's correction) in one forward
(:class:`OwnCache`). The exception is a draft of the first E layers: those are the full model's
own first E layers on the same tokens, so it shares the full model's cache on purpose
(:class:`SharedPrefix`), and the verify step runs only the other layers on the drafted tokens.

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

from fairseq_layerdrop.early_exit import exit_logits
from fairseq_layerdrop.speculative import embed_new, extend_cached, layers_cached, truncate_cache
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


def _draft(step, tokens: Tensor, k: int, rules: Rules, start: int, confidence: Optional[float]) -> List[int]:
    """Up to ``k`` greedy tokens of the draft after ``tokens`` (1 x L); fewer when a draft is
    end-of-sentence or (``confidence``) its probability is lower. ``step(seq)`` is the draft's
    forward: its logits (1 x V) for the token after ``seq``."""
    drafts, seq = [], tokens
    while len(drafts) < k:
        nxt, lprob = rules.choose(step(seq), seq.size(1) - start)
        if confidence is not None and float(lprob.exp()) < confidence:
            break
        drafts.append(int(nxt))
        if drafts[-1] == rules.eos:
            break
        seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
    return drafts


def prompt_scores(logits: Tensor, prompt: Tensor) -> Tensor:
    """Log-probabilities of ``prompt[1:]`` from the logits (1 x P x V) of a forward over the prompt."""
    return torch.log_softmax(logits[0, :-1], dim=-1).gather(-1, prompt[1:].view(-1, 1)).view(-1)


def _append(tokens: Tensor, new: Sequence[int]) -> Tensor:
    return torch.cat([tokens, torch.tensor([list(new)], dtype=tokens.dtype, device=tokens.device)], dim=1)


class OwnCache:
    """Any draft: it runs its kept layers (:func:`only_layers`) with a cache of its own, and the full
    model verifies with all its layers on the full cache. After a round, the draft reads the
    tokens it has not seen (the full model's correction) at the start of the next one."""

    def __init__(self, decoder: nn.Module, keep: Sequence[int], full_state: dict, encoder_out=None):
        self.decoder, self.keep, self.full, self.encoder_out = decoder, list(keep), full_state, encoder_out
        self.state, self.cached, self.held = {}, 0, 0

    def propose(self, tokens: Tensor, budget: int, rules: Rules, start: int, confidence: Optional[float]) -> List[int]:
        self.held = self.cached  # positions in the draft's cache

        def step(seq: Tensor) -> Tensor:  # reads what the draft's cache lacks (the correction, then one token)
            logits = extend_cached(self.decoder, seq, seq.size(1) - self.held, self.state, self.encoder_out)
            self.held = seq.size(1)
            return logits[0, -1:]
        with only_layers(self.decoder, self.keep):
            return _draft(step, tokens, budget, rules, start, confidence)

    def verify(self, tokens: Tensor, drafts: Sequence[int]) -> Tensor:
        return extend_cached(self.decoder, _append(tokens, drafts), len(drafts) + 1, self.full, self.encoder_out)[0]

    def accept(self, length: int) -> None:
        """``tokens`` is now ``length`` long: the caches keep what was accepted (all but the last)."""
        truncate_cache(self.decoder, self.full, length - 1)
        self.cached = min(self.held, length - 1)  # the draft's cache keeps the drafts that were right
        truncate_cache(self.decoder, self.state, self.cached)


class SharedPrefix:
    """A draft of the first E layers (``keep = 0..E-1``), which share the full model's cache.

    The draft's layers ARE the full model's first E layers, on the same tokens, so their keys and
    values are the full model's: drafting fills the full cache's first E layers, and the verify
    step runs only the other layers, on the drafts' saved states (the first E layers once more for
    the last draft alone). No second cache, no catch-up: what the full model accepts, the draft
    has read. The draft's logits are the decoder's output head on its E-layer state (the
    early-exit head, :func:`fairseq_layerdrop.early_exit.exit_logits`): the same network
    :func:`only_layers` would run.
    """

    def __init__(self, decoder: nn.Module, depth: int, full_state: dict, encoder_out=None):
        layers = list(nn.ModuleList.__iter__(decoder.layers))  # the modules, never a LayerDrop draw
        self.decoder, self.state, self.encoder_out = decoder, full_state, encoder_out
        self.lower, self.upper, self.hidden = layers[:depth], layers[depth:], []

    def _lower(self, tokens: Tensor) -> Tensor:
        """The first E layers' state of the last token (1 x 1 x C), cached in the full cache."""
        return layers_cached(self.lower, embed_new(self.decoder, tokens, 1), tokens.size(1), self.state,
                             self.encoder_out)

    def propose(self, tokens: Tensor, budget: int, rules: Rules, start: int, confidence: Optional[float]) -> List[int]:
        self.hidden = []

        def step(seq: Tensor) -> Tensor:
            self.hidden.append(self._lower(seq))
            return exit_logits(self.decoder, self.hidden[-1])[0]
        drafts = _draft(step, tokens, budget, rules, start, confidence)
        if len(self.hidden) == len(drafts):  # the last draft's state, which the verify step reads
            self.hidden.append(self._lower(_append(tokens, drafts)))
        return drafts

    def verify(self, tokens: Tensor, drafts: Sequence[int]) -> Tensor:
        x = layers_cached(self.upper, torch.cat(self.hidden), tokens.size(1) + len(drafts), self.state,
                          self.encoder_out)
        return exit_logits(self.decoder, x)[0]

    def accept(self, length: int) -> None:
        truncate_cache(self.decoder, self.state, length - 1)


def is_prefix(keep: Sequence[int]) -> bool:
    """``keep`` is ``0..E-1``: a draft that can share the full model's cache (:class:`SharedPrefix`)."""
    return list(keep) == list(range(len(keep)))


@torch.no_grad()
def speculative_greedy(decoder: nn.Module, prompt: Tensor, new_tokens: int, keep: Sequence[int], k: int,
                       encoder_out=None, rules: Optional[Rules] = None, confidence: Optional[float] = None,
                       score_prompt: bool = False, share_cache: bool = True):
    """At most ``new_tokens`` greedy tokens after ``prompt`` (1-D), drafted ``k`` at a time by the
    decoder layers ``keep`` and verified by all of them; ``(tokens, log-probabilities, DecodeStats)``.

    A translation decoder reads ``encoder_out``; decoding stops after ``rules.eos``. ``confidence``
    (0 < c < 1, optional) stops a round's drafting at a draft token below that probability.
    ``score_prompt``: the log-probabilities start with those of ``prompt[1:]`` (fairseq's prefix).
    ``share_cache``: a draft of the first E layers shares the full model's cache
    (:class:`SharedPrefix`); False, or any other draft, keeps its own (:class:`OwnCache`).
    """
    if k < 1:
        raise ValueError(f"k (draft tokens per step) must be at least 1, got {k}")
    rules = rules or Rules()
    stats, full_state = DecodeStats(), {}
    shared = share_cache and is_prefix(keep)
    rounds = SharedPrefix(decoder, len(keep), full_state, encoder_out) if shared else \
        OwnCache(decoder, keep, full_state, encoder_out)
    tokens = prompt.view(1, -1)
    start = tokens.size(1)
    # the full model reads the prompt once; its cache then holds every prompt position
    logits = extend_cached(decoder, tokens, start, full_state, encoder_out)
    nxt, score = rules.choose(logits[0, -1:], 0)
    scores = [prompt_scores(logits, prompt.view(-1))] if score_prompt else []
    scores.append(score)
    stats.verify_steps += 1
    tokens = _append(tokens, [int(nxt)])
    while not _done(tokens, start, new_tokens, rules.eos):
        length = tokens.size(1)  # the full cache holds length - 1 positions: all but the last token
        budget = min(k, new_tokens - (length - start) - 1)  # the full model adds one token: the budget
        drafts = rounds.propose(tokens, budget, rules, start, confidence)
        greedy, lprobs = rules.choose(rounds.verify(tokens, drafts), length - start)
        greedy = greedy.tolist()
        accepted = 0
        while accepted < len(drafts) and drafts[accepted] == greedy[accepted]:
            accepted += 1
        tokens = _append(tokens, drafts[:accepted] + [greedy[accepted]])
        scores.append(lprobs[:accepted + 1])
        rounds.accept(tokens.size(1))
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
