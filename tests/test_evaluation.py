"""Parsing of fairseq's evaluation output, metrics, and plots (no model needed)."""
import pytest

from fairseq_layerdrop import evaluation
from fairseq_layerdrop.plotting import plot_sweeps

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
    assert (res["sentences"], res["sentences_per_s"], res["tokens_per_s"]) == (2, 5.49, 22.5)
    assert res["fairseq_bleu"] == 61.48


def test_sacrebleu_rescoring_and_signature():
    res = evaluation.parse_generate(GENERATE_OUT)
    bleu, signature = evaluation.sacrebleu_score(res["hyps"], res["refs"])
    assert signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert 0 < bleu < 100
    assert evaluation.sacrebleu_score(["a b c d e"], ["a b c d e"])[0] == 100.0


def test_parse_eval_lm():
    assert evaluation.parse_eval_lm(EVAL_LM_OUT) == {"loss_base2": 5.8338, "ppl": 57.04, "tokens": 143,
                                                      "tokens_per_s": 620.24}
    with pytest.raises(evaluation.EvalError, match="no perplexity"):
        evaluation.parse_eval_lm("nothing here")


def test_rouge_identical_and_disjoint():
    assert evaluation.rouge_scores(["the cat sat"], ["the cat sat"]) == {"rouge1": 100.0, "rouge2": 100.0,
                                                                       "rougeL": 100.0}
    assert evaluation.rouge_scores(["dog"], ["the cat sat"])["rouge1"] == 0.0


def test_failed_tool_raises_one_line_error(tmp_path):
    with pytest.raises(evaluation.EvalError, match=r"fairseq-eval-lm failed \(exit"):
        evaluation.run_tool("fairseq-eval-lm", [tmp_path / "missing-data", "--path", tmp_path / "x.pt"])


def test_plot_several_models(tmp_path):
    rows = [{"label": label, "depth": d, "ppl": 10.0 * (7 - d) + off, "tokens_per_s": 100.0 * (7 - d)}
            for label, off in (("p=0", 50.0), ("p=0.2", 0.0)) for d in range(1, 7)]
    out = plot_sweeps(rows, tmp_path / "sweep.png")
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no BLEU, ROUGE or perplexity"):
        plot_sweeps([{"label": "x", "depth": 1}], tmp_path / "bad.png")
