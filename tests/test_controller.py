"""The controller session (drivers/pytest_controller.py): what pytest and its plugins do
once per session happens once for the whole build, as under `pytest -n 2`, and equals
what serial pytest does: pytest-cov's report and gate, the warnings summary,
--durations, a conftest's header and terminal summary, an addopts --junitxml, and
pytest-xdist's node hooks (pytest_configure_node, workeroutput, pytest_testnodedown),
syrupy's snapshots and pytest-randomly's seed (from a venv of their own, as .ci/run
makes it)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from helpers import MedusaRun, _environment, run_medusa, serial_outcomes, write_project
from venvs import venv_python
from test_coverage import PROJECT as COVERAGE_PROJECT, _same
from test_integrations_junit import _cases_of


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=project, capture_output=True, text=True, timeout=120,
                          env=_environment({}))


def _section(output: str, title: str) -> list[str]:
    """The lines of a `=== title ===` section of pytest's terminal output."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("=") and f" {title} " in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("=")), len(lines))
    return [line for line in lines[start + 1:end] if line.strip()]


def test_pytest_cov_reports_the_build_as_serial_pytest_cov(tmp_path):
    project = write_project(tmp_path / "p", COVERAGE_PROJECT)
    args = ("--cov=pkg", "--cov-branch", "--cov-report=term-missing")
    serial = _pytest(project, *args, "--cov-report=json:serial.json")
    assert serial.returncode == 0, serial.stdout + serial.stderr
    run = run_medusa(project, "--no-history", runners=3,
                     pytest_args=(*args, "--cov-report=json:medusa.json"))
    assert run.exit_code == 0, run
    # line for line and branch for branch: module-level code ran in the worker before
    # the fork, the tests in three runners, and one report combines them
    _same(json.loads((project / "medusa.json").read_text()),
          json.loads((project / "serial.json").read_text()))
    assert _section(run.stdout, "tests coverage") == [
        line.replace("serial.json", "medusa.json") for line in _section(serial.stdout, "tests coverage")]
    assert run.stdout.count("TOTAL") == 1, run.stdout
    assert not list(project.glob(".coverage.*")), list(project.glob(".coverage*"))


def test_cov_fail_under_fails_the_build_as_it_fails_pytest(tmp_path):
    project = write_project(tmp_path / "p", COVERAGE_PROJECT)
    for gate, code in (("100", 1), ("10", 0)):
        args = ("--cov=pkg", f"--cov-fail-under={gate}")
        serial = _pytest(project, *args)
        run = run_medusa(project, "--no-history", pytest_args=args)
        assert (serial.returncode, run.exit_code) == (code, code), (serial.stdout, run)
        verdict = "FAIL Required" if code else "Required"
        assert f"{verdict} test coverage of {gate}% " in run.stdout, run.stdout


SUMMARY_PROJECT = {
    "pytest.ini": "[pytest]\ntestpaths = tests\n",
    "tests/conftest.py": """
        def pytest_report_header(config):
            return "project: demo"

        def pytest_terminal_summary(terminalreporter):
            stats = terminalreporter.stats
            terminalreporter.write_line(
                f"whole build: {len(stats.get('passed', []))} passed, "
                f"{len(stats.get('failed', []))} failed, "
                f"{len(stats.get('warnings', []))} warnings")
    """,
    "tests/test_loud.py": """
        import time, warnings

        warnings.warn("imported loudly", UserWarning)

        def test_warns():
            warnings.warn("careful now", DeprecationWarning)

        def test_slow():
            time.sleep(0.3)
    """,
    **{f"tests/test_quiet{n}.py": f"""
        def test_fine():
            pass

        def test_fails():
            assert {n} != 1
    """ for n in range(3)},
}


def test_session_summary_is_pytests_once_for_the_whole_build(tmp_path):
    project = write_project(tmp_path / "p", SUMMARY_PROJECT)
    serial = _pytest(project, "--durations=1")
    run = run_medusa(project, "--no-history", runners=3, pytest_args=("--durations=1",))
    assert (run.exit_code, serial.returncode) == (1, 1), run
    # a conftest's header line, and its summary from the stats of every runner's tests
    assert run.stdout.count("project: demo") == 1, run.stdout
    line = "whole build: 7 passed, 1 failed, 2 warnings"
    assert line in serial.stdout and run.stdout.count(line) == 1, (serial.stdout, run.stdout)
    # the warnings summary: the import-time warning of the worker's collection and a
    # test's in a runner, as pytest words them (the order of files may differ)
    assert sorted(_section(run.stdout, "warnings summary")) == \
        sorted(_section(serial.stdout, "warnings summary")), run.stdout
    durations = _section(run.stdout, "slowest 1 durations")
    assert "tests/test_loud.py::test_slow" in durations[0], run.stdout
    assert run.stdout.count("FAILURES") == 1, run.stdout   # medusa's, not pytest's again


def test_junitxml_in_addopts_is_written_once_whole(tmp_path):
    project = write_project(tmp_path / "p", {
        **SUMMARY_PROJECT,
        "pytest.ini": "[pytest]\ntestpaths = tests\naddopts = --junitxml=out/junit.xml\n",
        "tests/test_crash.py": "import os\n\ndef test_crash():\n    os._exit(3)\n"})
    run = run_medusa(project, "--no-history", runners=3)
    assert run.exit_code == 1, run
    medusa = _cases_of(project / "out/junit.xml")
    (project / "out/junit.xml").unlink()
    serial = _pytest(project, "-p", "no:xdist", "--deselect", "tests/test_crash.py::test_crash")
    assert serial.returncode == 1, serial.stdout
    expected = _cases_of(project / "out/junit.xml")
    # the test that killed its runner is a failure there, as xdist reports a crashed node's
    assert medusa.pop(("tests.test_crash", "test_crash")) == "failure", medusa
    assert medusa == expected


NODES_PROJECT = {
    "tests/conftest.py": """
        import pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_configure_node(node):
            node.workerinput["greeting"] = "from the controller"

        def pytest_sessionfinish(session):
            output = getattr(session.config, "workeroutput", None)
            if output is not None:
                output["ran"] = session.config.stash.get(RAN, 0)

        RAN = pytest.StashKey[int]()

        def pytest_runtest_call(item):
            item.config.stash[RAN] = item.config.stash.get(RAN, 0) + 1

        TOTAL = []

        @pytest.hookimpl(optionalhook=True)
        def pytest_testnodedown(node, error):
            TOTAL.append(node.workeroutput.get("ran", 0))

        def pytest_terminal_summary(terminalreporter):
            if TOTAL:
                terminalreporter.write_line(f"nodes down: {len(TOTAL)}, ran: {sum(TOTAL)}")

        @pytest.fixture
        def greeting(request):
            return request.config.workerinput["greeting"]
    """,
    **{f"tests/test_{n}.py": "def test_a(greeting):\n    assert greeting == 'from the controller'\n"
                              "def test_b(greeting):\n    assert greeting\n" for n in range(4)},
}


def test_xdist_node_hooks_reach_the_master_as_under_pytest_n(tmp_path):
    project = write_project(tmp_path / "p", NODES_PROJECT)
    xdist = _pytest(project, "-n", "2")
    run = run_medusa(project, "--no-history", runners=2)
    assert (xdist.returncode, run.exit_code) == (0, 0), (xdist.stdout, run)
    assert "nodes down: 2, ran: 8" in xdist.stdout, xdist.stdout
    assert run.stdout.count("nodes down: 2, ran: 8") == 1, run.stdout


def test_a_conftest_the_master_cannot_load_only_turns_the_summary_off(tmp_path):
    project = write_project(tmp_path / "p", {
        "medusa/environment.py": "import os\n\ndef setup_worker(ctx):\n"
                                 "    os.environ['FROM_THE_HOOK'] = '1'\n",
        "conftest.py": "import os\nassert os.environ.get('FROM_THE_HOOK'), 'needs the hook'\n",
        "test_x.py": "def test_x():\n    pass\n"})
    run = run_medusa(project, "--no-history")
    assert run.exit_code == 0, run
    assert "pytest's session summary (plugins' reports, warnings) is off" in run.stdout + run.stderr
    assert "needs the hook" in run.stdout + run.stderr
    assert [e["outcome"] for e in run.events if e["event"] == "result"] == ["passed"]


def test_outcomes_with_the_controller_equal_serial_pytest(tmp_path):
    project = write_project(tmp_path / "p", SUMMARY_PROJECT)
    serial = serial_outcomes(project)
    run = run_medusa(project, "--no-history", runners=3, pytest_args=("-rA",))
    assert run.outcomes == serial.outcomes, run
    # -rA: pytest's short summary, with the passes, instead of medusa's own
    short = _section(run.stdout, "short test summary info")
    assert sum(line.startswith("PASSED") for line in short) == 7, run.stdout
    assert run.stdout.count("short test summary info") == 1, run.stdout
    assert not any("framework_events" in e for e in run.events)


# plugins that would be in every other test's pytest if installed here: tests/venvs.py

SNAPSHOT_TESTS = {f"tests/test_s{n}.py": f"""
    def test_snap(snapshot):
        assert {{"n": {n}, "name": "file {n}"}} == snapshot

    def test_other(snapshot):
        assert [{n}, {n * 2}] == snapshot
""" for n in range(4)}


def _snapshots(project: Path) -> dict[str, str]:
    return {str(path.relative_to(project)): path.read_text()
            for path in sorted(project.rglob("*.ambr"))}


def _snapshot_report(output: str) -> list[str]:
    return _section(output.replace("-" * 27 + " snapshot report summary " + "-" * 28,
                                   "= snapshot report summary ="), "snapshot report summary")


def test_syrupy_writes_and_reports_snapshots_as_under_pytest_n(tmp_path):
    """syrupy's runners send their reports as workeroutput, and the controller writes
    and deletes snapshot files and words the report, as with pytest-xdist."""
    python = venv_python("plugins")
    projects = [write_project(tmp_path / name, {"pytest.ini": "[pytest]\n", **SNAPSHOT_TESTS})
                for name in ("medusa", "xdist")]

    def both(*args: str) -> tuple[subprocess.CompletedProcess, MedusaRun]:
        xdist = subprocess.run([python, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
                                *args], cwd=projects[1], capture_output=True, text=True,
                               timeout=120, env=_environment({}))
        run = run_medusa(projects[0], "--no-history", python=python, pytest_args=args)
        return xdist, run

    xdist, run = both("--snapshot-update")
    assert (xdist.returncode, run.exit_code) == (0, 0), (xdist.stdout, run)
    assert _snapshots(projects[0]) and _snapshots(projects[0]) == _snapshots(projects[1])
    assert _snapshot_report(run.stdout) == _snapshot_report(xdist.stdout) \
        == ["8 snapshots generated."], run.stdout
    for project in projects:   # one value changes, one test goes away
        (project / "tests/test_s0.py").write_text(
            (project / "tests/test_s0.py").read_text().replace("file 0", "file zero"))
        (project / "tests/test_s1.py").write_text(
            "def test_snap(snapshot):\n    assert {'n': 1, 'name': 'file 1'} == snapshot\n")
    xdist, run = both()
    assert (xdist.returncode, run.exit_code) == (1, 1), (xdist.stdout, run)
    assert _snapshot_report(run.stdout) == _snapshot_report(xdist.stdout), run.stdout
    assert "1 snapshot unused." in " ".join(_snapshot_report(run.stdout)), run.stdout
    xdist, run = both("--snapshot-update")
    assert (xdist.returncode, run.exit_code) == (0, 0), (xdist.stdout, run)
    assert _snapshots(projects[0]) == _snapshots(projects[1])
    assert "file zero" in "".join(_snapshots(projects[0]).values())


def test_a_plugin_that_fails_in_the_master_is_an_internal_error_of_the_plugin(tmp_path):
    project = write_project(tmp_path / "p", {
        "conftest.py": "import pytest\n\n@pytest.hookimpl(optionalhook=True)\n"
                       "def pytest_testnodedown(node, error):\n"
                       "    raise RuntimeError('a bug of the plugin')\n",
        **{f"test_{n}.py": "def test_x():\n    pass\n" for n in range(3)}})
    run = run_medusa(project, "--no-history")
    assert run.exit_code == 3, run   # as pytest's INTERNALERROR
    assert "RuntimeError: a bug of the plugin" in run.stdout, run.stdout
    assert "internal error in a pytest plugin" in run.stdout, run.stdout
    assert sorted(e["outcome"] for e in run.events if e["event"] == "result") == ["passed"] * 3


def test_pytest_randomly_seeds_every_runner_with_the_seed_it_prints(tmp_path):
    """The controller's seed (pytest_configure_node) is every runner's, from its configure
    on: each test draws what it draws under serial pytest with that seed."""
    python = venv_python("plugins")
    project = write_project(tmp_path / "p", {f"test_{n}.py": """
        import os, random

        def test_seed(request):
            with open("seeds.txt", "a") as out:
                out.write(f"{request.node.nodeid} {os.environ.get('PYTEST_XDIST_WORKER')} "
                          f"{request.config.getoption('randomly_seed')} {random.random()}\\n")
    """ for n in range(6)})
    run = run_medusa(project, "--no-history", runners=3, python=python)
    assert run.exit_code == 0, run
    seed = re.search(r"Using --randomly-seed=(\d+)", run.stdout).group(1)
    medusa = [line.split() for line in (project / "seeds.txt").read_text().splitlines()]
    assert len(medusa) == 6 and {line[2] for line in medusa} == {seed}, (seed, medusa)
    assert len({line[1] for line in medusa}) > 1, medusa   # more than one runner
    (project / "seeds.txt").unlink()
    serial = subprocess.run([python, "-m", "pytest", "-p", "no:cacheprovider",
                             f"--randomly-seed={seed}"], cwd=project, capture_output=True,
                            text=True, timeout=120, env=_environment({}))
    assert serial.returncode == 0, serial.stdout
    drawn = {line.split()[0]: line.split()[3]
             for line in (project / "seeds.txt").read_text().splitlines()}
    assert {line[0]: line[3] for line in medusa} == drawn


def test_pytest_cov_over_an_ssh_worker_is_remapped_to_the_local_tree(tmp_path, sshd):
    """Runners in another tree send their data in workeroutput (pytest-cov's own way for
    xdist workers that are not on the controller's tree), and the report names local files."""
    from test_ssh import _run, _ssh_worker
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {
        **COVERAGE_PROJECT,
        "pytest.ini": "[pytest]\npythonpath = .\ntestpaths = tests\n"
                      "addopts = --cov=pkg --cov-branch --cov-report=json:medusa.json\n",
        "medusa/config.yml": "history: false\nworkers:\n" + _ssh_worker(sshd, remote)})
    serial = _pytest(project, "--cov-report=json:serial.json")
    assert serial.returncode == 0, serial.stdout + serial.stderr
    (project / "medusa.json").unlink(missing_ok=True)   # json: is one report: the last wins
    done, events = _run(project, sshd)
    assert done.returncode == 0, done.stdout
    assert {e["worker"] for e in events if e["event"] == "result"} == {"127.0.0.1"}, done
    _same(json.loads((project / "medusa.json").read_text()),
          json.loads((project / "serial.json").read_text()))


def test_the_controller_leaves_nothing_for_filterwarnings_error(tmp_path):
    """A project that turns warnings into errors (jinja2 does) sees none of ours: the
    controller's silenced writer left an unclosed file, an error at unconfigure."""
    project = write_project(tmp_path / "p", {
        "pytest.ini": "[pytest]\nfilterwarnings =\n    error\n",
        **{f"test_{n}.py": "def test_x():\n    pass\n" for n in range(3)}})
    run = run_medusa(project, "--no-history")
    assert run.exit_code == 0, run
    assert "Traceback" not in run.stdout, run.stdout
