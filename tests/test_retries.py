"""--retries N: a failed test runs again, on another runner where there is one; one that
then passes is flaky (not passed, not failed); one that fails every time is a failure
with its earlier runs attached. Real builds, real runners."""
from __future__ import annotations

from helpers import check_consistent, run_medusa, write_project

# Fails the first time it runs in a build, passes after: the marker lives outside the
# project, in a folder the test passes in through the environment.
FLAKY = """
    import os, pathlib

    def test_flaky():
        marker = pathlib.Path(os.environ["MARKS"]) / "flaky"
        runs = marker.read_text().splitlines() if marker.exists() else []
        marker.write_text("\\n".join(runs + [os.environ["MEDUSA_RUNNER"]]))
        assert runs, "fails the first time"

    def test_fine():
        pass
"""
SLOW = "import time\n\ndef test_slow():\n    time.sleep(1.0)\n"


def _retries(run) -> list[dict]:
    return [e for e in run.events if e["event"] == "file_started" and e["retry"]]


def test_a_test_that_passes_on_a_retry_is_flaky_and_ran_on_another_runner(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_a.py": FLAKY,
                                             "tests/test_b.py": SLOW})
    marks = tmp_path / "marks"
    marks.mkdir()
    run = run_medusa(project, "--retries", "2", runners=2, env={"MARKS": str(marks)})
    assert run.exit_code == 0, run
    check_consistent(run)
    flaky = run.result("tests/test_a.py::test_flaky")
    assert flaky["outcome"] == "flaky", flaky
    assert [a["outcome"] for a in flaky["attempts"]] == ["failed"], flaky
    assert "fails the first time" in flaky["attempts"][0]["message"]
    assert "AssertionError" in flaky["attempts"][0]["longrepr"]
    # the retry ran on the other runner, although that one was busy when it failed
    first, second = (marks / "flaky").read_text().splitlines()
    assert first != second, (first, second)
    assert flaky["runner"] != flaky["attempts"][0]["worker"] + "/" + str(flaky["attempts"][0]["runner"])
    assert len(_retries(run)) == 1, run
    assert run.counts == {"passed": 2, "flaky": 1}, run.counts
    assert "FLAKY tests/test_a.py::test_flaky" in run.stdout, run
    assert "2 passed, 1 flaky in" in run.stdout, run


def test_a_test_that_fails_every_time_fails_once_with_its_earlier_runs(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_a.py": """
        def test_broken():
            assert 1 == 2

        def test_fine():
            pass
    """})
    run = run_medusa(project, "--retries", "2", runners=2)
    assert run.exit_code == 1, run
    check_consistent(run)
    results = [r for r in run.results if r["test"] == "tests/test_a.py::test_broken"]
    assert len(results) == 1, results   # reported once, not once per run
    assert results[0]["outcome"] == "failed"
    assert [a["outcome"] for a in results[0]["attempts"]] == ["failed", "failed"]
    assert len(_retries(run)) == 2, run
    assert run.counts == {"failed": 1, "passed": 1}, run.counts
    assert "FAILED tests/test_a.py::test_broken (after 3 runs)" in run.stdout, run


def test_without_retries_a_failure_runs_once(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_a.py": "def test_x():\n    assert 0\n"})
    run = run_medusa(project, runners=2)
    assert run.exit_code == 1, run
    assert _retries(run) == [], run
    assert run.result("tests/test_a.py::test_x")["attempts"] == []


def test_a_crash_and_a_failing_teardown_are_retried_too(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_a.py": """
            import os, pathlib, pytest

            def _first_time(name):
                marker = pathlib.Path(os.environ["MARKS"]) / name
                first = not marker.exists()
                marker.touch()
                return first

            def test_crash_once():
                if _first_time("crash"):
                    os._exit(9)

            @pytest.fixture
            def shaky():
                yield
                if _first_time("teardown"):
                    raise RuntimeError("teardown broke")

            def test_teardown_once(shaky):
                pass
        """,
        "tests/test_b.py": SLOW,
    })
    marks = tmp_path / "marks"
    marks.mkdir()
    run = run_medusa(project, "--retries", "1", runners=2, env={"MARKS": str(marks)},
                     timeout=60)
    assert run.exit_code == 0, run
    crash = run.result("tests/test_a.py::test_crash_once")
    assert crash["outcome"] == "flaky", crash
    assert "died" in crash["attempts"][0]["message"], crash
    teardown = [r for r in run.results if r["test"] == "tests/test_a.py::test_teardown_once"]
    assert [r["outcome"] for r in teardown] == ["flaky"], teardown
    assert teardown[0]["attempts"][0]["when"] == "teardown", teardown
    assert run.counts == {"passed": 1, "flaky": 2}, run.counts


def test_a_flaky_test_does_not_count_towards_maxfail(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_a.py": FLAKY,
                                             **{f"tests/test_{n}.py": SLOW for n in "bcd"}})
    marks = tmp_path / "marks"
    marks.mkdir()
    run = run_medusa(project, "--retries", "1", runners=2, pytest_args=["-x"],
                     env={"MARKS": str(marks)})
    assert run.exit_code == 0, run
    check_consistent(run)
    assert run.counts == {"passed": 4, "flaky": 1}, run.counts


def test_a_test_that_crashes_every_time_is_one_error(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_a.py": "import os\n\ndef test_crash():\n    os._exit(4)\n\n"
                           "def test_after():\n    pass\n",
        "tests/test_b.py": SLOW,
    })
    run = run_medusa(project, "--retries", "1", runners=2, timeout=60)
    assert run.exit_code == 1, run
    crashes = [r for r in run.results if r["test"] == "tests/test_a.py::test_crash"]
    assert len(crashes) == 1, crashes
    assert crashes[0]["outcome"] == "error" and len(crashes[0]["attempts"]) == 1, crashes
    assert run.counts == {"error": 1, "passed": 2}, run.counts
