"""Resume and gradient accumulation: a run stopped after K updates and restarted from
checkpoint_last.pt draws the masks, logs the losses and ends with the parameters of a run that
was never interrupted; with ``--update-freq 2`` each micro-batch draws its own mask.

Runs go through the real ``fairseq-train`` (``tests/ddp_driver.py`` on one rank records the
masks, full-precision losses and a parameter digest per update). See docs/distributed.md.
"""
import re

import pytest

from tests.ddp_driver import expected_keep, launch, load, max_abs_diff
from tests.utils import PLUGIN_DIR

SEED, UPDATES, STOP = 3, 6, 3
COMMON = ["--user-dir", PLUGIN_DIR, "--optimizer", "adam", "--lr", "1e-3", "--cpu", "--num-workers", "0",
          "--log-interval", "1", "--log-format", "simple", "--required-batch-size-multiple", "1",
          "--seed", SEED, "--no-epoch-checkpoints"]
SETUPS = {
    # warm-up: the rates themselves depend on the update number, so a resumed run must know it
    "mt": (["--task", "translation", "--arch", "transformer_layerdrop_tiny", "--encoder-layers", "3",
            "--decoder-layers", "3", "--encoder-layerdrop", "0.5", "--decoder-layerdrop", "0.5",
            "--layerdrop-warmup-updates", "4", "--criterion", "label_smoothed_cross_entropy_layerdrop",
            "--label-smoothing", "0.1", "--max-tokens", "500"], dict(p=0.5, layers=3, warmup=4)),
    "lm": (["--task", "language_modeling", "--arch", "transformer_lm_layerdrop_tiny", "--decoder-layers", "4",
            "--decoder-layerdrop", "0.3", "--layerdrop-granularity", "sublayer", "--layerdrop-schedule",
            "linear", "--criterion", "cross_entropy_layerdrop", "--tokens-per-sample", "32",
            "--max-tokens", "256", "--sample-break-mode", "none"], dict(p=0.3, layers=4, warmup=0,
                                                                        schedule="linear")),
}
TIMING_KEYS = {"wps", "ups", "wall", "train_wall", "gb_free"}


def train(prefix, data_dir, save_dir, args, max_update):
    ((code, log),) = launch(prefix, [data_dir, *COMMON, *args, "--save-dir", save_dir,
                                     "--max-update", max_update])
    assert code == 0, log[-3000:]
    record, state = load(prefix)
    return record, state, log


def logged_updates(log):
    """``{num_updates: {key: value}}`` of fairseq's per-update ``train_inner`` lines, as printed."""
    out = {}
    for line in log.splitlines():
        if "train_inner" in line and "num_updates=" in line:
            fields = dict(re.findall(r"(\w+)=([^,\s]+)", line.split("|")[-1]))
            out[int(fields["num_updates"])] = {k: v for k, v in fields.items() if k not in TIMING_KEYS}
    return out


@pytest.mark.parametrize("setup,update_freq", [("mt", 1), ("mt", 2), ("lm", 1)])
def test_resumed_run_reproduces_the_uninterrupted_run(data, tmp_path, setup, update_freq):
    args, spec = SETUPS[setup]
    args = [*args, "--update-freq", update_freq]
    data_dir = data[setup]
    full, full_state, full_log = train(tmp_path / "full", data_dir, tmp_path / "ckpt_full", args, UPDATES)
    first, _, first_log = train(tmp_path / "first", data_dir, tmp_path / "ckpt", args, STOP)
    second, second_state, second_log = train(tmp_path / "second", data_dir, tmp_path / "ckpt", args, UPDATES)

    # the second run really resumed from the first's checkpoint
    assert f"@ {STOP} updates)" in second_log and "Loaded checkpoint" in second_log
    assert second["losses"][0]["update"] == STOP and full["num_updates"] == second["num_updates"] == UPDATES

    # same masks (trainer coordinates and keep-masks), same full-precision losses, same parameters
    assert first["draws"] + second["draws"] == full["draws"]
    assert first["losses"] + second["losses"] == full["losses"]
    assert {**first["param_digests"], **second["param_digests"]} == full["param_digests"]
    assert max_abs_diff(full_state, second_state) == 0.0

    # what a user sees: fairseq's per-update log lines agree (loss, nll_loss, ld_*, gnorm, lr, ...)
    logged_full = logged_updates(full_log)
    assert sorted(logged_full) == list(range(1, UPDATES + 1))
    assert {**logged_updates(first_log), **logged_updates(second_log)} == logged_full

    # every mask is the pure function of (seed, update, micro-batch, stack)
    for draw in full["draws"]:
        assert (draw["list_update"], draw["list_micro"]) == (draw["update"], draw["micro"])
        assert draw["keep"] == expected_keep(draw, spec["p"], spec["layers"], SEED, spec["warmup"],
                                             spec.get("schedule", "uniform"))


def test_micro_batches_of_one_update_draw_different_masks(data, tmp_path):
    args = [*SETUPS["mt"][0], "--update-freq", "2", "--layerdrop-warmup-updates", "0"]
    runs = [train(tmp_path / f"run{i}", data["mt"], tmp_path / f"ckpt{i}", args, 4)[0] for i in (0, 1)]
    assert runs[0]["draws"] == runs[1]["draws"]  # rerun: the same masks
    masks = {}
    for d in runs[0]["draws"]:
        masks.setdefault((d["update"], d["stack"]), []).append((d["micro"], d["keep"]))
    pairs = [m for m in masks.values() if len(m) == 2]
    assert pairs and all([i for i, _ in m] == [0, 1] for m in pairs)
    assert any(m[0][1] != m[1][1] for m in pairs)  # micro-batches 0 and 1 drew different masks
