"""roberta_checks on hand-built state dicts: old key names, heads, label dictionary, missing encoder."""
import argparse

import pytest
import torch

from fairseq_layerdrop.errors import PruneError
from fairseq_layerdrop.roberta_checks import check_roberta, heads

HEAD = "classification_heads.cls."


def roberta_state(layers=2, width=8, classes=3, task="sentence_prediction", head=True, era="cfg"):
    model = {"encoder.sentence_encoder.embed_tokens.weight": torch.zeros(20, width),
             "encoder.lm_head.bias": torch.zeros(20)}
    for i in range(layers):
        model[f"encoder.sentence_encoder.layers.{i}.fc1.weight"] = torch.zeros(16, width)
    if head:
        model.update({HEAD + "dense.weight": torch.zeros(width, width), HEAD + "dense.bias": torch.zeros(width),
                      HEAD + "out_proj.weight": torch.zeros(classes, width), HEAD + "out_proj.bias": torch.zeros(classes)})
    flat = dict(arch="roberta", task=task, num_classes=classes, classification_head_name="cls",
                encoder_embed_dim=width, criterion="sentence_prediction")
    if era == "args":
        return {"model": model, "args": argparse.Namespace(**flat)}
    cfg = {"model": dict(flat, _name="roberta"), "task": {"_name": task, "num_classes": classes},
           "criterion": {"_name": "sentence_prediction", "classification_head_name": "cls"}}
    return {"model": model, "cfg": cfg}


@pytest.mark.parametrize("era", ["cfg", "args"])
def test_a_consistent_fine_tuned_file_passes_unchanged(era):
    state = roberta_state(era=era)
    assert check_roberta(state) is state
    assert sorted(heads(state["model"])["cls"]) == ["dense.bias", "dense.weight", "out_proj.bias", "out_proj.weight"]


def test_files_without_heads_or_classification_task_are_not_looked_at():
    translation = {"model": {"encoder.layers.0.fc1.weight": torch.zeros(2, 2)}, "cfg": {"task": {"_name": "x"}}}
    assert check_roberta(translation) is translation
    pretrained = roberta_state(task="masked_lm", head=False)
    assert check_roberta(pretrained) is pretrained


def test_old_roberta_key_names_are_renamed_as_fairseq_does_at_load():
    state = roberta_state(era="args")
    state["model"] = {k.replace("encoder.", "decoder.", 1): v for k, v in state["model"].items()}
    new = check_roberta(state)
    assert "encoder.sentence_encoder.layers.1.fc1.weight" in new["model"] and not any(
        k.startswith("decoder.") for k in new["model"])
    assert new["model"]["encoder.lm_head.bias"] is state["model"]["decoder.lm_head.bias"]  # not copied
    assert any(k.startswith("decoder.") for k in state["model"])  # the input is not modified


def test_bart_classifies_from_encoder_layers_and_is_not_refused():
    state = roberta_state()
    state["model"] = {k.replace("encoder.sentence_encoder.", "encoder."): v for k, v in state["model"].items()}
    state["cfg"]["model"]["_name"] = "bart_base"
    assert check_roberta(state) is state


@pytest.mark.parametrize("damage, message", [
    (lambda s: s["model"].update({HEAD + "dense.weight": torch.zeros(8, 12)}),
     "expects hidden size 12 (dense.weight [8, 12]), but the encoder's hidden size is 8"),
    (lambda s: s["model"].update({HEAD + "out_proj.weight": torch.zeros(3, 5)}), "does not fit together"),
    (lambda s: s["model"].pop(HEAD + "dense.bias"), "lacks classification_heads.cls.dense.bias"),
    (lambda s: s["cfg"]["task"].update(num_classes=5), "has 3 outputs, but the label dictionary"),
    (lambda s: s["cfg"]["criterion"].update(classification_head_name="mnli"), "classifies with head 'mnli'"),
    (lambda s: s.update(model={k: v for k, v in s["model"].items() if not k.startswith("encoder.sentence_encoder.")}),
     "has no encoder.sentence_encoder.* keys"),
], ids=["hidden size", "inner size", "missing parameter", "label dictionary", "configured head", "no encoder"])
def test_refused_with_one_line(damage, message):
    state = roberta_state()
    damage(state)
    with pytest.raises(PruneError) as err:
        check_roberta(state)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_hidden_size_from_the_config_when_the_embeddings_are_absent():
    state = roberta_state(task="masked_lm")
    del state["model"]["encoder.sentence_encoder.embed_tokens.weight"]
    state["cfg"]["model"]["encoder_embed_dim"] = 16
    with pytest.raises(PruneError, match="the encoder's hidden size is 16 \\(encoder_embed_dim\\)"):
        check_roberta(state)
