"""End to end through the real fairseq command line: train each family, then evaluate."""
import re

import pytest
import torch

from tests.utils import EVAL_COMMON, PLUGIN_DIR, run_cli, run_train

# 6 updates, logged one by one (the ld_* columns are read from the log)
TRAIN_COMMON = ["--optimizer", "adam", "--lr", "1e-3", "--max-update", "6", "--cpu", "--num-workers", "0",
                "--log-interval", "1", "--log-format", "simple", "--no-epoch-checkpoints",
                "--required-batch-size-multiple", "1", "--seed", "3"]


def train(data, save_dir, arch, task_args, extra=()):
    return run_train([str(data), "--user-dir", PLUGIN_DIR, "--arch", arch, "--save-dir", str(save_dir),
                      *task_args, *TRAIN_COMMON, *extra])

MT_ARGS = ["--task", "translation", "--criterion", "label_smoothed_cross_entropy_layerdrop",
           "--label-smoothing", "0.1", "--max-tokens", "2000"]
LM_ARGS = ["--task", "language_modeling", "--criterion", "cross_entropy_layerdrop",
           "--tokens-per-sample", "32", "--max-tokens", "1024", "--sample-break-mode", "none"]


@pytest.fixture(scope="module")
def mt_model(mt_data, tmp_path_factory):
    save = tmp_path_factory.mktemp("mt_ckpt")
    log = train(mt_data, save, "transformer_layerdrop_tiny", MT_ARGS,
                ["--encoder-layerdrop", "0.5", "--decoder-layerdrop", "0.5"])
    return save / "checkpoint_last.pt", log


def test_translation_trains_and_logs_layers_run(mt_model):
    ckpt, log = mt_model
    assert ckpt.exists()
    runs = [float(v) for v in re.findall(r"ld_encoder_layers=([\d.]+)", log)]
    assert runs and all(1 <= r <= 6 for r in runs) and min(runs) < 6  # p=0.5 over 6 layers


def test_translation_generates_with_fairseq_generate(mt_data, mt_model):
    out = run_cli("fairseq-generate", [str(mt_data), "--user-dir", PLUGIN_DIR, "--path", str(mt_model[0]),
                                       "--beam", "2", "--max-tokens", "2000", *EVAL_COMMON])
    assert out.returncode == 0, out.stderr[-2000:]
    hyps = [line for line in out.stdout.splitlines() if line.startswith("H-")]
    assert len(hyps) == 20


def test_load_time_pruning_still_works(mt_data, mt_model):
    overrides = "{'encoder_layers_to_keep': '0,2,4', 'decoder_layers_to_keep': '1,3,5'}"
    out = run_cli("fairseq-generate", [str(mt_data), "--user-dir", PLUGIN_DIR, "--path", str(mt_model[0]),
                                       "--model-overrides", overrides, "--beam", "2",
                                       "--max-tokens", "2000", *EVAL_COMMON])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Pruning model" in out.stderr + out.stdout
    assert len([line for line in out.stdout.splitlines() if line.startswith("H-")]) == 20  # every sentence decoded


def test_alignment_layer_indexes_original_positions(mt_model):
    """fairseq's built-in list renumbers survivors, losing the alignment layer; ours keeps it."""
    from fairseq import checkpoint_utils

    import fairseq_layerdrop

    fairseq_layerdrop.register()  # the models; importing it allow-listed Namespace

    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(mt_model[0])])
    model = models[0].train()
    layers = model.decoder.layers
    keep = torch.ones(len(layers), 1, dtype=torch.bool)
    keep[1] = keep[2] = False  # drop two middle layers, keep the last (the alignment layer)
    layers.draw = lambda: keep
    tokens = torch.tensor([[5, 6, 7, 2]])
    enc = model.encoder(tokens, src_lengths=torch.tensor([4]))
    _, extra = model.decoder(tokens, encoder_out=enc, features_only=True)
    assert extra["attn"][0] is not None
    assert layers.last_layers_run == len(layers) - 2


def test_language_model_trains_with_sublayer_drop_and_evaluates(lm_data, tmp_path):
    log = train(lm_data, tmp_path, "transformer_lm_layerdrop_tiny", LM_ARGS,
                ["--decoder-layerdrop", "0.3", "--layerdrop-granularity", "sublayer",
                 "--layerdrop-schedule", "linear"])
    assert "ld_decoder_branches" in log
    out = run_cli("fairseq-eval-lm", [str(lm_data), "--user-dir", PLUGIN_DIR, "--path",
                                      str(tmp_path / "checkpoint_last.pt"),
                                      "--max-tokens", "1024", "--tokens-per-sample", "32", *EVAL_COMMON])
    assert out.returncode == 0, out.stderr[-2000:]
    ppl = float(re.search(r"Perplexity: ([\d.]+)", out.stdout + out.stderr).group(1))
    assert 1.0 < ppl < 200.0  # vocabulary of ~60 symbols: a trained model beats uniform


def test_bart_trains_and_generates(mt_data, tmp_path):
    train(mt_data, tmp_path, "bart_layerdrop_tiny", MT_ARGS + ["--share-all-embeddings"],
          ["--layerdrop-warmup-updates", "3"])
    out = run_cli("fairseq-generate", [str(mt_data), "--user-dir", PLUGIN_DIR, "--path",
                                       str(tmp_path / "checkpoint_last.pt"), "--beam", "2",
                                       "--max-tokens", "2000", *EVAL_COMMON])
    assert out.returncode == 0, out.stderr[-2000:]
    assert sum(line.startswith("H-") for line in out.stdout.splitlines()) == 20


@pytest.mark.parametrize("bad,message", [
    (["--encoder-layerdrop", "1.5"], "argument --encoder-layerdrop: rate must be in [0, 1], got 1.5"),
    (["--decoder-layerdrop", "-0.1"], "argument --decoder-layerdrop: rate must be in [0, 1], got -0.1"),
    (["--layerdrop-schedule", "cosine"], "argument --layerdrop-schedule: invalid choice: 'cosine'"),
    (["--layerdrop-granularity", "head"], "argument --layerdrop-granularity: invalid choice: 'head'"),
    (["--layerdrop-warmup-updates", "-3"], "argument --layerdrop-warmup-updates: must be a whole number >= 0, got -3"),
])
def test_bad_options_fail_with_a_clear_message(mt_data, tmp_path, bad, message):
    out = run_cli("fairseq-train", [str(mt_data), "--user-dir", PLUGIN_DIR, "--arch", "transformer_layerdrop_tiny",
                                    "--save-dir", str(tmp_path), *MT_ARGS, *TRAIN_COMMON, *bad])
    assert out.returncode == 2
    assert message in out.stderr
    assert not list(tmp_path.iterdir())


def test_bad_schedule_rate_combination_fails_before_training(mt_data, tmp_path):
    out = run_cli("fairseq-train", [str(mt_data), "--user-dir", PLUGIN_DIR, "--arch", "transformer_layerdrop_tiny",
                                    "--save-dir", str(tmp_path), *MT_ARGS, *TRAIN_COMMON,
                                    "--decoder-layerdrop", "0.9", "--layerdrop-schedule", "linear"])
    assert out.returncode != 0
    assert "too high for the linear schedule" in out.stderr
    assert not (tmp_path / "checkpoint_last.pt").exists()


def test_learned_rates_train_save_and_survive_load_time_pruning(mt_data, tmp_path):
    log = train(mt_data, tmp_path, "transformer_layerdrop_tiny", MT_ARGS,
                ["--layerdrop-learned-rates", "--encoder-layerdrop", "0.3", "--decoder-layerdrop", "0.3"])
    assert "ld_score" in log and "ld_encoder_rate_max" in log
    ckpt = tmp_path / "checkpoint_last.pt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    logits = state["model"]["encoder.layers.layerdrop_logits"]
    assert logits.shape == (6,) and logits.abs().sum() > 0  # trained away from the zero init
    overrides = "{'encoder_layers_to_keep': '0,1,5', 'decoder_layers_to_keep': '0,2,3,4'}"
    out = run_cli("fairseq-generate", [str(mt_data), "--user-dir", PLUGIN_DIR, "--path", str(ckpt),
                                       "--model-overrides", overrides, "--beam", "2",
                                       "--max-tokens", "2000", *EVAL_COMMON])
    assert out.returncode == 0, out.stderr[-2000:]
    assert sum(line.startswith("H-") for line in out.stdout.splitlines()) == 20
