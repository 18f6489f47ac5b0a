"""scripts/reproduce_common.sh: the queue of trainings and sweeps that scripts/reproduce_*.sh share
(workers, locks, early stopping across sittings, data prepared once), run with a fake fairseq-train."""
import fcntl
import json
import os
import subprocess
import sys

from tests.test_result_scripts import SCRIPTS, valid_line

FAKE_TRAIN = """#!/bin/bash
# fairseq-train that never stops by itself: one epoch per call of the loop, losses from $FAKE_LOSSES
[[ -n "$FAKE_ARGS" ]] && echo "$*" >> "$FAKE_ARGS"
while (($#)); do [[ $1 == --save-dir ]] && dir=$2; shift; done
echo "train $(basename "$dir")" >> "$FAKE_EVENTS"
e=$(grep -c "valid on" "$dir/train.log" 2>/dev/null)
for loss in $FAKE_LOSSES; do
  e=$((e + 1))
  echo "x | INFO | valid | epoch $(printf %03d $e) | valid on 'valid' subset | loss $loss | num_updates $((e * 10))"
  sleep 0.2
  echo "x | INFO | fairseq.checkpoint_utils | Saved checkpoint $dir/checkpoint_last.pt (epoch $e @ $((e * 10)) updates)"
  touch "$dir/checkpoint_last.pt"
  sleep 2  # the next epoch: the watcher polls every 0.1 s, each poll well under 2 s even on a busy machine
done
[[ -n "$FAKE_EXIT" ]] && exit 0  # as fairseq's own early stop
sleep 60
"""
FAKE_SWEEP = """#!/bin/bash
echo "sweep $(basename "$(dirname "$1")")" >> "$FAKE_EVENTS"
[[ -n "$FAKE_SWEEP_ARGS" ]] && echo "$*" >> "$FAKE_SWEEP_ARGS"
while (($#)); do [[ $1 == --out-dir ]] && echo '{"rows": []}' > "$2/sweep.json"; shift; done
"""


def queue_command(tmp_path, losses, jobs, **env):
    """bash running `jobs` after sourcing reproduce_common.sh, with a fake fairseq-train and sweep."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("fairseq-train", FAKE_TRAIN), ("fairseq-layerdrop-sweep", FAKE_SWEEP)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    if not (bin_dir / "python").exists():  # a wrapper, not a symlink: python finds its venv from its own path
        (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (bin_dir / "python").chmod(0o755)
    script = f"source {SCRIPTS}/reproduce_common.sh; OUT={tmp_path}/out; DATA_BIN=/nonexistent; {jobs}"
    return ["bash", "-c", script], dict(os.environ, BIN=str(bin_dir), FAKE_LOSSES=losses, PLATEAU_POLL="0.1",
                                        FAKE_EVENTS=str(tmp_path / "events"), **env)


def run_queue(tmp_path, losses, jobs):
    cmd, env = queue_command(tmp_path, losses, jobs)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_two_workers_train_and_sweep_each_model_once_as_soon_as_it_is_trained(tmp_path):
    jobs = "TRAIN=(--patience 3); EVAL=(--task lm); model a A all; model b B 4; model c C all; sweep_rest"
    workers = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for cmd, env in (queue_command(tmp_path, "9.0", jobs, FAKE_EXIT="1", WORKER=str(i)) for i in (1, 2))]
    logs = [w.communicate(timeout=120)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    events = (tmp_path / "events").read_text().splitlines()
    assert sorted(events) == ["sweep a", "sweep b", "sweep c", "train a", "train b", "train c"], events
    assert events.index("train c") > min(events.index("sweep a"), events.index("sweep b"))  # not all at the end
    out = tmp_path / "out"
    assert all((out / kind / n / ".done").exists() for kind in ("ckpt", "sweeps") for n in "abc")


PRE_JOBS = "TRAIN=(--patience 3 --task ft); PRE_TRAIN=(--patience 2 --task pre); PRE_BIN=/pre; EVAL=(--task x); "


def run_pretraining_queue(tmp_path, jobs):
    """Run PRE_JOBS + jobs with trainings that stop after one epoch: the events and each training's arguments."""
    cmd, env = queue_command(tmp_path, "9.0", PRE_JOBS + jobs, FAKE_EXIT="1", FAKE_ARGS=str(tmp_path / "args"))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    args = [line.split() for line in (tmp_path / "args").read_text().splitlines()]
    return (tmp_path / "events").read_text().splitlines(), args


def test_a_pretrained_model_pretrains_on_its_own_data_then_fine_tunes_from_the_best_checkpoint(tmp_path):
    events, (pre, fine) = run_pretraining_queue(tmp_path, "FINETUNE=(--lr 7); pretrained_model a A all --layers 5; sweep_rest")
    assert events == ["train a_pre", "train a", "sweep a"]
    out = tmp_path / "out"
    assert pre[0] == "/pre" and pre[pre.index("--task") + 1] == "pre" and pre[-2:] == ["--layers", "5"]
    assert fine[0] == "/nonexistent" and fine[fine.index("--task") + 1] == "ft"  # the summarization data
    assert fine[fine.index("--finetune-from-model") + 1] == f"{out}/ckpt/a_pre/checkpoint_best.pt"
    assert fine[-4:] == ["--lr", "7", "--layers", "5"]  # the fine-tuning options, then the model's own


def test_a_model_with_pre_from_fine_tunes_from_the_other_models_pretraining_without_its_own(tmp_path):
    jobs = "pretrained_model a A all --p 0; PRE_FROM=a pretrained_model b B all --p 5; sweep_rest"
    events, args = run_pretraining_queue(tmp_path, jobs)
    assert events == ["train a_pre", "train a", "sweep a", "train b", "sweep b"]
    fine_b = args[-1]
    assert fine_b[fine_b.index("--finetune-from-model") + 1] == f"{tmp_path}/out/ckpt/a_pre/checkpoint_best.pt"
    assert fine_b[-2:] == ["--p", "5"] and not (tmp_path / "out/ckpt/b_pre").exists()


def test_pre_updates_caps_that_models_pretraining_only(tmp_path):
    jobs = "PRE_UPDATES=60 pretrained_model a A all --p 0; pretrained_model b B all --p 5; sweep_rest"
    events, (pre_a, fine_a, pre_b, fine_b) = run_pretraining_queue(tmp_path, jobs)
    assert events == ["train a_pre", "train a", "sweep a", "train b_pre", "train b", "sweep b"]
    assert pre_a[-4:] == ["--max-update", "60", "--p", "0"]  # after PRE_TRAIN's options: it wins
    assert "--max-update" not in fine_a + pre_b + fine_b


def commit_runs(res, names, sweeps):
    """RESULTS dir RES holding NAMES as committed runs (a finished curve each) and the sweeps SWEEPS
    (file stems, e.g. a_search), each a row tagged with its stem."""
    (res / "curves").mkdir(parents=True, exist_ok=True)
    for name in names:
        (res / "curves" / f"{name}.json").write_text(f'{{"name": "{name}", "finished": true, "points": []}}')
    for stem in sweeps:
        (res / f"{stem}.json").write_text(json.dumps({"rows": [{"depth": 1, "tag": stem}]}))


def test_pretrained_runs_committed_from_another_machine_are_neither_pretrained_nor_trained_again(tmp_path):
    res = tmp_path / "res"
    commit_runs(res, "ab", "ab")  # no pretraining is ever committed: it has no sweep
    jobs = f"RESULTS={res}; {PRE_JOBS}pretrained_model a A all; PRE_FROM=a pretrained_model b B all; sweep_rest; echo went-on"
    done = run_queue(tmp_path, "9.0", jobs)
    assert done.returncode == 0 and done.stdout.strip() == "went-on", done.stderr
    assert not (tmp_path / "events").exists()  # no pretraining, training or sweep here
    assert all((tmp_path / "out" / "sweeps" / n / "sweep.json").exists() for n in "ab")


def test_only_trains_and_sweeps_the_runs_it_names_and_still_copies_the_committed_ones(tmp_path):
    res = tmp_path / "res"
    commit_runs(res, ["a"], ["a"])
    jobs = (f"RESULTS={res}; {PRE_JOBS}model a A all; model b B all; model c C all; pretrained_model d D all; "
            "search_sweep b B; search_sweep c C; alpha c 1 first; sweep_rest; echo went-on")
    cmd, env = queue_command(tmp_path, "9.0", jobs, FAKE_EXIT="1", ONLY="x,b")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "went-on", done.stderr
    assert (tmp_path / "events").read_text().splitlines() == ["train b", "sweep b", "sweep b"]  # b, then b:search
    out = tmp_path / "out"
    assert (out / "sweeps" / "a" / "sweep.json").exists() and (out / "sweeps" / "b_search" / ".done").exists()
    assert not any((out / "ckpt" / n).exists() for n in ("c", "d", "d_pre")) and not (out / "alpha" / "c.json").exists()
    for notice in ("train c: not in ONLY", "sweep c search: not in ONLY", "d: not in ONLY"):
        assert notice in done.stderr


def test_a_model_with_pre_from_waits_for_a_pretraining_another_worker_holds(tmp_path):
    (tmp_path / "out/ckpt/a_pre").mkdir(parents=True)
    holder = open(tmp_path / "out/ckpt/a_pre/.lock", "w")
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another worker pretrains a
    jobs = "TRAIN=(--task ft); PRE_TRAIN=(--task pre); PRE_BIN=/pre; PRE_FROM=a pretrained_model b B all"
    try:
        done = run_queue(tmp_path, "9.0", jobs)
    finally:
        holder.close()
    assert done.returncode == 0 and "b: a_pre is not pretrained yet" in done.stderr, done.stderr
    assert not (tmp_path / "events").exists()  # nothing trained: neither a_pre again nor b


def test_a_pre_from_that_names_no_pretraining_stops_with_one_line_and_exit_2(tmp_path):
    done = run_queue(tmp_path, "9.0", "TRAIN=(); PRE_TRAIN=(); PRE_BIN=/pre; PRE_FROM=typo pretrained_model b B all")
    assert done.returncode == 2 and done.stderr.strip().endswith(f"typo_pre: never trained here (no {tmp_path}/out/ckpt/typo_pre)")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "events").exists()


def test_train_stops_a_resumed_run_at_the_plateau_of_all_its_sittings(tmp_path):
    ckpt = tmp_path / "out" / "ckpt" / "r"
    ckpt.mkdir(parents=True)
    first = [valid_line(e, 10 * e, x) for e, x in enumerate([9.0, 8.0, 8.1], 1)]  # a sitting stopped by hand
    (ckpt / "train.log").write_text("\n".join(first) + "\n")
    # whole log: best 8.0 at epoch 2, then 8.1, 8.05, 8.2: three worse epochs, the plateau at epoch 5.
    # fairseq alone would take 8.05 as its best after the resume and go on to 7.0 at epoch 7
    out = run_queue(tmp_path, "8.05 8.2 8.3 7.0", "train r --patience 3")
    assert out.returncode == 0, out.stderr
    assert "plateau across sittings" in out.stderr and (ckpt / ".done").exists()
    log = (ckpt / "train.log").read_text()
    assert "epoch 005" in log and "epoch 006" not in log  # the epoch an unbroken run stops at
    assert log.rstrip().endswith("(epoch 5 @ 50 updates)")  # after that epoch's checkpoint was saved
    curve = json.loads((tmp_path / "out" / "curves" / "r.json").read_text())
    assert curve["early_stop"] is True and curve["finished"] is True
    (ckpt / ".done").unlink()
    out = run_queue(tmp_path, "7.0", "train r --patience 3")  # already on its plateau: not started again
    assert out.returncode == 0 and "on its plateau in an earlier sitting" in out.stderr, out.stderr
    assert (ckpt / "train.log").read_text() == log and (ckpt / ".done").exists()


def test_a_stop_file_ends_the_training_after_the_next_saved_epoch_and_names_the_reason(tmp_path):
    ckpt = tmp_path / "out" / "ckpt" / "r"
    ckpt.mkdir(parents=True)
    (ckpt / "train.log").write_text(valid_line(1, 10, 9.0) + "\n")
    (ckpt / "STOP").write_text("gains 0.001 per epoch\n")  # written while it trains: still improving
    out = run_queue(tmp_path, "8.0 7.0 6.0", "train r --patience 3")
    assert out.returncode == 0, out.stderr
    assert "stopped by hand: gains 0.001 per epoch" in out.stderr and (ckpt / ".done").exists()
    log = (ckpt / "train.log").read_text()
    assert "epoch 002" in log and "epoch 003" not in log  # the first epoch saved after the file
    assert log.rstrip().endswith("(epoch 2 @ 20 updates)")
    curve = json.loads((tmp_path / "out" / "curves" / "r.json").read_text())
    assert curve["stopped_by_hand"] == "gains 0.001 per epoch" and curve["early_stop"] is False
    (ckpt / ".done").unlink()
    (ckpt / "checkpoint_best.pt").touch()
    out = run_queue(tmp_path, "5.0", "train r --patience 3")  # a stopped run is not started again
    assert out.returncode == 0 and "stopped by hand in an earlier sitting" in out.stderr, out.stderr
    assert (ckpt / "train.log").read_text() == log and (ckpt / ".done").exists()
    res = tmp_path / "res"
    out = run_queue(tmp_path, "", f"RESULTS={res}; TRAIN=(--patience 3); publish_curves")  # the reason is published
    assert out.returncode == 0, out.stderr
    assert json.loads((res / "curves" / "r.json").read_text())["stopped_by_hand"] == "gains 0.001 per epoch"


def hold_lock(path):
    """Hold PATH's flock as another worker would (release: close the returned file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "w")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


def test_a_worker_leaves_a_model_another_worker_trains_and_does_not_wait_for_it(tmp_path):
    """Its trainer sweeps it next, so this worker goes on (and its slot is free) at once."""
    held = hold_lock(tmp_path / "out" / "ckpt" / "a" / ".lock")
    try:
        out = run_queue(tmp_path, "9.0", "TRAIN=(--patience 3); EVAL=(--task lm); model a A all; model b B all; "
                                          "sweep_rest; sweep a:search A2 all; echo finished")
    finally:
        held.close()
    assert out.returncode == 0 and out.stdout.strip() == "finished", out.stderr
    assert "train a: another worker has it" in out.stderr
    assert "sweep a search: a is training in another worker, which sweeps it next" in out.stderr
    events = (tmp_path / "events").read_text().splitlines()
    assert sorted(events) == ["sweep b", "train b"], events  # b was free: trained and swept
    assert not (tmp_path / "out" / "sweeps" / "a" / ".done").exists()


def test_a_run_committed_from_another_machine_is_not_swept_again(tmp_path):
    """Its committed sweeps are copied, tag included; a sweep never committed is skipped with a notice
    (no checkpoint here), and the worker goes on."""
    res = tmp_path / "res"
    commit_runs(res, ["a"], ["a", "a_search"])
    jobs = f"RESULTS={res}; EVAL=(--task lm); sweep a A all; sweep a:search A2 all; sweep a:learned A3 all; echo went-on"
    out = run_queue(tmp_path, "", jobs)
    assert out.returncode == 0 and out.stdout.strip() == "went-on", out.stderr
    assert not (tmp_path / "events").exists()  # nothing swept here
    sweeps = tmp_path / "out" / "sweeps"
    for name in ("a", "a_search"):
        assert json.loads((sweeps / name / "sweep.json").read_text())["rows"][0]["tag"] == name
    assert "sweep a learned: a was trained on another machine" in out.stderr
    assert not (sweeps / "a_learned" / ".done").exists()


def test_search_sweep_prunes_by_search_on_the_data_valid_subset_into_its_own_sweep(tmp_path):
    (tmp_path / "out" / "ckpt" / "a").mkdir(parents=True)
    (tmp_path / "out" / "ckpt" / "a" / ".done").touch()
    cmd, env = queue_command(tmp_path, "", "DATA_BIN=/bin-a; EVAL=(--task x); search_sweep a 'p=0'",
                             FAKE_SWEEP_ARGS=str(tmp_path / "sweep_args"))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "sweep_args").read_text()
    assert "--label p=0 search-on-valid" in args and "--task x --strategy search-on-valid --prune-args --data /bin-a" in args
    assert (tmp_path / "out" / "sweeps" / "a_search" / ".done").exists()


def test_a_sweep_of_a_training_that_failed_stops_the_worker(tmp_path):
    (tmp_path / "out" / "ckpt" / "a").mkdir(parents=True)  # no .done and nobody holds the lock
    out = run_queue(tmp_path, "9.0", "EVAL=(--task lm); sweep a A all; echo went-on")
    assert out.returncode == 1 and "training a did not finish" in out.stderr and "went-on" not in out.stdout
    assert not (tmp_path / "events").exists()


def test_once_prepares_data_once_for_workers_that_start_together_and_redoes_a_failed_step(tmp_path):
    step = 'once data bash -c "echo prepared >> $FAKE_EVENTS; sleep 1"'
    workers = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for cmd, env in (queue_command(tmp_path, "9.0", step) for _ in range(2))]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    assert (tmp_path / "events").read_text().splitlines() == ["prepared"]
    assert (tmp_path / "out" / ".data.done").exists()
    out = run_queue(tmp_path, "9.0", "once other false; echo went-on")  # a failed step: no marker, stops
    assert out.returncode != 0 and "went-on" not in out.stdout
    assert not (tmp_path / "out" / ".other.done").exists()
    out = run_queue(tmp_path, "9.0", 'once other bash -c "echo again >> $FAKE_EVENTS"')
    assert out.returncode == 0 and (tmp_path / "events").read_text().splitlines() == ["prepared", "again"]


def test_alpha_waits_for_nothing_and_needs_the_checkpoint(tmp_path):
    """alpha leaves a model another worker trains to that worker, and a model trained elsewhere
    (committed results, no checkpoint on this machine) is skipped with a notice, not an error."""
    held = hold_lock(tmp_path / "out" / "ckpt" / "a" / ".lock")
    try:
        out = run_queue(tmp_path, "9.0", "alpha a 1,2 first; echo went-on")
    finally:
        held.close()
    assert out.returncode == 0 and out.stdout.strip() == "went-on" and "alpha a" not in out.stderr, out.stderr
    (tmp_path / "out" / "ckpt" / "a" / ".done").touch()
    out = run_queue(tmp_path, "9.0", "alpha a 1,2 first; echo went-on")
    assert out.returncode == 0 and "alpha a: no checkpoint here" in out.stderr and out.stdout.strip() == "went-on"
    assert not (tmp_path / "out" / "alpha" / "a.json").exists()


def test_alpha_measures_a_trained_model_once_with_its_settings(tmp_path):
    """The measurement gets the depths, strategies and number of new tokens (32 unless given), and
    runs once per model: a second call finds its JSON."""
    for name in ("a", "b"):
        ckpt = tmp_path / "out" / "ckpt" / name
        ckpt.mkdir(parents=True)
        (ckpt / ".done").touch()
        (ckpt / "checkpoint_best.pt").touch()
    (tmp_path / "bin").mkdir()
    fake = '#!/bin/sh\necho "$@" >> "$FAKE_EVENTS"\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && echo {} > "$2"; shift; done\n'
    (tmp_path / "bin" / "python").write_text(fake)
    (tmp_path / "bin" / "python").chmod(0o755)
    out = run_queue(tmp_path, "9.0", "alpha a 1,2 first 64; alpha a 1,2 first 64; alpha b 3 every-other,first")
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "events").read_text().splitlines()
    assert len(calls) == 2, calls
    assert "ckpt/a/checkpoint_best.pt" in calls[0] and "--depths 1,2 --strategies first" in calls[0]
    assert "--new-tokens 64" in calls[0] and "--new-tokens 32" in calls[1] and "--strategies every-other,first" in calls[1]
    assert (tmp_path / "out" / "alpha" / "a.json").read_text().strip() == "{}"


def test_publish_copies_finished_runs_and_snapshots_running_ones(tmp_path):
    res = tmp_path / "res"
    jobs = "TRAIN=(--patience 3); EVAL=(--task lm); model a A all"
    assert run_queue(tmp_path, "9.0 8.0", jobs + "; sweep a:search A2 all").returncode == 0
    running = tmp_path / "out" / "ckpt" / "b"
    running.mkdir()
    (running / "train.log").write_text(valid_line(1, 10, 7.5) + "\n")  # still training: no .done
    (res / "curves").mkdir(parents=True)
    (res / "lead.json").write_text('{"scores": {}}')  # not a sweep: left out of the plot and table
    publish = f'RESULTS={res}; render() {{ echo "render $*" >> $FAKE_EVENTS; }}; {jobs.split(";")[0]}; publish "T"'
    out = run_queue(tmp_path, "", publish)
    assert out.returncode == 0, out.stderr
    assert json.loads((res / "a.json").read_text()) == {"rows": []} and (res / "a_search.json").exists()
    curve_a, curve_b = (json.loads((res / "curves" / f"{n}.json").read_text()) for n in "ab")
    assert curve_a["finished"] is True and [p["loss"] for p in curve_a["points"]] == [9.0, 8.0]
    assert curve_b["finished"] is False and [p["loss"] for p in curve_b["points"]] == [7.5]
    render = (tmp_path / "events").read_text().splitlines()[-1]
    assert render == f"render {res} {res}/curves T {res}/a.json {res}/a_search.json", render


def test_publish_before_any_sweep_draws_the_curves_only(tmp_path):
    res, running = tmp_path / "res", tmp_path / "out" / "ckpt" / "b"
    running.mkdir(parents=True)
    (running / "train.log").write_text("\n".join(valid_line(e, 10 * e, x) for e, x in ((1, 7.5), (2, 7.0))) + "\n")
    out = run_queue(tmp_path, "", f'RESULTS={res}; TRAIN=(--patience 3); publish "T"')
    assert out.returncode == 0, out.stderr
    assert (res / "valid_curves.png").stat().st_size > 0 and "| b |" in (res / "training.md").read_text()
    assert not (res / "depth_sweep.png").exists() and not (res / "table.md").exists()


def test_publish_runs_the_scripts_own_publisher_which_needs_no_train_options(tmp_path):
    res, running = tmp_path / "res", tmp_path / "out" / "ckpt" / "m"
    running.mkdir(parents=True)
    (running / "train.log").write_text(valid_line(1, 10, 7.5) + "\n")
    mine = 'mine() { publish_curves; echo "mine $1" >> $FAKE_EVENTS; }'  # TRAIN unset, as in reproduce_roberta.sh
    out = run_queue(tmp_path, "", f'RESULTS={res}; {mine}; PUBLISH=1 run_all "T" report_x mine')
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "events").read_text().splitlines() == ["mine T"]
    assert json.loads((res / "curves" / "m.json").read_text())["finished"] is False
    final = '{"name": "m", "finished": true, "points": []}'  # published by a machine where m finished
    (res / "curves" / "m.json").write_text(final)
    assert run_queue(tmp_path, "", f'RESULTS={res}; {mine}; PUBLISH=1 run_all "T" report_x mine').returncode == 0
    assert (res / "curves" / "m.json").read_text() == final  # not replaced by this machine's snapshot
    out = run_queue(tmp_path, "", f'RESULTS={res}; PUBLISH=1 run_all "T" report_x')  # own report, no publisher
    assert out.returncode == 2 and "PUBLISH: not for this script" in out.stderr


def test_beats_baseline_compares_the_full_depth_score_with_the_best_baseline(tmp_path):
    sweep = tmp_path / "out" / "sweeps" / "a"
    sweep.mkdir(parents=True)
    # the full depth (6) counts, not the best score of the sweep
    rows = [{"depth": 1, "rougeL": 40.0}, {"depth": 6, "rougeL": 27.5}, {"depth": 3, "rougeL": 20.0}]
    (sweep / "sweep.json").write_text(json.dumps({"rows": rows}))
    lead = tmp_path / "lead.json"
    for best, status, verdict in ((27.13, 0, "above"), (27.5, 1, "not above"), (30.0, 1, "not above")):
        lead.write_text(json.dumps({"scores": {"lead-7": {"rougeL": 24.71}, "lead-12": {"rougeL": best}}}))
        out = run_queue(tmp_path, "", f"beats_baseline a {lead} rougeL")
        assert out.returncode == status, out.stderr
        assert f"a: full-depth rougeL 27.50, {verdict} the best baseline (lead-12: {best:.2f})" in out.stderr
    out = run_queue(tmp_path, "", f"beats_baseline b {lead} rougeL")
    assert out.returncode == 1 and "b is not swept yet" in out.stderr
