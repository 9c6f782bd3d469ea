"""Runners that die, builds that are interrupted, tests that leave processes behind: medusa
ends, says what happened, loses no file, and leaves nothing running."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil

from helpers import (
    check_consistent,
    read_events,
    run_medusa,
    serial_outcomes,
    start_medusa,
    started,
    stop_medusa,
    wait_for,
    write_project,
)

OK_FILE = "import time\n\ndef test_ok():\n    time.sleep(0.05)\n"


def _nothing_lost(run) -> None:
    """Every file found is, at the end, reported complete or listed as not run."""
    found = next(e["files"] for e in run.events if e["event"] == "worker_begin")
    completed = {e["file"] for e in run.events if e["event"] == "file_complete"}
    not_run = {item["file"] for item in run.finished["not_run"]}
    assert completed | not_run == set(found), run
    assert not completed & not_run, run


def test_runner_that_exits_in_the_middle_of_a_file(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_crash.py": """
            import os

            def test_before():
                pass

            def test_crash():
                os._exit(7)

            def test_after():
                pass
        """,
        **{f"tests/test_ok{n}.py": OK_FILE for n in range(4)},
    })
    run = run_medusa(project, timeout=60)
    assert run.exit_code == 1, run
    _nothing_lost(run)
    assert run.finished["not_run"] == [], run
    died = [e for e in run.events if e["event"] == "runner_died"]
    assert len(died) == 1 and died[0]["file"] == "tests/test_crash.py", run
    assert died[0]["test"] == "tests/test_crash.py::test_crash", run
    outcomes = dict(run.outcomes)
    # what it had sent is kept, the test it was running is an error that says how it
    # died, and the rest of the file ran on another runner
    assert outcomes["tests/test_crash.py::test_before"] == "passed"
    assert outcomes["tests/test_crash.py::test_crash"] == "error"
    assert outcomes["tests/test_crash.py::test_after"] == "passed"
    error = next(r for r in run.results if r["test"] == "tests/test_crash.py::test_crash")
    assert "exit code 7" in error["message"] and "local/" in error["message"], error
    for n in range(4):
        assert outcomes[f"tests/test_ok{n}.py::test_ok"] == "passed"
    assert "tests/test_crash.py" in run.stdout and "exit code 7" in run.stdout
    assert len(run.outcomes) == 7, run


def test_runner_killed_by_a_signal(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_segv.py": """
            import ctypes

            def test_segfault():
                ctypes.string_at(0)
        """,
        **{f"tests/test_ok{n}.py": OK_FILE for n in range(3)},
    })
    run = run_medusa(project, timeout=60)
    assert run.exit_code == 1, run
    _nothing_lost(run)
    assert run.finished["not_run"] == [], run
    error = next(r for r in run.results if r["test"] == "tests/test_segv.py::test_segfault")
    assert error["outcome"] == "error" and "SIGSEGV" in error["message"], error
    assert sum(1 for _, o in run.outcomes if o == "passed") == 3


def test_a_dead_runner_is_replaced(tmp_path):
    """DESIGN.md: the worker "watches its runners ... and replaces a runner that dies".
    With one runner, the files after the crash still run."""
    project = write_project(tmp_path / "p", {
        "tests/test_a_crash.py": "import os\n\ndef test_crash():\n    os._exit(1)\n",
        **{f"tests/test_b{n}.py": OK_FILE for n in range(3)},
    })
    run = run_medusa(project, runners=1, timeout=60)
    _nothing_lost(run)
    assert run.finished["not_run"] == [], run
    assert dict(run.outcomes)["tests/test_a_crash.py::test_crash"] == "error", run
    assert sum(1 for _, o in run.outcomes if o == "passed") == 3, run


def test_pytest_exit_in_a_test_ends_the_build_with_its_code(tmp_path):
    """`pytest.exit()` ends pytest's whole session with its return code (2 by default)."""
    project = write_project(tmp_path / "p", {
        "test_x.py": """
            import pytest

            def test_a():
                pass

            def test_exit():
                pytest.exit("stopping here")
        """,
        "test_y.py": "def test_c():\n    pass\n",
    })
    serial = serial_outcomes(project)
    assert serial.exit_code == 2
    run = run_medusa(project, runners=1, timeout=60)
    assert "stopping here" in run.output, run
    assert run.exit_code == serial.exit_code, run


def test_sys_exit_in_a_test_is_a_failure(tmp_path):
    project = write_project(tmp_path / "p", {
        "test_x.py": """
            import sys

            def test_exits():
                sys.exit(3)

            def test_after():
                pass
        """,
    })
    serial = serial_outcomes(project)
    run = run_medusa(project, timeout=60)
    assert run.outcomes == serial.outcomes == [("test_x.py::test_after", "passed"),
                                               ("test_x.py::test_exits", "failed")]
    assert run.exit_code == serial.exit_code == 1
    check_consistent(run)


def _interrupt(tmp_path: Path, sig: signal.Signals):
    project = write_project(tmp_path / "p", {
        "tests/test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(60)\n",
        "tests/test_slow_too.py": "import time\n\ndef test_slow():\n    time.sleep(60)\n",
        **{f"tests/test_ok{n}.py": OK_FILE for n in range(3)},
    })
    events_path = tmp_path / "events.jsonl"
    process = start_medusa(project, events_path)
    try:
        wait_for(events_path, started("tests/test_slow.py", "tests/test_slow_too.py"), process,
                 what="the slow files' start")
        time.sleep(0.3)        # inside the tests' sleep
        sent = time.monotonic()
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=20)
        took = time.monotonic() - sent
    except BaseException:
        stop_medusa(process)
        raise
    events = read_events(events_path)
    finished = [e for e in events if e["event"] == "build_finished"]
    return process.returncode, stdout, stderr, took, finished


def test_ctrl_c_interrupts_the_build(tmp_path):
    code, stdout, stderr, took, finished = _interrupt(tmp_path, signal.SIGINT)
    assert code == 2, (stdout, stderr)
    assert took < 15
    assert "interrupted" in (stdout + stderr).lower()
    assert finished and finished[0]["exit_code"] == 2
    not_run = {item["file"] for item in finished[0]["not_run"]}
    assert {"tests/test_slow.py", "tests/test_slow_too.py"} <= not_run
    # no worker or runner is left: the autouse fixture checks it


def test_sigterm_interrupts_the_build(tmp_path):
    code, stdout, stderr, took, finished = _interrupt(tmp_path, signal.SIGTERM)
    assert code == 2, (stdout, stderr)
    assert took < 15
    assert finished and finished[0]["exit_code"] == 2


def test_processes_left_by_tests_are_ended(tmp_path):
    project = write_project(tmp_path / "p", {
        "test_spawn.py": """
            import os
            import subprocess

            def test_spawn():
                child = subprocess.Popen(["sleep", "300"])
                with open(os.path.join(os.path.dirname(__file__), "child.pid"), "w") as out:
                    out.write(str(child.pid))
        """,
    })
    run = run_medusa(project, timeout=60)
    assert run.exit_code == 0, run
    pid = int((project / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        psutil.Process(pid).kill()
        raise AssertionError("the test's child process outlived the build")


def test_a_test_past_the_timeout_is_stopped_with_its_stacks_and_the_file_goes_on(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_hang.py": """
            import time

            def test_first():
                pass

            def test_hangs():
                time.sleep(120)

            def test_after():
                pass
        """,
        **{f"tests/test_ok{n}.py": OK_FILE for n in range(2)},
    })
    started = time.monotonic()
    run = run_medusa(project, "--timeout", "2", timeout=60)
    assert time.monotonic() - started < 30, "the hanging test was not stopped"
    assert run.exit_code == 1, run
    _nothing_lost(run)
    outcomes = dict(run.outcomes)
    assert outcomes["tests/test_hang.py::test_first"] == "passed"
    assert outcomes["tests/test_hang.py::test_after"] == "passed"
    error = next(r for r in run.results if r["test"] == "tests/test_hang.py::test_hangs")
    assert error["outcome"] == "error" and error["message"] == "timed out after 2 s", error
    # faulthandler's dump of the runner's stacks, down to the line that hung
    assert "test_hangs" in error["longrepr"] and "test_hang.py" in error["longrepr"], error
    assert "timed out after 2 s" in run.stdout


def test_a_worker_that_stops_answering_is_declared_lost(tmp_path):
    """No hang: a worker frozen mid-build (SIGSTOP) says nothing, not even its heartbeat;
    after --worker-timeout the build ends and lists what did not run."""
    project = write_project(tmp_path / "p", {
        "tests/test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(30)\n",
        **{f"tests/test_ok{n}.py": OK_FILE for n in range(3)},
    })
    events_path = tmp_path / "events.jsonl"
    process = start_medusa(project, events_path, "--worker-timeout", "3")
    try:
        wait_for(events_path, started("tests/test_slow.py"), process,
                 what="the slow file's start")
        worker = next(child for child in psutil.Process(process.pid).children()
                      if "medusa.worker" in " ".join(child.cmdline()))
        frozen = time.monotonic()
        worker.suspend()
        stdout, stderr = process.communicate(timeout=40)
        took = time.monotonic() - frozen
    except BaseException:
        stop_medusa(process)
        raise
    assert process.returncode == 1, (stdout, stderr)
    assert 3 <= took < 20, took
    finished = next(e for e in read_events(events_path) if e["event"] == "build_finished")
    assert "tests/test_slow.py" in {item["file"] for item in finished["not_run"]}, finished
    assert "said nothing for 3 s" in stdout, stdout


def test_a_replacement_runner_carries_nothing_of_its_predecessor(tmp_path):
    """The replacement of a crashed runner is forked clean: a failure in it has the
    test's own traceback, not medusa's frames as its context."""
    project = write_project(tmp_path / "p", {
        "tests/test_a_crash.py": "import os\n\ndef test_crash():\n    os._exit(3)\n",
        "tests/test_b_fail.py": "def test_fail():\n    raise ValueError('mine')\n",
    })
    run = run_medusa(project, "--no-history", runners=1, timeout=60)
    assert run.exit_code == 1, run
    failure = run.result("tests/test_b_fail.py::test_fail")
    assert failure["runner"] == "local/0" and "ValueError: mine" in failure["longrepr"]
    assert "During handling" not in failure["longrepr"], failure["longrepr"]
    assert "EOFError" not in failure["longrepr"], failure["longrepr"]

