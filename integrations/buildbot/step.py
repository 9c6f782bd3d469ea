"""A Buildbot step that runs medusa and counts its tests: copy this file next to your
master.cfg (it needs nothing of medusa's, only Buildbot), or import it from
medusa.integrations.buildbot.step where medusa is installed on the master. See master.cfg.

    from medusa_step import MedusaTest
    factory.addStep(MedusaTest())                    # runs `medusa --ci buildbot`
    factory.addStep(MedusaTest(command=["medusa", "--ci", "buildbot", "--local", "4"]))

MedusaLogObserver reads the lines that `medusa --format buildbot` writes (implied by
`--ci buildbot`): `medusa-buildbot {json}`. The step then has Buildbot's test statistics
(tests-total, tests-passed, tests-failed, tests-warnings, shown as "12 tests 10 passed 2
failed"), one stored test result per test (Buildbot's "Test Results" tab), and ends in
FAILURE when tests failed, files were not run or medusa said so by its exit code, in
WARNINGS when tests were flaky (passed on a retry) or raised warnings.
"""
from __future__ import annotations

import json

from buildbot.process import logobserver
from buildbot.process.results import FAILURE, WARNINGS, worst_status
from buildbot.steps.shell import Test
from twisted.internet import defer

MARKER = "medusa-buildbot "
FAILED = ("failed", "error")


class MedusaLogObserver(logobserver.LogLineObserver):
    """Counts what medusa reports, line by line, as the output streams in."""

    def __init__(self, on_test=None) -> None:
        super().__init__()
        # medusa's lines carry long test ids; Buildbot's default drops lines over 16 KiB
        self.setMaxLineLength(1024 * 1024)
        self.on_test = on_test        # called with each test record, as it comes
        self.tests: list[dict] = []
        self.not_run: list[dict] = []
        self.warnings = 0
        self.summary: dict | None = None
        self.bad_lines = 0            # marked lines that were not medusa's JSON

    def outLineReceived(self, line: str) -> None:
        if not line.startswith(MARKER):
            return
        try:
            record = json.loads(line[len(MARKER):])
            kind = record["event"]
        except (ValueError, KeyError, TypeError):
            self.bad_lines += 1
            return
        if kind == "test":
            self.tests.append(record)
            if self.on_test is not None:
                self.on_test(record)
        elif kind == "not_run":
            self.not_run.append(record)
        elif kind == "warnings":
            self.warnings += int(record.get("count", 0))
        elif kind == "summary":
            self.summary = record

    # What the lines say, also when the summary never came (medusa was killed).

    def failed(self) -> int:
        if self.summary is not None:
            return int(self.summary["failed"])
        return sum(1 for t in self.tests if t["outcome"] in FAILED) + len(self.not_run)

    def passed(self) -> int:
        if self.summary is not None:
            return int(self.summary["passed"])
        return sum(1 for t in self.tests if t["outcome"] in ("passed", "xpassed", "flaky"))

    def total(self) -> int:
        if self.summary is not None:
            return int(self.summary["total"])
        return len(self.tests) + len(self.not_run)

    def flaky(self) -> int:
        return sum(1 for t in self.tests if t["outcome"] == "flaky")


class MedusaTest(Test):
    name = "medusa"
    description = ["testing"]
    descriptionDone = ["tests"]
    command = ["medusa", "--ci", "buildbot"]
    # medusa counts warnings itself; a test named "warning: x" is not one
    warningPattern = None

    def __init__(self, store_results: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.store_results = store_results
        self.result_set_id = None
        self.observer = MedusaLogObserver(on_test=self._store)
        self.addLogObserver("stdio", self.observer)

    @defer.inlineCallbacks
    def addTestResultSets(self):
        if self.store_results:
            self.result_set_id = yield self.addTestResultSet("medusa", "pass_fail", "boolean")

    def _store(self, record: dict) -> None:
        if self.result_set_id is None:
            return
        passed = record["outcome"] not in FAILED
        self.addTestResult(self.result_set_id, 1 if passed else 0, test_name=record["test"],
                           test_code_path=record.get("file") or None,
                           line=record.get("line") or None,
                           duration_ns=round(float(record.get("duration", 0)) * 1e9))

    def evaluateCommand(self, cmd):
        observer = self.observer
        self.setTestResults(total=observer.total(), failed=observer.failed(),
                            passed=observer.passed(), warnings=observer.warnings)
        result = cmd.results()
        if observer.failed():
            result = worst_status(result, FAILURE)
        elif observer.flaky() or observer.warnings:
            result = worst_status(result, WARNINGS)
        return result
