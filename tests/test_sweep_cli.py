"""fairseq-layerdrop-sweep's option handling and optional plot (no model, no fairseq tool run)."""
import subprocess
import sys

import pytest

from fairseq_layerdrop import evaluation
from fairseq_layerdrop.cli import sweep

BASE = ["ckpt.pt", "data-bin", "--task", "lm", "--out-dir", "out"]


def test_extra_arguments_are_split_like_a_shell(monkeypatch, tmp_path):
    args = sweep.parse_args([*BASE, "--gen-args", "--model-overrides \"{'a': 1}\" --beam 2",
                             "--prune-args", "--data 'my data'"])
    calls = []
    monkeypatch.setattr(evaluation, "run_tool", lambda tool, argv, threads=0: calls.append(list(map(str, argv))))
    sweep.prune(args, 2, tmp_path / "depth2.pt")
    assert calls[0][-2:] == ["--data", "my data"]
    monkeypatch.setattr(evaluation, "eval_lm", lambda *a: calls.append(a[5]) or {})
    sweep.evaluate(args, tmp_path / "depth2.pt")
    assert calls[1] == ["--model-overrides", "{'a': 1}", "--beam", "2"]


def test_unbalanced_quotes_and_unknown_strategy_are_usage_errors(capsys):
    for bad in (["--gen-args", "--model-overrides \"{'a'"], ["--strategy", "every_other"]):
        with pytest.raises(SystemExit) as exit_info:
            sweep.parse_args([*BASE, *bad])
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "No closing quotation" in err and "invalid choice: 'every_other'" in err


@pytest.mark.parametrize("bad,message", [
    (["--beam", "0"], "argument --beam: expected a positive integer, got '0'"),
    (["--max-tokens", "many"], "argument --max-tokens: expected a positive integer, got 'many'"),
    (["--tokens-per-sample", "-1"], "argument --tokens-per-sample: expected a positive integer"),
    (["--threads", "-2"], "argument --threads: expected a whole number >= 0, got '-2'"),
    (["--task", "mt"], "argument --task: invalid choice: 'mt'")])
def test_bad_numbers_are_one_line_usage_errors(bad, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sweep.parse_args([*BASE, *bad])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("fairseq-layerdrop-sweep: error: ") and message in err


@pytest.mark.parametrize("threads,expected", [(0, "inherited"), (2, "2")])
def test_threads_zero_inherits_the_environment_and_n_sets_it(threads, expected, monkeypatch, tmp_path):
    assert sweep.parse_args([*BASE, "--threads", str(threads), "--beam", "3"]).threads == threads
    monkeypatch.setenv("OMP_NUM_THREADS", "inherited")
    monkeypatch.setenv("MKL_NUM_THREADS", "inherited")
    seen = {}

    def fake_run(command, env=None, **kwargs):
        seen.update(env)
        return subprocess.CompletedProcess(command, 0, stdout="", stderr="")

    monkeypatch.setattr(evaluation.subprocess, "run", fake_run)
    args = sweep.parse_args([*BASE, "--threads", str(threads), "--task", "lm"])
    with pytest.raises(evaluation.EvalError, match="no perplexity"):  # the fake tool printed nothing
        sweep.evaluate(args, tmp_path / "model.pt")
    assert seen["OMP_NUM_THREADS"] == seen["MKL_NUM_THREADS"] == expected


def test_without_matplotlib_the_plot_is_skipped_with_a_notice(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert sweep.plot(["rows"], tmp_path) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "matplotlib is not installed" in err
    assert not (tmp_path / "sweep.png").exists()


def test_missing_checkpoint_is_one_line_exit_2_and_creates_nothing(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert sweep.main([str(tmp_path / "none.pt"), "data-bin", "--task", "lm", "--out-dir", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fairseq-layerdrop-sweep: error: checkpoint not found: ")
    assert not out_dir.exists()


def fake_checkpoint(tmp_path, monkeypatch, task="lm"):
    """A checkpoint path the patched full_depths reads as 4 decoder layers, and data with a test split."""
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"read by the patched full_depths only")
    monkeypatch.setattr(sweep, "full_depths", lambda path: {"decoder": 4})
    data = tmp_path / "data-bin"
    data.mkdir()
    (data / ("test.bin" if task == "lm" else "test.en-de.en.bin")).write_bytes(b"")
    return str(ckpt), str(data)


def test_an_unusable_out_dir_is_one_line_exit_2(monkeypatch, tmp_path, capsys):
    ckpt, data = fake_checkpoint(tmp_path, monkeypatch)
    taken = tmp_path / "a_file"
    taken.write_text("not a directory")
    assert sweep.main([ckpt, data, "--task", "lm", "--out-dir", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not a directory" in err and taken.read_text() == "not a directory"


@pytest.mark.parametrize("task,data,message", [
    ("lm", "missing", "data directory not found: "),
    ("lm", "empty", "no test split (test.bin); binarize it with fairseq-preprocess"),
    ("translation", "lm-only", "no test split (test.*-*.*.bin)"),
    ("lm", "shards", "data directory not found: "),  # DIR1:DIR2, the second missing
])
def test_data_without_the_split_is_refused_before_anything_is_pruned(task, data, message, monkeypatch, tmp_path, capsys):
    ckpt, good = fake_checkpoint(tmp_path, monkeypatch)
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "none", "empty": tmp_path / "empty", "lm-only": good,
             "shards": f"{good}:{tmp_path / 'none'}"}
    monkeypatch.setattr(sweep, "prune", lambda *a: pytest.fail("pruned before the data were checked"))
    out_dir = tmp_path / "out"
    assert sweep.main([ckpt, str(paths[data]), "--task", task, "--out-dir", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not out_dir.exists()


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_depth_leaves_no_pruned_model_and_no_directory_it_made(existing, monkeypatch, tmp_path, capsys):
    ckpt, data = fake_checkpoint(tmp_path, monkeypatch)
    out_dir = tmp_path / "out"
    if existing:
        out_dir.mkdir()
        (out_dir / "notes.txt").write_text("mine")
    monkeypatch.setattr(sweep, "prune", lambda args, depth, out: out.write_bytes(b"pruned"))
    monkeypatch.setattr(sweep, "checkpoint_stats", lambda path: {"layers": {"decoder": 1}, "kept": {}, "params": 1,
                                                                "bytes": 6, "plain_config": True})

    def evaluate(args, ckpt, plain):
        if ckpt.name == "depth2.pt":
            raise evaluation.EvalError("fairseq-eval-lm failed (exit 1): no such split")
        return {"ppl": 10.0}

    monkeypatch.setattr(sweep, "evaluate", evaluate)
    assert sweep.main([ckpt, data, "--task", "lm", "--out-dir", str(out_dir), "--depths", "1,2,3"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "fairseq-layerdrop-sweep: error: fairseq-eval-lm failed (exit 1): no such split"
    if existing:
        assert sorted(p.name for p in out_dir.iterdir()) == ["notes.txt"]
    else:
        assert not out_dir.exists()
