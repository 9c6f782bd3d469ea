"""-x / --maxfail N: after the Nth failure nothing new starts and the tests that run stop
at once (not at the end of their files); the runners still end their pytest sessions, so
fixtures are torn down and --lf knows the failures; the report lists what did not run."""
from __future__ import annotations

import json

from helpers import run_medusa, write_project

# Longer than any run_medusa timeout below: a build that waits for it fails the test.
LONG = 600


def _nothing_lost(run) -> None:
    found = next(e["files"] for e in run.events if e["event"] == "worker_begin")
    completed = {e["file"] for e in run.events if e["event"] == "file_complete"}
    not_run = {item["file"] for item in run.finished["not_run"]}
    assert completed | not_run == set(found), run


def test_exitfirst_stops_the_tests_that_run(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/conftest.py": f"""
            import os, pathlib, pytest

            @pytest.fixture(scope="session", autouse=True)
            def session_resource():
                yield
                # the runner ended its session: fixtures were torn down
                out = pathlib.Path({str(tmp_path)!r}) / ("ended-" + os.environ["MEDUSA_RUNNER"])
                out.touch()
        """,
        "tests/test_a_fails.py": """
            import time

            def test_fails():
                time.sleep(0.5)   # the other runner is deep in its long test by now
                assert 0, "the first failure"
        """,
        "tests/test_b_long.py": f"""
            import time

            def test_before():
                pass

            def test_long():
                time.sleep({LONG})

            def test_after():
                pass
        """,
        **{f"tests/test_c{n}.py": "def test_x():\n    pass\n" for n in range(4)},
    })
    run = run_medusa(project, "--no-history", runners=2, pytest_args=["-x"], timeout=60)
    assert run.exit_code == 1, run
    _nothing_lost(run)
    outcomes = dict(run.outcomes)
    assert outcomes["tests/test_a_fails.py::test_fails"] == "failed"
    assert outcomes["tests/test_b_long.py::test_before"] == "passed"
    assert "tests/test_b_long.py::test_long" not in outcomes, run   # stopped, not a result
    not_run = {item["file"]: item["reason"] for item in run.finished["not_run"]}
    assert "stopped after 1 failures (--maxfail=1)" in not_run["tests/test_b_long.py"]
    assert "2 of its 3 tests did not run" in not_run["tests/test_b_long.py"], not_run
    assert all(f"tests/test_c{n}.py" in not_run for n in range(4)), not_run
    assert not [e for e in run.events if e["event"] == "runner_died"], run
    assert sorted(p.name for p in tmp_path.glob("ended-*")) == ["ended-0", "ended-1"]
    # each runner's session ended: pytest's cache knows the failure for --lf
    lastfailed = json.loads((project / ".pytest_cache/v/cache/lastfailed").read_text())
    assert "tests/test_a_fails.py::test_fails" in lastfailed, lastfailed


def test_maxfail_counts_over_all_runners(tmp_path):
    project = write_project(tmp_path / "p", {
        **{f"tests/test_f{n}.py": "def test_fail():\n    assert 0\n" for n in range(3)},
        "tests/test_long.py": f"import time\n\ndef test_long():\n    time.sleep({LONG})\n",
    })
    run = run_medusa(project, "--no-history", runners=2, pytest_args=["--maxfail=3"], timeout=60)
    assert run.exit_code == 1, run
    _nothing_lost(run)
    assert run.counts.get("failed") == 3, run.counts
    assert "stopped after 3 failures (--maxfail=3)" in run.stdout, run


def test_a_test_that_will_not_stop_is_killed(tmp_path):
    """A test that blocks the stop signal (as C code holding the interpreter would):
    its runner is killed after a grace period and the build still ends."""
    project = write_project(tmp_path / "p", {
        "tests/test_a_fails.py": "import time\n\ndef test_fails():\n    time.sleep(0.5)\n    assert 0\n",
        "tests/test_b_stubborn.py": f"""
            import signal, time

            def test_stubborn():
                signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
                time.sleep({LONG})
        """,
    })
    run = run_medusa(project, "--no-history", runners=2, pytest_args=["-x"], timeout=60)
    assert run.exit_code == 1, run
    _nothing_lost(run)
    died = [e for e in run.events if e["event"] == "runner_died"]
    assert len(died) == 1 and "did not stop its tests" in died[0]["reason"], run
    not_run = {item["file"] for item in run.finished["not_run"]}
    assert "tests/test_b_stubborn.py" in not_run, run
    assert run.counts == {"failed": 1}, run.counts   # the killed test is not an error
