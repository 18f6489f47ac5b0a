"""scripts/reproduce_all.sh: every worker goes through the queues in order, then each queue reports; bad
requests exit 2."""
import shutil
import subprocess

import pytest

from tests.test_result_scripts import SCRIPTS

FAKE_QUEUE = """#!/bin/bash
echo "${WORKER:-report/$JOBS} $(basename "$0" .sh)" >> "$EVENTS"
[[ $(basename "$0") != reproduce_bad.sh ]]
"""


@pytest.fixture
def scripts(tmp_path):
    """reproduce_all.sh beside fake queues that log their worker (reproduce_bad.sh also fails)."""
    shutil.copy(SCRIPTS / "reproduce_all.sh", tmp_path)
    for task in ("mt", "lm", "sum", "bad", "speculative_mt", "common"):  # reproduce_all.sh is the real one
        (tmp_path / f"reproduce_{task}.sh").write_text(FAKE_QUEUE)
    return tmp_path


def run(scripts, *tasks, jobs="2"):
    env = {"PATH": "/usr/bin:/bin", "JOBS": jobs, "EVENTS": str(scripts / "events")}
    return subprocess.run(["bash", str(scripts / "reproduce_all.sh"), *tasks], capture_output=True, text=True,
                          env=env, timeout=60)


def events(scripts):
    return (scripts / "events").read_text().split("\n")[:-1]


def test_each_worker_runs_the_queues_in_order(scripts):
    out = run(scripts)
    assert out.returncode == 0, out.stderr
    lines = events(scripts)
    for worker in ("1", "2"):
        assert [line.split()[1] for line in lines if line.split()[0] == worker] == ["reproduce_mt", "reproduce_lm",
                                                                                   "reproduce_sum"]
    # then each queue once with one worker and no WORKER: it writes its report
    assert lines[6:] == ["report/1 reproduce_mt", "report/1 reproduce_lm", "report/1 reproduce_sum"]
    assert len(lines) == 9


def test_queue_names_may_hold_digits_and_underscores(scripts):
    assert run(scripts, "speculative_mt", jobs="1").returncode == 0
    assert events(scripts) == ["1 reproduce_speculative_mt", "report/1 reproduce_speculative_mt"]


def test_a_failed_queue_is_logged_and_the_worker_goes_on(scripts):
    out = run(scripts, "bad", "lm", jobs="1")
    assert out.returncode == 0
    assert events(scripts) == ["1 reproduce_bad", "1 reproduce_lm", "report/1 reproduce_bad", "report/1 reproduce_lm"]
    assert "queue bad failed (exit 1); next queue" in out.stderr and "report of bad failed (exit 1)" in out.stderr


@pytest.mark.parametrize("tasks,jobs,message", [
    (("mt", "nope"), "2", "no queue 'nope' (scripts/reproduce_nope.sh)"),
    (("../mt",), "2", "no queue '../mt'"),
    (("mt/",), "2", "no queue 'mt/'"),
    (("common",), "2", "no queue 'common'"),
    (("all",), "2", "no queue 'all'"),
    (("mt",), "0", "JOBS must be a number of workers from 1 to 99, got '0'"),
    (("mt",), "two", "JOBS must be a number of workers from 1 to 99, got 'two'"),
])
def test_bad_requests_are_one_line_exit_2_and_run_nothing(scripts, tasks, jobs, message):
    out = run(scripts, *tasks, jobs=jobs)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("reproduce_all.sh: error: ") and message in out.stderr
    assert not (scripts / "events").exists()


def test_a_killed_worker_means_no_reports(scripts):
    (scripts / "reproduce_lm.sh").write_text('#!/bin/bash\necho "${WORKER:-report/$JOBS} lm" >> "$EVENTS"\n'
                                             '[[ -z $WORKER ]] || kill -9 $PPID\n')
    out = run(scripts, "lm", jobs="1")
    assert out.returncode == 1 and "a worker was stopped; no reports" in out.stderr
    assert events(scripts) == ["1 lm"]
