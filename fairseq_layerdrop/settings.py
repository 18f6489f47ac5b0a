"""The settings of one LayerDrop stack: one frozen object, validated once (plain Python).

Every option of the plugin that shapes a stack's LayerDrop (rate, schedule, granularity,
warm-up, seed, learned rates, their score weight, empty stacks) arrives here, from the command
line or a hydra config (:func:`fairseq_layerdrop.options.stack_settings`), or from a test. A bad
value raises ``ValueError`` with a one-line message naming the option; nothing downstream checks
again.
"""
import math
from dataclasses import dataclass

STACKS = ("encoder", "decoder")
SCHEDULES = ("uniform", "linear", "exponential")
GRANULARITIES = ("layer", "sublayer")


def check_rate(p: float, name: str = "layerdrop") -> float:
    """Return ``p`` as float if it is a probability, else raise ``ValueError``."""
    p = float(p)
    if not (0.0 <= p <= 1.0) or math.isnan(p):
        raise ValueError(f"{name} must be in [0, 1], got {p}")
    return p


def check_count(n: int, name: str = "layerdrop_warmup_updates") -> int:
    """Return ``n`` as int if it is a whole number >= 0, else raise ``ValueError``."""
    if int(n) != n or int(n) < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {n}")
    return int(n)


@dataclass(frozen=True)
class LayerDropSettings:
    """Everything that decides one stack's LayerDrop, validated once, here.

    Built from the command line / hydra config by :func:`fairseq_layerdrop.options.stack_settings`
    (field names are the options without their ``layerdrop_`` prefix) and handed to
    :class:`LayerDropList`. Frozen: a stack's settings never change during training.
    """

    stack: str  # "encoder" or "decoder": the mask stream and what a skipped layer returns
    p: float = 0.0  # mean drop rate over the stack's layers (--encoder-layerdrop / --decoder-layerdrop)
    schedule: str = "uniform"  # spread of the rate over depth, one of SCHEDULES
    granularity: str = "layer"  # drop whole layers or each residual branch, one of GRANULARITIES
    warmup_updates: int = 0  # ramp the rates linearly from 0 over this many updates
    seed: int = 1  # seed of the mask stream
    learned: bool = False  # learn one rate per layer (mean p) with a score-function estimator
    score_weight: float = 1.0  # weight of the score-function term (learned rates); 0 is allowed
    allow_empty: bool = False  # allow a draw to drop every layer (else one is kept)

    def __post_init__(self):
        if self.stack not in STACKS:
            raise ValueError(f"layerdrop stack must be 'encoder' or 'decoder', got {self.stack!r}")
        for name, choices in (("schedule", SCHEDULES), ("granularity", GRANULARITIES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown layerdrop_{name} {getattr(self, name)!r}; choose from {', '.join(choices)}")
        weight = float(self.score_weight)
        if not (weight >= 0.0 and math.isfinite(weight)):
            raise ValueError(f"layerdrop_score_weight must be a finite number >= 0, got {self.score_weight}")
        clean = dict(p=check_rate(self.p, f"{self.stack}_layerdrop"), warmup_updates=check_count(self.warmup_updates),
                     seed=int(self.seed), learned=bool(self.learned), score_weight=weight,
                     allow_empty=bool(self.allow_empty))
        for name, value in clean.items():  # frozen: normalise the types once
            object.__setattr__(self, name, value)

