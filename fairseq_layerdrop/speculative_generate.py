"""One sentence of ``fairseq-layerdrop-generate``: fairseq's greedy settings as decoding rules, the
self-speculative decode of a batch of one, its hypothesis in fairseq-generate's form, and the checks
of ``--compare`` (the same loop without drafting, and fairseq's own ``SequenceGenerator``).

fairseq's ``SequenceGenerator`` at beam 1 starts the target with end-of-sentence, never picks pad,
forbids end-of-sentence before ``--min-len`` tokens and forces it after ``max_len`` tokens, where
``max_len = min(max_len_a * source length + max_len_b, the decoder's positions - 1)``; the score of
a hypothesis is the sum of its tokens' log-probabilities over ``length ** lenpen`` (unless
``--unnormalized``). :func:`rules_for` and :func:`hypothesis` restate these rules; the tests hold
them to ``SequenceGenerator``'s output.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor

from fairseq_layerdrop import speculative_decode as sd
from fairseq_layerdrop.errors import PruneError

NEAR_TIE = 1e-3  # top-two log-probability gap (nats) under which a float32 difference is a near-tie


def max_len_of(gen_cfg, source_length: int, max_positions: int) -> int:
    """``SequenceGenerator``'s length limit for a source (or LM input) of ``source_length`` tokens."""
    return min(int(gen_cfg.max_len_a * source_length + gen_cfg.max_len_b), max_positions - 1)


def rules_for(gen_cfg, dictionary, max_len: int, prefix: int = 0) -> sd.Rules:
    """The :class:`~fairseq_layerdrop.speculative_decode.Rules` of ``SequenceGenerator`` at beam 1
    for the tokens after a forced prefix of ``prefix`` tokens (its steps count towards both limits)."""
    return sd.Rules(eos=dictionary.eos(), min_new=max(gen_cfg.min_len - prefix, 0), force_eos_at=max_len - prefix,
                    banned=(dictionary.pad(),))


def prefix_of(sample: dict, gen_cfg, dictionary, bos: int, language_model: bool) -> Tensor:
    """The tokens fairseq forces before decoding: ``--prefix-size`` target tokens, or for a language
    model the whole input (its leading ``bos`` dropped), as ``LanguageModelingTask.inference_step``."""
    if gen_cfg.prefix_size > 0:
        return sample["target"][0, :gen_cfg.prefix_size]
    src = sample["net_input"]["src_tokens"][0]
    if not language_model:
        return src.new_zeros(0)
    return src[1:] if src.numel() and int(src[0]) == bos else src


@dataclass
class Decoded:
    """A hypothesis as ``SequenceGenerator`` returns it (``tokens`` end with end-of-sentence)."""
    tokens: Tensor
    positional_scores: Tensor
    score: Tensor  # 0-d, float32, natural log
    seconds: float
    stats: Optional[sd.DecodeStats] = None


def hypothesis(tokens: Tensor, lprobs: Tensor, gen_cfg) -> Tensor:
    """The hypothesis score fairseq reports (natural log, float32 summed token by token as fairseq
    does): the sum over ``length ** lenpen``."""
    total = lprobs.float().cumsum(0)[-1]
    return total if gen_cfg.unnormalized else total / tokens.numel() ** gen_cfg.lenpen


def encode(model, sample: dict):
    """The encoder's output for a batch of one, as ``SequenceGenerator`` computes it."""
    return model.encoder.forward_torchscript(sample["net_input"])


@torch.no_grad()
def decode(model, sample: dict, gen_cfg, keep: Optional[Sequence[int]], k: int,
           confidence: Optional[float] = None, bos: Optional[int] = None) -> Decoded:
    """Greedy decoding of the one sentence in ``sample`` (a translation, or a language model's
    continuation of its input): drafted by the decoder layers ``keep`` (``None``: the same loop
    without drafting) and verified at full depth. ``bos``: the first decoder token (default eos)."""
    started = time.perf_counter()
    dictionary, language_model = model.decoder.dictionary, getattr(model, "encoder", None) is None
    bos = dictionary.eos() if bos is None else bos
    max_len = max_len_of(gen_cfg, sample["net_input"]["src_tokens"].size(1), model.decoder.max_positions())
    prefix = prefix_of(sample, gen_cfg, dictionary, bos, language_model)[:max_len]
    if bool((prefix == dictionary.eos()).any()):  # fairseq ends the hypothesis at an eos in the prefix
        prefix = prefix[:int((prefix == dictionary.eos()).nonzero()[0]) + 1]
    rules = rules_for(gen_cfg, dictionary, max_len, prefix.numel())
    if rules.min_new > rules.force_eos_at:  # fairseq stops on an assertion here
        raise PruneError(f"--min-len {gen_cfg.min_len} is larger than sentence {int(sample['id'][0])}'s length "
                         f"limit {max_len} (--max-len-a/b, the model's positions)")
    encoder_out = None if language_model else encode(model, sample)
    prompt = torch.cat([prefix.new_tensor([bos]), prefix])
    budget = 0 if prefix.numel() and int(prefix[-1]) == dictionary.eos() else rules.force_eos_at + 1
    stats = None
    if budget == 0:  # nothing to decode: the prefix's own log-probabilities
        tokens = prompt.new_zeros(0)
        lprobs = sd.prompt_scores(model.decoder(prompt.view(1, -1), encoder_out=encoder_out)[0], prompt)
    elif keep is None:
        tokens, lprobs = sd.plain_greedy(model.decoder, prompt, budget, encoder_out, rules, score_prompt=True)
    else:
        tokens, lprobs, stats = sd.speculative_greedy(model.decoder, prompt, budget, keep, k, encoder_out,
                                                      rules, confidence, score_prompt=True)
    tokens = torch.cat([prefix, tokens])
    return Decoded(tokens, lprobs, hypothesis(tokens, lprobs, gen_cfg), time.perf_counter() - started, stats)


@torch.no_grad()
def stock(task, generator, model, sample: dict, gen_cfg) -> Decoded:
    """fairseq's own ``SequenceGenerator`` on the same sample (``--compare``), called as
    fairseq-generate calls it."""
    started = time.perf_counter()
    prefix = sample["target"][:, :gen_cfg.prefix_size] if gen_cfg.prefix_size > 0 else None
    best = task.inference_step(generator, [model], sample, prefix_tokens=prefix)[0][0]
    seconds = time.perf_counter() - started
    return Decoded(best["tokens"], best["positional_scores"], best["score"], seconds)


@torch.no_grad()
def top_two_gap(model, sample: dict, prefix: Tensor, bos: int) -> float:
    """The gap (nats) between the full model's two best log-probabilities after ``bos`` and
    ``prefix`` (the tokens both decodings agree on): small means a near-tie."""
    decoder_input = torch.cat([prefix.new_tensor([bos]), prefix]).view(1, -1)
    encoder_out = encode(model, sample) if getattr(model, "encoder", None) is not None else None
    logits = model.decoder(decoder_input, encoder_out=encoder_out)[0][0, -1]
    top = torch.log_softmax(logits.double(), dim=-1).topk(2).values
    return float(top[0] - top[1])


@dataclass
class Comparison:
    """What ``--compare`` found: seconds per method, sentences, and each difference's gap."""
    seconds: Dict[str, float] = field(default_factory=lambda: {"speculative": 0.0, "plain": 0.0, "fairseq": 0.0})
    sentences: int = 0
    differ_from_fairseq: List[tuple] = field(default_factory=list)  # (sentence id, token index, gap)
    differ_from_plain: int = 0

    def add(self, model, sample: dict, ours: Decoded, plain: Decoded, reference: Decoded, bos: int) -> Optional[str]:
        """Records one sentence; returns a log line when ours differs from fairseq's."""
        self.sentences += 1
        for name, result in (("speculative", ours), ("plain", plain), ("fairseq", reference)):
            self.seconds[name] += result.seconds
        self.differ_from_plain += ours.tokens.tolist() != plain.tokens.tolist()
        a, b = ours.tokens.tolist(), reference.tokens.tolist()
        if a == b:
            return None
        index = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        gap = top_two_gap(model, sample, reference.tokens[:index], bos)
        sentence = int(sample["id"][0])
        self.differ_from_fairseq.append((sentence, index, gap))
        kind = "a near-tie" if gap < NEAR_TIE else "NOT a near-tie"
        return (f"sentence {sentence} differs from fairseq's SequenceGenerator at token {index}: the full "
                f"model's top two log-probabilities there are {gap:.2e} apart ({kind})")

    def summary(self) -> str:
        spec = self.seconds["speculative"] or float("nan")
        gaps = [gap for _, _, gap in self.differ_from_fairseq]
        worst = f"; largest top-two gap at a difference {max(gaps):.2e}" if gaps else ""
        same = self.sentences - len(self.differ_from_fairseq)
        return (f"compare: speed-up {self.seconds['plain'] / spec:.3f}x over the same loop without drafting "
                f"({self.seconds['plain']:.1f}s), {self.seconds['fairseq'] / spec:.3f}x over fairseq's "
                f"SequenceGenerator at beam 1, batch 1 ({self.seconds['fairseq']:.1f}s); identical to it: "
                f"{same}/{self.sentences} sentences{worst}; differ from the loop without drafting: "
                f"{self.differ_from_plain}")


def summary(stats: sd.DecodeStats, sentences: int, seconds: float, keep: Sequence[int], layers: int,
            k: int) -> str:
    """The statistics line printed at the end."""
    return (f"speculative: draft layers {','.join(map(str, keep))} of {layers}, {k} draft tokens: acceptance "
            f"{stats.acceptance:.3f}, {stats.tokens_per_step:.2f} tokens per verify step; {sentences} sentences, "
            f"{stats.tokens} tokens in {seconds:.1f}s ({stats.tokens / max(seconds, 1e-9):.1f} tokens/s)")


def lines(sample_id: int, decoded: Decoded, hypo_str: str, detok: str) -> List[str]:
    """The ``H-``, ``D-`` and ``P-`` lines of fairseq-generate (scores in base 2, as it prints them)."""
    score = decoded.score / math.log(2)
    positional = " ".join(f"{x:.4f}" for x in (decoded.positional_scores.float() / math.log(2)).tolist())
    return [f"H-{sample_id}\t{score}\t{hypo_str}", f"D-{sample_id}\t{score}\t{detok}", f"P-{sample_id}\t{positional}"]
