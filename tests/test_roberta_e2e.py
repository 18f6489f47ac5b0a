"""RoBERTa with LayerDrop through the real command line: pretrain, prune, fine-tune with stock fairseq.

The paper's workflow: masked-LM pretraining with LayerDrop (``--user-dir``), then
``fairseq-layerdrop-prune --encoder-depth N``, then everything after the prune with stock fairseq
only: ``fairseq-train --task sentence_prediction --restore-file`` and
``RobertaModel.from_pretrained`` in a Python that cannot import the plugin.
"""
import re

import pytest
import torch

from tests.roberta_utils import (
    COMMON,
    FINETUNE,
    MLM,
    make_sentence_data,
    model_dir,
    plugin_hub_features,
    run_without_plugin,
    stock_hub_features,
)
from tests.utils import PLUGIN_DIR, run_cli, run_train


def pretrain(data, save_dir, *extra):
    log = run_train([data, "--user-dir", PLUGIN_DIR, "--arch", "roberta_layerdrop_tiny", "--save-dir", save_dir,
                     "--criterion", "masked_lm_layerdrop", "--max-update", "4", *MLM, *COMMON, *extra])
    return save_dir / "checkpoint_last.pt", log


def prune(src, dst, *opts):
    out = run_cli("fairseq-layerdrop-prune", [src, dst, "--quiet", *opts])
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture(scope="module")
def pretrained(lm_data, tmp_path_factory):
    """4 layers, p = 0.5 per residual branch, learned rates (the prune strips them for stock fairseq)."""
    return pretrain(lm_data, tmp_path_factory.mktemp("mlm"), "--encoder-layerdrop", "0.5",
                    "--layerdrop-learned-rates", "--layerdrop-granularity", "sublayer")


@pytest.fixture(scope="module")
def sentence_data(lm_data, tmp_path_factory):
    return make_sentence_data(lm_data, tmp_path_factory.mktemp("sentence"))


def test_masked_lm_pretraining_logs_layers_and_branches_run(pretrained):
    ckpt, log = pretrained
    layers = [float(v) for v in re.findall(r"ld_encoder_layers=([\d.]+)", log)]
    branches = [float(v) for v in re.findall(r"ld_encoder_branches=([\d.]+)", log)]
    assert len(layers) == len(branches) == 4 and all(1 <= r <= 4 for r in layers)
    assert all(1 <= b <= 8 for b in branches) and min(branches) < 8  # 2 branches per layer
    assert "ld_encoder_rate_max=" in log
    assert "encoder.sentence_encoder.layers.layerdrop_logits" in torch.load(ckpt, weights_only=False)["model"]


def test_blocked_python_cannot_import_the_plugin(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import fairseq_layerdrop\n")
    out = run_without_plugin(str(probe), [], cwd=tmp_path)
    assert out.returncode != 0 and "import of fairseq_layerdrop halted" in out.stderr


def test_pruned_file_fine_tunes_with_stock_fairseq_train(pretrained, sentence_data, tmp_path):
    small = tmp_path / "small.pt"
    summary = prune(pretrained[0], small, "--encoder-depth", "2")
    assert "encoder 4 -> 2 [0,2]" in summary and "roberta_layerdrop_tiny -> roberta (stock" in summary
    out = run_without_plugin("fairseq-train", [sentence_data, "--restore-file", small, "--arch", "roberta",
                                               "--encoder-layers", "2", "--save-dir", tmp_path / "ft",
                                               "--max-update", "4", *FINETUNE], cwd=tmp_path)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert f"Loaded checkpoint {small}" in log and "| accuracy " in log
    state = torch.load(tmp_path / "ft" / "checkpoint_last.pt", weights_only=False)  # stock: a Namespace inside
    assert "classification_heads.sentence_classification_head.out_proj.weight" in state["model"]


def test_from_pretrained_features_equal_load_time_pruning(pretrained, lm_data, tmp_path):
    
    models = model_dir(tmp_path / "model", lm_data / "dict.txt", pretrained[0])
    from fairseq_layerdrop.cli import prune as prune_cli

    assert prune_cli.main([str(models / "checkpoint_last.pt"), str(models / "small.pt"), "--encoder-depth", "2",
                           "--quiet"]) == 0
    [(features, _, layers)] = stock_hub_features(models, ["small.pt"], tmp_path / "features.pt")
    reference, _, ref_layers = plugin_hub_features(models, "checkpoint_last.pt", encoder_layers_to_keep="0,2")
    full, _, _ = plugin_hub_features(models, "checkpoint_last.pt")
    assert layers == ref_layers == 2
    assert torch.equal(features, reference) and not torch.equal(features, full)
