"""Command-line / config options of the plugin and their validation.

Rates keep fairseq's names (``--encoder-layerdrop``, ``--decoder-layerdrop``,
``--encoder-layers-to-keep``, ``--decoder-layers-to-keep``); everything the
plugin adds is named ``layerdrop_*`` so the pruning tool can strip it when it
writes a checkpoint for stock fairseq.
"""
import argparse
from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from fairseq_layerdrop.early_exit import check_exit_weight, parse_exit_layers
from fairseq_layerdrop.settings import GRANULARITIES, SCHEDULES, LayerDropSettings, check_count, check_rate

RATE_OPTIONS = ("--encoder-layerdrop", "--decoder-layerdrop")


@dataclass
class LayerDropOptions(FairseqDataclass):
    layerdrop_schedule: ChoiceEnum(SCHEDULES) = field(
        default="uniform",
        metadata={"help": "how the stack's rate is spread over depth: uniform (paper), linear or "
                          "exponential in depth; the mean rate over layers stays --*-layerdrop"},
    )
    layerdrop_granularity: ChoiceEnum(GRANULARITIES) = field(
        default="layer",
        metadata={"help": "drop whole layers (paper) or each residual branch (self-attention, "
                          "encoder-attention, feed-forward) independently"},
    )
    layerdrop_warmup_updates: int = field(
        default=0, metadata={"help": "ramp the drop rates linearly from 0 over this many updates"}
    )
    layerdrop_allow_empty: bool = field(
        default=False,
        metadata={"help": "allow a draw to drop every layer of a stack (by default the layer that "
                          "came closest to surviving is kept)"},
    )
    layerdrop_seed: Optional[int] = field(
        default=None, metadata={"help": "seed of the LayerDrop masks (default: --seed)"}
    )
    layerdrop_learned_rates: bool = field(
        default=False,
        metadata={"help": "learn one drop rate per layer (mean fixed to --*-layerdrop) with a "
                          "score-function estimator; the prune tool's 'learned' strategy keeps the "
                          "layers with the lowest learned rates. Needs a *_layerdrop criterion"},
    )
    layerdrop_score_weight: float = field(
        default=1.0, metadata={"help": "weight of the score-function term that trains learned rates"}
    )


@dataclass
class EarlyExitOptions(FairseqDataclass):
    """Options of the decoder criteria (``criterions/early_exit.py``), not of the models."""

    layerdrop_early_exit_layers: str = field(
        default="",
        metadata={"help": "comma-separated decoder depths E: also train the decoder's output head on "
                          "the state after its first E layers (the 'first' self-speculative draft); "
                          "empty: off"},
    )
    layerdrop_early_exit_weight: float = field(
        default=1.0, metadata={"help": "weight of the mean early-exit loss added to the training loss"}
    )


def argparse_type(check, keep_text: bool = False):
    """argparse ``type`` from a check that raises ``ValueError`` with a one-line message (argparse
    then prints it and exits 2): the checked value, or with ``keep_text`` the text as given."""
    def convert(value: str):
        try:
            checked = check(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value if keep_text else checked
    return convert


rate_type = argparse_type(lambda value: check_rate(float(value), "rate"))  # drop rates: a float in [0, 1]


def nonnegative_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    try:
        return check_count(n, "count")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("count ")) from None


# our options that need more than fairseq's plain ``type`` (the rates are fairseq's: RATE_OPTIONS)
OPTION_TYPES = {"--layerdrop-warmup-updates": nonnegative_int,
                "--layerdrop-early-exit-layers": argparse_type(parse_exit_layers, keep_text=True),
                "--layerdrop-early-exit-weight": argparse_type(check_exit_weight)}


def tighten_parser(parser) -> None:
    """Give fairseq's rate options (float, unchecked) a [0, 1] check and ours clean types.

    A bad value then stops ``fairseq-train`` with argparse's one-line error and
    exit status 2 instead of a traceback deep inside model construction. Used by the
    architectures and by the criteria that take ``--layerdrop-early-exit-*``.
    """
    for action in parser._actions:
        if any(opt in RATE_OPTIONS for opt in action.option_strings):
            action.type = rate_type
        for opt in action.option_strings:
            if opt in OPTION_TYPES:
                action.type = OPTION_TYPES[opt]


def _get(cfg, name, default=None):
    value = getattr(cfg, name, default)
    return default if value is None else value


def stack_settings(cfg, stack: str) -> LayerDropSettings:
    """The :class:`LayerDropSettings` of ``stack`` (``"encoder"`` / ``"decoder"``) from a model config.

    ``cfg`` is an argparse Namespace or an OmegaConf node. Only reads the options (an unset one
    takes its default; ``--layerdrop-seed`` defaults to ``--seed``): the settings object checks
    the values and raises ``ValueError`` with a one-line message (hydra configs skip argparse).
    """
    seed = _get(cfg, "layerdrop_seed")
    return LayerDropSettings(
        stack=stack, p=_get(cfg, f"{stack}_layerdrop", 0.0),
        schedule=str(_get(cfg, "layerdrop_schedule", "uniform")),
        granularity=str(_get(cfg, "layerdrop_granularity", "layer")),
        warmup_updates=_get(cfg, "layerdrop_warmup_updates", 0),
        seed=_get(cfg, "seed", 1) if seed is None else seed,
        learned=_get(cfg, "layerdrop_learned_rates", False),
        score_weight=_get(cfg, "layerdrop_score_weight", 1.0),
        allow_empty=_get(cfg, "layerdrop_allow_empty", False),
    )
