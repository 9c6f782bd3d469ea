"""Helpers for the end-to-end tests: run the real `medusa` command and the real `pytest`
on small projects, and reduce both to what pytest itself counts per test.

Nothing here mocks pytest, processes or sockets: `run_medusa` starts `bin/medusa` exactly as
a user would, `serial_outcomes` starts `python -m pytest` with a tiny recording plugin.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MEDUSA = REPO / "bin" / "medusa"

Outcomes = list[tuple[str, str]]   # sorted (test id, outcome) pairs: a multiset

# The plugin that makes plain pytest tell us, per test, the categories its own terminal
# summary counts. It is loaded with `-p medusa_test_recorder` from a temporary folder put
# on PYTHONPATH, and writes JSON to $MEDUSA_RECORDER_OUT at the end of the session.
RECORDER = '''
import fcntl
import json
import os

_config = None
_records = []
_counts = {}
_main_seen = set()
_deselected = [0]
_warnings = [0]


def pytest_configure(config):
    global _config
    _config = config


def pytest_runtest_logstart(nodeid, location):
    _main_seen.discard(nodeid)


def pytest_runtest_logreport(report):
    category = _config.hook.pytest_report_teststatus(report=report, config=_config)[0]
    if not category:
        return
    _counts[category] = _counts.get(category, 0) + 1   # what pytest's summary line counts
    if report.when == "teardown":
        _records.append((report.nodeid, category))
    elif report.nodeid not in _main_seen:
        _main_seen.add(report.nodeid)
        _records.append((report.nodeid, category))


def pytest_collectreport(report):
    if report.failed:
        _records.append((report.nodeid, "error"))
        _counts["error"] = _counts.get("error", 0) + 1
    elif report.skipped:
        _records.append((report.nodeid, "skipped"))
        _counts["skipped"] = _counts.get("skipped", 0) + 1


def pytest_deselected(items):
    _deselected[0] += len(items)


def pytest_warning_recorded(warning_message, when, nodeid, location):
    _warnings[0] += 1


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["MEDUSA_RECORDER_OUT"], "w", encoding="utf-8") as out:
        json.dump({"outcomes": _records, "counts": _counts, "deselected": _deselected[0],
                   "warnings": _warnings[0], "exitstatus": int(exitstatus)}, out)
'''


@dataclass
class MedusaRun:
    exit_code: int
    stdout: str
    stderr: str
    events: list[dict] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def results(self) -> list[dict]:
        return [e for e in self.events if e["event"] == "result"]

    @property
    def outcomes(self) -> Outcomes:
        return medusa_outcomes(self.events)

    @property
    def finished(self) -> dict:
        ends = [e for e in self.events if e["event"] == "build_finished"]
        assert len(ends) == 1, f"expected one build_finished event, got {len(ends)}\n{self}"
        return ends[0]

    @property
    def counts(self) -> dict[str, int]:
        return self.finished["counts"]

    def result(self, test: str) -> dict:
        found = [r for r in self.results if r["test"] == test]
        assert found, f"no result for {test!r}; results: {[r['test'] for r in self.results]}"
        return found[0]

    def __str__(self) -> str:
        return (f"medusa exit code {self.exit_code}\n--- stdout ---\n{self.stdout}"
                f"\n--- stderr ---\n{self.stderr}")


@dataclass
class SerialRun:
    exit_code: int
    stdout: str
    stderr: str
    outcomes: Outcomes | None      # None when pytest never reached the end of its session
    deselected: int = 0
    warnings: int = 0
    counts: dict[str, int] = field(default_factory=dict)   # as pytest's summary line counts

    def __str__(self) -> str:
        return (f"pytest exit code {self.exit_code}\n--- stdout ---\n{self.stdout}"
                f"\n--- stderr ---\n{self.stderr}")


def write_project(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> content, dedented) under `root`; returns `root`."""
    root = Path(root)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def medusa_command(events_path: Path, *args: str, runners: int = 2, pytest_args=(),
                   python: str = sys.executable) -> list[str]:
    command = [python, str(MEDUSA), "--local", str(runners), *args,
               "--format", f"json:{events_path}"]
    if pytest_args:
        command += ["--", *pytest_args]
    return command


def start_medusa(project: Path, events_path: Path, *args: str, runners: int = 2,
                 pytest_args=(), env: dict[str, str] | None = None,
                 python: str = sys.executable) -> subprocess.Popen:
    """Start medusa without waiting for it (in its own session, as from a terminal)."""
    return subprocess.Popen(medusa_command(events_path, *args, runners=runners,
                                           pytest_args=pytest_args, python=python),
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_environment(env), start_new_session=True)


def read_events(events_path: Path) -> list[dict]:
    if not events_path.exists():
        return []
    lines = events_path.read_text(encoding="utf-8").splitlines()
    # a line being written may be incomplete: only whole lines count
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


def run_medusa(project: Path, *args: str, runners: int = 2, pytest_args=(),
               timeout: float = 120, env: dict[str, str] | None = None,
               python: str = sys.executable) -> MedusaRun:
    """Run `bin/medusa --local N ARGS --format json:... [-- PYTEST_ARGS]` in `project`."""
    scratch = Path(tempfile.mkdtemp(prefix="medusa-test-events-"))
    events_path = scratch / "events.jsonl"
    try:
        process = start_medusa(project, events_path, *args, runners=runners,
                               pytest_args=pytest_args, env=env, python=python)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stdout, stderr = stop_medusa(process)
            raise AssertionError(
                f"medusa did not finish within {timeout} s: {process.args}\n"
                f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}") from None
        return MedusaRun(process.returncode, stdout, stderr, read_events(events_path))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def serial_outcomes(project: Path, pytest_args=(), timeout: float = 120,
                    env: dict[str, str] | None = None, cache: bool = False,
                    python: str = sys.executable) -> SerialRun:
    """Run the real pytest serially in `project` and return what it counted per test.
    `cache=True` keeps pytest's cache plugin (for --lf and friends)."""
    scratch = Path(tempfile.mkdtemp(prefix="medusa-test-recorder-"))
    try:
        (scratch / "medusa_test_recorder.py").write_text(RECORDER, encoding="utf-8")
        out = scratch / "outcomes.json"
        environment = _environment(env)
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(scratch), environment.get("PYTHONPATH", "")) if p)
        environment["MEDUSA_RECORDER_OUT"] = str(out)
        command = [python, "-P", "-m", "pytest",
                   *(() if cache else ("-p", "no:cacheprovider")),
                   "--continue-on-collection-errors", "-p", "medusa_test_recorder",
                   *pytest_args]
        completed = subprocess.run(command, cwd=project, capture_output=True, text=True,
                                   env=environment, timeout=timeout)
        outcomes, deselected, warnings, counts = None, 0, 0, {}
        if out.exists():
            data = json.loads(out.read_text(encoding="utf-8"))
            outcomes = sorted((test, outcome) for test, outcome in data["outcomes"])
            deselected, warnings, counts = data["deselected"], data["warnings"], data["counts"]
        return SerialRun(completed.returncode, completed.stdout, completed.stderr,
                         outcomes, deselected, warnings, counts)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def medusa_outcomes(events: list[dict]) -> Outcomes:
    """The same multiset as serial_outcomes, from medusa's result events."""
    return sorted((e["test"], e["outcome"]) for e in events if e["event"] == "result")


def check_consistent(run: MedusaRun) -> None:
    """What must hold for every build that got as far as running tests."""
    finished = run.finished
    assert finished["exit_code"] == run.exit_code, run
    for result in run.results:
        assert "\n" not in result["message"], f"message is not one line: {result}"
        assert result["when"] in ("setup", "call", "teardown", "collect"), result
    assert finished["not_run"] == [], run
    counted = Counter(outcome for _, outcome in run.outcomes)
    for outcome, number in counted.items():
        assert finished["counts"].get(outcome, 0) == number, (outcome, finished["counts"])
    begins = [e for e in run.events if e["event"] == "worker_begin"]
    completed = Counter(e["file"] for e in run.events if e["event"] == "file_complete")
    # a retry (--retries) runs a file's failed tests again: one more completion of it
    completed -= Counter(e["file"] for e in run.events
                         if e["event"] == "file_started" and e.get("retry"))
    parts = {e["file"]: e.get("parts", 1) for e in run.events if e["event"] == "file_started"}
    if begins:
        # Nothing is lost: every file found was run and completed exactly once (each of
        # its parts once, when it was split between runners).
        assert set(completed) == set(begins[0]["files"]), run
        assert all(completed[file] == parts.get(file, 1) for file in completed), run


def assert_same_as_pytest(project: Path, *paths: str, pytest_args=(), runners: int = 2,
                          env: dict[str, str] | None = None, medusa_args=(),
                          python: str = sys.executable) -> tuple[MedusaRun, SerialRun]:
    """Run both, and assert medusa counted every test as pytest did, with its exit code.
    `python`: an interpreter with another pytest (tests/test_pytest_versions.py);
    `medusa_args`: medusa's own options, for medusa only."""
    serial = serial_outcomes(project, pytest_args=(*pytest_args, *paths), env=env, python=python)
    assert serial.outcomes is not None, f"pytest did not finish its session\n{serial}"
    run = run_medusa(project, *medusa_args, *paths, runners=runners, pytest_args=pytest_args,
                     env=env, python=python)
    assert run.outcomes == serial.outcomes, (
        f"medusa and pytest disagree\nonly medusa: {_minus(run.outcomes, serial.outcomes)}\n"
        f"only pytest: {_minus(serial.outcomes, run.outcomes)}\n{run}\n{serial}")
    assert run.exit_code == serial.exit_code, f"{run}\n{serial}"
    check_consistent(run)
    # the summary line: every outcome counted as pytest counts it, deselected included
    assert outcome_counts(run) == serial.counts, f"{run.counts}\n{serial}"
    assert run.counts.get("deselected", 0) == serial.deselected, f"{run.counts}\n{serial}"
    assert summary_line(run.stdout) == summary_line(serial.stdout), f"{run}\n{serial}"
    return run, serial


def summary_line(output: str) -> str:
    """The last line of a pytest-style report without its rules and its duration:
    "===== 1 failed, 4 passed in 0.66s =====" -> "1 failed, 4 passed"."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    text = lines[-1].strip().strip("=").strip()
    return re.sub(r"\s+in [0-9.]+s( \([0-9:]+\))?$", "", text)


def outcome_counts(run: MedusaRun) -> dict[str, int]:
    """medusa's summary counts without the two that are not test outcomes."""
    return {name: n for name, n in run.counts.items()
            if name not in ("deselected", "warnings") and n}


def _minus(a: Outcomes, b: Outcomes) -> Outcomes:
    return sorted((Counter(a) - Counter(b)).elements())


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    environment = dict(os.environ)
    # The suite may itself run under medusa or pytest -n: a project's runners must not think
    # they are ours (worker_id, testrun_uid), and a stray PYTEST_ADDOPTS would change both
    # sides at once anyway.
    for name in ("MEDUSA_WORKER", "MEDUSA_RUNNER", "MEDUSA_RUNNERS", "MEDUSA_RUN_ID",
                 "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER",
                 "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        environment.pop(name, None)
    # Nor may a test project's build think it runs on the CI server that runs this suite
    # (integrations/ci.py): its reports would land in that CI's results.
    environment["MEDUSA_CI"] = "none"
    environment.update(extra or {})
    return environment


def stop_medusa(process: subprocess.Popen) -> tuple[str, str]:
    """A medusa that overran: SIGTERM (it winds down: its workers' teardown hooks may take
    up to master.TEARDOWN_GRACE on a loaded machine), then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 45), (signal.SIGKILL, 10)):
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            return process.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return "", ""


def framework_environment() -> dict[str, str]:
    """For a framework's own serial run (unittest, behave): nothing of ours, and no
    PYTHONPATH, so that it imports what it would on a user's machine."""
    environment = _environment(None)
    environment.pop("PYTHONPATH", None)
    return environment


def run_on_a_terminal(project: Path, environ: dict[str, str], *args: str,
                      timeout: float = 60.0) -> tuple[int, str]:
    """Run medusa with its output on a pseudo-terminal; its exit code and what it wrote."""
    import pty
    import select
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, str(MEDUSA), *args], cwd=project,
                               stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                               env=environ)
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:   # the terminal's other side is closed: medusa ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        return process.wait(timeout=10), b"".join(chunks).decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)


def started(*files: str):
    """For wait_for: every one of `files` has started on a runner."""
    return lambda events: set(files) <= {e.get("file") for e in events
                                         if e["event"] == "file_started"}


def wait_for(events_path: Path, moment, process: subprocess.Popen, timeout: float = 30,
             what: str = "the moment waited for") -> list[dict]:
    """Poll a running build's JSON log until `moment(events)` holds; fails if the build
    ends first or the time runs out. Returns the events read then."""
    deadline = time.monotonic() + timeout
    while not moment(events := read_events(events_path)):
        assert process.poll() is None, f"medusa ended before {what}: {events}"
        assert time.monotonic() < deadline, f"{what} did not come within {timeout} s: {events}"
        time.sleep(0.05)
    return events


