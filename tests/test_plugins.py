"""Plugins that change how tests run, under medusa as under pytest and `pytest -n 2`.

Each test runs one small project three ways: serial pytest, pytest-xdist's `-n 2` and
medusa, all from the `plugins` venv (tests/venvs.py: the plugins would be in every other
test's pytest if they were installed in the suite's own environment), and compares what
each counted per test. The plugins that report once for the session (pytest-cov, syrupy,
pytest-randomly, ...) are in tests/test_controller.py.
"""
from __future__ import annotations

import re
from pathlib import Path

from helpers import SerialRun, assert_same_as_pytest, run_medusa, serial_outcomes, write_project
from venvs import venv_python

# pytest-asyncio warns at configure without it, an error under -W error
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def _xdist(project: Path, python: str, *args: str) -> SerialRun:
    """`pytest -n 2`, with what its controller counted per test."""
    return serial_outcomes(project, pytest_args=("-n", "2", *args), python=python)


def _same_as_serial_and_xdist(project: Path, *args: str, medusa_args=()) -> SerialRun:
    python = venv_python("plugins")
    run, serial = assert_same_as_pytest(project, pytest_args=args, medusa_args=medusa_args,
                                        python=python)
    xdist = _xdist(project, python, *args)
    assert xdist.outcomes == serial.outcomes and xdist.counts == serial.counts, xdist
    return serial


def test_rerunfailures_reruns_in_the_runner_and_counts_reruns_as_pytest(tmp_path):
    project = write_project(tmp_path / "p", {
        "pytest.ini": INI,
        "test_flaky.py": """
            import os
            import pytest

            def _first_time(name):
                # once per run: serial, xdist and medusa each leave their own marker
                who = os.environ.get("MEDUSA_RUN_ID") or os.environ.get("PYTEST_XDIST_TESTRUNUID", "serial")
                marker = f"{name}-{who}.seen"
                seen = os.path.exists(marker)
                open(marker, "a").close()
                return not seen

            @pytest.mark.flaky(reruns=2)
            def test_fails_once():
                assert not _first_time("once")

            @pytest.mark.flaky(reruns=1)
            def test_always_fails():
                assert False

            def test_plain():
                pass
        """,
        "test_cli_reruns.py": """
            import os

            def test_fails_once_too():
                marker = "cli-" + (os.environ.get("MEDUSA_RUN_ID") or os.environ.get("PYTEST_XDIST_TESTRUNUID", "serial"))
                seen = os.path.exists(marker)
                open(marker, "a").close()
                assert seen
        """,
    })
    serial = _same_as_serial_and_xdist(project, "--reruns", "1")
    assert serial.counts == {"passed": 3, "failed": 1, "rerun": 3}, serial


def test_pytest_asyncio_tests_and_fixtures(tmp_path):
    project = write_project(tmp_path / "p", {
        "pytest.ini": INI + "asyncio_mode = auto\n",
        "conftest.py": """
            import asyncio
            import pytest

            @pytest.fixture
            async def resource():
                await asyncio.sleep(0)
                yield {"open": True}
                await asyncio.sleep(0)
        """,
        **{f"test_async_{n}.py": f"""
            import asyncio
            import pytest

            async def test_sleeps(resource):
                await asyncio.sleep(0.01)
                assert resource["open"]

            async def test_fails():
                await asyncio.sleep(0)
                assert {n} == 1

            @pytest.mark.parametrize("x", [1, 2])
            async def test_param(x):
                assert await asyncio.sleep(0, result=x) == x
        """ for n in range(3)},
    })
    _same_as_serial_and_xdist(project)


def test_hypothesis_with_trio_and_its_warnings_as_errors(tmp_path):
    """The worker freezes its heap before it forks, which hid the worker's objects from
    gc.get_referrers(): trio's hypothesis entry point then made register_random warn,
    an error under -W error where pytest passes. The heap is still frozen in a runner."""
    project = write_project(tmp_path / "p", {
        "pytest.ini": INI,
        "conftest.py": "import trio   # imported by the worker, before it freezes\n",
        "test_props.py": """
            import gc
            import os

            from hypothesis import given, strategies as st

            @given(st.lists(st.integers()))
            def test_sorted_is_idempotent(xs):
                assert sorted(sorted(xs)) == sorted(xs)

            @given(st.integers())
            def test_finds_a_counterexample(x):
                assert x < 1000

            def test_the_heap_is_frozen_in_a_runner():
                assert "MEDUSA_RUNNER" not in os.environ or gc.get_freeze_count() > 0
        """,
    })
    for medusa_args in ((), ("--collect", "file")):   # hypothesis imported before, after
        # (a failing hypothesis test imports what warns of a deprecation, in pytest too;
        # pytest-benchmark warns under xdist)
        _same_as_serial_and_xdist(project, "-W", "error", "-W", "ignore::DeprecationWarning",
                                  "-p", "no:randomly", "-p", "no:benchmark",
                                  medusa_args=medusa_args)


def test_pytest_timeout_thread_dump_is_in_the_report_of_the_test(tmp_path):
    """pytest-timeout's thread method dumps every thread's stack and ends the process:
    serial pytest ends there, xdist replaces the worker and reports the test as crashed
    (without the dump). medusa replaces the runner, runs the rest, and the dump is in the
    report of the test that timed out."""
    project = write_project(tmp_path / "p", {
        "pytest.ini": INI,
        "test_hang.py": """
            import time
            import pytest

            def test_before():
                pass

            @pytest.mark.timeout(1, method="thread")
            def test_hangs_in_sleep():
                time.sleep(120)

            def test_after():
                pass
        """,
        "test_other.py": "def test_elsewhere():\n    pass\n",
    })
    python = venv_python("plugins")
    serial = serial_outcomes(project, python=python)
    assert serial.exit_code == 1 and "+ Timeout +" in serial.stdout, serial
    frame = re.search(r'File ".*test_hang.py", line \d+, in test_hangs_in_sleep', serial.stdout)
    assert frame, serial.stdout
    xdist = _xdist(project, python)
    assert dict(xdist.outcomes) == {"test_hang.py::test_before": "passed",
                                    "test_hang.py::test_hangs_in_sleep": "failed",
                                    "test_hang.py::test_after": "passed",
                                    "test_other.py::test_elsewhere": "passed"}, xdist
    run = run_medusa(project, "--no-history", python=python)
    assert run.exit_code == 1, run
    results = {e["test"]: e for e in run.events if e["event"] == "result"}
    assert {test: e["outcome"] for test, e in results.items()} == {
        **dict(xdist.outcomes), "test_hang.py::test_hangs_in_sleep": "error"}, run
    report = results["test_hang.py::test_hangs_in_sleep"]["longrepr"]
    assert "died (exit code 1)" in report and "+ Timeout +" in report, report
    assert frame.group(0) in report, report
