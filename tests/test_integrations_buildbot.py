"""--format buildbot and the MedusaTest step (integrations/buildbot/step.py), run on
Buildbot's own classes: its build step test harness (buildbot.test.steps) runs the step
with a fake worker that answers with what a real medusa build printed."""
from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

from integrations_support import KILLER, ODD_PARAMS, PROJECT, RETRIED, need

need("buildbot")

from buildbot.process.results import FAILURE, SUCCESS, WARNINGS  # noqa: E402
from buildbot.test.reactor import TestReactorMixin  # noqa: E402
from buildbot.test.steps import ExpectShell, TestBuildStepMixin  # noqa: E402
from twisted.trial import unittest  # noqa: E402

from helpers import run_medusa, write_project  # noqa: E402
from medusa import events, messages  # noqa: E402
from medusa.integrations.buildbot import reporter as medusa_side  # noqa: E402
from medusa.integrations.buildbot.step import MARKER, MedusaLogObserver, MedusaTest  # noqa: E402

R = messages.Result
COMMAND = ["medusa", "--ci", "buildbot"]


def _lines(events_in: list[object]) -> str:
    out = io.StringIO()
    reporter = medusa_side.BuildbotReporter(out)
    for event in events_in:
        reporter.handle(event)
    return out.getvalue()


def test_one_ascii_line_per_test_whatever_its_name():
    odd = [f"t.py::test_odd[{p}]" for p in ODD_PARAMS]
    output = _lines([R("local", 0, "t.py", test, "passed", "call", 0.5) for test in odd] + [
        R("local", 1, "t.py", "t.py::test_bad", "failed", "call", 0.25, "AssertionError"),
        messages.FileComplete("local", 0, "t.py", 1.0, 8, warnings=2, import_warnings=1),
        events.NotRun("u.py", "its runner died"),
        events.BuildFinished(1, 2.0, (("passed", 7), ("failed", 1)),
                             (events.NotRun("u.py", "its runner died"),))])
    lines = output.splitlines()
    assert all(line.isascii() and line.startswith(MARKER) for line in lines)
    records = [json.loads(line[len(MARKER):]) for line in lines]
    assert [r["test"] for r in records if r["event"] == "test"] == [*odd, "t.py::test_bad"]
    assert [r for r in records if r["event"] == "not_run"] == [
        {"event": "not_run", "file": "u.py", "reason": "its runner died"}]   # once
    assert {"event": "warnings", "file": "t.py", "count": 3} in records
    summary = records[-1]
    assert (summary["total"], summary["passed"], summary["failed"], summary["warnings"]) == (
        9, 7, 2, 3)
    assert medusa_side.MARKER + " " == MARKER   # the step, copied alone, reads the same lines


def test_the_observer_counts_as_the_lines_stream_in():
    seen = []
    observer = MedusaLogObserver(on_test=seen.append)
    output = _lines([R("local", 0, "t.py", "t.py::a", "passed", "call", 0.1),
                     R("local", 0, "t.py", "t.py::b", "error", "setup", 0.1),
                     R("local", 0, "t.py", "t.py::c", "flaky", "call", 0.1)])
    # as Buildbot hands it over: chunks of whole lines, among other output
    observer.outReceived("=== medusa: test session starts ===\n" + output
                         + "medusa-buildbot not json\n")
    assert [r["test"] for r in seen] == ["t.py::a", "t.py::b", "t.py::c"]
    assert (observer.total(), observer.passed(), observer.failed(), observer.flaky()) == (3, 2, 1, 1)
    assert observer.summary is None and observer.bad_lines == 1


class MedusaTestStep(TestBuildStepMixin, TestReactorMixin, unittest.TestCase):
    def setUp(self):
        self.setup_test_reactor()
        return self.setup_test_build_step()

    def _real_build(self, files: dict[str, str], *args: str):
        """A real medusa build's stdout: what the worker sends the step."""
        scratch = Path(tempfile.mkdtemp(prefix="medusa-buildbot-"))
        try:
            project = write_project(scratch / "p", files)
            run = run_medusa(project, "--format", "buildbot", *args)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return run

    def _expect_results(self, results: list[dict]) -> None:
        self.expect_test_result_sets([("medusa", "pass_fail", "boolean")])
        self.expect_test_results([
            (1000, 0 if r["outcome"] in ("failed", "error") else 1, r["test"], r["path"],
             r["line"] or None, round(round(r["duration"], 6) * 1e9)) for r in results])

    def test_a_real_build_with_failures(self):
        run = self._real_build({**PROJECT, **RETRIED, **KILLER}, "--retries", "1")
        self.assertEqual(run.exit_code, 1, str(run))
        results = run.results
        failed = sum(r["outcome"] in ("failed", "error") for r in results)
        failed += len(run.finished["not_run"])
        passed = sum(r["outcome"] in ("passed", "xpassed", "flaky") for r in results)
        total = len(results) + len(run.finished["not_run"])
        self.setup_step(MedusaTest())
        self.expect_commands(ExpectShell(workdir="wkdir", command=COMMAND)
                             .stdout(run.stdout).stderr(run.stderr).exit(run.exit_code))
        state = f"{total} tests {passed} passed {failed} failed (failure)"
        self.expect_outcome(result=FAILURE, state_string=state)
        self.expect_result_summary({"step": state})
        self._expect_results(results)
        return self.run_step()

    def test_a_real_build_that_passes(self):
        run = self._real_build({"tests/test_a.py": "def test_a():\n    pass\n\n"
                                                   "def test_warning_in_the_name():\n    pass\n"})
        self.assertEqual(run.exit_code, 0, str(run))
        self.setup_step(MedusaTest())
        self.expect_commands(ExpectShell(workdir="wkdir", command=COMMAND)
                             .stdout(run.stdout).exit(0))
        self.expect_outcome(result=SUCCESS, state_string="2 tests 2 passed")
        self._expect_results(run.results)
        return self.run_step()

    def test_a_flaky_test_is_a_warning(self):
        run = self._real_build({"tests/test_retried.py": RETRIED["tests/test_retried.py"]
                                .replace("def test_always_fails", "def _not_a_test")},
                               "--retries", "1")
        self.assertEqual(run.exit_code, 0, str(run))
        self.setup_step(MedusaTest(store_results=False))
        self.expect_commands(ExpectShell(workdir="wkdir", command=COMMAND)
                             .stdout(run.stdout).exit(0))
        self.expect_outcome(result=WARNINGS, state_string="1 tests 1 passed (warnings)")
        return self.run_step()

    def test_a_build_cut_short_is_counted_from_what_came(self):
        """medusa killed before its summary line: the lines that came still count, and
        its exit code fails the step."""
        lines = _lines([R("local", 0, "t.py", "t.py::a", "passed", "call", 0.1),
                        R("local", 0, "t.py", "t.py::b", "passed", "call", 0.1)])
        self.setup_step(MedusaTest(store_results=False, command=["medusa", "--ci", "buildbot"]))
        self.expect_commands(ExpectShell(workdir="wkdir", command=COMMAND)
                             .stdout(lines).exit(-9))
        self.expect_outcome(result=FAILURE, state_string="2 tests 2 passed (failure)")
        return self.run_step()
