"""benchmarks/bench_speculative.py (draft and verify costs of self-speculative decoding): bad input
refused before measuring, the timing order, the JSON it writes; on a tiny random translation model."""
import json

import pytest

from fairseq_layerdrop import speculative as sp
from tests.test_speculative import BENCH, LAYERS, run_main, save, tiny_mt
from tests.utils import load_module


@pytest.fixture(scope="module")
def mt(mt_data):
    return tiny_mt(mt_data)


def run_bench(argv):
    return run_main(BENCH, argv)


@pytest.mark.parametrize("argv,message", [
    (["--source-tokens", "0"], "argument --source-tokens: expected a positive integer, got '0'"),
    (["--source-tokens", "5000"], "--source-tokens 5000 exceeds the encoder's"),
    (["--context", "5000"], "--context 5000 + the largest of --ks 4 + 1 = 5005 exceeds the decoder's"),
    (["--ks", "1,x"], "argument --ks: expected comma-separated positive integers, got '1,x'"),
    (["--ks", "0"], "argument --ks: expected comma-separated positive integers"),
    (["--repeats", "-3"], "argument --repeats: expected a positive integer"),
    (["--max-wait", "nan"], "argument --max-wait: expected a finite number >= 0"),
    (["--depths", "2,9"], f"--depths: 9 is outside 1..{LAYERS}"),
    (["--strategies", "middle"], "argument --strategies: unknown strategy 'middle'"),
    (["--strategies", "learned", "--depths", "2"], "no learned decoder rates"),
    (["--alpha-json", "{tmp}/none.json"], "none.json: FileNotFoundError"),
    (["--alpha-json", "{tmp}/list.json"], "is not an output of scripts/speculative_alpha.py"),
    (["--alpha-json", "{tmp}/no_alpha.json"], "(drafts with alpha and tokens_per_step)"),
    (["--target", "0"], "argument --target: expected a finite number > 0"),
    (["--bogus"], "unrecognized arguments: --bogus")])
def test_cost_benchmark_refuses_bad_input_before_measuring(argv, message, mt, mt_data, tmp_path, capsys):
    model, cfg, _task = mt
    ckpt = save(model, cfg, tmp_path / "mt.pt")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "no_alpha.json").write_text('{"drafts": {"first/2": {"tokens_per_step": {}}}}')
    out = tmp_path / "costs.json"
    code = run_bench([ckpt, mt_data, *[a.format(tmp=tmp_path) for a in argv], "--max-wait", "0", "-o", out])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert [line for line in err if "error" in line] == [err[-1]] and err[-1].startswith("bench_speculative.py: error: ")
    assert message in err[-1]
    assert not any("timing" in line for line in err)  # refused before the measurement began (its first line)
    assert not out.exists()


@pytest.mark.parametrize("which,message", [("checkpoint", "no checkpoint file"),
                                           ("data", "is not a binarized data directory"),
                                           ("garbage", "cannot load")])
def test_cost_benchmark_refuses_missing_files(which, message, mt_data, tmp_path, capsys):
    paths = {"checkpoint": tmp_path / "none.pt", "data": mt_data}
    if which in ("data", "garbage"):
        paths = {"checkpoint": tmp_path / "x.pt", "data": tmp_path if which == "data" else mt_data}
        paths["checkpoint"].write_bytes(b"not a checkpoint")
    code = run_bench([paths["checkpoint"], paths["data"], "--max-wait", "0", "-o", tmp_path / "costs.json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "costs.json").exists()


def test_every_operation_is_timed_at_every_position_equally_often():
    bench = load_module(BENCH)
    names = ["fairseq_step", "step/full", "step/first/1", "step/every-other/1", "verify/1"]
    orders = [bench.timing_order(names, r) for r in range(400)]
    assert all(sorted(order) == sorted(names) for order in orders)
    assert orders == [bench.timing_order(names, r) for r in range(400)]  # the same in every run
    for op in names:
        positions = [order.index(op) for order in orders]
        assert all(40 <= positions.count(i) <= 120 for i in range(len(names)))  # ~80 each
        after = {order[order.index(op) - 1] for order in orders if order.index(op) > 0}
        assert after == set(names) - {op}  # preceded by every other operation, not always the same one


def test_cost_benchmark_writes_costs_and_speedups(mt, mt_data, tmp_path, capsys):
    model, cfg, _task = mt
    ckpt = save(model, cfg, tmp_path / "mt.pt")
    alpha = {"drafts": {"every-other/2": {"alpha": 0.5, "tokens_per_step": {"1": 1.5, "2": 1.75}}}}
    (tmp_path / "alpha.json").write_text(json.dumps(alpha))
    out = tmp_path / "costs.json"
    assert run_bench([ckpt, mt_data, "--depths", "2", "--strategies", "every-other", "--ks", "1,2", "--context", "4",
                      "--source-tokens", "5", "--repeats", "3", "--max-wait", "0", "--alpha-json",
                      tmp_path / "alpha.json", "-o", out]) == 0
    result = json.loads(out.read_text())
    costs = result["costs"]
    assert costs["layers"] == {"every-other/2": [0, 2]} and result["source_tokens"] == 5
    assert costs["c"]["every-other/2"] > 0 and set(costs["v"]) == {"1", "2"}
    c, v1 = costs["c"]["every-other/2"], costs["v"]["1"]
    s1 = result["speedup"]["every-other/2"]["1"]
    assert s1["from_alpha"] == pytest.approx((1 + 0.5) / (c + v1))  # 1 + alpha tokens per draft-and-verify
    assert s1["from_replay"] == pytest.approx(1.5 / (c + v1))
    need = costs["alpha_needed"]["every-other/2"]["1"]
    assert result["target"] == 1.25 and need == sp.alpha_needed(1, c, v1, 1.25)
    assert json.loads(capsys.readouterr().out) == result


@pytest.mark.parametrize("out,message", [("{tmp}", "it is a directory"), ("{tmp}/file.txt/x.json", "is not a directory")])
def test_cost_benchmark_refuses_an_output_it_cannot_write(out, message, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    assert run_bench(["x.pt", "data", "-o", out.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument -o/--out: cannot write" in err and message in err
