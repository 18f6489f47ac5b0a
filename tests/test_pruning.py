"""The pure pruning core (``fairseq_layerdrop.pruning``) on hand-built checkpoints, no fairseq."""
import argparse
import copy

import pytest
import torch

from fairseq_layerdrop import pruning
from fairseq_layerdrop.pruning import PROVENANCE_KEY, PruneError


def layer_params(prefix: str, n: int, seed: int = 0) -> dict:
    """Two tensors per layer whose values encode the layer index (to follow renumbering)."""
    out = {}
    for i in range(n):
        out[f"{prefix}.layers.{i}.fc1.weight"] = torch.full((2, 2), float(seed * 100 + i))
        out[f"{prefix}.layers.{i}.self_attn_layer_norm.bias"] = torch.full((2,), float(seed * 100 + i))
    return out


def make_state(enc=12, dec=6, arch="transformer_layerdrop_tiny", legacy=True, bart=False):
    emb = torch.randn(10, 2)
    model = {"encoder.embed_tokens.weight": emb, "decoder.embed_tokens.weight": emb,
             "decoder.output_projection.weight": emb, "encoder.version": torch.tensor([3.0])}
    if enc:
        model.update(layer_params("encoder", enc, seed=1))
    if dec:
        model.update(layer_params("decoder", dec, seed=2))
    if bart:
        model.update({"encoder.layernorm_embedding.weight": torch.ones(2),
                      "decoder.layernorm_embedding.weight": torch.ones(2),
                      "encoder.layer_norm.weight": torch.ones(2)})
    model["encoder.layers.layerdrop_logits"] = torch.arange(float(enc or 1))
    flat = dict(arch=arch, task="translation", criterion="label_smoothed_cross_entropy_layerdrop",
                optimizer="adam", lr=[1e-3], encoder_layers=enc, decoder_layers=dec,
                encoder_layerdrop=0.2, decoder_layerdrop=0.2, encoder_layers_to_keep=None,
                decoder_layers_to_keep=None, layerdrop_schedule="uniform", user_dir="/x/fairseq_layerdrop",
                data="/data")
    state = {"model": model, "optimizer_history": [{"criterion_name": "x", "optimizer": {"m": 1},
                                                    "num_updates": 10}],
             "last_optimizer_state": {"state": {0: {"exp_avg": torch.zeros(3)}}},
             "extra_state": {"epoch": 2}}
    if legacy:
        state["args"], state["cfg"] = argparse.Namespace(**flat), None
    else:
        state["args"] = None
        state["cfg"] = {"_name": None, "common": {"seed": 1}, "task": {"_name": "translation", "data": "/d"},
                        "model": argparse.Namespace(_name=arch, **flat),
                        "criterion": {"_name": "label_smoothed_cross_entropy_layerdrop"}}
    return state


def test_layer_stacks_reads_counts_and_rejects_gaps():
    assert pruning.layer_stacks(make_state()["model"]) == {"encoder": 12, "decoder": 6}
    model = layer_params("decoder", 3)
    del model["decoder.layers.1.fc1.weight"], model["decoder.layers.1.self_attn_layer_norm.bias"]
    with pytest.raises(PruneError, match="not numbered"):
        pruning.layer_stacks(model)


def test_renumbering_does_not_confuse_layers_1_10_and_11():
    state = make_state(enc=12)
    new = pruning.prune_state(state, {"encoder": [1, 10, 11]})
    enc = {k: v for k, v in new["model"].items() if k.startswith("encoder.layers.")}
    assert sorted(enc) == sorted(f"encoder.layers.{i}.{n}" for i in range(3)
                                 for n in ("fc1.weight", "self_attn_layer_norm.bias"))
    assert [float(enc[f"encoder.layers.{i}.fc1.weight"][0, 0]) for i in range(3)] == [101.0, 110.0, 111.0]
    # the untouched stack and the shared embedding are the very same tensors
    assert all(new["model"][k] is state["model"][k] for k in state["model"] if k.startswith("decoder."))
    assert new["model"]["encoder.embed_tokens.weight"] is new["model"]["decoder.output_projection.weight"]


def test_non_contiguous_keeps_in_both_stacks_and_config():
    state = make_state()
    new = pruning.prune_state(state, {"encoder": [0, 3, 7, 8], "decoder": [2, 5]}, strategy="manual")
    assert pruning.layer_stacks(new["model"]) == {"encoder": 4, "decoder": 2}
    assert float(new["model"]["decoder.layers.1.fc1.weight"][0, 0]) == 205.0
    model_cfg = new["cfg"]["model"]
    assert (model_cfg["encoder_layers"], model_cfg["decoder_layers"]) == (4, 2)
    assert model_cfg["encoder_layers_to_keep"] is None and model_cfg["decoder_layers_to_keep"] is None
    assert model_cfg["encoder_layerdrop"] == 0.2  # rates are kept (documented)
    rec = new[PROVENANCE_KEY]
    assert rec["kept"] == {"encoder": [0, 3, 7, 8], "decoder": [2, 5]}
    assert rec["layers_before"] == {"encoder": 12, "decoder": 6}


def test_one_stack_leaves_the_other_whole():
    new = pruning.prune_state(make_state(), {"decoder": [0, 2, 4]})
    assert pruning.layer_stacks(new["model"]) == {"encoder": 12, "decoder": 3}
    assert new["cfg"]["model"]["encoder_layers"] == 12
    assert new[PROVENANCE_KEY]["kept"]["encoder"] == list(range(12))


def test_decoder_only_model_and_missing_stack():
    state = make_state(enc=0, dec=8, arch="transformer_lm_layerdrop_tiny")
    new = pruning.prune_state(state, {"decoder": [0, 2, 4, 6]})
    assert pruning.layer_stacks(new["model"]) == {"decoder": 4}
    assert new["cfg"]["model"]["_name"] == "transformer_lm"
    with pytest.raises(PruneError, match="no encoder layers"):
        pruning.prune_state(state, {"encoder": [0]})


def test_bart_extra_layer_norms_pass_through_and_namespace_is_kept():
    state = make_state(enc=6, dec=6, arch="bart_layerdrop_tiny", bart=True)
    new = pruning.prune_state(state, {"encoder": [0, 5], "decoder": [1]})
    for key in ("encoder.layernorm_embedding.weight", "decoder.layernorm_embedding.weight",
                "encoder.layer_norm.weight"):
        assert new["model"][key] is state["model"][key]
    assert new["cfg"]["model"].arch == "bart_base"  # see pruning.NAMESPACE_ARCH_PREFIXES
    assert new[PROVENANCE_KEY]["plain_config"] is False


@pytest.mark.parametrize("legacy", [True, False])
def test_config_is_plain_stock_and_free_of_plugin_options(legacy):
    state = make_state(legacy=legacy)
    new = pruning.prune_state(state, {"decoder": [0, 3]})
    assert new["args"] is None

    def walk(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                assert isinstance(k, str)
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)
        else:
            assert obj is None or isinstance(obj, (str, int, float, bool)), type(obj)
    walk(new["cfg"])
    model_cfg = new["cfg"]["model"]
    assert model_cfg["_name"] == "transformer" and model_cfg["arch"] == "transformer"
    assert not [k for k in model_cfg if k.startswith("layerdrop_")]
    assert model_cfg["user_dir"] is None
    assert new["cfg"]["criterion"]["_name"] == "label_smoothed_cross_entropy"
    assert "encoder.layers.layerdrop_logits" not in new["model"]


def test_keep_plugin_arch_keeps_options_and_prunes_learned_logits():
    new = pruning.prune_state(make_state(), {"encoder": [1, 4, 9]}, to_stock=False)
    assert new["cfg"]["model"]["arch"] == "transformer_layerdrop_tiny"
    assert new["cfg"]["model"]["layerdrop_schedule"] == "uniform"
    assert new["model"]["encoder.layers.layerdrop_logits"].tolist() == [1.0, 4.0, 9.0]
    assert new[PROVENANCE_KEY]["stock"] is False


def test_optimizer_state_dropped_history_kept_input_untouched():
    state = make_state()
    before = copy.deepcopy(state)
    new = pruning.prune_state(state, {"encoder": [0]}, source_sha256="ab" * 32, source_name="in.pt")
    assert "last_optimizer_state" not in new
    assert new["optimizer_history"] == [{"criterion_name": "x", "num_updates": 10}]
    assert new[PROVENANCE_KEY]["source_sha256"] == "ab" * 32
    assert state.keys() == before.keys() and isinstance(state["args"], argparse.Namespace)
    assert state["model"].keys() == before["model"].keys()
    assert state["optimizer_history"] == before["optimizer_history"]


def test_pruning_a_pruned_file_chains_provenance():
    once = pruning.prune_state(make_state(), {"encoder": [0, 2, 4, 6, 8, 10]})
    twice = pruning.prune_state(once, {"encoder": [0, 5]})
    assert twice[PROVENANCE_KEY]["previous"]["kept"]["encoder"] == [0, 2, 4, 6, 8, 10]
    assert float(twice["model"]["encoder.layers.1.fc1.weight"][0, 0]) == 110.0


@pytest.mark.parametrize("n", [2, 4, 6, 8, 12, 16])
def test_every_other_at_half_depth_is_the_papers_rule(n):
    assert pruning.every_other(n, n // 2) == list(range(0, n, 2))


def test_every_other_other_depths_are_evenly_spaced():
    assert pruning.every_other(12, 4) == [0, 3, 6, 9]
    assert pruning.every_other(6, 4) == [0, 1, 3, 4]
    assert pruning.every_other(16, 5) == [0, 3, 6, 9, 12]
    assert pruning.every_other(7, 7) == list(range(7))
    assert pruning.every_other(7, 1) == [0]
    for n in range(1, 17):
        for d in range(1, n + 1):
            keep = pruning.every_other(n, d)
            assert len(keep) == d and keep == sorted(set(keep)) and keep[-1] < n


@pytest.mark.parametrize("text,match", [("", "empty"), ("0,,2", "empty"), ("0,a", "not a layer index"),
                                        ("-1", "not a layer index"), ("0,6", "out of range"),
                                        ("0,2,2", "duplicate"), ("3,1", "increasing")])
def test_parse_keep_list_rejects_bad_lists(text, match):
    with pytest.raises(PruneError, match=match):
        pruning.parse_keep_list(text, 6, "decoder")


def test_depth_bounds():
    assert pruning.check_depth(6, 6, "decoder") == 6
    for bad in (0, 7, -1):
        with pytest.raises(PruneError, match="1..6"):
            pruning.check_depth(bad, 6, "decoder")


def test_learned_keep_takes_lowest_rates_and_errors_without_them():
    model = layer_params("encoder", 6)
    with pytest.raises(PruneError, match="no learned encoder rates"):
        pruning.learned_keep(model, "encoder", 3, 0.2)
    # higher logit = higher drop rate (see fairseq_layerdrop.learned)
    model["encoder.layers.layerdrop_logits"] = torch.tensor([3.0, -2.0, 0.5, 4.0, -1.0, 0.0])
    assert pruning.learned_keep(model, "encoder", 3, 0.3) == [1, 4, 5]


def test_count_parameters_counts_shared_tensors_once():
    state = make_state(enc=2, dec=2)
    n_layers = 4 * (4 + 2)
    assert pruning.count_parameters(state["model"]) == 20 + 1 + n_layers


def test_not_a_checkpoint():
    with pytest.raises(PruneError, match="no 'model'"):
        pruning.prune_state({"foo": 1}, {"encoder": [0]})
    with pytest.raises(PruneError, match="neither 'args' nor 'cfg'"):
        pruning.prune_state({"model": layer_params("encoder", 2)}, {"encoder": [0]})
