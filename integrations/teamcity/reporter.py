"""`--format teamcity`: TeamCity service messages on stdout, as results arrive.

Every runner is a flow (flowId `worker/runner`): TeamCity keeps the messages of parallel
runners apart by it. In its flow a file is a test suite; each result is a test, started,
failed or ignored, with its captured output, finished with its duration. Tests are named
as TeamCity's own pytest plugin names them (names.py), so a project's test history goes on.

- A test that failed and then passed on a retry (--retries) is reported the way TeamCity
  understands retries: each failed attempt as a failed run of the test, then the passing
  run, under the same name; with `testRetrySupport` (sent first) TeamCity counts the test
  as flaky, not failed.
- A failing teardown is a second test, `<name>_teardown`, as TeamCity's pytest plugin
  reports it: the test itself had already finished.
- A file that was not run is a failed test named for the file (`<module>.top_level`),
  with the reason. A worker that could not start or was lost is a build problem.
- At the end, the counts and the duration are build statistics (medusa.tests.<outcome>,
  medusa.files.notRun, medusa.duration), for TeamCity's charts.
"""
from __future__ import annotations

import sys
from typing import IO

from medusa import events, messages
from medusa.integrations.names import file_test_id, teamcity_name
from medusa.integrations.teamcity.service_messages import message
from medusa.reporters import Reporter

FAILED = ("failed", "error")
IGNORED = ("skipped", "xfailed")
NOT_RUN_FLOW = "medusa"          # the flow that reports files that no runner ran
MAX_PROBLEM = 4000               # TeamCity cuts a build problem's description here


class TeamCityReporter(Reporter):
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.out = stream or sys.stdout
        self.open_suites: dict[str, str] = {}     # flow -> the file it is in
        self.retry_support = False
        self.not_run_reported: set[tuple[str, str]] = set()

    # --- events ----------------------------------------------------------------------------

    def on_build_started(self, event: events.BuildStarted) -> None:
        if _asks_for_retries(event.argv):
            self.enable_retries()

    def on_file_started(self, event: events.FileStarted) -> None:
        self.open_suite(_flow(event.worker, event.runner), event.file)

    def on_result(self, event: messages.Result) -> None:
        flow = _flow(event.worker, event.runner)
        self.open_suite(flow, event.file)
        name = teamcity_name(event.test)
        if event.when == "teardown" and event.outcome in FAILED:
            name += "_teardown"
        if event.attempts:
            self.enable_retries()
        for attempt in event.attempts:   # each earlier run: a failed run of the same test
            self.send("testStarted", name=name, captureStandardOutput="false", flowId=flow)
            self.send("testFailed", name=name, message=attempt.message or attempt.outcome,
                      details=f"{attempt.longrepr}\n(attempt on runner "
                              f"{attempt.worker}/{attempt.runner})", flowId=flow)
            self.send("testFinished", name=name, duration=_ms(attempt.duration), flowId=flow)
        self.send("testStarted", name=name, captureStandardOutput="false", flowId=flow)
        for title, text in event.sections:
            if text:
                kind = "testStdErr" if "stderr" in title else "testStdOut"
                self.send(kind, name=name, out=f"----- {title} -----\n{text}", flowId=flow)
        if event.outcome in FAILED:
            self.send("testFailed", name=name, message=event.message or event.outcome,
                      details=f"{event.longrepr or event.message}\n(on runner "
                              f"{event.worker}/{event.runner})", flowId=flow)
        elif event.outcome in IGNORED:
            reason = f"expected failure: {event.message}" if event.outcome == "xfailed" \
                else event.message
            self.send("testIgnored", name=name, message=reason or event.outcome, flowId=flow)
        self.send("testFinished", name=name, duration=_ms(event.duration), flowId=flow)

    def on_file_complete(self, event: messages.FileComplete) -> None:
        self.close_suite(_flow(event.worker, event.runner))

    def on_runner_died(self, event: messages.RunnerDied) -> None:
        self.close_suite(_flow(event.worker, event.runner))

    def on_worker_startup_failure(self, event: messages.WorkerStartupFailure) -> None:
        self.problem(f"medusa: worker {event.worker} could not start: {event.message}")

    def on_worker_lost(self, event: events.WorkerLost) -> None:
        self.problem(f"medusa: worker {event.worker} was lost: {event.reason}")

    def on_not_run(self, event: events.NotRun) -> None:
        self.report_not_run(event)

    def on_build_finished(self, event: events.BuildFinished) -> None:
        for flow in list(self.open_suites):
            self.close_suite(flow)
        for item in event.not_run:
            self.report_not_run(item)
        for outcome, count in event.counts:
            self.send("buildStatisticValue", key=f"medusa.tests.{outcome}", value=count)
        self.send("buildStatisticValue", key="medusa.files.notRun", value=len(event.not_run))
        self.send("buildStatisticValue", key="medusa.duration", value=f"{event.duration:.3f}")
        if event.message:
            self.send("message", text=f"medusa: {event.message}", status="WARNING")

    def close(self) -> None:
        for flow in list(self.open_suites):   # a build that ended without BuildFinished
            self.close_suite(flow)

    # --- pieces ----------------------------------------------------------------------------

    def open_suite(self, flow: str, file: str) -> None:
        if self.open_suites.get(flow) == file:
            return
        self.close_suite(flow)
        self.send("testSuiteStarted", name=file, flowId=flow)
        self.open_suites[flow] = file

    def close_suite(self, flow: str) -> None:
        file = self.open_suites.pop(flow, None)
        if file is not None:
            self.send("testSuiteFinished", name=file, flowId=flow)

    def report_not_run(self, item: events.NotRun) -> None:
        if (item.file, item.reason) in self.not_run_reported:   # as an event, then again
            return
        self.not_run_reported.add((item.file, item.reason))
        name = teamcity_name(file_test_id(item.file))
        self.open_suite(NOT_RUN_FLOW, item.file)
        self.send("testStarted", name=name, captureStandardOutput="false", flowId=NOT_RUN_FLOW)
        self.send("testFailed", name=name, message=f"not run: {item.reason}",
                  details=f"{item.file} was not run: {item.reason}", flowId=NOT_RUN_FLOW)
        self.send("testFinished", name=name, duration=0, flowId=NOT_RUN_FLOW)
        self.close_suite(NOT_RUN_FLOW)

    def enable_retries(self) -> None:
        if not self.retry_support:
            self.retry_support = True
            self.send("testRetrySupport", enabled="true")

    def problem(self, description: str) -> None:
        self.send("buildProblem", description=description[:MAX_PROBLEM])

    def send(self, kind: str, /, **attributes: str | int | None) -> None:
        try:
            self.out.write(message(kind, **attributes) + "\n")
            self.out.flush()
        except BrokenPipeError:   # the reader left; the build goes on
            pass


def _flow(worker: str, runner: int) -> str:
    return f"{worker}/{runner}"


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _asks_for_retries(argv: tuple[str, ...]) -> bool:
    """Whether the command line has --retries N with N > 0 (before any `--`)."""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        value = None
        if arg == "--retries" and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("--retries="):
            value = arg.partition("=")[2]
        if value is not None:
            return value.isdigit() and int(value) > 0
    return False
