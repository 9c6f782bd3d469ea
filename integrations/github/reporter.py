"""`--format github`: GitHub Actions annotations as failures happen, and a job summary.

- A failed or errored test is an error annotation on the line of the test file where it
  failed (found in its traceback; else the line of the test), titled with the test id.
  A file not run, a worker that could not start or was lost: error annotations too.
- A flaky test (passed on a retry) is a warning annotation.
- GitHub shows 10 annotations of a kind per step and drops the rest without a word: the
  10th says how many more there are (commands.Budget).
- At the end, the counts, the files not run, each failure with its traceback and the
  flaky tests go to $GITHUB_STEP_SUMMARY as Markdown, within GitHub's 1 MiB (summary.py).

Paths: pytest gives them relative to its rootdir; GitHub wants them relative to the
repository ($GITHUB_WORKSPACE), which may be a folder above the project.
"""
from __future__ import annotations

import os
import re
import sys
from typing import IO, Mapping

from medusa import events, messages
from medusa.integrations.github import summary
from medusa.integrations.github.commands import Annotation, Budget
from medusa.reporters import Reporter

PROBLEMS = ("failed", "error")
_LOCATION = re.compile(r"^(?P<path>[^\s:][^:\n]*):(?P<line>\d+): ", re.MULTILINE)


class GitHubReporter(Reporter):
    def __init__(self, stream: IO[str] | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.out = stream or sys.stdout
        self.summary_path = environ.get("GITHUB_STEP_SUMMARY", "")
        self.workspace = environ.get("GITHUB_WORKSPACE", "")
        self.rootdir = ""                 # pytest's, from the first worker
        self.errors = Budget("error", "failures")
        self.warnings = Budget("warning", "flaky tests")
        self.problems: list[messages.Result] = []
        self.flaky: list[messages.Result] = []
        self.not_run: dict[tuple[str, str], events.NotRun] = {}
        self.notes: list[str] = []
        self.finished = False

    # --- events ----------------------------------------------------------------------------

    def on_build_started(self, event: events.BuildStarted) -> None:
        self.rootdir = self.rootdir or event.rootdir

    def on_worker_begin(self, event: messages.WorkerBegin) -> None:
        if event.worker == "local" or not self.rootdir:
            self.rootdir = event.rootdir

    def on_worker_startup_failure(self, event: messages.WorkerStartupFailure) -> None:
        note = f"worker {event.worker} could not start: {event.message}"
        self.notes.append(note)
        self.annotate(self.errors, Annotation("error", event.detail or event.message,
                                              title=f"medusa: {note}"[:200]))

    def on_worker_lost(self, event: events.WorkerLost) -> None:
        note = f"worker {event.worker} was lost: {event.reason}"
        self.notes.append(note)
        self.annotate(self.errors, Annotation("error", event.output or event.reason,
                                              title=f"medusa: {note}"[:200]))

    def on_result(self, event: messages.Result) -> None:
        if event.outcome in PROBLEMS:
            self.problems.append(event)
            where = " (teardown)" if event.when == "teardown" else ""
            self.annotate(self.errors, Annotation(
                "error", f"{event.message}\n\n{event.longrepr}".strip(),
                title=f"{event.outcome.upper()}{where} {event.test}",
                file=self.repo_path(event.path or event.file),
                line=self.failing_line(event)))
        elif event.outcome == "flaky":
            self.flaky.append(event)
            first = event.attempts[0].message if event.attempts else ""
            self.annotate(self.warnings, Annotation(
                "warning", f"failed {len(event.attempts)} time(s), then passed on a retry; "
                           f"first failure: {first}",
                title=f"FLAKY {event.test}", file=self.repo_path(event.path or event.file),
                line=event.line))

    def on_not_run(self, event: events.NotRun) -> None:
        self.report_not_run(event)

    def on_build_finished(self, event: events.BuildFinished) -> None:
        for item in event.not_run:
            self.report_not_run(item)
        for budget in (self.errors, self.warnings):
            last = budget.finish()
            if last is not None:
                self.write(last.command())
        self.finished = True
        if self.summary_path:
            self.write_summary(event)

    # --- pieces ----------------------------------------------------------------------------

    def report_not_run(self, item: events.NotRun) -> None:
        if (item.file, item.reason) in self.not_run:   # as an event, then in BuildFinished
            return
        self.not_run[(item.file, item.reason)] = item
        self.annotate(self.errors, Annotation("error", f"{item.file} was not run: {item.reason}",
                                              title=f"NOT RUN {item.file}",
                                              file=self.repo_path(item.file)))

    def annotate(self, budget: Budget, annotation: Annotation) -> None:
        now = budget.offer(annotation)
        if now is not None:
            self.write(now.command())

    def write_summary(self, finished: events.BuildFinished) -> None:
        try:
            used = os.path.getsize(self.summary_path)
        except OSError:
            used = 0
        text = summary.render(summary.Outline(
            finished, tuple(self.problems), tuple(self.flaky), tuple(self.not_run.values()),
            tuple(self.notes)), summary.LIMIT_BYTES - used)
        # appended: other commands of the step may write to the same job summary
        try:
            with open(self.summary_path, "a", encoding="utf-8", errors="backslashreplace") as out:
                out.write(text)
        except OSError as exc:   # the build's verdict stands without its summary
            self.write(Annotation("warning", f"medusa could not write the job summary to "
                                             f"{self.summary_path}: {exc}").command())

    def repo_path(self, path: str) -> str:
        """`tests/test_x.py` (relative to pytest's rootdir) as the repository names it."""
        if not path or not self.rootdir or not self.workspace or os.path.isabs(path):
            return path
        full = os.path.normpath(os.path.join(self.rootdir, path))
        relative = os.path.relpath(full, os.path.normpath(self.workspace))
        return path if relative.startswith("..") else relative

    def failing_line(self, result: messages.Result) -> int:
        """The line of the test's own file where it failed: the last `path:line: ` of its
        traceback that names that file (the frames below it are in the code it tested)."""
        target = result.path or result.file
        found = [int(m.group("line")) for m in _LOCATION.finditer(result.longrepr)
                 if _same_file(m.group("path"), target)]
        return found[-1] if found else result.line

    def write(self, line: str) -> None:
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except BrokenPipeError:
            pass


def _same_file(shown: str, path: str) -> bool:
    shown, path = os.path.normpath(shown), os.path.normpath(path)
    return shown == path or shown.endswith(os.sep + path) or path.endswith(os.sep + shown)
