"""The console report on a real terminal (a pseudo-terminal) and in a CI log."""
from __future__ import annotations

import os
import subprocess
import sys

from helpers import MEDUSA, run_medusa, run_on_a_terminal, write_project

PROJECT = {
    "tests/test_slow.py": """
        import time

        def test_one():
            time.sleep(0.6)

        def test_two():
            time.sleep(0.6)
    """,
    "tests/test_bad.py": """
        def test_fails():
            assert 1 == 2, "the numbers differ"
    """,
}


def test_a_terminal_gets_a_status_line_and_failures_as_they_happen(tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TERM")}
    env["TERM"] = "xterm"
    code, output = run_on_a_terminal(project, env, "--local", "2")
    assert code == 1, output
    # the status line redraws itself in place and names what a runner is running
    assert "\r" in output and "\x1b[K" in output, output
    redraws = [part.split("\x1b[K")[0] for part in output.split("\r")[1:]]
    assert any("test_slow.py" in line for line in redraws), output
    # a failure is shown while the build runs, and again in the summary
    assert output.count("tests/test_bad.py::test_fails - AssertionError: the numbers differ") >= 2, output
    assert "1 failed, 2 passed in" in output, output


def test_a_ci_log_gets_one_plain_line_per_file(tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    env = {**os.environ, "CI": "true"}
    run = subprocess.run([sys.executable, str(MEDUSA), "--local", "2"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "\r" not in run.stdout and "\x1b[" not in run.stdout
    lines = run.stdout.splitlines()
    assert any(line.startswith("tests/test_slow.py ..") and line.endswith("%]") for line in lines)
    assert any(line.startswith("tests/test_bad.py F") for line in lines)
    assert lines[-1].startswith("=") and "1 failed, 2 passed in" in lines[-1]


def test_pytests_verbose_option_prints_a_line_per_test_as_pytest_does(tmp_path):
    import re
    project = write_project(tmp_path / "p", {f"tests/test_{n}.py": f"""
        import pytest

        def test_pass():
            pass

        def test_fail():
            assert {n} < 0

        @pytest.mark.skip("no")
        def test_skip():
            pass

        @pytest.mark.xfail
        def test_xfail():
            assert 0
    """ for n in range(3)})
    line = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", re.M)
    serial = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"],
                            cwd=project, capture_output=True, text=True, timeout=120)
    verbose = run_medusa(project, pytest_args=["-v"])
    quiet = run_medusa(project)
    expected = sorted(line.findall(serial.stdout))
    assert len(expected) == 12, serial.stdout
    assert sorted(line.findall(verbose.stdout)) == expected, verbose.stdout
    assert line.findall(quiet.stdout) == [], quiet.stdout
