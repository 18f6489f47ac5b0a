"""``roberta_layerdrop`` in process: stock RoBERTa at p = 0, masks, gradients, learned rates, presets."""
import argparse

import pytest
import torch

from fairseq_layerdrop.models.roberta import LEARNED_LOGITS, subset_roberta_logits
from tests.utils import PLUGIN_DIR

SIZES = ["--encoder-layers", "3", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
         "--encoder-attention-heads", "2", "--tokens-per-sample", "32", "--sample-break-mode", "none"]


def parse(data, arch, extra=(), sizes=SIZES):
    from fairseq import options

    parser = options.get_training_parser()
    return options.parse_args_and_arch(parser, [str(data), "--user-dir", PLUGIN_DIR, "--task", "masked_lm",
                                                "--arch", arch, "--cpu", *sizes, *extra])


def build(data, arch, extra=()):
    from fairseq import tasks

    args = parse(data, arch, extra)
    task = tasks.setup_task(args)
    torch.manual_seed(0)
    return task.build_model(args), task, args


@pytest.fixture(scope="module")
def sample(lm_data):
    _, task, _ = build(lm_data, "roberta")
    task.load_dataset("valid")
    ds = task.dataset("valid")
    return ds.collater([ds[i] for i in range(6)])


def forward_backward(model, sample, seed=5):
    model.train().zero_grad()
    torch.manual_seed(seed)  # dropout stays on: both models must draw the same dropout masks
    out, _ = model(**sample["net_input"])
    out.float().pow(2).mean().backward()
    return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("extra", [[], ["--encoder-normalize-before"]], ids=["post-norm", "pre-norm"])
def test_p0_computes_exactly_what_stock_roberta_computes(lm_data, sample, extra):
    stock, _, _ = build(lm_data, "roberta", extra)
    ours, _, _ = build(lm_data, "roberta_layerdrop_tiny", [*extra, "--encoder-layerdrop", "0"])
    # same seed, same initialisation: the container swap draws no random numbers
    assert list(stock.state_dict()) == list(ours.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(stock.state_dict().values(), ours.state_dict().values()))
    (out_s, grads_s), (out_o, grads_o) = forward_backward(stock, sample), forward_backward(ours, sample)
    assert torch.equal(out_s, out_o)
    assert grads_s.keys() == grads_o.keys() and all(torch.equal(grads_s[k], grads_o[k]) for k in grads_s)


def test_eval_mode_runs_every_layer_whatever_the_rate(lm_data, sample):
    stock, _, _ = build(lm_data, "roberta")
    ours, _, _ = build(lm_data, "roberta_layerdrop_tiny", ["--encoder-layerdrop", "0.5",
                                                           "--layerdrop-granularity", "sublayer"])
    with torch.no_grad():
        assert torch.equal(stock.eval()(**sample["net_input"])[0], ours.eval()(**sample["net_input"])[0])


@pytest.mark.parametrize("granularity", ["layer", "sublayer"])
def test_skipped_layers_and_branches_get_no_gradient(lm_data, sample, granularity):
    model, _, _ = build(lm_data, "roberta_layerdrop_tiny", ["--encoder-layerdrop", "0.5",
                                                            "--layerdrop-granularity", granularity])
    layers = model.encoder.sentence_encoder.layers
    keep = torch.tensor([[True, True], [False, False], [True, False]])[:, : 1 if granularity == "layer" else 2]
    layers.draw = lambda: keep
    _, grads = forward_backward(model, sample)
    prefix = "encoder.sentence_encoder.layers"
    assert not any(k.startswith(f"{prefix}.1.") for k in grads)  # the dropped layer
    assert any(k.startswith(f"{prefix}.0.fc1") for k in grads) and any(k.startswith(f"{prefix}.2.") for k in grads)
    if granularity == "sublayer":  # layer 2 ran its attention only
        assert not any(k.startswith(f"{prefix}.2.fc") for k in grads)
        assert f"{prefix}.2.self_attn.q_proj.weight" in grads
    assert layers.last_layers_run == 2


def test_same_seed_same_masks_and_outputs(lm_data, sample):
    runs = []
    for global_seed in (11, 12):  # torch's own generator differs between the runs: masks must not use it
        model, _, _ = build(lm_data, "roberta_layerdrop_tiny", ["--encoder-layerdrop", "0.5", "--dropout", "0",
                                                                "--attention-dropout", "0"])
        layers, seen = model.encoder.sentence_encoder.layers, []
        for update in range(4):
            model.set_num_updates(update)
            out, _ = forward_backward(model, sample, seed=global_seed)
            seen.append((layers.last_layers_run, out))
        runs.append(seen)
    counts = [n for n, _ in runs[0]]
    assert min(counts) < 3 and len(set(counts)) > 1  # layers (of 3) were dropped, and the mask changed with the update
    assert [n for n, _ in runs[1]] == counts
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(runs[0], runs[1]))


def test_learned_rates_are_trained_through_the_masked_lm_criterion(lm_data, sample):
    model, task, args = build(lm_data, "roberta_layerdrop_tiny", ["--encoder-layerdrop", "0.3",
                                                                  "--layerdrop-learned-rates",
                                                                  "--criterion", "masked_lm_layerdrop"])
    criterion = task.build_criterion(args)
    for update in range(3):  # the first draw only sets the REINFORCE baseline (advantage 0)
        model.set_num_updates(update)
        loss, _, log = criterion(model.train(), sample)
        loss.backward()
    logits = model.encoder.sentence_encoder.layers.layerdrop_logits
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert {"ld_encoder_layers", "ld_encoder_rate_max", "ld_score"} <= set(log)


def test_schedule_and_warmup_reach_the_sentence_encoder(lm_data):
    model, _, _ = build(lm_data, "roberta_layerdrop_tiny", ["--encoder-layerdrop", "0.3", "--layerdrop-schedule",
                                                            "linear", "--layerdrop-warmup-updates", "4"])
    layers = model.encoder.sentence_encoder.layers
    model.set_num_updates(4)
    rates = layers.current_rates()
    assert abs(float(rates.mean()) - 0.3) < 1e-9 and bool((rates[1:] > rates[:-1]).all())
    model.set_num_updates(2)
    assert torch.allclose(layers.current_rates(), rates / 2)


def test_load_time_pruning_keeps_the_learned_logits_of_the_kept_layers():
    logits = torch.tensor([0.1, 0.2, 0.3, 0.4])
    state = {LEARNED_LOGITS: logits, "encoder.sentence_encoder.layers.0.fc1.weight": torch.zeros(1)}
    pruned = subset_roberta_logits(state, argparse.Namespace(encoder_layers_to_keep="0,2"))
    assert torch.equal(pruned[LEARNED_LOGITS], torch.tensor([0.1, 0.3])) and state[LEARNED_LOGITS] is logits
    assert subset_roberta_logits(state, argparse.Namespace(encoder_layers_to_keep=None)) is state


@pytest.mark.parametrize("arch, extra, layers, p", [
    ("roberta_layerdrop_tiny", [], 8, 0.2),
    ("roberta_layerdrop_tiny", ["--encoder-layerdrop", "0"], 8, 0.0),  # an explicit 0 is kept
    ("roberta_layerdrop", [], 12, 0.0),
    ("roberta_layerdrop_base", [], 12, 0.2),
    ("roberta_layerdrop_large", [], 24, 0.2),
])
def test_presets(lm_data, arch, extra, layers, p):
    args = parse(lm_data, arch, extra, sizes=())
    assert args.encoder_layers == layers and args.encoder_layerdrop == p
