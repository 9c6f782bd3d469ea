"""`--format junit:PATH`: JUnit XML for Jenkins, Bamboo and the other CI servers.

One testsuite per test file (`--junit-suites file`, the default: Jenkins and Bamboo show a
suite per file, as with pytest-xdist), or one for the whole build (`--junit-suites run`,
as plain pytest writes it). Testcases are named as pytest's --junitxml names them (see
names.py), so the history a CI server keeps goes on when a project moves to medusa.

Nothing is lost: a file that was not run is an errored testcase named for the file, with
the reason, as pytest reports a file that fails to import. The file is written once, at
the end of the build (and, if the build ended without saying so, when the reporters are
closed), whole: into a temporary file that then replaces PATH, so that a CI server never
reads half a report.
"""
from __future__ import annotations

import os
import tempfile
import time

from medusa import events, messages
from medusa.integrations.junit.document import Case, Suite, foreign_attributes, render
from medusa.integrations.names import file_test_id
from medusa.reporters import Reporter

SUITES = ("file", "run")


class JUnitReporter(Reporter):
    def __init__(self, path: str, suites: str = "file") -> None:
        if suites not in SUITES:
            raise ValueError(f"--junit-suites takes {' or '.join(SUITES)}, not {suites!r}")
        self.path = path
        self.suites = suites
        self.run_id = ""
        self.duration: float | None = None
        self.found: list[str] = []                         # as the workers found them
        self.files: list[str] = []                         # as they were first heard of
        self.results: dict[str, dict[str, list[messages.Result]]] = {}   # file -> test -> ...
        self.durations: dict[str, float] = {}              # file -> runner seconds
        self.started: dict[str, float] = {}                # file -> first start (time.time())
        self.runners: dict[str, list[str]] = {}            # file -> runners that ran it
        self.not_run: dict[str, list[str]] = {}            # file -> reasons
        self.startup_failures: list[messages.WorkerStartupFailure] = []
        self.build_started = 0.0
        self.written = False
        # Fail now, not after a long build, when PATH cannot be written.
        self._check_writable()

    # --- events ----------------------------------------------------------------------------

    def on_build_started(self, event: events.BuildStarted) -> None:
        self.run_id = event.run_id
        self.build_started = event.started_at

    def on_worker_begin(self, event: messages.WorkerBegin) -> None:
        for file in event.files:
            self._file(file)
            if file not in self.found:
                self.found.append(file)

    def on_worker_startup_failure(self, event: messages.WorkerStartupFailure) -> None:
        self.startup_failures.append(event)

    def on_file_started(self, event: events.FileStarted) -> None:
        self._file(event.file)
        # the master stamps no time on this event: when we hear of it is close enough
        self.started.setdefault(event.file, time.time())
        self._runner(event.file, f"{event.worker}/{event.runner}")

    def on_result(self, event: messages.Result) -> None:
        self._file(event.file)
        self.results[event.file].setdefault(event.test, []).append(event)
        self._runner(event.file, f"{event.worker}/{event.runner}")

    def on_file_complete(self, event: messages.FileComplete) -> None:
        self._file(event.file)
        self.durations[event.file] = self.durations.get(event.file, 0.0) + event.duration

    def on_not_run(self, event: events.NotRun) -> None:
        self._not_run(event)

    def on_build_finished(self, event: events.BuildFinished) -> None:
        for item in event.not_run:
            self._not_run(item)
        self.duration = event.duration
        self.write()

    def close(self) -> None:
        if not self.written:   # the build ended without BuildFinished: keep what came
            self.write()

    # --- the document ----------------------------------------------------------------------

    def write(self) -> None:
        document = render(self.build_suites(), "medusa", self._duration())
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".medusa-junit-", dir=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(document)
            os.chmod(temporary, 0o644)   # mkstemp makes it private; a report is not
            os.replace(temporary, self.path)
        except BaseException:
            os.unlink(temporary)
            raise
        self.written = True

    def build_suites(self) -> list[Suite]:
        # in the order the files were found, whatever order they ran in
        order = dict.fromkeys([*self.found, *self.files])
        suites = [self._suite(file) for file in order
                  if self.results[file] or self.not_run.get(file)]
        if self.startup_failures:
            suites.append(self._startup_suite())
        if self.suites == "file":
            return suites
        cases = tuple(case for suite in suites for case in suite.cases)
        runners = tuple(dict.fromkeys(v for s in suites for k, v in s.properties if k == "runner"))
        recorded = tuple(pair for file in order for pair in self._recorded(file))
        # one suite for the build, as plain pytest writes it: the build's wall time
        return [Suite("medusa", "", cases, self._duration(), self.build_started or None,
                      (("run_id", self.run_id),) + tuple(("runner", r) for r in runners)
                      + self._session_properties() + recorded)]

    def _session_properties(self) -> tuple[tuple[str, str], ...]:
        """What record_testsuite_property recorded, in any runner: the session's, so
        every suite's, once each."""
        return tuple(dict.fromkeys(pair for tests in self.results.values()
                                   for results in tests.values() for result in results
                                   for pair in result.suite_properties))

    def _recorded(self, file: str) -> tuple[tuple[str, str], ...]:
        """What the file's tests recorded about themselves (record_property, the
        attributes of record_xml_attribute that a testcase cannot hold), named by the test:
        a testcase may not have <properties> in the schema Jenkins checks."""
        return tuple(dict.fromkeys(
            (f"{result.test}::{name}", value)
            for results in self.results.get(file, {}).values() for result in results
            for name, value in (*result.properties, *foreign_attributes(result))))

    def _suite(self, file: str) -> Suite:
        tests = self.results[file]
        cases = [Case(test, tuple(results)) for test, results in tests.items()]
        reasons = tuple(self.not_run.get(file, ()))
        if reasons:
            whole = file_test_id(file)
            if whole in tests:   # the file also failed to collect: one testcase for both
                cases = [Case(c.test, c.results, reasons) if c.test == whole else c
                         for c in cases]
            else:
                cases.append(Case(whole, (), reasons))
        duration = self.durations.get(file)
        if duration is None:   # never completed: what its tests took
            duration = sum(r.duration for rs in tests.values() for r in rs if r.when != "teardown")
        properties = (("run_id", self.run_id),) + tuple(
            ("runner", runner) for runner in self.runners.get(file, ())) \
            + self._session_properties() + self._recorded(file)
        return Suite(file, file, tuple(cases), duration, self.started.get(file), properties)

    def _startup_suite(self) -> Suite:
        """A worker that could not start ran nothing, and a CI server that reads no
        testcase says only "no test results": say why, as a test that errored."""
        cases = tuple(
            Case(f"medusa::worker {failure.worker} could not start", (messages.Result(
                worker=failure.worker, runner=0, file="", outcome="error", when="setup",
                test=f"medusa::worker {failure.worker} could not start", duration=0.0,
                message=failure.message, longrepr=failure.detail or failure.message),))
            for failure in self.startup_failures)
        return Suite("medusa", "", cases, 0.0, self.build_started or None,
                     (("run_id", self.run_id),))

    # --- pieces ----------------------------------------------------------------------------

    def _file(self, file: str) -> None:
        if file not in self.results:
            self.files.append(file)
            self.results[file] = {}

    def _runner(self, file: str, runner: str) -> None:
        runners = self.runners.setdefault(file, [])
        if runner not in runners:
            runners.append(runner)

    def _not_run(self, item: events.NotRun) -> None:
        self._file(item.file)
        reasons = self.not_run.setdefault(item.file, [])
        if item.reason not in reasons:   # as a NotRun event and again in BuildFinished
            reasons.append(item.reason)

    def _duration(self) -> float:
        if self.duration is not None:
            return self.duration
        return sum(self.durations.values())

    def _check_writable(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path)) or "."
        os.makedirs(directory, exist_ok=True)
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"--format junit:{self.path}: is a directory")
        if not os.access(directory, os.W_OK):
            raise PermissionError(f"--format junit:{self.path}: cannot write in {directory}")
