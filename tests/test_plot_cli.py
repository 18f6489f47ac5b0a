"""fairseq-layerdrop-plot: several sweep.json files on one figure; bad input is one line and exit 2."""
import json

import pytest

from fairseq_layerdrop import plotting
from fairseq_layerdrop.cli import plot


def sweep_json(path, label, offset):
    rows = [{"label": label, "depth": d, "ppl": 10.0 * (5 - d) + offset} for d in range(1, 5)]
    path.write_text(json.dumps({"rows": rows}))
    return str(path)


def test_two_sweeps_on_one_figure(tmp_path, capsys, monkeypatch):
    files = [sweep_json(tmp_path / "a.json", "p=0", 40.0), sweep_json(tmp_path / "b.json", "p=0.5", 0.0)]
    out, figures = tmp_path / "lm.png", []
    drawn = plotting.sweep_figure
    monkeypatch.setattr(plotting, "sweep_figure", lambda *a, **k: figures.append(drawn(*a, **k)) or figures[-1])
    assert plot.main([*files, "-o", str(out), "--quality-only", "--ymax", "60", "--title", "LM"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().err == f"fairseq-layerdrop-plot: wrote {out}\n"
    (ax,) = figures[0].axes  # --quality-only: no speed panel
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["p=0", "p=0.5"]
    assert ax.get_ylim()[1] <= 66 and max(y for line in ax.get_lines() for y in line.get_ydata()) == 60  # capped
    assert figures[0].texts[0].get_text() == "LM"


def test_a_summarization_sweep_plots_rouge_not_the_bleu_it_also_scores(tmp_path, monkeypatch):
    rows = [{"label": "p=0", "task": "summarization", "depth": d, "bleu": 5.0 * d, "rougeL": 10.0 + d}
            for d in range(1, 4)]
    path = tmp_path / "sum.json"
    path.write_text(json.dumps({"rows": rows}))
    figures, drawn = [], plotting.sweep_figure
    monkeypatch.setattr(plotting, "sweep_figure", lambda *a, **k: figures.append(drawn(*a, **k)) or figures[-1])
    assert plot.main([str(path), "-o", str(tmp_path / "sum.png"), "--quality-only"]) == 0
    (ax,) = figures[0].axes
    assert ax.get_ylabel() == "ROUGE-L F1" and list(ax.get_lines()[0].get_ydata()) == [11.0, 12.0, 13.0]
    for row in rows:  # translation: BLEU first, as before
        row["task"] = "translation"
    assert plotting.main_metric(rows) == ("bleu", "BLEU (sacrebleu)")


def rows_json(rows) -> str:
    return json.dumps({"rows": rows})


MANY_MODELS = rows_json([{"label": f"m{i}", "depth": 1, "ppl": 1.0} for i in range(plotting.MAX_LINES + 1)])


@pytest.mark.parametrize("content,message", [
    ("{not json", "JSONDecodeError"),
    ('{"no_rows": []}', "not a sweep (no 'rows')"),
    ("[1, 2]", "not a sweep (no 'rows')"),
    ('{"rows": [1, 2]}', "row 0 needs a text 'label' and an integer 'depth' >= 1"),
    (rows_json([{"label": "x", "depth": 0, "ppl": 3.0}]), "row 0 needs a text 'label' and an integer 'depth' >= 1"),
    (rows_json([{"label": "x", "depth": 1}]), "no BLEU, ROUGE or perplexity"),
    (rows_json([{"label": "x", "depth": 1, "bleu": 2.0}, {"label": "y", "depth": 1, "ppl": 9.0}]), "y at depth 1 has no bleu"),
    (rows_json([{"label": "x", "depth": 1, "bleu": "2"}]), "x at depth 1 has no bleu"),
    ('{"rows": [{"label": "x", "depth": 1, "ppl": NaN}]}', "NaN is not a number JSON allows"),
    ('{"rows": [{"label": "x", "depth": 1, "ppl": Infinity}]}', "Infinity is not a number JSON allows"),
    (rows_json([{"label": "x", "depth": 1, "ppl": 1.0}] * 1001), "1001 rows, more than the 1000"),
    (" " * (4 << 20) + "{}", "larger than the 4 MiB"),
    (b'{"rows": [{"label": "\xff", "depth": 1}]}', "not JSON text (UnicodeDecodeError)"),
    ("[" * 100000 + "]" * 100000, "not JSON text (RecursionError)"),
    (MANY_MODELS, f"{plotting.MAX_LINES + 1} models (labels): more than the {plotting.MAX_LINES} lines"),
    (None, "FileNotFoundError")], ids=lambda v: str(v)[:40])
def test_bad_sweep_files_are_one_line_and_exit_2_and_write_nothing(content, message, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    elif content is not None:
        bad.write_text(content)
    assert plot.main([str(bad), "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fairseq-layerdrop-plot: error: ") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"] * (content is not None)


def test_a_file_error_names_the_file_escaped(tmp_path, capsys):
    bad = tmp_path / "two\nlines.json"
    bad.write_text("[]")
    assert plot.main([str(bad), "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "two\\nlines.json: not a readable sweep.json" in err


def test_an_output_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path, capsys):
    good = sweep_json(tmp_path / "a.json", "p=0", 0.0)
    (tmp_path / "taken").mkdir()
    (tmp_path / "old.png").write_bytes(b"old")
    assert plot.main([good, "-o", str(tmp_path / "taken")]) == 2  # a directory: the rename fails
    assert "IsADirectoryError" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "old.png", "taken"]  # no temporary left
    assert plot.main([good, "-o", str(tmp_path / "old.png")]) == 0 and (tmp_path / "old.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv,message", [(["x.json"], "the following arguments are required: -o/--output"),
                                          (["x.json", "-o", "y.png", "--ymax", "inf"], "argument --ymax"),
                                          (["x.json", "-o", "y.png", "--ymax", "0"], "expected a finite number > 0")])
def test_usage_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as done:
        plot.main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and message in err
