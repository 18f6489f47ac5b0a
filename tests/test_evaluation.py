"""Parsing of fairseq's evaluation output, metrics, plots, and how tools are started."""
import os
import subprocess
import sys
import sysconfig

import pytest

from fairseq_layerdrop import evaluation
from fairseq_layerdrop.plotting import plot_sweeps, sweep_figure
from tests.utils import PLUGIN_DIR, train

GENERATE_OUT = """S-1\tw45 w29 w9
T-1\tdas ist ein Test .
H-1\t-0.41\tdas ist ein Test .
D-1\t-0.41\tdas ist ein Test .
P-1\t-0.1 -0.2
S-0\tw48 w11
T-0\tein Haus
H-0\t-0.9\tein Baum
D-0\t-0.9\tein Baum
INFO:fairseq_cli.generate:Translated 2 sentences (9 tokens) in 0.4s (5.49 sentences/s, 22.50 tokens/s)
Generate test with beam=5: BLEU = 61.48 83.3/75.0/66.7/50.0 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)
"""

EVAL_LM_OUT = """INFO:fairseq_cli.eval_lm:Evaluated 143 tokens in 0.2s (620.24 tokens/s)
INFO:fairseq_cli.eval_lm:Loss (base 2): 5.8338, Perplexity: 57.04
"""


def test_parse_generate_orders_by_id_and_reads_speed():
    res = evaluation.parse_generate(GENERATE_OUT)
    assert res["hyps"] == ["ein Baum", "das ist ein Test ."]
    assert res["refs"] == ["ein Haus", "das ist ein Test ."]
    assert (res["sentences"], res["tokens"], res["sentences_per_s"], res["tokens_per_s"]) == (2, 9, 5.49, 22.5)
    assert res["fairseq_bleu"] == 61.48


def test_sacrebleu_rescoring_and_signature():
    res = evaluation.parse_generate(GENERATE_OUT)
    bleu, signature = evaluation.sacrebleu_score(res["hyps"], res["refs"])
    assert signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert 0 < bleu < 100
    assert evaluation.sacrebleu_score(["a b c d e"], ["a b c d e"])[0] == 100.0


def test_parse_eval_lm():
    assert evaluation.parse_eval_lm(EVAL_LM_OUT) == {"loss_base2": 5.8338, "ppl": 57.04, "tokens": 143,
                                                      "eval_seconds": 0.2, "tokens_per_s": 620.24}
    with pytest.raises(evaluation.EvalError, match="no perplexity"):
        evaluation.parse_eval_lm("nothing here")


def test_rouge_identical_and_disjoint():
    assert evaluation.rouge_scores(["the cat sat"], ["the cat sat"]) == {"rouge1": 100.0, "rouge2": 100.0,
                                                                       "rougeL": 100.0}
    assert evaluation.rouge_scores(["dog"], ["the cat sat"])["rouge1"] == 0.0
    # F1 averaged over documents: "the cat" vs "the cat sat" is P 1, R 2/3 -> 80 (bigrams 1/1, 1/2 -> 66.67);
    # "sat the cat" has all unigrams (100) but an LCS of 2 (66.67); the mean of the two documents is reported
    scores = evaluation.rouge_scores(["the cat", "sat the cat"], ["the cat sat", "the cat sat"])
    assert scores == pytest.approx({"rouge1": 90.0, "rouge2": (200 / 3 + 50) / 2, "rougeL": (80 + 200 / 3) / 2}, abs=0.01)


def test_output_diversity_finds_a_constant_output():
    assert evaluation.output_diversity(["a b", "a b", "a b", "a b"]) == {"distinct_outputs": 0.25,
                                                                        "top_output_share": 1.0}
    assert evaluation.output_diversity(["a", "b", "a", "c"]) == {"distinct_outputs": 0.75, "top_output_share": 0.5}
    assert evaluation.output_diversity([]) == {"distinct_outputs": None, "top_output_share": None}


def test_failed_tool_raises_one_line_error(tmp_path):
    with pytest.raises(evaluation.EvalError, match=r"fairseq-eval-lm failed \(exit"):
        evaluation.run_tool("fairseq-eval-lm", [tmp_path / "missing-data", "--path", tmp_path / "x.pt"])


def test_bleu_mismatch_is_an_error():
    res = dict(evaluation.parse_generate(GENERATE_OUT))
    res["bleu"], _ = evaluation.sacrebleu_score(res["hyps"], res["refs"])
    evaluation.check_bleu_agrees(dict(res, fairseq_bleu=res["bleu"] + 0.005))  # rounding
    with pytest.raises(evaluation.EvalError, match="BLEU mismatch: fairseq-generate printed 61.48, sacrebleu"):
        evaluation.check_bleu_agrees(res)  # the BLEU line above is made up
    evaluation.check_bleu_agrees(dict(res, fairseq_bleu=None))  # other --scoring: nothing to compare


def test_tools_start_without_console_scripts_beside_the_interpreter(tmp_path):
    """A user-site install puts console scripts in ~/.local/bin, not beside sys.executable."""
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.symlink_to(sys.executable)  # an interpreter with no fairseq-* scripts beside it
    site_dir = sysconfig.get_paths()["purelib"]
    code = ("import site, sys; site.addsitedir(sys.argv[1]); from fairseq_layerdrop import evaluation; "
            "print(evaluation.run_tool('fairseq-eval-lm', ['--help']))")
    out = subprocess.run([str(python), "-c", code, site_dir], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=site_dir))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: eval_lm.py" in out.stdout


def test_plot_several_models(tmp_path):
    rows = [{"label": label, "depth": d, "ppl": 10.0 * (7 - d) + off, "tokens_per_s": 100.0 * (7 - d)}
            for label, off in (("p=0", 50.0), ("p=0.2", 0.0)) for d in range(1, 7)]
    out = plot_sweeps(rows, tmp_path / "sweep.png")
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no BLEU, ROUGE or perplexity"):
        plot_sweeps([{"label": "x", "depth": 1}], tmp_path / "bad.png")


def test_plot_title_fits_and_log_axis_has_plain_numbers():
    title = "demo: kernel-doc LM, test perplexity vs depth (one model, pruned without fine-tuning) " * 2
    for ppl in ([355, 304, 291, 286], [19745, 1503, 296, 216]):  # less than one decade, several decades
        rows = [{"label": "p=0.5", "depth": d + 1, "ppl": p, "tokens_per_s": 10.0} for d, p in enumerate(ppl)]
        fig = sweep_figure(rows, title)
        fig.canvas.draw()
        box, page = fig.texts[0].get_window_extent(), fig.bbox  # the title
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
        assert labels and all(text.isdigit() for text in labels), labels


def test_plot_quality_only_with_a_capped_axis():
    """A model that breaks (ppl 3.96M at one layer) must not squash the others: --ymax caps the axis
    and the capped point is drawn on the cap with its value written."""
    rows = [{"label": "p=0.2", "depth": d, "ppl": p, "tokens_per_s": 1.0}
            for d, p in ((1, 3957638.0), (2, 761.6), (4, 213.1), (8, 181.0))]
    rows += [{"label": "4L scratch", "depth": 4, "ppl": 189.4, "tokens_per_s": 1.0}]
    fig = sweep_figure(rows, "kernel-doc LM: test perplexity vs layers kept (best validation checkpoints)",
                       speed=False, ymax=400)
    fig.canvas.draw()
    box, page = fig.texts[0].get_window_extent(), fig.bbox  # the title fits the narrower figure
    assert page.x0 <= box.x0 and box.x1 <= page.x1
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[1] < 500
    ys = [y for line in ax.get_lines() for y in line.get_ydata()]
    assert max(ys) == 400 and 189.4 in ys
    assert sorted(t.get_text() for t in ax.texts) == ["3.96e+06", "762"]
    rows += [{"label": "p=0", "depth": d, "ppl": p, "tokens_per_s": 1.0} for d, p in ((1, 960649.0), (2, 15325.0))]
    ax = sweep_figure(rows, speed=False, ymax=400).axes[0]
    ax.figure.canvas.draw()
    at_one = [t.get_window_extent() for t in ax.texts if t.get_text() in ("3.96e+06", "9.61e+05")]
    assert len(at_one) == 2 and not at_one[0].overlaps(at_one[1])  # two capped values at depth 1: both legible
    assert len(sweep_figure(rows).axes) == 2  # default: both panels, log axis, nothing capped
    assert sweep_figure(rows).axes[0].get_yscale() == "log" and not sweep_figure(rows).axes[0].texts


def test_plot_prints_no_matplotlib_debug_lines(tmp_path):
    """fairseq leaves the root logger at DEBUG; matplotlib's import must not print through it."""
    code = ("import logging, sys; logging.basicConfig(level=logging.DEBUG)\n"
            "from fairseq_layerdrop.plotting import plot_sweeps\n"
            "plot_sweeps([{'label': 'a', 'depth': 1, 'ppl': 3.0}], sys.argv[1])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.png")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "matplotlib" not in out.stderr


def test_fairseq_and_sacrebleu_agree_on_a_real_generate_run(mt_data, tmp_path):
    """A real fairseq-generate run scored both ways. ``--prefix-size 4`` forces each hypothesis to
    start with 4 reference tokens, so an untrained model still gets a BLEU strictly between 0 and 100."""
    ckpt = train(mt_data, tmp_path, "mt", "transformer_layerdrop_tiny", user_dir=PLUGIN_DIR)
    res = evaluation.generate(str(ckpt), str(mt_data), beam=2, post_process="", threads=1,
                              extra=["--user-dir", PLUGIN_DIR, "--prefix-size", "4"])  # EvalError if they disagree
    assert res["sentences"] == len(res["hyps"]) == 20
    assert 1.0 < res["bleu"] < 99.0
    assert abs(res["fairseq_bleu"] - res["bleu"]) <= evaluation.BLEU_TOLERANCE
