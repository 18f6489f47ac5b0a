"""Names shared by the registered models and the pruning tool (no fairseq imports).

``STOCK_ARCH`` maps each architecture of this plugin to the stock fairseq
architecture it extends: a pruned checkpoint is written under the stock name so
that fairseq loads it without ``--user-dir`` (every hyper-parameter is saved in
the checkpoint, so the stock preset only fills in nothing).
``PLUGIN_OPTION_PREFIX`` marks config keys only this plugin understands and
``PLUGIN_PARAM_PREFIX`` the last name component of parameters only it owns
(e.g. ``encoder.layers.layerdrop_logits``, the learned drop scores).
"""

STOCK_ARCH = {
    # translation
    "transformer_layerdrop": "transformer",
    "transformer_layerdrop_tiny": "transformer",
    "transformer_layerdrop_iwslt_de_en": "transformer_iwslt_de_en",
    "transformer_layerdrop_wmt_en_de_big": "transformer_vaswani_wmt_en_de_big",
    # language modeling
    "transformer_lm_layerdrop": "transformer_lm",
    "transformer_lm_layerdrop_tiny": "transformer_lm",
    "transformer_lm_layerdrop_wiki103": "transformer_lm_wiki103",
    # summarization
    "bart_layerdrop_tiny": "bart_base",
    "bart_layerdrop_base": "bart_base",
    "bart_layerdrop_large": "bart_large",
    # sentence representations (masked LM pretraining, sentence classification)
    "roberta_layerdrop": "roberta",
    "roberta_layerdrop_tiny": "roberta",
    "roberta_layerdrop_base": "roberta_base",
    "roberta_layerdrop_large": "roberta_large",
}

# model (not arch) names: ours -> stock, for hydra-style configs keyed by ``_name``
STOCK_MODEL = {
    "transformer_layerdrop": "transformer",
    "transformer_lm_layerdrop": "transformer_lm",
    "bart_layerdrop": "bart",
    "roberta_layerdrop": "roberta",
}

PLUGIN_OPTION_PREFIX = "layerdrop_"
PLUGIN_PARAM_PREFIX = "layerdrop_"
