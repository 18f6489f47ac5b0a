"""fairseq_layerdrop.speculative and scripts/speculative_alpha.py on tiny random language models."""
import copy
import json
import math
from pathlib import Path

import fairseq  # noqa: F401  (first: the plugin registers with it)
import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from omegaconf import OmegaConf, open_dict

import fairseq_layerdrop
from fairseq_layerdrop import speculative as sp
from fairseq_layerdrop.subnetwork import only_layers
from tests.utils import load_module

fairseq_layerdrop.register()
ROOT = Path(__file__).resolve().parents[1]
SCRIPT, BENCH = ROOT / "scripts" / "speculative_alpha.py", ROOT / "benchmarks" / "bench_speculative.py"
LAYERS, P, T = 4, 8, 8


def run_main(path, argv):
    """``main(argv)`` of the script at ``path``, in this process; its exit status (argparse exits by raising)."""
    module = load_module(path)
    try:
        return module.main([str(a) for a in argv])
    except SystemExit as done:
        return done.code


def run_script(argv):
    return run_main(SCRIPT, argv)


def base_config(data):
    """The config of a ``transformer_lm_layerdrop_tiny`` with 4 layers, d=16 (parsed once: hydra is slow)."""
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(data), "--task", "language_modeling", "--arch", "transformer_lm_layerdrop_tiny",
        "--decoder-layers", str(LAYERS), "--decoder-embed-dim", "16", "--decoder-ffn-embed-dim", "32",
        "--decoder-attention-heads", "2", "--tokens-per-sample", "32"])
    return convert_namespace_to_omegaconf(args)


def build(base, **model_overrides):
    """A random model (fixed seed) of ``base`` with some model options changed; (model, cfg, task)."""
    cfg = copy.deepcopy(base)
    with open_dict(cfg):
        cfg.model.update(model_overrides)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    return task.build_model(cfg.model).eval(), cfg, task


def save(model, cfg, path):
    torch.save({"model": model.state_dict(), "args": None, "cfg": OmegaConf.to_container(cfg),
                "optimizer_history": [{"criterion_name": "CrossEntropyCriterion", "num_updates": 0,
                                       "lr_scheduler_state": {}}], "extra_state": {}}, path)
    return path


@pytest.fixture(scope="module")
def base(lm_data):
    return base_config(lm_data)


@pytest.fixture(scope="module")
def lm(base):
    return build(base)


@pytest.fixture(scope="module")
def prompts(lm):
    gen = torch.Generator().manual_seed(1)
    vocab = len(lm[2].dictionary)
    return [torch.randint(4, vocab, (P,), generator=gen) for _ in range(4)]


@pytest.fixture(scope="module")
def measured(lm, prompts):
    return sp.measure_alpha(lm[0].decoder, prompts, T, {"all": list(range(LAYERS)), "every-other/2": [0, 2]})


# -- choosing the layers ------------------------------------------------------------------------
@pytest.mark.parametrize("strategy,depth,expected", [
    ("every-other", 4, [0, 2, 4, 6]), ("every-other", 2, [0, 4]), ("every-other", 8, list(range(8))),
    ("first", 3, [0, 1, 2]), ("first", 1, [0]), ("first", 8, list(range(8)))])
def test_draft_layers_rules(strategy, depth, expected):
    assert sp.draft_layers(8, depth, strategy) == expected


def test_learned_draft_keeps_the_layers_with_the_lowest_rates():
    logits = torch.tensor([3.0, -2.0, 0.5, -1.0, 2.0, -3.0])  # high logit = high drop rate
    assert sp.draft_layers(6, 3, "learned", logits, 0.5) == [1, 3, 5]


@pytest.mark.parametrize("depth,strategy,logits,message", [
    (0, "first", None, "must be in 1..8"), (9, "every-other", None, "must be in 1..8"),
    (2, "learned", None, "no learned decoder rates"), (2, "middle", None, "unknown draft strategy")])
def test_draft_layers_refuses(depth, strategy, logits, message):
    with pytest.raises(ValueError, match=message):  # PruneError (a ValueError) for the first three
        sp.draft_layers(8, depth, strategy, logits, 0.2)


# -- running a draft ------------------------------------------------------------------------------
def test_draft_runs_only_its_layers_and_the_model_is_restored(lm, prompts):
    decoder = lm[0].decoder
    calls = [0] * LAYERS
    handles = [layer.register_forward_hook(lambda *a, i=i: calls.__setitem__(i, calls[i] + 1))
               for i, layer in enumerate(torch.nn.ModuleList.__iter__(decoder.layers))]
    before = decoder.layers
    try:
        with only_layers(decoder, [0, 2]):
            assert decoder.num_layers == 2
            sp.parallel_argmax(decoder, prompts[0], prompts[1])
    finally:
        for h in handles:
            h.remove()
    assert calls == [1, 0, 1, 0]
    assert decoder.layers is before and decoder.num_layers == LAYERS


def test_draft_is_the_network_fairseq_load_time_pruning_builds(lm, base, prompts):
    """Same logits as a model built with fairseq's --decoder-layers-to-keep from the same weights."""
    model, _, _ = lm
    pruned, cfg, _ = build(base, decoder_layers_to_keep="1,3")
    pruned.load_state_dict(model.state_dict(), model_cfg=cfg.model)
    seq = torch.cat(prompts).view(1, -1)
    with torch.no_grad(), only_layers(model.decoder, [1, 3]):
        ours = model.decoder(seq)[0]
    with torch.no_grad():
        theirs = pruned.decoder(seq)[0]
        full = model.decoder(seq)[0]
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert not torch.allclose(ours, full, atol=1e-3)  # a real sub-network, not the full model


def test_greedy_continuation_is_the_argmax_of_the_full_forward(lm, prompts):
    cont = sp.greedy_continuation(lm[0].decoder, prompts[0], T)
    assert cont.shape == (T,) and cont.dtype == torch.long
    for t in range(T):  # each token is the argmax of a fresh forward over everything before it
        seq = torch.cat([prompts[0], cont[:t]]).view(1, -1)
        with torch.no_grad():
            assert lm[0].decoder(seq)[0][0, -1].argmax().item() == cont[t].item()


# -- alpha ------------------------------------------------------------------------------------------
def test_full_model_agrees_with_its_own_greedy_tokens(measured):
    assert measured["full_parallel"]["alpha"] == 1.0
    assert measured["full_parallel"]["per_position"] == [1.0] * T


def test_draft_equal_to_the_full_model_has_alpha_one(measured):
    full = measured["drafts"]["all"]
    assert full["alpha"] == 1.0 and full["layers"] == list(range(LAYERS))
    # every draft accepted: k + 1 tokens a step, the last step of a sentence takes what is left
    assert full["tokens_per_step"] == {k: T / math.ceil(T / (k + 1)) for k in range(1, sp.MAX_K + 1)}


def test_alpha_is_the_mean_of_the_per_position_agreement(measured, lm, prompts):
    draft = measured["drafts"]["every-other/2"]
    assert draft["layers"] == [0, 2]
    assert draft["alpha"] == pytest.approx(sum(draft["per_position"]) / T, abs=1e-4)
    with only_layers(lm[0].decoder, [0, 2]):
        agree = [(sp.parallel_argmax(lm[0].decoder, p, torch.tensor(c)) == torch.tensor(c)).float()
                 for p, c in zip(prompts, measured["continuations"])]
    assert draft["alpha"] == pytest.approx(torch.stack(agree).mean().item())
    assert 0 < measured["distinct_fraction"] <= 1 and 0 <= measured["repeated_fraction"] <= 1


@pytest.mark.parametrize("agree,k,steps", [
    ([1, 1, 1, 1, 1, 1], 2, 2),  # 2 accepted + 1 per step: 3 tokens a step
    ([0, 0, 0, 0], 3, 4),  # nothing accepted: one token a step
    ([1, 0, 1, 1, 0, 1], 2, 3),  # [1 0|x] -> 2 tokens, [1 1|x] -> 3, [1] -> 1
    ([1, 1, 1], 8, 1)])
def test_verify_steps_replays_greedy_speculative_decoding(agree, k, steps):
    assert sp.verify_steps(torch.tensor(agree, dtype=torch.bool), k) == steps


def test_repeated_bigrams_marks_tokens_that_continue_an_earlier_pair():
    mask = sp.repeated_bigrams(torch.tensor([5, 6, 7]), torch.tensor([5, 6, 9, 6]))
    assert mask.tolist() == [False, True, False, False]  # (7,5) new, (5,6) seen, (6,9), (9,6) new


def test_predicted_speedup_formula():
    assert sp.predicted_speedup(0.5, 1, 0.5, 1.0) == pytest.approx(1.0)  # 1.5 tokens for 1.5 steps
    assert sp.predicted_speedup(0.0, 3, 0.25, 1.0) == pytest.approx(1 / 1.75)
    assert sp.predicted_speedup(1.0, 3, 0.25, 1.0) == pytest.approx(4 / 1.75)


@pytest.mark.parametrize("k,c,v,target", [(1, 0.5, 1.0, 1.0), (3, 0.3, 1.2, 1.25), (2, 0.2, 1.1, 1.4)])
def test_alpha_needed_is_where_the_predicted_speedup_reaches_the_target(k, c, v, target):
    a = sp.alpha_needed(k, c, v, target)
    assert 0 < a < 1
    assert sp.predicted_speedup(a, k, c, v) >= target > sp.predicted_speedup(a - 1e-3, k, c, v)


def test_alpha_needed_when_no_alpha_or_any_alpha_reaches_the_target():
    assert sp.alpha_needed(1, 0.5, 1.0, 1.4) is None  # at most 2 tokens for 1.5 steps: 1.33
    assert sp.alpha_needed(1, 0.1, 0.5, 1.25) == 0.0  # a verify so cheap that drafting cannot lose


# -- the script -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(lm, tmp_path_factory):
    return save(lm[0], lm[1], tmp_path_factory.mktemp("spec") / "lm.pt")


def test_script_measures_and_writes_json(checkpoint, lm_data, tmp_path, capsys):
    out = tmp_path / "alpha.json"
    code = run_script([checkpoint, lm_data, "--depths", "1,4", "--prompts", "3", "--prompt-tokens", P,
                       "--new-tokens", T, "-o", out])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["full_parallel"]["alpha"] == 1.0 and result["setup"]["prompts"] == 3
    assert result["drafts"]["first/4"]["alpha"] == 1.0 and result["drafts"]["every-other/1"]["layers"] == [0]
    assert "| every-other/1 | 0 |" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["{missing}", "{data}"], "no checkpoint file"),
    (["{ckpt}", "{ckpt}"], "not a binarized data directory"),
    (["{ckpt}", "{data}", "--depths", "2,5"], "--depths: 5 is outside 1..4"),
    (["{ckpt}", "{data}", "--strategies", "learned", "--depths", "2"], "no learned decoder rates"),
    (["{ckpt}", "{data}", "--strategies", "middle"], "unknown strategy"),
    (["{ckpt}", "{data}", "--depths", "2", "--prompt-tokens", "30", "--new-tokens", "8"], "exceeds the model's 32 positions"),
    (["{ckpt}", "{data}", "--prompts", "0"], "expected a positive integer"),
    (["{ckpt}", "{data}", "-o", "{missing}/alpha.json"], "no directory for -o")])
def test_script_bad_inputs_are_one_line_and_exit_2(argv, message, checkpoint, lm_data, tmp_path, capsys):
    names = {"missing": tmp_path / "nope.pt", "data": lm_data, "ckpt": checkpoint}
    code = run_script([a.format(**names) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("speculative_alpha.py: error: ") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_script_learned_strategy_on_a_model_with_learned_rates(base, lm_data, tmp_path, capsys):
    model, cfg, _ = build(base, layerdrop_learned_rates=True)
    with torch.no_grad():
        model.decoder.layers.layerdrop_logits.copy_(torch.tensor([2.0, -1.0, 1.0, -2.0]))
    ckpt = save(model, cfg, tmp_path / "learned.pt")
    assert run_script([ckpt, lm_data, "--strategies", "learned", "--depths", "2", "--prompts", "2",
                       "--prompt-tokens", "4", "--new-tokens", "4"]) == 0
    assert "| learned/2 | 1,3 |" in capsys.readouterr().out


# -- the verify step (benchmarks/bench_speculative.py) -----------------------------------------------
def test_verify_step_with_the_cache_matches_the_parallel_forward(lm, prompts):
    decoder = lm[0].decoder
    seq = torch.cat(prompts[:2]).view(1, -1)  # 16 tokens
    with torch.no_grad():
        full = decoder(seq)[0]
    state = {}
    prefill = sp.extend_cached(decoder, seq[:, :10], 10, state)  # empty cache: a causal forward
    verify = sp.extend_cached(decoder, seq[:, :14], 4, state)  # 4 new tokens on a cache of 10
    sp.truncate_cache(decoder, state, 11)  # 3 of them rejected
    again = sp.extend_cached(decoder, seq[:, :13], 2, state)
    for ours, ref in ((prefill, full[:, :10]), (verify, full[:, 10:14]), (again, full[:, 11:13])):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    with torch.no_grad():  # fairseq's own one-token step reads the same cache
        step = decoder(seq[:, :14], incremental_state=state)[0]
    torch.testing.assert_close(step, full[:, 13:14], rtol=0, atol=1e-5)


# -- translation: the source is encoded once at full depth, only the decoder is drafted ------------
def tiny_mt(mt_data):
    """(model, cfg, task): a tiny random translation model, 4 decoder layers."""
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(mt_data), "--task", "translation", "--arch", "transformer_layerdrop_tiny", "--encoder-layers", "2",
        "--decoder-layers", str(LAYERS), "--encoder-embed-dim", "16", "--decoder-embed-dim", "16",
        "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2",
        "--decoder-attention-heads", "2", "--share-all-embeddings"])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    return task.build_model(cfg.model).eval(), cfg, task


@pytest.fixture(scope="module")
def mt(mt_data):
    return tiny_mt(mt_data)


class ScriptedDecoder(torch.nn.Module):
    """Greedy output 5, 6, EOS (2), 7, ... whatever the input: checks where decoding stops."""

    def forward(self, tokens, encoder_out=None, incremental_state=None):
        script = [5, 6, 2, 7, 7, 7, 7, 7]
        logits = torch.zeros(1, tokens.size(1), 10)
        logits[0, -1, script[tokens.size(1) - 1]] = 1.0
        return logits, None


def test_translation_decoding_stops_after_end_of_sentence():
    prompt = torch.tensor([2])
    assert sp.greedy_continuation(ScriptedDecoder(), prompt, 6, eos=2).tolist() == [5, 6, 2]
    assert sp.greedy_continuation(ScriptedDecoder(), prompt, 6).tolist() == [5, 6, 2, 7, 7, 7]  # a LM goes on


def test_translation_alpha_reads_the_source(mt):
    model, _cfg, task = mt
    task.load_dataset("test")
    data = task.dataset("test")
    eos = model.decoder.dictionary.eos()
    sources = [data[i]["source"].view(1, -1) for i in range(3)]
    encoded = [model.encoder(s, src_lengths=torch.tensor([s.size(1)])) for s in sources]
    prompts = [torch.tensor([eos])] * 3
    seen = []  # fairseq's decoder silently skips encoder attention without encoder_out: every call needs it
    hook = model.decoder.register_forward_pre_hook(
        lambda _m, _args, kwargs: seen.append(kwargs.get("encoder_out") is not None), with_kwargs=True)
    try:
        out = sp.measure_alpha(model.decoder, prompts, T, {"all": list(range(LAYERS)), "every-other/2": [0, 2]},
                               encoded, eos)
    finally:
        hook.remove()
    assert out["full_parallel"]["alpha"] == 1.0 and out["drafts"]["all"]["alpha"] == 1.0
    assert len(seen) > 3 * 3 and all(seen)  # greedy steps and the three parallel forwards per sentence


def test_script_on_a_translation_model(mt, mt_data, tmp_path, capsys):
    model, cfg, _task = mt
    ckpt = save(model, cfg, tmp_path / "mt.pt")
    out_json = tmp_path / "alpha.json"
    assert run_script([ckpt, mt_data, "--depths", "2", "--prompts", "3", "--new-tokens", "6", "-o", out_json]) == 0
    result = json.loads(out_json.read_text())
    assert result["setup"]["prompt_tokens"] == 1 and len(result["continuations"]) == 3
    assert all(1 <= len(c) <= 6 for c in result["continuations"])
    assert result["full_parallel"]["alpha"] == 1.0 and "every-other/2" in result["drafts"]


def test_translation_verify_step_reads_the_source_and_keeps_its_cache(mt):
    model, _cfg, task = mt
    task.load_dataset("test")
    data = task.dataset("test")
    src = max((data[i]["source"] for i in range(len(data))), key=len).view(1, -1)  # the longest source
    assert src.size(1) > 4  # longer than the cut below, or a cut of the source's keys would go unseen
    with torch.no_grad():
        encoded = model.encoder(src, src_lengths=torch.tensor([src.size(1)]))
    seq = torch.randint(4, len(model.decoder.dictionary), (1, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model.decoder(seq, encoder_out=encoded)[0]
    state = {}
    prefill = sp.extend_cached(model.decoder, seq[:, :3], 3, state, encoded)  # shorter than the source
    verify = sp.extend_cached(model.decoder, seq[:, :8], 5, state, encoded)
    sp.truncate_cache(model.decoder, state, 4)  # 4 of the 5 rejected: the source's keys must stay whole
    enc_keys = [layer.encoder_attn._get_input_buffer(state)["prev_key"] for layer in model.decoder.layers]
    assert all(k.size(2) == src.size(1) for k in enc_keys)
    assert all(layer.self_attn._get_input_buffer(state)["prev_key"].size(2) == 4 for layer in model.decoder.layers)
    again = sp.extend_cached(model.decoder, seq[:, :12], 8, state, encoded)
    for ours, ref in ((prefill, full[:, :3]), (verify, full[:, 3:8]), (again, full[:, 4:12])):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
