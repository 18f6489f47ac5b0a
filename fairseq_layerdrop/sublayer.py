"""Sublayer LayerDrop: run a fairseq transformer layer with some residual branches skipped.

A pre- or post-norm transformer layer is a chain of residual branches
``x = norm?(x + dropout(branch(norm?(x))))``. Sublayer granularity drops each
branch independently: a skipped branch leaves ``x`` untouched, including its
post-norm (the branch's residual block is the identity). Branch order is
``(self_attn, ffn)`` for encoder layers and ``(self_attn, encoder_attn, ffn)``
for decoder layers with encoder attention (``(self_attn, ffn)`` without).

These functions only read the attributes of fairseq's
``TransformerEncoderLayerBase`` / ``TransformerDecoderLayerBase`` (duck typing,
no fairseq import) and implement the training path only: LayerDrop never acts
in eval, so incremental decoding is not needed here.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor


def encoder_branch_count(layer) -> int:
    return 2


def decoder_branch_count(layer) -> int:
    return 3 if getattr(layer, "encoder_attn", None) is not None else 2


def check_sublayer_support(layer) -> None:
    """Raise ``ValueError`` for layer options the partial forward does not implement."""
    if getattr(layer, "cross_self_attention", False):
        raise ValueError("sublayer LayerDrop does not support --cross-self-attention; use layer granularity")
    if getattr(layer, "return_fc", False):
        raise ValueError("sublayer LayerDrop does not support encoder return_fc; use layer granularity")


def _residual_block(layer, x: Tensor, norm, branch) -> Tensor:
    """``x -> x + dropout(branch(x))`` with the layer's pre/post normalisation."""
    residual = x
    if layer.normalize_before:
        x = norm(x)
    x = layer.dropout_module(branch(x))
    x = layer.residual_connection(x, residual)
    if not layer.normalize_before:
        x = norm(x)
    return x


def _ffn(layer, x: Tensor) -> Tensor:
    x = layer.activation_fn(layer.fc1(x))
    x = layer.activation_dropout_module(x)
    if getattr(layer, "ffn_layernorm", None) is not None:
        x = layer.ffn_layernorm(x)
    return layer.fc2(x)


def _ffn_block(layer, x: Tensor) -> Tensor:
    w_resid = getattr(layer, "w_resid", None)
    if w_resid is None:
        return _residual_block(layer, x, layer.final_layer_norm, lambda h: _ffn(layer, h))
    # decoder option --scale-resids: the residual itself is rescaled
    residual = x
    if layer.normalize_before:
        x = layer.final_layer_norm(x)
    x = layer.dropout_module(_ffn(layer, x))
    x = layer.residual_connection(x, torch.mul(w_resid, residual))
    if not layer.normalize_before:
        x = layer.final_layer_norm(x)
    return x


def encoder_partial_forward(
    layer, keep: Sequence[bool], x: Tensor, encoder_padding_mask: Optional[Tensor],
    attn_mask: Optional[Tensor] = None,
) -> Tensor:
    """Encoder layer forward (T x B x C) with branches ``keep = (self_attn, ffn)``."""
    if attn_mask is not None:
        attn_mask = attn_mask.masked_fill(attn_mask.to(torch.bool), -1e8 if x.dtype == torch.float32 else -1e4)
    if keep[0]:
        def attend(h):
            return layer.self_attn(query=h, key=h, value=h, key_padding_mask=encoder_padding_mask,
                                   need_weights=False, attn_mask=attn_mask)[0]
        x = _residual_block(layer, x, layer.self_attn_layer_norm, attend)
    if keep[1]:
        x = _ffn_block(layer, x)
    return x


def _decoder_self_attn(layer, h, self_attn_mask, self_attn_padding_mask):
    h, _ = layer.self_attn(query=h, key=h, value=h, key_padding_mask=self_attn_padding_mask,
                           need_weights=False, attn_mask=self_attn_mask)
    if getattr(layer, "c_attn", None) is not None:  # --scale-heads
        tgt_len, bsz = h.size(0), h.size(1)
        h = h.view(tgt_len, bsz, layer.nh, layer.head_dim)
        h = torch.einsum("tbhd,h->tbhd", h, layer.c_attn).reshape(tgt_len, bsz, layer.embed_dim)
    if getattr(layer, "attn_ln", None) is not None:  # --scale-attn
        h = layer.attn_ln(h)
    return h


def decoder_partial_forward(
    layer, keep: Sequence[bool], x: Tensor, encoder_out: Optional[Tensor] = None,
    encoder_padding_mask: Optional[Tensor] = None, incremental_state=None,
    prev_self_attn_state=None, prev_attn_state=None, self_attn_mask: Optional[Tensor] = None,
    self_attn_padding_mask: Optional[Tensor] = None, need_attn: bool = False,
    need_head_weights: bool = False,
):
    """Decoder layer forward (T x B x C), training path, with some branches skipped.

    Returns ``(x, attn, None)`` like fairseq; ``attn`` is ``None`` when the
    encoder-attention branch was dropped.
    """
    if incremental_state is not None or prev_self_attn_state is not None or prev_attn_state is not None:
        raise RuntimeError("sublayer LayerDrop runs in training only (no incremental decoding)")
    has_cross = getattr(layer, "encoder_attn", None) is not None and encoder_out is not None
    keep_self, keep_ffn = keep[0], keep[-1]
    keep_cross = len(keep) == 3 and keep[1]
    attn = None
    if keep_self:
        x = _residual_block(layer, x, layer.self_attn_layer_norm,
                            lambda h: _decoder_self_attn(layer, h, self_attn_mask, self_attn_padding_mask))
    if has_cross and keep_cross:
        def cross(h):
            nonlocal attn
            h, attn = layer.encoder_attn(query=h, key=encoder_out, value=encoder_out,
                                         key_padding_mask=encoder_padding_mask, static_kv=True,
                                         need_weights=need_attn or need_head_weights,
                                         need_head_weights=need_head_weights)
            return h
        x = _residual_block(layer, x, layer.encoder_attn_layer_norm, cross)
    if keep_ffn:
        x = _ffn_block(layer, x)
    return x, attn, None
