"""fairseq-layerdrop-sweep end to end: prune to two depths, score with the stock tools, CSV + plot."""
import csv
import json

from tests.utils import PLUGIN_DIR, SPLITS, run_cli, train


def sweep(ckpt, data, out_dir, *opts):
    out = run_cli("fairseq-layerdrop-sweep", [ckpt, data, "--out-dir", out_dir, "--threads", "1", *opts])
    assert out.returncode == 0, out.stderr[-3000:]
    rows = list(csv.DictReader(open(out_dir / "sweep.csv")))
    meta = json.loads((out_dir / "sweep.json").read_text())
    assert (out_dir / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert meta["rows"] and len(meta["rows"]) == len(rows)
    assert sorted(p.name for p in out_dir.iterdir()) == ["sweep.csv", "sweep.json", "sweep.png"]
    return rows, out


def test_translation_sweep_over_both_stacks(mt_data, tmp_path):
    ckpt = train(mt_data, tmp_path / "mt", "mt", "transformer_layerdrop_tiny",
                 ["--encoder-layerdrop", "0.2", "--decoder-layerdrop", "0.2", "--max-update", "30"],
                 user_dir=PLUGIN_DIR)
    rows, out = sweep(ckpt, mt_data, tmp_path / "sweep", "--task", "translation", "--stack", "both",
                      "--depths", "2,4", "--beam", "2", "--label", "tiny p=0.2", "--post-process", "none")
    assert [int(r["depth"]) for r in rows] == [2, 4]
    assert [json.loads(r["layers"]) for r in rows] == [{"decoder": 2, "encoder": 2}, {"decoder": 4, "encoder": 4}]
    assert json.loads(rows[0]["kept"]) == {"encoder": [0, 2], "decoder": [0, 2]}
    assert int(rows[0]["params"]) < int(rows[1]["params"])
    for row in rows:
        assert 0.0 <= float(row["bleu"]) <= 100.0 and "nrefs:1" in row["bleu_signature"]
        # fairseq's own sacrebleu score of the run and our re-score of its D-/T- lines agree
        assert abs(float(row["fairseq_bleu"]) - float(row["bleu"])) <= 0.011
        assert float(row["sentences_per_s"]) > 0 and int(row["sentences"]) == 20
    assert "depths" in out.stderr  # the progress bar
    assert "matplotlib" not in out.stderr and "DEBUG" not in out.stderr  # the plot is quiet


def test_language_model_sweep_and_bad_depth(lm_data, tmp_path):
    data = lm_data
    ckpt = train(data, tmp_path / "ckpt", "lm", "transformer_lm_layerdrop_tiny",
                 ["--decoder-layerdrop", "0.3", "--max-update", "20"], user_dir=PLUGIN_DIR)
    rows, _ = sweep(ckpt, data, tmp_path / "sweep", "--task", "lm", "--depths", "1,4", "--tokens-per-sample", "32")
    assert [int(r["depth"]) for r in rows] == [1, 4]
    ppl = [float(r["ppl"]) for r in rows]
    assert all(p > 1 for p in ppl) and ppl[1] < ppl[0]  # trained full depth beats one layer
    bad = run_cli("fairseq-layerdrop-sweep", [ckpt, data, "--out-dir", tmp_path / "bad", "--task", "lm",
                                              "--depths", "9"])
    assert bad.returncode == 2 and "out of range 1..4" in bad.stderr and bad.stderr.count("\n") == 1
    assert not (tmp_path / "bad").exists()  # refused before the output directory is created


def test_summarization_sweep_reports_rouge(mt_data, tmp_path):
    ckpt = train(mt_data, tmp_path / "bart", "bart", "bart_layerdrop_tiny",
                 ["--decoder-layerdrop", "0.2", "--max-update", "20"], user_dir=PLUGIN_DIR)
    rows, _ = sweep(ckpt, mt_data, tmp_path / "sweep", "--task", "summarization", "--depths", "2",
                    "--beam", "2", "--post-process", "none")
    assert len(rows) == 1
    for key in ("rouge1", "rouge2", "rougeL"):
        assert 0.0 <= float(rows[0][key]) <= 100.0
    n = int(rows[0]["sentences"])  # a degenerate (constant) output would show as 1 / n and 1.0
    assert n == SPLITS["test"]  # every test document scored (fairseq drops a last short batch unless told)
    distinct, top = float(rows[0]["distinct_outputs"]), float(rows[0]["top_output_share"])
    assert round(distinct * n) >= 1 and abs(distinct * n - round(distinct * n)) < 0.01
    assert 1 / n <= top <= 1.0 and (top == 1.0) == (round(distinct * n) == 1)
