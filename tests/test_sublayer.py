"""Sublayer LayerDrop against fairseq's real transformer layers."""
import argparse
import subprocess
import sys

import pytest
import torch
from fairseq.models.transformer import TransformerConfig
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase, TransformerEncoderLayerBase

from fairseq_layerdrop.sublayer import decoder_partial_forward, encoder_partial_forward

T, B, C = 5, 3, 16


def layer_cfg(normalize_before):
    # built through the parser-style from_namespace, never shared dataclass defaults
    ns = argparse.Namespace(encoder_embed_dim=C, decoder_embed_dim=C, encoder_ffn_embed_dim=32,
                            decoder_ffn_embed_dim=32, encoder_attention_heads=2,
                            decoder_attention_heads=2, encoder_normalize_before=normalize_before,
                            decoder_normalize_before=normalize_before, dropout=0.0,
                            attention_dropout=0.0, activation_dropout=0.0)
    return TransformerConfig.from_namespace(ns)


@pytest.fixture(params=[False, True], ids=["post-norm", "pre-norm"])
def layers(request):
    torch.manual_seed(0)
    cfg = layer_cfg(request.param)
    return TransformerEncoderLayerBase(cfg).train(), TransformerDecoderLayerBase(cfg).train()


def test_encoder_all_branches_equal_fairseq_forward(layers):
    enc, _ = layers
    x = torch.randn(T, B, C)
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[0, -2:] = True
    assert torch.allclose(encoder_partial_forward(enc, (True, True), x, pad), enc(x, pad), atol=1e-6)


def test_decoder_all_branches_equal_fairseq_forward(layers):
    _, dec = layers
    x, mem = torch.randn(T, B, C), torch.randn(7, B, C)
    causal = torch.triu(torch.full((T, T), float("-inf")), 1)
    ours = decoder_partial_forward(dec, (True, True, True), x, mem, None, self_attn_mask=causal, need_attn=True)
    ref = dec(x, mem, None, self_attn_mask=causal, need_attn=True)
    assert torch.allclose(ours[0], ref[0], atol=1e-6)
    assert torch.allclose(ours[1], ref[1], atol=1e-6)


def ffn_branch(enc, x):
    """The encoder layer's feed-forward residual branch alone, written out from its modules."""
    h = enc.final_layer_norm(x) if enc.normalize_before else x
    h = x + enc.fc2(enc.activation_fn(enc.fc1(h)))
    return h if enc.normalize_before else enc.final_layer_norm(h)


def test_dropped_branch_is_identity_and_gets_no_gradient(layers):
    enc, _ = layers
    x = torch.randn(T, B, C)
    out = encoder_partial_forward(enc, (False, True), x, None)
    torch.testing.assert_close(out, ffn_branch(enc, x), rtol=0, atol=1e-6)  # attention skipped: x passed on
    out.sum().backward()
    assert all(p.grad is None for p in enc.self_attn.parameters())
    assert all(p.grad is None for p in enc.self_attn_layer_norm.parameters())
    assert all(p.grad is not None for p in enc.fc1.parameters())
    enc.zero_grad(set_to_none=True)
    # only the attention branch: the FFN is never computed
    out = encoder_partial_forward(enc, (True, False), x, None)
    out.sum().backward()
    assert enc.fc1.weight.grad is None and enc.self_attn.q_proj.weight.grad is not None


def test_decoder_without_cross_attention_branch_returns_no_attn(layers):
    _, dec = layers
    x, mem = torch.randn(T, B, C), torch.randn(7, B, C)
    out, attn, _ = decoder_partial_forward(dec, (True, False, True), x, mem, None, need_attn=True)
    assert attn is None and out.shape == (T, B, C)
    # fairseq's own layer without an encoder output runs exactly self-attention then the FFN
    torch.testing.assert_close(out, dec(x, None, None)[0], rtol=0, atol=1e-6)
    dec.zero_grad(set_to_none=True)
    out.sum().backward()
    assert dec.encoder_attn.k_proj.weight.grad is None


@pytest.mark.parametrize("module", ["layerdrop", "settings", "sublayer", "learned"])
def test_core_modules_import_without_fairseq(module):
    code = ("import sys; sys.modules['fairseq'] = None\n"
            f"import fairseq_layerdrop.{module}\n"
            "assert not any(name.startswith('fairseq.') for name in sys.modules); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
