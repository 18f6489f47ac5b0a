"""fairseq_layerdrop.speculative_decode: self-speculative greedy decoding gives the full model's
greedy tokens (float64, exact) whatever the draft, on tiny random language and translation models."""
import json
from pathlib import Path

import fairseq  # noqa: F401  (first: the plugin registers with it)
import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

import fairseq_layerdrop
from fairseq_layerdrop import speculative as sp
from fairseq_layerdrop import speculative_decode as sd

fairseq_layerdrop.register()
LAYERS = 4
SIZES = ["--decoder-layers", str(LAYERS), "--decoder-embed-dim", "16", "--decoder-ffn-embed-dim", "32",
         "--decoder-attention-heads", "2"]


def build(argv):
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    return task.build_model(cfg.model).double().eval(), task


@pytest.fixture(scope="module")
def lm(lm_data):
    return build([str(lm_data), "--task", "language_modeling", "--arch", "transformer_lm_layerdrop_tiny",
                  "--tokens-per-sample", "64", *SIZES])[0]


@pytest.fixture(scope="module")
def prompts(lm):
    gen = torch.Generator().manual_seed(1)
    vocab = lm.decoder.embed_tokens.num_embeddings
    return [torch.randint(4, vocab, (n,), generator=gen) for n in (1, 5, 8)]


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("keep", [[0], [0, 1], [0, 2], [1, 3], [3]])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_output_is_the_full_models_greedy_output(lm, prompts, keep, k, share):
    for prompt in prompts:
        reference = sp.greedy_continuation(lm.decoder, prompt, 17)
        tokens, _, stats = sd.speculative_greedy(lm.decoder, prompt, 17, keep, k, share_cache=share)
        assert tokens.tolist() == reference.tolist()
        assert sd.plain_greedy(lm.decoder, prompt, 17)[0].tolist() == reference.tolist()
        assert stats.tokens == 17
        assert stats.tokens == stats.verify_steps + stats.accepted  # each step: its accepted drafts + one
        assert all(0 <= a <= k for a in stats.accepted_per_step)


def test_drafts_are_accepted_in_part(lm, prompts):
    """The interesting case: some of a step's drafts right, then one wrong (cut both caches midway)."""
    steps = [a for p in prompts for a in sd.speculative_greedy(lm.decoder, p, 17, [0, 2], 3)[2].accepted_per_step]
    assert any(0 < a < 3 for a in steps) and 0 in steps


@pytest.mark.parametrize("k", [1, 4])
def test_a_draft_equal_to_the_full_model_is_always_accepted(lm, prompts, k):
    tokens, _, stats = sd.speculative_greedy(lm.decoder, prompts[1], 20, list(range(LAYERS)), k)
    assert tokens.tolist() == sp.greedy_continuation(lm.decoder, prompts[1], 20).tolist()
    assert stats.acceptance == 1.0 and stats.drafted > 0
    assert stats.verify_steps == 1 + -(-19 // (k + 1))  # the prefill, then k + 1 tokens a step


def test_a_garbage_draft_changes_nothing_but_the_speed(lm, prompts, monkeypatch):
    vocab = lm.decoder.embed_tokens.num_embeddings
    reference = sp.greedy_continuation(lm.decoder, prompts[2], 15).tolist()
    wrong = next(t for t in range(4, vocab) if t not in reference)  # never the full model's token
    real = sd.OwnCache.propose

    def garbage(self, *args):  # the draft runs, its tokens are wrong
        return [wrong] * len(real(self, *args))
    monkeypatch.setattr(sd.OwnCache, "propose", garbage)
    tokens, _, stats = sd.speculative_greedy(lm.decoder, prompts[2], 15, [0, 2], 3)
    assert tokens.tolist() == reference
    assert stats.accepted == 0 and stats.verify_steps == 15 and stats.tokens_per_step == 1.0


def test_the_draft_keeps_its_own_cache(lm, prompts):
    """Without sharing, draft and full model both touch layer 0; one cache would give other tokens."""
    seen = []
    real = sp.extend_cached

    def spy(decoder, tokens, n_new, state, encoder_out=None):
        seen.append((id(state), len(decoder.layers)))
        return real(decoder, tokens, n_new, state, encoder_out)
    sd.extend_cached, saved = spy, sd.extend_cached
    try:
        sd.speculative_greedy(lm.decoder, prompts[1], 10, [0], 2, share_cache=False)
    finally:
        sd.extend_cached = saved
    states = {}
    for state, layers in seen:
        states.setdefault(state, set()).add(layers)
    assert sorted(map(sorted, states.values())) == [[1], [LAYERS]]  # one cache per network


def _positions_read(lm, monkeypatch, **decode):
    """Decode ``prompts[1]``-like input and count the positions each decoder layer computes."""
    counts = [0] * LAYERS
    for i, layer in enumerate(lm.decoder.layers):
        real = layer.forward

        def spy(x, *args, i=i, real=real, **kwargs):
            counts[i] += x.size(0)
            return real(x, *args, **kwargs)
        monkeypatch.setattr(layer, "forward", spy)
    tokens, _, stats = sd.speculative_greedy(lm.decoder, **decode)
    monkeypatch.undo()
    return counts, tokens, stats


@pytest.mark.parametrize("keep", [[0], [0, 1]])
def test_a_first_layers_draft_shares_the_full_cache_so_each_layer_reads_a_position_once(lm, prompts, monkeypatch, keep):
    """Shared: the draft's layers read each position once a round (drafting), the others in the
    verify step; every layer computes the same positions. Not shared: the draft's layers also run
    in the verify step and again on their own cache."""
    decode = dict(prompt=prompts[2], new_tokens=17, keep=keep, k=3)
    counts, tokens, stats = _positions_read(lm, monkeypatch, **decode)
    positions = prompts[2].numel() + stats.verify_steps - 1 + stats.drafted  # prefill, then 1 + drafts a round
    assert counts == [positions] * LAYERS
    assert tokens.tolist() == sp.greedy_continuation(lm.decoder, prompts[2], 17).tolist()
    own, same, _ = _positions_read(lm, monkeypatch, **decode, share_cache=False)
    assert same.tolist() == tokens.tolist()
    assert all(own[i] > positions for i in keep) and own[LAYERS - 1] == positions


def test_a_garbage_first_layers_draft_changes_nothing_but_the_speed(lm, prompts, monkeypatch):
    """The shared draft's tokens all wrong: their states enter the shared cache and must be cut."""
    vocab = lm.decoder.embed_tokens.num_embeddings
    reference = sp.greedy_continuation(lm.decoder, prompts[2], 15).tolist()
    wrong = next(t for t in range(4, vocab) if t not in reference)

    class Wrong(sd.Rules):
        def choose(self, logits, first):
            return torch.tensor([wrong]), torch.zeros(1, dtype=logits.dtype)
    real = sd.SharedPrefix.propose
    monkeypatch.setattr(sd.SharedPrefix, "propose", lambda self, tokens, budget, rules, start, confidence:
                        real(self, tokens, budget, Wrong(), start, confidence))
    tokens, _, stats = sd.speculative_greedy(lm.decoder, prompts[2], 15, [0, 1], 3)
    assert tokens.tolist() == reference
    assert stats.drafted > 0 and stats.accepted == 0 and stats.verify_steps == 15


def test_only_a_first_layers_draft_is_a_prefix():
    assert sd.is_prefix([0]) and sd.is_prefix([0, 1, 2])
    assert not sd.is_prefix([1]) and not sd.is_prefix([0, 2]) and not sd.is_prefix([1, 0])


@pytest.mark.parametrize("k", [1, 3])
def test_decoding_stops_after_the_first_end_token_as_greedy_does(lm, prompts, k):
    stop = int(sp.greedy_continuation(lm.decoder, prompts[1], 17)[5])  # a token greedy emits: call it "eos"
    reference = sp.greedy_continuation(lm.decoder, prompts[1], 17, eos=stop)
    assert reference[-1] == stop and reference.numel() <= 6
    for keep in ([0], list(range(LAYERS))):  # a draft that is always right drafts past the end
        tokens, _, stats = sd.speculative_greedy(lm.decoder, prompts[1], 17, keep, k, rules=sd.Rules(eos=stop))
        assert tokens.tolist() == reference.tolist() and stats.tokens == reference.numel()
    assert sd.plain_greedy(lm.decoder, prompts[1], 17, rules=sd.Rules(eos=stop))[0].tolist() == reference.tolist()


def test_k_below_one_is_refused(lm, prompts):
    with pytest.raises(ValueError, match="at least 1"):
        sd.speculative_greedy(lm.decoder, prompts[0], 4, [0], 0)


@pytest.fixture(scope="module")
def mt(mt_data):
    model, task = build([str(mt_data), "--task", "translation", "--arch", "transformer_layerdrop_tiny",
                         "--encoder-layers", "2", "--encoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32",
                         "--encoder-attention-heads", "2", "--share-all-embeddings", *SIZES])
    task.load_dataset("test")
    return model, task


@pytest.mark.parametrize("keep, k", [([0], 2), ([0, 1], 3), ([1, 3], 4)])
def test_translation_reads_the_source_and_stops_after_end_of_sentence(mt, keep, k):
    model, task = mt
    eos = task.target_dictionary.eos()
    for i in range(3):
        src = task.datasets["test"][i]["source"].view(1, -1)
        enc = model.encoder(src, src_lengths=torch.tensor([src.size(1)]))
        prompt = torch.tensor([eos])
        reference = sp.greedy_continuation(model.decoder, prompt, 12, enc, eos=eos)
        tokens, _, _ = sd.speculative_greedy(model.decoder, prompt, 12, keep, k, enc, rules=sd.Rules(eos=eos))
        assert tokens.tolist() == reference.tolist()
        assert sd.plain_greedy(model.decoder, prompt, 12, enc, rules=sd.Rules(eos=eos))[0].tolist() == reference.tolist()


def test_cut_keeps_the_first_end_of_sentence_and_the_budget():
    assert sd._cut(torch.tensor([5, 2, 7, 2]), 10, 2).tolist() == [5, 2]
    assert sd._cut(torch.tensor([5, 6, 7]), 2, 2).tolist() == [5, 6]
    assert sd._cut(torch.tensor([5, 2, 7]), 10, None).tolist() == [5, 2, 7]


# -- benchmarks/bench_speculative_decode.py on a tiny saved model ----------------------------------
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_speculative_decode.py"


def test_benchmark_decodes_every_method_identically(lm_data, tmp_path, capsys):
    from tests.test_speculative import base_config, run_main, save
    from tests.test_speculative import build as build_lm

    model, cfg, _ = build_lm(base_config(lm_data))
    ckpt = save(model, cfg, tmp_path / "lm.pt")
    out = tmp_path / "decode.json"
    assert run_main(BENCH, [ckpt, lm_data, "--drafts", "first/1,every-other/2", "--ks", "1,3", "--prompts", "2",
                            "--prompt-tokens", "4", "--new-tokens", "6", "--repeats", "1", "--max-wait", "0",
                            "-o", out]) == 0
    methods = json.loads(out.read_text())["methods"]
    assert set(methods) == {"plain", "fairseq_step", "first/1/k1", "first/1/k3", "first/1/k1/own-cache",
                            "first/1/k3/own-cache", "every-other/2/k1", "every-other/2/k3"}
    assert all(m["identical"] == 1.0 and m["tokens_per_s"] > 0 for m in methods.values())
    assert methods["plain"]["speedup_over_plain"] == 1.0 and methods["every-other/2/k3"]["layers"] == [0, 2]
    assert [methods[m]["cache"] for m in ("first/1/k3", "first/1/k3/own-cache", "every-other/2/k3")] == \
        ["shared", "own", "own"]
    assert methods["first/1/k3/own-cache"]["acceptance"] == methods["first/1/k3"]["acceptance"]
    assert methods["first/1/k3"]["shared_over_own_cache"] > 0 and "shared_over_own_cache" not in methods["plain"]
    assert len(methods["plain"]["seconds_per_repeat"]) == 1
    assert 1.0 <= methods["first/1/k3"]["tokens_per_step"] <= 4.0
    capsys.readouterr()


@pytest.mark.parametrize("argv, message", [
    (["--drafts", "last/2"], "argument --drafts: expected strategy/depth"),
    (["--drafts", "first/9", "--new-tokens", "6"], "--drafts: 9 is outside 1..4"),
    (["--new-tokens", "29"], "prompt + --new-tokens = 33 exceeds the model's 32 positions"),
])
def test_benchmark_bad_requests_are_one_line_exit_2(lm_data, tmp_path, capsys, argv, message):
    from tests.test_speculative import base_config, run_main, save
    from tests.test_speculative import build as build_lm

    model, cfg, _ = build_lm(base_config(lm_data))
    ckpt = save(model, cfg, tmp_path / "lm.pt")
    assert run_main(BENCH, [ckpt, lm_data, "--prompt-tokens", "4", "--max-wait", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bench_speculative_decode.py: error: ") and message in err


def test_the_rules_ban_pad_hold_back_eos_and_force_it_at_the_limit():
    logits = torch.tensor([[0.0, 5.0, 4.0, 1.0]] * 4, dtype=torch.float64)  # token 1 (pad) is the best, then 2 (eos)
    rules = sd.Rules(eos=2, min_new=2, force_eos_at=3, banned=(1,))
    tokens, lprobs = rules.choose(logits, 0)  # new-token indices 0..3
    assert tokens.tolist() == [3, 3, 2, 2]  # pad never; eos not before index 2; only eos at index 3
    assert torch.allclose(lprobs, torch.log_softmax(logits[0], -1)[tokens])  # the model's own log-probabilities
    forced = sd.Rules(eos=2, force_eos_at=0).choose(torch.tensor([[9.0, 1.0, -3.0]]), 0)[0]
    assert forced.tolist() == [2]
    assert sd.Rules().choose(logits, 0)[0].tolist() == [1, 1, 1, 1]  # no rule: plain argmax


@pytest.mark.parametrize("keep", [[0], [0, 1], [1, 3]])
def test_a_confidence_stop_drafts_less_and_changes_nothing(lm, prompts, keep):
    reference = sp.greedy_continuation(lm.decoder, prompts[2], 17).tolist()
    _, _, free = sd.speculative_greedy(lm.decoder, prompts[2], 17, keep, 4)
    tokens, _, cautious = sd.speculative_greedy(lm.decoder, prompts[2], 17, keep, 4, confidence=0.2)
    assert tokens.tolist() == reference and cautious.drafted < free.drafted
    tokens, _, never = sd.speculative_greedy(lm.decoder, prompts[2], 17, keep, 4, confidence=0.999999)
    assert tokens.tolist() == reference and never.drafted == 0 and never.verify_steps == 17


def test_a_full_draft_under_a_confidence_stop_is_always_accepted(lm, prompts):
    """A stop leaves one more position in the draft's cache than a full round: a wrong count shows
    as a rejected draft of the full model."""
    _, _, stats = sd.speculative_greedy(lm.decoder, prompts[2], 17, list(range(LAYERS)), 4, confidence=0.2)
    free = sd.speculative_greedy(lm.decoder, prompts[2], 17, list(range(LAYERS)), 4)[2]
    assert stats.acceptance == 1.0 and 0 < stats.drafted < free.drafted


def test_the_scores_are_the_full_models_log_probabilities(lm, prompts):
    tokens, lprobs, _ = sd.speculative_greedy(lm.decoder, prompts[1], 12, [0], 3)
    seq = torch.cat([prompts[1], tokens]).view(1, -1)
    full = torch.log_softmax(lm.decoder(seq)[0][0], -1)[prompts[1].numel() - 1:-1]
    assert torch.allclose(lprobs, full.gather(-1, tokens.view(-1, 1)).squeeze(-1))
    assert torch.allclose(sd.plain_greedy(lm.decoder, prompts[1], 12)[1], lprobs)


def test_a_full_draft_stopping_at_a_drafted_end_token_is_always_accepted(lm, prompts):
    """The draft stops a round at an end token it drafted: its cache must still hold the right positions."""
    cases = [(p, cont, i) for p in prompts for cont in [sp.greedy_continuation(lm.decoder, p, 17).tolist()]
             for i in range(2, 17) if cont[i] not in cont[:i]]
    assert cases  # a token that first appears late: call it the end token
    prompt, cont, i = cases[0]
    tokens, _, stats = sd.speculative_greedy(lm.decoder, prompt, 17, list(range(LAYERS)), 3, rules=sd.Rules(eos=cont[i]))
    assert tokens.tolist() == cont[:i + 1] and stats.drafted > 0 and stats.acceptance == 1.0
