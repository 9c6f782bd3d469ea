"""Mistakes of the user's: medusa ends with pytest's exit code for them (4: usage error,
5: no tests) and says what went wrong in a way a person can act on."""
from __future__ import annotations

from collections import Counter

from helpers import run_medusa, serial_outcomes, write_project

USAGE_ERROR = 4
NO_TESTS = 5

SIMPLE = {
    "tests/test_a.py": "def test_a():\n    pass\n\ndef test_b():\n    pass\n",
    "tests/test_c.py": "def test_c():\n    pass\n",
}


def _no_traceback(text: str) -> None:
    assert "Traceback (most recent call last)" not in text, text


def test_conftest_that_raises_at_import(tmp_path):
    project = write_project(tmp_path / "p", {
        **SIMPLE,
        "conftest.py": """
            import os

            def helper():
                raise RuntimeError("boom in conftest " + os.name)

            helper()
        """,
    })
    serial = serial_outcomes(project)
    assert serial.exit_code == USAGE_ERROR
    run = run_medusa(project, timeout=30)
    assert run.exit_code == USAGE_ERROR, run
    assert "conftest.py" in run.output and str(project) in run.output, run
    assert "RuntimeError: boom in conftest posix" in run.output, run
    # the real traceback: the user's own lines are in it
    assert 'raise RuntimeError("boom in conftest " + os.name)' in run.output, run
    assert "helper()" in run.output, run
    assert run.finished["exit_code"] == USAGE_ERROR
    assert not run.results


def test_plugin_that_does_not_exist(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    serial = serial_outcomes(project, pytest_args=("-p", "does_not_exist"))
    # pytest itself dies of an uncaught ImportError here (exit code 1); the user's mistake
    # is a usage error, and medusa says so
    assert serial.exit_code != 0
    assert "does_not_exist" in serial.stderr
    run = run_medusa(project, pytest_args=("-p", "does_not_exist"), timeout=30)
    assert run.exit_code == USAGE_ERROR, run
    assert "does_not_exist" in run.output, run


def test_broken_addopts_in_pytest_ini(tmp_path):
    project = write_project(tmp_path / "p", {
        **SIMPLE,
        "pytest.ini": "[pytest]\naddopts = --nonexistent-flag\n",
    })
    serial = serial_outcomes(project)
    assert serial.exit_code == USAGE_ERROR
    run = run_medusa(project, timeout=30)
    assert run.exit_code == USAGE_ERROR, run
    assert "--nonexistent-flag" in run.output, run
    assert "pytest.ini" in run.output, run
    _no_traceback(run.output)


def test_framework_option_that_pytest_rejects(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    serial = serial_outcomes(project, pytest_args=("--definitely-not-an-option",))
    assert serial.exit_code == USAGE_ERROR
    run = run_medusa(project, pytest_args=("--definitely-not-an-option",), timeout=30)
    assert run.exit_code == USAGE_ERROR, run
    assert "--definitely-not-an-option" in run.output, run
    _no_traceback(run.output)


def test_path_that_does_not_exist(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    serial = serial_outcomes(project, pytest_args=("no/such/dir",))
    assert serial.exit_code == USAGE_ERROR
    run = run_medusa(project, "no/such/dir", timeout=30)
    assert run.exit_code == USAGE_ERROR, run
    _no_traceback(run.output)
    error_lines = [line for line in run.output.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1, run
    assert "no/such/dir" in error_lines[0]
    assert "not found" in error_lines[0]


def test_one_good_and_one_missing_path(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    serial = serial_outcomes(project, pytest_args=("tests/test_a.py", "tests/missing.py"))
    assert serial.exit_code == USAGE_ERROR
    run = run_medusa(project, "tests/test_a.py", "tests/missing.py", timeout=30)
    assert run.exit_code == USAGE_ERROR, run
    assert "tests/missing.py" in run.output
    _no_traceback(run.output)


def test_node_id_that_does_not_exist(tmp_path):
    """`pytest tests/test_a.py::nope` is a usage error ("ERROR: not found: ..."), exit 4."""
    project = write_project(tmp_path / "p", SIMPLE)
    serial = serial_outcomes(project, pytest_args=("tests/test_a.py::nope",))
    assert serial.exit_code == USAGE_ERROR
    run = run_medusa(project, "tests/test_a.py::nope", timeout=30)
    assert "not found" in run.output and "nope" in run.output, run
    _no_traceback(run.output)
    assert run.exit_code == USAGE_ERROR, run


def test_unknown_medusa_option(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    run = run_medusa(project, "--bogus", timeout=30)
    assert run.exit_code == USAGE_ERROR, run
    assert "--bogus" in run.stderr
    assert "--" in run.stderr.replace("--bogus", "")   # the hint: framework options go after --
    assert "medusa -- --bogus" in run.stderr, run
    _no_traceback(run.output)
    assert not run.events   # nothing was started


def test_bad_runner_count_and_format(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    for args in (("--local", "0"), ("--local", "many"), ("--format", "nosuchformat:x")):
        command_run = run_medusa(project, *args, timeout=30)
        assert command_run.exit_code == USAGE_ERROR, (args, command_run)
        _no_traceback(command_run.output)


def test_project_without_tests(tmp_path):
    project = write_project(tmp_path / "p", {
        "src/code.py": "def f():\n    return 1\n",
        "tests/helpers.py": "X = 1\n",
    })
    serial = serial_outcomes(project)
    assert serial.exit_code == NO_TESTS
    run = run_medusa(project, timeout=30)
    assert run.exit_code == NO_TESTS, run
    last = run.stdout.strip().splitlines()[-1]
    assert "no tests" in last, last
    assert run.finished["exit_code"] == NO_TESTS
    assert run.finished["message"]


def test_file_with_no_tests_in_it(tmp_path):
    project = write_project(tmp_path / "p", {"test_empty.py": "X = 1\n"})
    serial = serial_outcomes(project)
    assert serial.exit_code == NO_TESTS
    run = run_medusa(project, timeout=30)
    assert run.exit_code == NO_TESTS, run


def test_everything_deselected(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    serial = serial_outcomes(project, pytest_args=("-k", "nothing_matches_this"))
    assert serial.exit_code == NO_TESTS
    run = run_medusa(project, pytest_args=("-k", "nothing_matches_this"), timeout=30)
    assert run.exit_code == NO_TESTS, run
    assert run.counts.get("deselected") == serial.deselected == 3
    assert "3 deselected" in run.stdout.strip().splitlines()[-1]


def test_exitfirst_stops_handing_out_files(tmp_path):
    """`-x` / `--maxfail`: pytest stops at the first failure. Runners may finish what they
    hold, but the build must not go on through every other file."""
    files = {f"tests/test_f{n}.py": "def test_fail():\n    assert 0\n\ndef test_after():\n    pass\n"
             for n in range(10)}
    project = write_project(tmp_path / "p", files)
    serial = serial_outcomes(project, pytest_args=("-x",))
    assert serial.exit_code == 1 and Counter(o for _, o in serial.outcomes) == {"failed": 1}
    run = run_medusa(project, pytest_args=("-x",), timeout=60)
    assert run.exit_code == 1, run
    assert run.counts.get("failed", 0) < 10, f"-x was ignored: {run.counts}"
