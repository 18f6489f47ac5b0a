"""scripts/curves.py (validation curves from fairseq-train logs) and results_table.py's seed merge."""
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils import load_module

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name):
    return load_module(SCRIPTS / f"{name}.py")


curves = load_script("curves")
results_table = load_script("results_table")

VALID = ("2026-11-27 22:33:45 | INFO | valid | epoch {e:03d} | valid on 'valid' subset | loss {loss} | "
         "nll_loss {nll} | ppl {ppl} | wps 6606.3 | wpb 2037.2 | bsz 15.9 | num_updates {u}{best}")


def valid_line(e, u, loss, best=None):
    return VALID.format(e=e, u=u, loss=loss, nll=loss - 0.5, ppl=2 ** (loss - 0.5),
                        best="" if best is None else f" | best_loss {best}")


def test_parse_log_keeps_one_point_per_update_and_detects_early_stop():
    sitting1 = [valid_line(1, 246, 8.9), valid_line(2, 492, 8.2, best=8.2),
                "2026-11-27 | INFO | train_inner | epoch 003:    100 / 246 loss=8.1, num_updates=592"]
    # a resumed run validates epoch 2 again from checkpoint_last: keep the later point once
    sitting2 = [valid_line(2, 492, 8.25), valid_line(3, 738, 8.3),
                "2026-11-27 | INFO | fairseq_cli.train | early stop since valid performance hasn't "
                "improved for last 3 runs"]
    run = curves.parse_log("\n".join(sitting1 + sitting2))
    assert [p["num_updates"] for p in run["points"]] == [246, 492, 738]
    assert [p["loss"] for p in run["points"]] == [8.9, 8.25, 8.3]
    assert run["points"][0]["epoch"] == 1 and run["points"][0]["nll_loss"] == pytest.approx(8.4)
    assert run["early_stop"] is True
    summary = curves.summarise(dict(run, name="x"))
    assert (summary["best_updates"], summary["best_loss"], summary["stopped"]) == (492, 8.25, "early stop (plateau)")


def test_cap_reached_and_empty_log_in_summary_table(tmp_path):
    log = tmp_path / "lm" / "train.log"
    log.parent.mkdir()
    def at(when, line):
        return line.replace("2026-11-27 22:33:45", f"2026-11-27 {when}")

    start = "2026-11-27 22:33:45 | INFO | fairseq_cli.train | {'_name': None}"
    # two sittings (the second resumed 2 h later): 60 s + 120 s of logged time, the pause not counted
    log.write_text("\n".join([at("10:00:00", start), at("10:01:00", valid_line(1, 100, 9.0)), "  (a model line)",
                              at("12:00:00", start), at("12:02:00", valid_line(2, 200, 8.0))]) + "\n")
    out = tmp_path / "curves" / "lm.json"
    assert curves.main([str(log), "-o", str(out)]) == 0
    run = json.loads(out.read_text())
    assert run["name"] == "lm" and run["train_seconds"] == 180 and run["early_stop"] is False
    empty = {"name": "new", "points": [], "early_stop": False}
    table = curves.summary_table([run, empty]).splitlines()
    assert table[2] == "| lm | 200 | 200 | 8.000 | 181.02 | cap reached | 3 min |"
    assert table[3].startswith("| new | 0 |") and "no validation yet" in table[3]


def test_a_run_stopped_by_hand_says_so_and_why_unless_it_had_reached_its_plateau(tmp_path):
    log = tmp_path / "sum" / "train.log"
    log.parent.mkdir()
    log.write_text("\n".join([valid_line(1, 100, 9.0), valid_line(2, 200, 8.0)]) + "\n")
    out = tmp_path / "sum.json"
    assert curves.main([str(log), "-o", str(out), "--stopped-by-hand", "ROUGE-L 13.6\n vs  28.2"]) == 0
    run = json.loads(out.read_text())
    assert run["stopped_by_hand"] == "ROUGE-L 13.6 vs 28.2"
    assert "| by hand: ROUGE-L 13.6 vs 28.2 |" in curves.summary_table([run])
    assert curves.summarise(dict(run, early_stop=True))["stopped"] == "early stop (plateau)"


def test_plot_writes_png(tmp_path):
    run = {"name": "a", "points": [{"num_updates": 1, "loss": 3.0}, {"num_updates": 2, "loss": 2.0}]}
    curves.plot([run], str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_merge_seeds_pivot_shows_mean_and_each_seed():
    rows = [{"label": "4L (seed 2)", "depth": 4, "ppl": 110.0, "params": 1},
            {"label": "4L (seed 1)", "depth": 4, "ppl": 100.0, "params": 1},
            {"label": "8L p=0", "depth": 4, "ppl": 150.0, "params": 1},
            {"label": "8L p=0", "depth": 8, "ppl": 90.0, "params": 2}]
    merged = results_table.merge_seeds(rows, "ppl")
    cell = {(r["label"], r["depth"]): r["ppl"] for r in merged}
    assert cell == {("4L", 4): "105.00 (100.00 / 110.00)", ("8L p=0", 4): 150.0, ("8L p=0", 8): 90.0}
    table = results_table.pivot(merged, "ppl").splitlines()
    assert table[0].startswith("| layers kept | 4L | 8L p=0 |")
    assert table[2].startswith("| 4 | 105.00 (100.00 / 110.00) | 150.00 |")


def test_best_is_the_last_of_equal_minima_like_fairseqs_checkpoint_best():
    run = curves.parse_log("\n".join([valid_line(1, 10, 7.5), valid_line(2, 20, 7.42),
                                      valid_line(3, 30, 7.43), valid_line(4, 40, 7.42)]))
    assert curves.summarise(dict(run, name="x"))["best_updates"] == 40


def test_running_snapshot_is_not_called_cap_reached(tmp_path):
    log = tmp_path / "lm" / "train.log"
    log.parent.mkdir()
    log.write_text(valid_line(1, 100, 9.0) + "\n")
    out = tmp_path / "lm.json"
    assert curves.main([str(log), "-o", str(out), "--running"]) == 0
    assert curves.summarise(json.loads(out.read_text()))["stopped"] == "still training"


@pytest.mark.parametrize("make,message", [
    (lambda d: ["--summary", str(d / "missing.json")], "missing.json"),
    (lambda d: (d / "bad.json").write_text("{") and ["--summary", str(d / "bad.json")], "bad.json"),
    (lambda d: [str(d / "no.log"), "-o", str(d / "o.json")], "no.log")])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make, message):
    with pytest.raises(SystemExit) as exit_info:
        curves.main(make(tmp_path))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "error:" in err and not (tmp_path / "o.json").exists()
    assert message in err, err  # the message names the file at fault


def test_stalled_takes_every_sitting_as_one_run(tmp_path):
    """fairseq restarts its patience count at a resume; --stalled applies --patience 3 to the whole log."""
    log = tmp_path / "train.log"
    losses = [9.0, 8.0, 8.1, 8.2]  # best at epoch 2, then two worse epochs; a resume comes next
    log.write_text("\n".join(valid_line(e, 100 * e, x) for e, x in enumerate(losses, 1)) + "\n")
    assert curves.main([str(log), "--stalled", "3"]) == 1
    with log.open("a") as f:  # second sitting: fairseq would take 8.05 as its new best and go on
        f.write(valid_line(5, 500, 8.05) + "\n")
    assert curves.main([str(log), "--stalled", "3"]) == 0
    assert curves.main([str(log), "--stalled", "4"]) == 1
    assert curves.stop_index([{"loss": x} for x in (5, 4, 4, 4, 4)], 3) == 4  # a tie is no improvement
    out = tmp_path / "c.json"
    assert curves.main([str(log), "-o", str(out), "--patience", "3"]) == 0
    assert json.loads(out.read_text())["early_stop"] is True


@pytest.mark.parametrize("rows,message", [
    ('"abc"', "'rows' is not a list"), ("[1]", "row 0 needs a text 'label' and an integer 'depth'"),
    ('[{"label": "a", "depth": "2"}]', "row 0 needs a text 'label'"),
    ('[{"label": "a", "depth": 2, "ppl": "7"}]', "row 0: ppl is not a finite number"),
    ('[{"label": "a", "depth": 2, "ppl": NaN}]', "NaN is not a number JSON allows")])
def test_results_table_refuses_malformed_rows_in_one_line(rows, message, tmp_path):
    bad = tmp_path / "sweep.json"
    bad.write_text('{"rows": %s}' % rows)
    out = subprocess.run([sys.executable, str(SCRIPTS / "results_table.py"), str(bad), "--pivot", "ppl"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_lead_baseline_coverage_counts_summary_words_found_in_the_document_and_its_lead():
    lead = load_script("lead_baseline")
    docs = ["Alpha beta gamma " + " ".join(f"w{i}" for i in range(20)) + " delta", "one two"]
    refs = ["ALPHA, delta and zeta", "two"]  # alpha: first words; delta: past word 12; and, zeta: absent
    cov = lead.coverage(docs, refs)
    assert cov == {"summary_words": 5, "in_document": 60.0, "in_first_12_words": 40.0}
    assert lead.coverage([], []) == {"summary_words": 0, "in_document": 0.0, "in_first_12_words": 0.0}
    assert lead.baselines(docs, refs)["coverage"] == cov


def test_lead_baseline_refuses_a_missing_output_directory_and_a_broken_gz(tmp_path):
    (tmp_path / "test.doc.gz").write_bytes(gzip.compress(b"a document\n")[:-8])  # cut: no gzip trailer
    (tmp_path / "test.sum").write_text("a summary\n")
    script = [sys.executable, str(SCRIPTS / "lead_baseline.py"), str(tmp_path)]
    missing = subprocess.run([*script, "-o", str(tmp_path / "no" / "lead.json")], capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and "no directory for -o" in missing.stderr and missing.stderr.count("\n") == 1
    broken = subprocess.run(script, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 2 and "EOFError" in broken.stderr and broken.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.doc.gz", "test.sum"]


@pytest.mark.parametrize("argv,message", [(["--stalled", "0", "x.log"], "argument --stalled: expected a positive integer"),
                                          (["--patience", "-1", "x.log"], "argument --patience: expected a positive")])
def test_curves_patience_must_be_positive(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        curves.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err
