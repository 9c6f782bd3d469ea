"""`--format buildbot`: one line per test outcome, and one with the totals, for Buildbot.

Buildbot reads a step's output line by line (a log observer). The MedusaTest step in
step.py counts these lines into the step's test statistics (total, passed, failed,
warnings), which Buildbot shows as "12 tests 10 passed 2 failed", and stores each test in
Buildbot's test results. Each line is the marker and one JSON object in ASCII, so that a
test id with quotes, brackets, line ends or any letter stays whole on its line:

    medusa-buildbot {"event": "test", "test": "tests/test_x.py::test_y", "outcome": "failed", ...}
    medusa-buildbot {"event": "not_run", "file": "tests/test_z.py", "reason": "..."}
    medusa-buildbot {"event": "warnings", "file": "tests/test_x.py", "count": 2}
    medusa-buildbot {"event": "summary", "total": 12, "passed": 9, "failed": 2, ...}

"failed" counts what fails the build: failed and errored tests and files not run. A flaky
test (passed on a retry) counts as passed, and makes the step end in WARNINGS.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from typing import IO

from medusa import events, messages
from medusa.reporters import Reporter

MARKER = "medusa-buildbot"
FAILED = ("failed", "error")
PASSED = ("passed", "xpassed", "flaky")
SKIPPED = ("skipped", "xfailed")


class BuildbotReporter(Reporter):
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.out = stream or sys.stdout
        self.counts: Counter[str] = Counter()
        self.not_run: set[tuple[str, str]] = set()
        self.warnings = 0

    def on_result(self, event: messages.Result) -> None:
        self.counts[event.outcome] += 1
        self.send({"event": "test", "test": event.test, "outcome": event.outcome,
                   "when": event.when, "duration": round(event.duration, 6),
                   "file": event.path or event.file, "line": event.line,
                   "attempts": len(event.attempts)})

    def on_file_complete(self, event: messages.FileComplete) -> None:
        count = event.warnings + event.import_warnings
        if count:
            self.warnings += count
            self.send({"event": "warnings", "file": event.file, "count": count})

    def on_not_run(self, event: events.NotRun) -> None:
        self.report_not_run(event)

    def on_build_finished(self, event: events.BuildFinished) -> None:
        for item in event.not_run:
            self.report_not_run(item)
        tests = sum(n for outcome, n in self.counts.items())
        self.send({
            "event": "summary", "total": tests + len(self.not_run),
            "passed": sum(self.counts[o] for o in PASSED),
            "failed": sum(self.counts[o] for o in FAILED) + len(self.not_run),
            "skipped": sum(self.counts[o] for o in SKIPPED),
            "flaky": self.counts["flaky"], "not_run": len(self.not_run),
            "warnings": self.warnings, "exit_code": event.exit_code,
            "duration": round(event.duration, 3), "message": event.message})

    def report_not_run(self, item: events.NotRun) -> None:
        if (item.file, item.reason) in self.not_run:   # as an event, then in BuildFinished
            return
        self.not_run.add((item.file, item.reason))
        self.send({"event": "not_run", "file": item.file, "reason": item.reason})

    def send(self, record: dict[str, object]) -> None:
        try:
            self.out.write(f"{MARKER} {json.dumps(record, ensure_ascii=True)}\n")
            self.out.flush()
        except BrokenPipeError:
            pass
