"""Data-parallel LayerDrop: two real ranks (gloo, CPU) through fairseq's own trainer.

Each test starts two ``fairseq-train`` processes (``tests/ddp_driver.py``, one per rank) and
checks that both ranks drew the same masks, at every micro-batch, and held bit-identical
parameters after every update, for fairseq's ``c10d`` and ``legacy_ddp`` / ``no_c10d`` backends.
See docs/distributed.md for the flags and what these tests measured.
"""
import pytest
import torch.distributed as dist

from tests.ddp_driver import expected_keep, launch, load, max_abs_diff
from tests.utils import PLUGIN_DIR

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")

P, LAYERS, SEED, UPDATES = 0.5, 3, 3, 6
COMMON = ["--user-dir", PLUGIN_DIR, "--optimizer", "adam", "--lr", "1e-3", "--max-update", UPDATES,
          "--cpu", "--num-workers", "0", "--log-interval", "1", "--log-format", "simple",
          "--required-batch-size-multiple", "1", "--seed", SEED, "--no-save", "--disable-validation"]
MT = ["--task", "translation", "--arch", "transformer_layerdrop_tiny", "--encoder-layers", LAYERS,
      "--decoder-layers", LAYERS, "--encoder-layerdrop", P, "--decoder-layerdrop", P,
      "--criterion", "label_smoothed_cross_entropy_layerdrop", "--label-smoothing", "0.1",
      "--max-tokens", "500"]
LM = ["--task", "language_modeling", "--arch", "transformer_lm_layerdrop_tiny", "--decoder-layers", LAYERS,
      "--decoder-layerdrop", P, "--layerdrop-granularity", "sublayer",
      "--criterion", "cross_entropy_layerdrop", "--tokens-per-sample", "32", "--max-tokens", "256",
      "--sample-break-mode", "none"]
WRAPPERS = {"c10d": "CPUDistributedDataParallel", "legacy_ddp": "LegacyDistributedDataParallel",
            "no_c10d": "LegacyDistributedDataParallel"}
BACKEND_FLAGS = {"c10d": ["--ddp-backend", "c10d", "--find-unused-parameters"],
                 "legacy_ddp": ["--ddp-backend", "legacy_ddp"], "no_c10d": ["--ddp-backend", "no_c10d"]}


def run_two_ranks(tmp_path, data_dir, args, **kw):
    prefix = tmp_path / "run"
    results = launch(prefix, [data_dir, *COMMON, *args], world_size=2, **kw)
    for rank, (code, log) in enumerate(results):
        assert code == 0, f"rank {rank} exited with {code}:\n{log[-3000:]}"
    return [load(prefix, r) for r in (0, 1)]


def check_ranks_agree(records, states):
    """Same masks at every micro-batch and bit-identical parameters after every update."""
    (rec0, rec1), (state0, state1) = records, states
    assert rec0["world_size"] == 2 and {rec0["rank"], rec1["rank"]} == {0, 1}
    assert rec0["num_updates"] == rec1["num_updates"] == UPDATES
    assert rec0["draws"] == rec1["draws"]
    assert rec0["param_digests"] == rec1["param_digests"]
    assert sorted(map(int, rec0["param_digests"])) == list(range(1, UPDATES + 1))
    assert max_abs_diff(state0, state1) == 0.0


def check_masks(rec, stacks, p=P, layers=LAYERS):
    """Every micro-batch of every rank, dummy batches included, drew its own deterministic mask."""
    assert len(rec["draws"]) == len(rec["losses"]) * len(stacks)
    for draw in rec["draws"]:
        assert draw["stack"] in stacks
        assert (draw["list_update"], draw["list_micro"]) == (draw["update"], draw["micro"])
        assert draw["keep"] == expected_keep(draw, p, layers, SEED)
    kept = [sum(map(sum, d["keep"])) for d in rec["draws"]]
    assert min(kept) < layers * len(rec["draws"][0]["keep"][0])  # something was dropped
    assert len({str(d["keep"]) for d in rec["draws"]}) > 1  # and not always the same thing


@pytest.mark.parametrize("update_freq", [1, 2])
@pytest.mark.parametrize("backend", ["c10d", "legacy_ddp", "no_c10d"])
def test_ranks_draw_the_same_masks_and_keep_identical_parameters(data, tmp_path, backend, update_freq):
    out = run_two_ranks(tmp_path, data["mt"], [*MT, *BACKEND_FLAGS[backend], "--update-freq", update_freq])
    records, states = [r for r, _ in out], [s for _, s in out]
    check_ranks_agree(records, states)
    assert records[0]["wrapper"] == WRAPPERS[backend]
    check_masks(records[1], {"encoder", "decoder"})
    if update_freq == 2:
        by_update = {}
        for d in records[0]["draws"]:
            by_update.setdefault((d["update"], d["stack"]), {})[d["micro"]] = d["keep"]
        assert any(m.get(0) != m.get(1) for m in by_update.values() if len(m) == 2)
    none_grads = sum(records[0]["none_grads"].values())
    if backend == "c10d":
        assert none_grads > 0  # layers dropped on every rank keep grad None: the optimizer skips them
    else:
        assert none_grads == 0  # legacy_ddp fills missing gradients with zeros before all-reduce


def test_language_model_sublayer_drop_under_c10d(data, tmp_path):
    out = run_two_ranks(tmp_path, data["lm"], [*LM, *BACKEND_FLAGS["c10d"], "--update-freq", "2"])
    check_ranks_agree([r for r, _ in out], [s for _, s in out])
    rec = out[0][0]
    check_masks(rec, {"decoder"})
    assert len(rec["draws"][0]["keep"][0]) == 2  # self-attention and feed-forward branches
    assert any(0 < sum(row) < 2 for d in rec["draws"] for row in d["keep"])  # partial layers ran


def test_c10d_without_find_unused_parameters_fails(data, tmp_path):
    """fairseq's default backend without the flag: the first update silently skips the
    all-reduce (ranks diverge; fairseq's grad-norm cross-check runs on CUDA only), the second
    stops with torch's unused-parameter error."""
    results = launch(tmp_path / "run", [data["mt"], *COMMON, *MT, "--ddp-backend", "c10d"], world_size=2)
    codes = [code for code, _ in results]
    assert all(code not in (0, None) for code in codes), codes  # an error, not a hang
    assert all("Expected to have finished reduction in the prior iteration" in log for _, log in results)
    assert any("find_unused_parameters=True" in log for _, log in results)
    (rec0, _), (rec1, _) = load(tmp_path / "run", 0), load(tmp_path / "run", 1)
    assert rec0["num_updates"] == rec1["num_updates"] == 1
    assert rec0["param_digests"]["1"] != rec1["param_digests"]["1"]


def test_c10d_and_legacy_ddp_compute_the_same_update(data, tmp_path):
    """With plain SGD (no momentum: a zero gradient and no gradient are the same step) both
    backends give the same parameters, so c10d reduced every gradient, across no_sync too."""
    sgd = ["--optimizer", "sgd", "--lr", "0.5", "--update-freq", "2"]
    finals = {}
    for backend in ("c10d", "legacy_ddp"):
        out = run_two_ranks(tmp_path / backend, data["mt"], [*MT, *BACKEND_FLAGS[backend], *sgd])
        finals[backend] = out[0][1]
    assert max_abs_diff(finals["c10d"], finals["legacy_ddp"]) <= 1e-6


def test_rank_dependent_masks_would_still_sync_but_unbalance_ranks(data, tmp_path):
    """What the shared mask buys (experiment, not a setting): torch >= 1.7's DDP keeps parameters
    equal even if ranks drop different layers, but then ranks run different depths (the slowest
    sets the pace) and each update averages gradients of several sub-networks."""
    out = run_two_ranks(tmp_path, data["mt"], [*MT, *BACKEND_FLAGS["c10d"]], per_rank_masks=True)
    (rec0, state0), (rec1, state1) = out
    assert rec0["draws"] != rec1["draws"]
    assert max_abs_diff(state0, state1) == 0.0
    depth = [[sum(map(sum, d["keep"])) for d in rec["draws"]] for rec in (rec0, rec1)]
    assert depth[0] != depth[1]


def test_learned_rates_under_legacy_ddp(data, tmp_path):
    args = [*MT, *BACKEND_FLAGS["legacy_ddp"], "--layerdrop-learned-rates"]
    (rec0, state0), (rec1, state1) = run_two_ranks(tmp_path, data["mt"], args)
    assert rec0["draws"] == rec1["draws"]
    params = {k: v for k, v in state0.items() if "layerdrop_baseline" not in k}
    assert max_abs_diff(params, {k: state1[k] for k in params}) == 0.0
    assert state0["encoder.layers.layerdrop_logits"].abs().sum() > 0  # the rates did train


def test_learned_rates_under_c10d(data, tmp_path):
    """The mask log-probabilities ride in the model's output (models/common.py), so c10d's
    unused-parameter search sees the drop logits as used; ranks stay identical."""
    args = [*MT, *BACKEND_FLAGS["c10d"], "--layerdrop-learned-rates"]
    (rec0, state0), (rec1, state1) = run_two_ranks(tmp_path, data["mt"], args)
    assert rec0["draws"] == rec1["draws"] and rec0["param_digests"] == rec1["param_digests"]
    params = {k: v for k, v in state0.items() if "layerdrop_baseline" not in k}
    assert max_abs_diff(params, {k: state1[k] for k in params}) == 0.0
    assert state0["decoder.layers.layerdrop_logits"].abs().sum() > 0
