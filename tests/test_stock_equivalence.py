"""At p = 0 (and at any p in eval mode) our models compute exactly what stock fairseq's do."""
import pytest
import torch

from tests.utils import PLUGIN_DIR

SIZES = ["--encoder-layers", "3", "--decoder-layers", "3", "--encoder-embed-dim", "32", "--decoder-embed-dim",
         "32", "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads",
         "2", "--decoder-attention-heads", "2", "--dropout", "0", "--attention-dropout", "0",
         "--share-all-embeddings"]


def build(data, arch, extra=()):
    from fairseq import options, tasks

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(data), "--user-dir", PLUGIN_DIR, "--task", "translation",
                                                "--arch", arch, "--cpu", *SIZES, *extra])
    task = tasks.setup_task(args)
    torch.manual_seed(0)
    return task.build_model(args), task


def batch(task, n=6):
    task.load_dataset("valid")
    ds = task.dataset("valid")
    return ds.collater([ds[i] for i in range(n)])


def forward_backward(model, sample):
    model.zero_grad()
    out, _ = model(**sample["net_input"])
    out.float().pow(2).mean().backward()
    return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("extra", [[], ["--encoder-normalize-before", "--decoder-normalize-before"]])
def test_plugin_transformer_at_p0_equals_stock_transformer(mt_data, extra):
    stock, task = build(mt_data, "transformer", extra)
    ours, _ = build(mt_data, "transformer_layerdrop_tiny", [*extra, "--encoder-layerdrop", "0",
                                                            "--decoder-layerdrop", "0"])
    assert ours.state_dict().keys() == stock.state_dict().keys()
    ours.load_state_dict(stock.state_dict())
    sample = batch(task)
    (out_s, grads_s), (out_o, grads_o) = forward_backward(stock.train(), sample), forward_backward(ours.train(), sample)
    assert torch.equal(out_s, out_o)
    assert grads_s.keys() == grads_o.keys() and all(torch.equal(grads_s[k], grads_o[k]) for k in grads_s)


def test_eval_mode_runs_every_layer_whatever_the_rate(mt_data):
    stock, task = build(mt_data, "transformer")
    ours, _ = build(mt_data, "transformer_layerdrop_tiny", ["--encoder-layerdrop", "0.5", "--decoder-layerdrop",
                                                            "0.5", "--layerdrop-granularity", "sublayer"])
    ours.load_state_dict(stock.state_dict())
    sample = batch(task)
    with torch.no_grad():
        assert torch.equal(stock.eval()(**sample["net_input"])[0], ours.eval()(**sample["net_input"])[0])
