"""Features of fixed token sequences from ``RobertaModel.from_pretrained`` (fairseq and torch only).

Imported by the RoBERTa tests, and run as a script by them in a Python where the plugin cannot
be imported (``python tests/hub_probe.py MODEL_DIR DATA HEAD OUT CHECKPOINT...``: a list, one entry
per checkpoint, saved to OUT), to show that a pruned file is used by stock fairseq alone. No ``bpe`` (``bpe=None``): nothing is downloaded.
"""
import sys

import torch

TOKENS = [[0, 5, 9, 14, 22, 7, 2], [0, 11, 4, 30, 2, 1, 1]]  # <s> ... </s>; the second padded


def hub_features(model_dir, checkpoint, data=".", head=None, **overrides):
    """``(features, head log-probs or None, encoder layers)`` of :data:`TOKENS`, eval mode."""
    from fairseq.models.roberta import RobertaModel

    hub = RobertaModel.from_pretrained(str(model_dir), checkpoint_file=checkpoint, data_name_or_path=str(data),
                                       bpe=None, **overrides).eval()
    tokens = torch.tensor(TOKENS)
    with torch.no_grad():
        features = hub.extract_features(tokens)
        scores = hub.predict(head, tokens) if head else None
    return features, scores, len(hub.model.encoder.sentence_encoder.layers)


if __name__ == "__main__":
    model_dir, data, head, out, *checkpoints = sys.argv[1:]
    torch.save([hub_features(model_dir, c, data, head or None) for c in checkpoints], out)
