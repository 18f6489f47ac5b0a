"""LayerDrop core in plain torch: per-layer rates, deterministic masks, the module list.

LayerDrop (Fan, Grave & Joulin, ICLR 2020) skips whole transformer layers (or
their residual branches) at random during training, so that one model can later
be cut to any depth. This module holds all the maths; fairseq only appears in
``fairseq_layerdrop/models``, which build stacks and hand them to
:class:`LayerDropList` with the stack's validated :class:`~fairseq_layerdrop.settings.LayerDropSettings`.

Determinism: the mask of a forward pass is a pure function of
``(seed, num_updates, micro_batch, stack, layer)``, drawn from a freshly seeded
torch CPU generator. Every data-parallel rank therefore drops the same layers,
and a run resumed at update K draws the masks of an uninterrupted run.

Empty stacks: unless ``allow_empty`` is set, a draw that would drop every layer
(every branch in sublayer mode) keeps the single element whose uniform draw beat
its rate by the largest margin, i.e. the one that came closest to surviving.
"""
import logging
import zlib
from typing import Callable, Iterator, List, Optional, Sequence

import torch
from torch import nn

from fairseq_layerdrop.learned import mask_log_prob, rate_offset, rates_from_logits, update_baseline
from fairseq_layerdrop.settings import LayerDropSettings

logger = logging.getLogger(__name__)
# exponential schedule: the deepest layer is dropped this many times as often as the first
EXPONENTIAL_RATIO = 4.0
_MASK64 = (1 << 64) - 1


def layer_rates(p: float, num_layers: int, schedule: str = "uniform") -> List[float]:
    """Per-layer drop rates whose mean is ``p``.

    ``uniform``: every layer ``p``. ``linear``: proportional to depth ``l + 1``
    (as stochastic depth). ``exponential``: growing geometrically with depth, the
    last layer ``EXPONENTIAL_RATIO`` times the first. ``p`` and ``schedule`` are checked by
    :class:`LayerDropSettings`; raises ``ValueError`` when a shaped schedule would need a rate
    above 1 to keep the mean at ``p`` (that depends on the number of layers).
    """
    if num_layers < 1:
        return []
    if schedule == "uniform" or num_layers == 1:
        return [p] * num_layers
    if schedule == "linear":
        shape = [float(i + 1) for i in range(num_layers)]
    elif schedule == "exponential":
        shape = [EXPONENTIAL_RATIO ** (i / (num_layers - 1)) for i in range(num_layers)]
    else:
        raise ValueError(f"unknown layerdrop_schedule {schedule!r}")
    mean = sum(shape) / num_layers
    rates = [p * s / mean for s in shape]
    if max(rates) > 1.0 + 1e-9:
        p_max = mean / max(shape)
        raise ValueError(
            f"layerdrop {p} is too high for the {schedule} schedule over {num_layers} layers "
            f"(the deepest layer would need rate {max(rates):.3f} > 1; use at most {p_max:.3f})"
        )
    return [min(r, 1.0) for r in rates]


def warmup_factor(num_updates: int, warmup_updates: int) -> float:
    """Linear ramp of the drop rate from 0 to its full value over ``warmup_updates``."""
    if warmup_updates <= 0:
        return 1.0
    return min(1.0, max(0, num_updates) / warmup_updates)


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def stack_id(name: str) -> int:
    """A stable integer for a stack name (``"encoder"``, ``"decoder"``)."""
    return zlib.crc32(name.encode("utf-8"))


def mask_seed(seed: int, num_updates: int, micro_batch: int, stack: int) -> int:
    """Mix the four coordinates of a draw into one 63-bit generator seed."""
    h = _splitmix64(int(seed) & _MASK64)
    for v in (num_updates, micro_batch, stack):
        h = _splitmix64(h ^ (int(v) & _MASK64))
    return h >> 1  # torch.Generator.manual_seed takes a non-negative int64


def draw_keep_mask(
    rates: torch.Tensor, seed: int, num_branches: int = 1, allow_empty: bool = False
) -> torch.Tensor:
    """Bool keep-mask of shape ``(num_layers, num_branches)``.

    ``rates`` (CPU, float, ``(num_layers,)``) is each layer's drop rate; every
    branch of layer ``l`` is dropped independently with rate ``rates[l]``. One
    small CPU tensor is drawn per call: no device work, no synchronisation.
    """
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand((rates.numel(), num_branches), generator=gen, dtype=torch.float64)
    margin = u - rates.to(torch.float64).unsqueeze(1)
    keep = margin >= 0 if rates.numel() else margin.bool()
    if not allow_empty and keep.numel() and not bool(keep.any()):
        keep.view(-1)[int(margin.argmax())] = True
    return keep


def _skip_encoder_layer(x, *args, **kwargs):
    return x


def _skip_decoder_layer(x, *args, **kwargs):
    return x, None, None


SKIP_FUNCTIONS = {"encoder": _skip_encoder_layer, "decoder": _skip_decoder_layer}


class LayerDropList(nn.ModuleList):
    """A ``ModuleList`` of transformer layers that applies LayerDrop when iterated.

    In training, iterating yields one callable per layer *at its original
    position*: the layer itself, a skip function (dropped layer: not computed,
    no gradient), or in sublayer mode a partial forward running only the kept
    residual branches. Keeping positions means a decoder's ``alignment_layer``
    still refers to the layer the user asked for. In eval every layer runs.

    ``settings`` says how (rates, schedule, granularity, ...);
    ``partial_forward(layer, keep_branches, *args, **kwargs)`` is required in
    sublayer mode and ``branch_count(layer)`` says how many branches a layer has.
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        settings: LayerDropSettings,
        partial_forward: Optional[Callable] = None,
        branch_count: Optional[Callable[[nn.Module], int]] = None,
    ):
        super().__init__(layers)
        if settings.granularity == "sublayer" and (partial_forward is None or branch_count is None):
            raise ValueError("sublayer granularity needs partial_forward and branch_count")
        self.settings = settings
        self.partial_forward, self.branch_count = partial_forward, branch_count
        self._base_rates = torch.tensor(layer_rates(settings.p, len(self), settings.schedule), dtype=torch.float64)
        self._stack_id = stack_id(settings.stack)
        self.num_updates, self.micro_batch = 0, 0
        self.last_layers_run: Optional[int] = None  # layers with >= 1 branch computed, last training forward
        self.last_branches_run: Optional[int] = None
        self.last_log_prob: Optional[torch.Tensor] = None  # learned mode: log P(last mask)
        self._rates_cache = None  # learned mode: (num_updates, CPU rates, CPU offset)
        if settings.learned:
            # plugin-only names (prefix ``layerdrop_``): the pruning tool strips them for stock fairseq
            self.layerdrop_logits = nn.Parameter(torch.zeros(len(self)))
            self.register_buffer("layerdrop_baseline", torch.tensor(float("nan")))

    # -- state from the trainer ------------------------------------------------------
    def set_num_updates(self, num_updates: int) -> None:
        """fairseq calls this after every update (possibly several times): count micro-batches."""
        if num_updates != self.num_updates:
            self.num_updates, self.micro_batch = int(num_updates), 0

    def _mean_rate(self) -> float:
        return self.settings.p * warmup_factor(self.num_updates, self.settings.warmup_updates)

    def current_rates(self) -> torch.Tensor:
        """Per-layer drop rates in force now (schedule or learned, times warm-up), CPU float64."""
        if not self.settings.learned:
            return self._base_rates * warmup_factor(self.num_updates, self.settings.warmup_updates)
        return self._learned_update()[0]

    def _learned_update(self):
        """``(rates, offset)`` of this update, both on the CPU, found once per update.

        The logits change only at the optimizer step, between updates: one device->host copy of
        them per update, and the bisection for the offset runs here, on the CPU, not per forward.
        """
        if self._rates_cache is None or self._rates_cache[0] != self.num_updates:
            mean = self._mean_rate()
            theta = self.layerdrop_logits.detach().double().cpu()
            offset = rate_offset(theta, mean) if 0.0 < mean < 1.0 else None
            self._rates_cache = (self.num_updates, rates_from_logits(theta, mean, offset), offset)
        return self._rates_cache[1:]

    def learned_rates(self) -> torch.Tensor:
        """Differentiable drop rates from the logits (learned mode), mean ``p`` times warm-up.

        Pure tensor ops on the logits' device with this update's offset: no host-device sync.
        """
        return rates_from_logits(self.layerdrop_logits, self._mean_rate(), self._learned_update()[1])

    def score_surrogate(self, loss_per_token: torch.Tensor) -> torch.Tensor:
        """REINFORCE term ``(loss - baseline) * log P(mask)`` for the last training draw.

        Its gradient w.r.t. the logits is the score-function estimate of the
        gradient of the expected loss; 0 if nothing was drawn.
        """
        if not self.settings.learned or self.last_log_prob is None:
            return loss_per_token.new_zeros(())
        adv = update_baseline(self.layerdrop_baseline, loss_per_token)
        log_prob, self.last_log_prob = self.last_log_prob, None
        return adv.to(log_prob.dtype) * log_prob

    def _load_from_state_dict(self, *args, **kwargs):
        self._rates_cache = None  # new logits
        super()._load_from_state_dict(*args, **kwargs)

    # -- drawing ---------------------------------------------------------------------
    def _num_branches(self) -> int:
        if self.settings.granularity == "layer" or len(self) == 0:
            return 1
        return max(self.branch_count(layer) for layer in nn.ModuleList.__iter__(self))

    def draw(self) -> torch.Tensor:
        """Next training mask ``(num_layers, num_branches)``; advances the micro-batch index."""
        seed = mask_seed(self.settings.seed, self.num_updates, self.micro_batch, self._stack_id)
        self.micro_batch += 1
        keep = draw_keep_mask(self.current_rates(), seed, self._num_branches(), self.settings.allow_empty)
        if self.settings.learned:
            if self.last_log_prob is not None and not getattr(self, "_warned_unused", False):
                self._warned_unused = True
                logger.warning("%s: learned LayerDrop rates get no gradient: train with a *_layerdrop "
                               "criterion (e.g. label_smoothed_cross_entropy_layerdrop)", self.settings.stack)
            logits = self.layerdrop_logits
            self.last_log_prob = mask_log_prob(keep.to(logits.device, non_blocking=True), self.learned_rates())
        return keep

    def plan(self, keep: torch.Tensor) -> List[Callable]:
        """Callables to run, one per original layer position, for a keep-mask."""
        skip = SKIP_FUNCTIONS[self.settings.stack]
        rows = keep.tolist()
        out, layers_run, branches_run = [], 0, 0
        for layer, row in zip(nn.ModuleList.__iter__(self), rows):
            if self.settings.granularity == "sublayer":
                row = row[: self.branch_count(layer)]
            n = sum(row)
            layers_run += n > 0
            branches_run += n
            if n == len(row):
                out.append(layer)
            elif n == 0:
                out.append(skip)
            else:
                out.append(_Partial(self.partial_forward, layer, tuple(row)))
        self.last_layers_run, self.last_branches_run = layers_run, branches_run
        return out

    def __iter__(self) -> Iterator[Callable]:
        s = self.settings
        if not self.training or (s.p == 0.0 and s.granularity == "layer" and not s.learned):
            if self.training:
                self.last_layers_run = self.last_branches_run = len(self)
            return nn.ModuleList.__iter__(self)
        return iter(self.plan(self.draw()))

    def __repr__(self) -> str:
        # torch's ModuleList.__repr__ iterates self; show every layer, never a random subset
        lines = [f"  ({i}): " + repr(m).replace("\n", "\n  ") for i, m in self._modules.items()]
        s = self.settings
        head = (f"LayerDropList(p={s.p}, stack={s.stack}, schedule={s.schedule}, "
                f"granularity={s.granularity}, warmup_updates={s.warmup_updates})")
        return head + "(\n" + "\n".join(lines) + "\n)" if lines else head + "()"


class _Partial:
    """Run ``layer`` with only some residual branches (sublayer LayerDrop)."""

    __slots__ = ("fn", "layer", "keep")

    def __init__(self, fn, layer, keep):
        self.fn, self.layer, self.keep = fn, layer, keep

    def __call__(self, *args, **kwargs):
        return self.fn(self.layer, self.keep, *args, **kwargs)
