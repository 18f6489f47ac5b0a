"""Pruned checkpoints in the real fairseq tools: stock loading, parity with load-time pruning.

Models are trained for a few updates with the real ``fairseq-train`` (tests/helpers_fairseq.py);
the pruned files are then used by ``fairseq-generate`` / ``fairseq-eval-lm`` exactly as a user
without this plugin would: no ``--user-dir``, torch's safe loader, no environment variable.
"""
import re
import subprocess
import sys

import pytest
import torch

from tests.helpers_fairseq import EVAL_COMMON, PLUGIN_DIR, hypotheses, run_cli, run_stock, to_argparse_era, train

GEN = [*EVAL_COMMON, "--beam", "3", "--batch-size", "16", "--gen-subset", "test"]
LM_EVAL = [*EVAL_COMMON, "--tokens-per-sample", "32", "--max-tokens", "1024", "--gen-subset", "test"]


@pytest.fixture(scope="module")
def plugin_mt(mt_data, tmp_path_factory):
    return train(mt_data, tmp_path_factory.mktemp("plugin_mt"), "mt", "transformer_layerdrop_tiny",
                 ["--encoder-layerdrop", "0.2", "--decoder-layerdrop", "0.2", "--layerdrop-learned-rates",
                  "--criterion", "label_smoothed_cross_entropy_layerdrop"], user_dir=PLUGIN_DIR)


def prune(src, dst, *opts):
    out = run_cli("fairseq-layerdrop-prune", [src, dst, "--quiet", *opts])
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def generate(data, ckpt, *extra, stock=True, env=None):
    runner = run_stock if stock else run_cli
    out = runner("fairseq-generate", [data, "--path", ckpt, *GEN, *extra], env_extra=env)
    assert out.returncode == 0, out.stderr[-3000:]
    hyps = hypotheses(out.stdout)
    assert len([h for h in hyps if h.startswith("H-")]) == 20
    return hyps


def perplexity(data, ckpt, *extra, stock=True):
    runner = run_stock if stock else run_cli
    out = runner("fairseq-eval-lm", [data, "--path", ckpt, *LM_EVAL, *extra])
    assert out.returncode == 0, out.stderr[-3000:]
    return re.search(r"Loss \(base 2\): ([\d.]+), Perplexity: ([\d.]+)", out.stderr).groups()


def overrides(**keep):
    return "{" + ", ".join(f"'{stack}_layers_to_keep': '{idx}'" for stack, idx in keep.items()) + "}"


def test_plugin_translation_model_pruned_loads_in_stock_generate_with_parity(mt_data, plugin_mt, tmp_path):
    out = tmp_path / "pruned.pt"
    summary = prune(plugin_mt, out, "--encoder-layers-to-keep", "0,2,3", "--decoder-layers-to-keep", "1,3")
    assert "encoder 4 -> 3 [0,2,3], decoder 4 -> 2 [1,3]" in summary and "stock fairseq" in summary
    pruned = generate(mt_data, out)  # no --user-dir, safe loader
    reference = generate(mt_data, plugin_mt, "--user-dir", PLUGIN_DIR, "--model-overrides",
                         overrides(encoder="0,2,3", decoder="1,3"), stock=False)
    assert pruned == reference  # tokens, sequence scores and positional scores
    assert pruned != generate(mt_data, plugin_mt, "--user-dir", PLUGIN_DIR, stock=False)


def test_stock_transformer_prunes_one_stack_where_load_time_pruning_fails(mt_data, tmp_path):
    ckpt = train(mt_data, tmp_path / "stock", "mt", "transformer", ["--decoder-layerdrop", "0.2"])
    out = tmp_path / "dec.pt"
    prune(ckpt, out, "--decoder-layers-to-keep", "0,2")
    pruned = generate(mt_data, out)
    # fairseq's own load-time pruning with only decoder_layers_to_keep deletes every encoder
    # layer (fairseq issue #1257) and fails on missing keys
    broken = run_stock("fairseq-generate", [mt_data, "--path", ckpt, *GEN, "--model-overrides",
                                            overrides(decoder="0,2")],
                       env_extra={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert broken.returncode != 0 and "Missing key(s)" in broken.stderr
    both = generate(mt_data, ckpt, "--model-overrides", overrides(encoder="0,1,2,3", decoder="0,2"),
                    env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert pruned == both


def test_argparse_era_checkpoint_is_pruned_and_loads_safely(mt_data, tmp_path):
    ckpt = train(mt_data, tmp_path / "stock", "mt", "transformer")
    legacy = to_argparse_era(ckpt, tmp_path / "legacy.pt")
    assert "args" in torch.load(legacy, weights_only=False) and "cfg" not in torch.load(legacy, weights_only=False)
    unsafe = run_stock("fairseq-generate", [mt_data, "--path", legacy, *GEN])
    assert unsafe.returncode != 0 and "weights_only" in unsafe.stderr  # what users hit today
    out = tmp_path / "pruned.pt"
    prune(legacy, out, "--encoder-depth", "2", "--decoder-depth", "2")
    reference = generate(mt_data, legacy, "--model-overrides", overrides(encoder="0,2", decoder="0,2"),
                         env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert generate(mt_data, out) == reference


def test_language_model_perplexity_parity(lm_data, tmp_path):
    ckpt = train(lm_data, tmp_path / "lm", "lm", "transformer_lm_layerdrop_tiny",
                 ["--decoder-layerdrop", "0.3", "--criterion", "cross_entropy_layerdrop"], user_dir=PLUGIN_DIR)
    out = tmp_path / "pruned.pt"
    prune(ckpt, out, "--decoder-layers-to-keep", "0,3")
    pruned = perplexity(lm_data, out)
    reference = perplexity(lm_data, ckpt, "--user-dir", PLUGIN_DIR, "--model-overrides",
                           overrides(decoder="0,3"), stock=False)
    full = perplexity(lm_data, ckpt, "--user-dir", PLUGIN_DIR, stock=False)
    assert pruned == reference and pruned != full


def test_bart_pruned_generates_like_load_time_pruning(mt_data, tmp_path):
    ckpt = train(mt_data, tmp_path / "bart", "bart", "bart_layerdrop_tiny",
                 ["--encoder-layerdrop", "0.2", "--criterion", "label_smoothed_cross_entropy_layerdrop"],
                 user_dir=PLUGIN_DIR)
    out = tmp_path / "pruned.pt"
    summary = prune(ckpt, out, "--encoder-layers-to-keep", "1,2", "--decoder-depth", "3")
    assert "bart_base" in summary
    # BART's config stays an argparse.Namespace (see pruning.NAMESPACE_ARCH_PREFIXES): stock
    # fairseq needs the documented environment variable, or the plugin's allow-list
    env = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    pruned = generate(mt_data, out, env=env)
    assert pruned == generate(mt_data, out, "--user-dir", PLUGIN_DIR, stock=False)
    reference = generate(mt_data, ckpt, "--user-dir", PLUGIN_DIR, "--model-overrides",
                         overrides(encoder="1,2", decoder="0,1,2"), stock=False)
    assert pruned == reference


def test_roberta_encoder_only(tmp_path, lm_data):
    ckpt = train(lm_data, tmp_path / "roberta", "roberta", "roberta_base", ["--encoder-layerdrop", "0.2"])
    out = tmp_path / "pruned.pt"
    summary = prune(ckpt, out, "--encoder-depth", "2")
    assert "encoder 4 -> 2 [0,2]" in summary
    code = ("import sys, torch; from fairseq import checkpoint_utils as c; "
            "m = c.load_model_ensemble([sys.argv[1]])[0][0]; "
            "print(len(m.encoder.sentence_encoder.layers))")
    loaded = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert loaded.returncode == 0 and loaded.stdout.split()[-1] == "2", loaded.stderr[-2000:]


def test_learned_strategy_keeps_the_lowest_learned_rates(mt_data, plugin_mt, tmp_path):
    logits = torch.load(plugin_mt, weights_only=False)["model"]["decoder.layers.layerdrop_logits"]
    expected = sorted(torch.argsort(logits, stable=True)[:2].tolist())
    summary = prune(plugin_mt, tmp_path / "l.pt", "--decoder-depth", "2", "--strategy", "learned")
    assert f"decoder 4 -> 2 [{','.join(map(str, expected))}]" in summary
    generate(mt_data, tmp_path / "l.pt")


def test_search_on_valid_removes_the_cheapest_layers_greedily(mt_data, plugin_mt, tmp_path):
    out = run_cli("fairseq-layerdrop-prune", [plugin_mt, tmp_path / "s.pt", "--decoder-depth", "2",
                                              "--strategy", "search-on-valid", "--data", mt_data,
                                              "--max-batches", "3", "--quiet"])
    assert out.returncode == 0, out.stderr[-2000:]
    steps = re.findall(r"removed decoder layer (\d): valid loss ([\d.]+)", out.stdout)
    assert len(steps) == 2 and "all layers: valid loss" in out.stdout
    record = torch.load(tmp_path / "s.pt", weights_only=True)["layerdrop_pruning"]
    kept = record["kept"]["decoder"]
    assert sorted(set(range(4)) - set(kept)) == sorted(int(i) for i, _ in steps)
    # the printed losses (4 decimals) are the recorded ones: all layers, then one per removal
    assert len(record["search"]["loss_bits"]) == 1 + len(steps)
    assert all(abs(h["loss"] - float(l)) < 1e-3 for h, (_, l) in zip(record["search"]["loss_bits"][1:], steps))
    generate(mt_data, tmp_path / "s.pt")
