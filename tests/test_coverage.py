"""Coverage (--cov, coverage_support.py): what every runner measured, combined on the
master, equals what `coverage run -m pytest` measures serially on the same suite, line by
line and branch by branch, with a module imported at conftest time (its module-level code
runs in the worker, before the fork), from local and from ssh workers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import _environment, run_medusa, write_project
from test_ssh import _run, _ssh_worker

PROJECT = {
    "pytest.ini": "[pytest]\npythonpath = .\ntestpaths = tests\n",
    ".coveragerc": "[run]\nbranch = True\n[report]\nexclude_lines =\n    pragma: no cover\n",
    "pkg/__init__.py": "",
    "pkg/early.py": """
        import os

        # module-level code with a branch: runs once, in the worker, at conftest time
        if os.environ.get("NO_SUCH_VARIABLE"):
            MODE = "odd"
        else:
            MODE = "plain"

        def classify(n):
            if n < 0:
                return "negative"
            elif n == 0:
                return "zero"
            return "positive"

        def excluded():  # pragma: no cover
            return 1
    """,
    "pkg/late.py": """
        def walk(items):
            total = 0
            for item in items:
                if item % 2:
                    total += item
                else:
                    total -= 1
            return total

        def never_called():
            return "never"
    """,
    "pkg/never.py": """
        def unused(x):
            if x:
                return 1
            return 2
    """,
    "tests/conftest.py": """
        import pytest
        import pkg.early

        @pytest.fixture(scope="session")
        def mode():
            return pkg.early.MODE
    """,
    **{f"tests/test_part{n}.py": f"""
        from pkg.early import classify
        from pkg.late import walk

        def test_classify(mode):
            assert mode == "plain"
            assert classify({n - 1}) in ("negative", "zero", "positive")

        def test_walk():
            assert walk(range({n})) is not None
    """ for n in range(4)},
}


def _serial(project: Path, *source: str) -> dict:
    """`coverage run -m pytest` and its JSON report."""
    env = _environment({})
    command = [sys.executable, "-m", "coverage", "run", *(f"--source={s}" for s in source),
               "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    subprocess.run([sys.executable, "-m", "coverage", "json", "-o", "serial.json"], cwd=project,
                   check=True, capture_output=True, env=env, timeout=60)
    (project / ".coverage").unlink()
    return json.loads((project / "serial.json").read_text())


def _same(medusa: dict, serial: dict) -> None:
    keys = ("executed_lines", "missing_lines", "excluded_lines", "executed_branches",
            "missing_branches")
    assert set(medusa["files"]) == set(serial["files"]), (medusa["files"].keys(), serial["files"].keys())
    for file, data in serial["files"].items():
        for key in keys:
            assert medusa["files"][file][key] == data[key], (file, key)
    assert medusa["totals"] == serial["totals"]


@pytest.mark.parametrize("source", [("pkg",), ()], ids=["cov=pkg", "cov"])
def test_combined_coverage_equals_serial_coverage(tmp_path, source):
    project = write_project(tmp_path / "p", PROJECT)
    serial = _serial(project, *source)
    assert serial["totals"]["missing_lines"] > 0 and serial["totals"]["missing_branches"] > 0
    assert "pkg/never.py" in serial["files"] or not source
    cov = [f"--cov={s}" for s in source] or ["--cov"]
    run = run_medusa(project, *cov, "--cov-report=term-missing", "--cov-report=json:medusa.json",
                     "--cov-report=xml:out/cov.xml", "--no-history", runners=3)
    assert run.exit_code == 0, run
    medusa = json.loads((project / "medusa.json").read_text())
    _same(medusa, serial)
    # the terminal report, before the summary line, and what was written
    assert "pkg/early.py" in run.stdout and "TOTAL" in run.stdout, run.stdout
    total = medusa["totals"]["percent_covered"]
    assert f"total coverage: {total:.2f}%" in run.stdout
    assert (project / "out/cov.xml").is_file()
    assert (project / "medusa-report/coverage/.coverage").is_file()
    report = [e for e in run.events if e["event"] == "coverage_report"]
    assert len(report) == 1 and abs(report[0]["total"] - total) < 1e-9, report
    assert not any("medusa/" in f for f in medusa["files"]), medusa["files"].keys()


def test_remote_coverage_is_remapped_to_the_local_tree(tmp_path, sshd):
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {
        **PROJECT, "medusa/config.yml": "history: false\ncoverage: [pkg]\ncoverage_report: "
                                        "[\"json:medusa.json\"]\nworkers:\n"
                                        + _ssh_worker(sshd, remote)})
    serial = _serial(project, "pkg")
    done, events = _run(project, sshd)
    assert done.returncode == 0, done
    assert {e["worker"] for e in events if e["event"] == "result"} == {"127.0.0.1"}, done
    medusa = json.loads((project / "medusa.json").read_text())
    _same(medusa, serial)
    assert not any(str(remote) in f for f in medusa["files"])


def test_coverage_report_names_are_checked(tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    run = run_medusa(project, "--cov", "--cov-report=pdf")
    assert run.exit_code == 4 and "unknown coverage report 'pdf'" in run.stderr, run
