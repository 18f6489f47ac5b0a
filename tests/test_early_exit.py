"""The early-exit loss (``--layerdrop-early-exit-layers``): exit logits, loss value, gradients, options, a real run."""
import copy
import json
import re

import fairseq  # noqa: F401  (first: the plugin registers with it)
import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from omegaconf import OmegaConf, open_dict

import fairseq_layerdrop
from fairseq_layerdrop.checkpoint_io import load_checkpoint
from fairseq_layerdrop.early_exit import check_exit_weight, exit_logits, parse_exit_layers
from fairseq_layerdrop.pruning import prune_state
from fairseq_layerdrop.subnetwork import only_layers
from tests.test_models_e2e import LM_ARGS, train
from tests.utils import PLUGIN_DIR, TRAIN_COMMON, run_cli

fairseq_layerdrop.register()
LAYERS = 4


def parse(data, task_args, extra=()):
    args = options.parse_args_and_arch(options.get_training_parser(), [str(data), *task_args, *extra])
    return convert_namespace_to_omegaconf(args)


LM = ["--task", "language_modeling", "--arch", "transformer_lm_layerdrop_tiny", "--tokens-per-sample", "32",
      "--decoder-layers", str(LAYERS), "--decoder-embed-dim", "16", "--decoder-ffn-embed-dim", "32",
      "--decoder-attention-heads", "2", "--decoder-layerdrop", "0", "--criterion", "cross_entropy_layerdrop"]
MT = ["--task", "translation", "--arch", "transformer_layerdrop_tiny", "--encoder-layers", "2",
      "--decoder-layers", str(LAYERS), "--encoder-embed-dim", "16", "--decoder-embed-dim", "16",
      "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2",
      "--decoder-attention-heads", "2", "--encoder-layerdrop", "0", "--decoder-layerdrop", "0",
      "--criterion", "label_smoothed_cross_entropy_layerdrop", "--label-smoothing", "0.1"]


def setup(cfg, **model_overrides):
    """(model in train mode with dropout off, task) for a parsed config."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        for name, value in dict(dropout=0.0, **model_overrides).items():
            setattr(cfg.model, name, value)  # an OmegaConf node or, for legacy archs, a Namespace
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    return task.build_model(cfg.model).train(), task


def sample_for(task, translation, batch=3, length=7):
    gen = torch.Generator().manual_seed(2)
    vocab = len(task.target_dictionary)
    tokens = lambda: torch.randint(4, vocab, (batch, length), generator=gen)  # noqa: E731
    target = tokens()
    net_input = {"src_tokens": tokens(), "src_lengths": torch.full((batch,), length)}
    if translation:
        net_input["prev_output_tokens"] = tokens()
    return {"net_input": net_input, "target": target, "ntokens": target.numel(), "nsentences": batch, "id": None}


def exit_loss_by_pruning(criterion, model, sample, depth):
    """The criterion's loss of the sub-network of the first ``depth`` decoder layers (another route)."""
    with only_layers(model.decoder, list(range(depth))):
        net_output = model(**sample["net_input"])
    return criterion.compute_loss(model, net_output, sample)[0]


# -- options ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [("", ()), (None, ()), ("3", (3,)), ("3,1,3", (1, 3)), (" 2 , 4 ", (2, 4))])
def test_parse_exit_layers(text, expected):
    assert parse_exit_layers(text) == expected


@pytest.mark.parametrize("text", ["0", "a", "1.5", "-1", "²", "1,,2", "9" * 5000])
def test_parse_exit_layers_refuses(text):
    with pytest.raises(ValueError, match="layerdrop_early_exit_layers must be depths >= 1"):
        parse_exit_layers(text)


@pytest.mark.parametrize("weight", [0, -1, float("nan"), float("inf")])
def test_exit_weight_must_be_positive_and_finite(weight):
    with pytest.raises(ValueError, match="layerdrop_early_exit_weight must be"):
        check_exit_weight(weight)


@pytest.mark.parametrize("option,value,message", [
    ("--layerdrop-early-exit-layers", "0", "layerdrop_early_exit_layers must be"),
    ("--layerdrop-early-exit-weight", "-2", "layerdrop_early_exit_weight must be")])
def test_bad_option_is_one_argparse_line_and_exit_2(lm_data, capsys, option, value, message):
    with pytest.raises(SystemExit) as stop:
        parse(lm_data, LM, [option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


# -- what the loss computes ---------------------------------------------------------------------------
@pytest.mark.parametrize("pre_norm", [False, True])
def test_exit_logits_are_the_first_layers_subnetwork(lm_data, pre_norm):
    model, task = setup(parse(lm_data, LM), decoder_normalize_before=pre_norm)
    model.eval()
    tokens = sample_for(task, False)["net_input"]["src_tokens"]
    with torch.no_grad():
        _, extra = model.decoder(tokens)
        for depth in (1, 3):
            with only_layers(model.decoder, list(range(depth))):
                expected = model.decoder(tokens)[0]
            torch.testing.assert_close(exit_logits(model.decoder, extra["inner_states"][depth]), expected,
                                       rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", ["lm", "mt"])
def test_training_loss_adds_the_weighted_mean_exit_loss(lm_data, mt_data, family):
    data, task_args = (lm_data, LM) if family == "lm" else (mt_data, MT)
    plain_cfg = parse(data, task_args)
    exit_cfg = parse(data, task_args, ["--layerdrop-early-exit-layers", "1,3",
                                       "--layerdrop-early-exit-weight", "0.5"])
    model, task = setup(plain_cfg)
    sample = sample_for(task, family == "mt")
    plain, with_exits = task.build_criterion(plain_cfg.criterion), task.build_criterion(exit_cfg.criterion)
    assert with_exits.early_exits == (1, 3) and plain.early_exits == ()

    base_loss, _, _ = plain(model, sample)
    loss, size, log = with_exits(model, sample)
    exits = [exit_loss_by_pruning(plain, model, sample, d) for d in (1, 3)]
    expected = base_loss + 0.5 * (exits[0] + exits[1]) / 2
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(log["exit_loss"], (exits[0] + exits[1]).detach() / 2, rtol=1e-5, atol=1e-5)

    model.eval()  # validation: the full model's loss (early stopping), the exit loss only logged
    with torch.no_grad():
        eval_loss, _, eval_log = with_exits(model, sample)
        torch.testing.assert_close(eval_loss, plain(model, sample)[0])
    assert "exit_loss" in eval_log


@pytest.mark.parametrize("kept,distinct,adaptive", [
    ((True, False, False, True), 1, False), ((True, True, False, True), 2, False), ((False, True, True, True), 3, False),
    ((True, False, False, True), 3, True)])  # an adaptive softmax's tail has dropout: each exit draws its own
def test_exits_that_read_one_state_compute_its_loss_once(lm_data, monkeypatch, kept, distinct, adaptive):
    """Exits with only skipped layers between them read the same tensor: one output layer, the same loss."""
    from fairseq_layerdrop.criterions import early_exit as exit_module

    extra = ["--adaptive-softmax-cutoff", "8"] if adaptive else []
    cfg = parse(lm_data, LM, ["--decoder-layerdrop", "0.5", "--layerdrop-early-exit-layers", "1,2,3", *extra])
    model, task = setup(cfg, decoder_layerdrop=0.5)
    sample = sample_for(task, False)
    keep = torch.tensor(kept).view(LAYERS, 1)
    model.decoder.layers.draw = lambda: keep.clone()
    calls = []
    counted = exit_module.exit_logits
    monkeypatch.setattr(exit_module, "exit_logits", lambda *args: calls.append(1) or counted(*args))
    plain = task.build_criterion(parse(lm_data, LM, extra).criterion)
    loss, _, _ = task.build_criterion(cfg.criterion)(model, sample)
    assert (model.decoder.adaptive_softmax is not None) == adaptive and len(calls) == distinct
    # each exit's loss is that of the sub-network of the layers this draw ran below it
    ran = [i for i in range(LAYERS) if kept[i]]
    exits = []
    for depth in (1, 2, 3):
        with only_layers(model.decoder, [i for i in ran if i < depth]):
            exits.append(plain.compute_loss(model, model(**sample["net_input"]), sample)[0])
    torch.testing.assert_close(loss, plain(model, sample)[0] + sum(exits) / 3, rtol=1e-5, atol=1e-5)


def test_exit_loss_trains_only_the_layers_below_the_exit(lm_data):
    cfg = parse(lm_data, LM, ["--layerdrop-early-exit-layers", "2"])
    model, task = setup(cfg)
    sample = sample_for(task, False)
    grads = {}
    for name, criterion in (("plain", task.build_criterion(parse(lm_data, LM).criterion)),
                            ("exit", task.build_criterion(cfg.criterion))):
        model.zero_grad()
        criterion(model, sample)[0].backward()
        grads[name] = [layer.fc1.weight.grad.clone() for layer in torch.nn.ModuleList.__iter__(model.decoder.layers)]
    for i in range(LAYERS):
        same = torch.allclose(grads["plain"][i], grads["exit"][i], rtol=1e-5, atol=1e-7)
        assert same == (i >= 2), f"layer {i}"


@pytest.mark.parametrize("family,extra,depth", [
    ("lm", ["--layerdrop-early-exit-layers", str(LAYERS)], LAYERS),
    ("mt", ["--layerdrop-early-exit-layers", f"1,{LAYERS + 2}"], LAYERS),
    ("lm", ["--layerdrop-early-exit-layers", "2", "--decoder-layers-to-keep", "0,3"], 2)])
def test_exit_the_configured_decoder_cannot_have_is_refused_when_built(lm_data, mt_data, capsys, monkeypatch,
                                                                         family, extra, depth):
    data, task_args = (lm_data, LM) if family == "lm" else (mt_data, MT)
    cfg = parse(data, task_args, extra)
    task = tasks.setup_task(cfg.task)
    monkeypatch.setattr("sys.argv", ["/venv/bin/fairseq-train"])  # the message names the program
    with pytest.raises(SystemExit) as stop:
        task.build_criterion(cfg.criterion)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fairseq-train: error: layerdrop_early_exit_layers")
    assert f"the decoder has {depth} layers" in err[0]


def test_fairseq_train_with_an_impossible_exit_stops_with_one_line_before_training(lm_data, tmp_path):
    out = run_cli("fairseq-train", [str(lm_data), "--user-dir", PLUGIN_DIR, "--arch", "transformer_lm_layerdrop_tiny",
                                    "--save-dir", str(tmp_path), *LM_ARGS, *TRAIN_COMMON,
                                    "--layerdrop-early-exit-layers", "2,9"])
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert out.returncode == 2 and errors == [  # run as `python -m fairseq_cli.train`: argparse's name for it
        "train.py: error: layerdrop_early_exit_layers 9: the decoder has 8 layers, so an exit depth must be 1..7"]
    assert "Traceback" not in out.stderr and not list(tmp_path.glob("*.pt"))


def test_exits_within_a_kept_depth_build(lm_data):
    cfg = parse(lm_data, LM, ["--layerdrop-early-exit-layers", "2", "--decoder-layers-to-keep", "0,1,3"])
    assert tasks.setup_task(cfg.task).build_criterion(cfg.criterion).early_exits == (2,)


def test_a_criterion_config_standing_alone_refuses_at_the_first_forward(lm_data):
    cfg = parse(lm_data, LM, ["--layerdrop-early-exit-layers", str(LAYERS)])
    alone = OmegaConf.create(OmegaConf.to_container(cfg.criterion))  # no training config around it
    model, task = setup(cfg)
    criterion = task.build_criterion(alone)
    with pytest.raises(ValueError, match=rf"layerdrop_early_exit_layers {LAYERS}: the decoder has {LAYERS} layers"):
        criterion(model, sample_for(task, False))


def test_fairseq_train_logs_the_exit_loss_and_pruning_drops_the_option(lm_data, tmp_path):
    log = train(lm_data, tmp_path, "transformer_lm_layerdrop_tiny", LM_ARGS,
                ["--decoder-layerdrop", "0.5", "--layerdrop-early-exit-layers", "2"])
    train_values = [float(v) for v in re.findall(r"train_inner .*exit_loss=([\d.]+)", log)]
    valid_values = re.findall(r"valid on 'valid' subset .*exit_loss ([\d.]+)", log)
    assert len(train_values) == 6 and all(v > 0 for v in train_values)
    assert valid_values
    state = load_checkpoint(tmp_path / "checkpoint_last.pt")
    assert state["cfg"]["criterion"]["layerdrop_early_exit_layers"] == "2"
    stock = prune_state(state, {"decoder": [0, 2, 4, 6]}, to_stock=True)
    assert stock["cfg"]["criterion"]["_name"] == "cross_entropy"
    assert "early_exit" not in json.dumps(stock["cfg"], default=str)
