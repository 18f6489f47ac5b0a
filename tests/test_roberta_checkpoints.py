"""Stock RoBERTa files through the prune tool: both config eras, old key names, a fine-tuned head,
and the bad RoBERTa inputs (exit 2, one line, nothing written).

Features come from ``RobertaModel.from_pretrained(..., bpe=None)``: the pruned files in a Python
that cannot import the plugin, the references from the full files with fairseq's own load-time
pruning (``encoder_layers_to_keep``).
"""
import contextlib
import io

import pytest
import torch

from tests.roberta_utils import FINETUNE, make_sentence_data, model_dir, plugin_hub_features, stock_hub_features
from tests.utils import run_cli, to_argparse_era, train

HEAD = "sentence_classification_head"


def prune(src, dst, *opts):
    """The prune tool in this process: ``(exit status, stdout, stderr)``."""
    from fairseq_layerdrop.cli import prune as prune_cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = prune_cli.main([str(a) for a in (src, dst, "--quiet", *opts)])
    return code, out.getvalue(), err.getvalue()


def old_key_names(src, dst):
    """The layout of fairseq <= 0.9 RoBERTa files: ``args`` and the encoder saved as ``decoder.*``."""
    to_argparse_era(src, dst)
    state = torch.load(dst, weights_only=False)
    state["model"] = {("decoder." + k[len("encoder."):] if k.startswith("encoder.") else k): v
                      for k, v in state["model"].items()}
    torch.save(state, dst)
    return dst


@pytest.fixture(scope="module")
def stock_pretrained(lm_data, tmp_path_factory):
    return train(lm_data, tmp_path_factory.mktemp("stock_mlm"), "roberta", "roberta", ["--encoder-layerdrop", "0.2"])


@pytest.fixture(scope="module")
def sentence_data(lm_data, tmp_path_factory):
    return make_sentence_data(lm_data, tmp_path_factory.mktemp("sentence"))


@pytest.fixture(scope="module")
def finetuned(stock_pretrained, sentence_data, tmp_path_factory):
    """A stock RoBERTa fine-tuned (whole, 4 layers) with a classification head; dataclass-era file.

    Stock fairseq pickles the model config of RoBERTa as a Namespace, which torch's safe loader
    refuses: a stock user restores unpruned files with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``.
    """
    save = tmp_path_factory.mktemp("finetuned")
    out = run_cli("fairseq-train", [sentence_data, "--restore-file", stock_pretrained, "--arch", "roberta",
                                    "--encoder-layers", "4", "--save-dir", save, "--max-update", "3", *FINETUNE],
                  env_extra={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return save / "checkpoint_last.pt"


def test_stock_files_of_both_config_eras_and_old_key_names(stock_pretrained, lm_data, tmp_path):
    models = model_dir(tmp_path / "model", lm_data / "dict.txt", stock_pretrained)
    to_argparse_era(stock_pretrained, models / "args.pt")
    old_key_names(stock_pretrained, models / "old.pt")
    fulls = ["checkpoint_last.pt", "args.pt", "old.pt"]
    assert "cfg" in torch.load(stock_pretrained, weights_only=False)
    for full in fulls:
        code, out, err = prune(models / full, models / f"small_{full}", "--encoder-depth", "2")
        assert code == 0 and "encoder 4 -> 2 [0,2]" in out, err
    small = torch.load(models / "small_old.pt", weights_only=True)["model"]
    assert not any(k.startswith("decoder.") for k in small) and "encoder.sentence_encoder.layers.1.fc1.weight" in small
    pruned = stock_hub_features(models, [f"small_{f}" for f in fulls], tmp_path / "features.pt")
    reference, _, layers = plugin_hub_features(models, "checkpoint_last.pt", encoder_layers_to_keep="0,2")
    for features, _, n in pruned:
        assert n == layers == 2 and torch.equal(features, reference)


def test_fine_tuned_then_pruned_keeps_its_head(finetuned, sentence_data, lm_data, tmp_path):
    models = model_dir(tmp_path / "model", lm_data / "dict.txt", finetuned)
    code, _, err = prune(models / "checkpoint_last.pt", models / "small.pt", "--encoder-layers-to-keep", "1,3")
    assert code == 0, err
    [(features, scores, layers)] = stock_hub_features(models, ["small.pt"], tmp_path / "f.pt", sentence_data, HEAD)
    ref_features, ref_scores, _ = plugin_hub_features(models, "checkpoint_last.pt", sentence_data, HEAD,
                                               encoder_layers_to_keep="1,3")
    assert layers == 2 and scores.shape == (2, 2)
    assert torch.equal(features, ref_features) and torch.equal(scores, ref_scores)


def _head_too_wide(state):
    state["model"][f"classification_heads.{HEAD}.dense.weight"] = torch.zeros(32, 48)


def _head_without_out_proj(state):
    del state["model"][f"classification_heads.{HEAD}.out_proj.weight"]


def _no_head(state):
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("classification_heads.")}


def _other_label_dictionary(state):
    state["cfg"]["task"]["num_classes"] = 3


def _no_sentence_encoder(state):
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("encoder.sentence_encoder.")}


BAD = {
    "head for another hidden size": (_head_too_wide, "expects hidden size 48 (dense.weight [32, 48]), but the "
                                                     "encoder's hidden size is 32"),
    "head without out_proj.weight": (_head_without_out_proj, f"lacks classification_heads.{HEAD}.out_proj.weight"),
    "configured head missing": (_no_head, f"classifies with head '{HEAD}', but the checkpoint has no "
                                          f"classification_heads.{HEAD}.*"),
    "other label dictionary": (_other_label_dictionary, "has 2 outputs, but the label dictionary of the saved "
                                                        "sentence_prediction task has num_classes 3"),
    "no sentence encoder": (_no_sentence_encoder, "has no encoder.sentence_encoder.* keys"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_roberta_input_exits_2_with_one_line_and_writes_nothing(finetuned, tmp_path, case):
    damage, message = BAD[case]
    state = torch.load(finetuned, weights_only=False)
    damage(state)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    before = bad.read_bytes()
    code, out, err = prune(bad, tmp_path / "out.pt", "--encoder-depth", "2")
    lines = err.strip().splitlines()
    assert code == 2 and not out and len(lines) == 1
    assert lines[0].startswith("fairseq-layerdrop-prune: error: ") and message in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"] and bad.read_bytes() == before
