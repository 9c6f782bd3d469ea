"""Our own bugs: "internal error", a traceback, exit code 3, and still every process ended
and every reporter's file written. The bug is planted in a copy of the `medusa` command
(a wrapper that replaces one master method before it runs): a fault injected on purpose,
since medusa has no known bug to trigger."""
from __future__ import annotations

import subprocess
import sys

from helpers import REPO, _environment, read_events, write_project

PLANT = """
import sys
sys.path.insert(0, {repo!r})
from medusa import cli, master
from medusa.reporters import console

def planted(*args, **kwargs):
    raise ZeroDivisionError("a planted bug")

{target} = planted
sys.exit(cli.main(sys.argv[1:]))
"""

PROJECT = {f"tests/test_{n}.py": "import time\n\ndef test_x():\n    time.sleep(0.1)\n"
           for n in range(6)}


def _run_with_bug(tmp_path, target: str, *args: str) -> tuple[subprocess.CompletedProcess, list]:
    project = write_project(tmp_path / "p", PROJECT)
    wrapper = tmp_path / "buggy_medusa.py"
    wrapper.write_text(PLANT.format(repo=str(REPO), target=target))
    events = tmp_path / "events.jsonl"
    done = subprocess.run([sys.executable, str(wrapper), "--local", "2", *args,
                           "--format", f"json:{events}"],
                          cwd=project, capture_output=True, text=True, timeout=60,
                          env=_environment(None))
    return done, read_events(events)


def test_a_bug_in_the_master_ends_the_build_with_exit_3_and_a_traceback(tmp_path):
    done, events = _run_with_bug(tmp_path, "master.Master.on_file_complete")
    assert done.returncode == 3, done
    assert "medusa: internal error" in done.stderr, done.stderr
    assert "Traceback" in done.stderr and "ZeroDivisionError: a planted bug" in done.stderr
    # the reporters still got the end of the build, and every file is accounted for
    finished = [e for e in events if e["event"] == "build_finished"]
    assert len(finished) == 1 and finished[0]["exit_code"] == 3, events
    found = next(e["files"] for e in events if e["event"] == "worker_begin")
    completed = {e["file"] for e in events if e["event"] == "file_complete"}
    not_run = {n["file"] for n in finished[0]["not_run"]}
    assert completed | not_run == set(found), (found, completed, not_run)
    assert all("internal error" in n["reason"] for n in finished[0]["not_run"]), finished
    assert "internal error" in done.stdout.strip().splitlines()[-1], done.stdout


def test_a_bug_in_a_reporter_still_lets_the_others_write(tmp_path):
    done, events = _run_with_bug(tmp_path, "console.ConsoleReporter.on_result")
    assert done.returncode == 3, done
    assert "reporter ConsoleReporter" in done.stderr and "a planted bug" in done.stderr, done
    # the JSON log, another reporter, has the whole build
    results = [e for e in events if e["event"] == "result"]
    assert len(results) == len(PROJECT), events
    assert events[-1]["event"] == "build_finished"
