"""The benchmarks' command lines: bad options are one line and exit 2 before anything is built or timed."""
from pathlib import Path

import pytest

from tests.utils import load_module

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    return load_module(BENCHMARKS / f"{name}.py")


def refused(call, capsys):
    """Exit status and the stderr lines of ``call()``, which must stop by SystemExit."""
    with pytest.raises(SystemExit) as stop:
        call()
    return stop.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("bench,argv,message", [
    ("bench_train", ["--threads", "0"], "argument --threads: expected a positive integer, got '0'"),
    ("bench_train", ["--rounds", "-1"], "argument --rounds: expected a positive integer"),
    ("bench_train", ["--block", "2.5"], "argument --block: expected a positive integer"),
    ("bench_train", ["--warmup", "x"], "argument --warmup: expected a whole number >= 0"),
    ("bench_train", ["--max-wait", "inf"], "argument --max-wait: expected a finite number >= 0"),
    ("bench_train", ["--configs", "mt_layer_dominated_12_12,nope"], "argument --configs: unknown configuration 'nope'"),
    ("bench_inference", ["--repeats", "0"], "argument --repeats: expected a positive integer"),
    ("bench_inference", ["--threads", ""], "argument --threads: expected a positive integer"),
    ("bench_prune", ["--repeats", "0"], "argument --repeats: expected a positive integer"),
    ("bench_prune", ["--tmp", "/nonexistent/dir"], "--tmp '/nonexistent/dir' is not a directory"),
    ("bench_prune", ["--prune-cmd", "/nonexistent/tool --x"], "--prune-cmd '/nonexistent/tool --x' does not start"),
    ("bench_prune", ["--prune-cmd", "false"], "--prune-cmd 'false' does not start"),
    ("bench_prune", ["--prune-cmd", " "], "does not start"),
    ("bench_early_exit", ["--p", "1"], "argument --p: expected a rate below 1, got 1.0"),
    ("bench_early_exit", ["--rounds", "0"], "argument --rounds: expected a positive integer")])
def test_bad_option_is_one_line_and_exit_2(bench, argv, message, capsys):
    code, err = refused(lambda: load(bench).parse_args(argv), capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"{bench}.py: error: ") and message in err[0], err


def test_good_options_parse():
    opts = load("bench_train").parse_args(["--configs", "mt_layer_dominated_12_12, mt_tiny", "--threads", "1",
                                           "--warmup", "0"])
    assert opts.configs == ["mt_layer_dominated_12_12", "mt_tiny"] and opts.threads == 1 and opts.warmup == 0
    assert load("bench_prune").parse_args(["--prune-cmd", "true", "--repeats", "2"]).repeats == 2


def test_early_exit_benchmark_counts_the_heads_each_variant_computes(capsys):
    result = load("bench_early_exit").main(["--quick", "--rounds", "3", "--block", "2", "--warmup", "0"])
    heads = {name: v["heads_per_update"] for name, v in result["variants"].items()}
    assert heads["separate"] == 3.0 and heads["no-exits"] == 0.0  # exits 1,2,4, each computed / none
    assert 1.0 <= heads["shared"] <= 3.0 and all(v["updates"] == 6 for v in result["variants"].values())
    assert result["separate_over_shared"] > 0 and '"benchmark": "early_exit"' in capsys.readouterr().out


def test_inference_benchmark_options_parse_when_the_prune_tool_starts(monkeypatch):
    bench = load("bench_inference")
    seen = []
    monkeypatch.setattr(bench.common, "starts", lambda cmd: seen.append(cmd) or True)
    opts = bench.parse_args(["--repeats", "2", "--threads", "1"])
    assert (opts.repeats, opts.threads, opts.max_wait) == (2, 1, 300)
    assert seen and "fairseq_layerdrop" in " ".join(seen[0])  # it asked whether the prune tool starts


def test_inference_benchmark_refuses_to_start_without_the_prune_tool(capsys, monkeypatch):
    bench = load("bench_inference")
    monkeypatch.setattr(bench.common, "starts", lambda cmd: False)
    code, err = refused(lambda: bench.parse_args(["--quick"]), capsys)
    assert code == 2 and err == ["bench_inference.py: error: fairseq-layerdrop-prune does not start: "
                                 "install the project first (scripts/setup_env.sh)"]


@pytest.mark.parametrize("cmd,expected", [(["true"], True), (["false"], False), (["/nonexistent/tool"], False),
                                          ([], False)])
def test_starts(cmd, expected):
    assert load("common").starts(cmd) is expected


# -- report.py ------------------------------------------------------------------------------------------
def test_report_prints_the_tables_of_the_committed_results(capsys):
    assert load("report").main([]) == 0
    out = capsys.readouterr().out
    assert "### train" in out and "### inference" in out and "### prune" in out and "| variant |" in out


@pytest.mark.parametrize("files,message", [
    (None, "is not a directory"),
    ({}, "no train.json, inference.json or prune.json in"),
    ({"prune.json": "{"}, "prune.json: not a readable prune benchmark result (JSONDecodeError"),
    ({"prune.json": '{"command": "x"}'}, "prune.json: not a readable prune benchmark result (KeyError: 'machine')"),
    ({"train.json": "[]"}, "train.json: not a readable train benchmark result (TypeError"),
    ({"inference.json": b"\xff\xfe"}, "inference.json: not a readable inference benchmark result (UnicodeDecodeError")])
def test_report_refuses_what_it_cannot_read_with_one_line(files, message, tmp_path, capsys):
    root = tmp_path / "results"
    if files is not None:
        root.mkdir()
        for name, text in files.items():
            (root / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    code, err = refused(lambda: load("report").main([str(root)]), capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("report.py: error: ") and message in err[0], err


def test_report_prints_nothing_when_one_file_is_bad(tmp_path, capsys):
    root = tmp_path / "results"
    root.mkdir()
    (root / "train.json").write_text((BENCHMARKS / "results" / "train.json").read_text())
    (root / "prune.json").write_text('{"command": "x"}')
    code, _ = refused(lambda: load("report").main([str(root)]), capsys)
    assert code == 2 and capsys.readouterr().out == ""
