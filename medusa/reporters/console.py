"""The terminal display.

On a terminal: failures are printed as they happen, above one status line that shows the
counts and what each runner is running. Elsewhere (CI logs, pipes): one plain line per
finished file, pytest-style, so the log streams. At the end, both print the failures with
their tracebacks and captured output, the files not run, and pytest's summary line.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from collections import Counter
from typing import IO

from medusa import events, messages
from medusa.reporters import Reporter
from medusa.scheduler import file_label

LETTERS = {"passed": ".", "failed": "F", "error": "E", "skipped": "s", "xfailed": "x",
           "xpassed": "X", "flaky": "R"}
PROBLEMS = ("failed", "error")
# a test's line under -v, as pytest words it
WORDS = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR", "skipped": "SKIPPED",
         "xfailed": "XFAIL", "xpassed": "XPASS", "flaky": "FLAKY"}
REDRAW_SECONDS = 0.1
TOP_FILES = 5     # files listed as the slowest and as the heaviest in memory
MiB = 1024 * 1024


def is_live(stream: IO[str]) -> bool:
    """A status line that redraws itself only makes sense on a terminal a person watches."""
    return stream.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


class ConsoleReporter(Reporter):
    def __init__(self, stream: IO[str] | None = None, verbose: int = 0) -> None:
        self.out = stream or sys.stdout
        self.verbose = verbose    # pytest's -v: a line per test
        self.tests_total = 0      # collected by the first worker (0: not known)
        self.tests_done = 0
        self.live = is_live(self.out)
        self.width = shutil.get_terminal_size((80, 24)).columns
        self.files_total = 0
        self.files_done = 0
        self.counts: Counter[str] = Counter()
        self.letters: dict[str, list[str]] = {}          # "worker/runner" -> outcome letters
        self.running: dict[str, events.FileStarted] = {}  # "worker/runner" -> what it runs
        self.parts_done: Counter[str] = Counter()         # file -> parts finished
        self.problems: list[messages.Result] = []
        self.flaky: list[messages.Result] = []
        self.last_header = ""
        self.status_shown = False
        self.last_draw = 0.0
        self.file_stats: dict[str, FileTotals] = {}      # file -> its parts, summed
        self.coverage: events.CoverageReport | None = None
        self.framework_summary: events.FrameworkSummary | None = None

    # --- events ----------------------------------------------------------------------------

    def on_build_started(self, event: events.BuildStarted) -> None:
        self.rule("medusa: test session starts")
        self.line(f"run {event.run_id}, workers: {', '.join(event.workers)}")

    def on_framework_header(self, event: events.FrameworkHeader) -> None:
        for line in event.lines:
            self.line(line)

    def on_framework_summary(self, event: events.FrameworkSummary) -> None:
        self.framework_summary = event

    def on_worker_begin(self, event: messages.WorkerBegin) -> None:
        if not self.files_total:
            self.files_total = len(event.files)
        if not self.tests_total and event.tests is not None:
            self.tests_total = sum(len(tests) for tests in event.tests)
        self.line(f"worker {event.worker}: {event.runners} runners ({event.runners_reason})")
        self.line(f"worker {event.worker}: {event.framework}, rootdir {event.rootdir}, "
                  f"{len(event.files)} files, ready in {event.startup_seconds:.2f}s")

    def on_worker_waiting(self, event: messages.WorkerWaiting) -> None:
        self.line(f"worker {event.worker}: {event.reason}")

    def on_worker_startup_failure(self, event: messages.WorkerStartupFailure) -> None:
        self.line(f"ERROR: worker {event.worker} could not start: {event.message}")
        if event.detail:
            self.line(event.detail.rstrip())

    def on_initializer_output(self, event: messages.InitializerOutput) -> None:
        header = f"{_where(event)} {event.hook}:"
        if header != self.last_header:   # a hook's output may come in several pieces
            self.line(header)
            self.last_header = header
        self.line(_indent(event.text.rstrip()))

    def on_initializer_result(self, event: messages.InitializerResult) -> None:
        if not event.ok:
            self.line(f"ERROR: {_where(event)} {event.hook} failed: {event.message}")
            if event.detail:
                self.line(_indent(event.detail.rstrip()))

    def on_worker_lost(self, event: events.WorkerLost) -> None:
        self.line(f"ERROR: worker {event.worker} was lost: {event.reason}")
        if event.output:
            self.line(_indent(event.output))

    def on_output(self, event: events.Output) -> None:
        self.clear_status()
        self.write(event.text)

    def on_file_started(self, event: events.FileStarted) -> None:
        self.running[f"{event.worker}/{event.runner}"] = event
        self.draw_status(force=True)

    def on_result(self, event: messages.Result) -> None:
        self.counts[event.outcome] += 1
        if event.when != "teardown":
            self.tests_done += 1
        if self.verbose:
            self.test_line(event)
        runner = f"{event.worker}/{event.runner}"
        self.letters.setdefault(runner, []).append(LETTERS.get(event.outcome, "?"))
        if event.outcome == "flaky":
            self.flaky.append(event)
        if event.outcome in PROBLEMS:
            self.problems.append(event)
            if self.live:
                self.line(f"{event.outcome.upper()} {event.test} - {event.message}")
        self.draw_status()

    def test_line(self, event: messages.Result) -> None:
        """`tests/test_x.py::test_y PASSED   [ 10%] local/1`, pytest's -v line and the
        runner that ran it."""
        text = f"{event.test} {WORDS.get(event.outcome, event.outcome.upper())}"
        if self.tests_total:
            share = min(100, 100 * self.tests_done // self.tests_total)
            tail = f"[{share:3d}%] {event.worker}/{event.runner}"
            text = text + " " * max(1, self.width - 1 - len(text) - len(tail)) + tail
        self.line(text)

    def on_file_complete(self, event: messages.FileComplete) -> None:
        runner = f"{event.worker}/{event.runner}"
        started = self.running.pop(runner, None)
        parts = started.parts if started else 1
        if not (started and started.retry):
            self.parts_done[event.file] += 1
            if self.parts_done[event.file] == parts:
                self.files_done += 1
        letters = "".join(self.letters.pop(runner, []))
        if event.stats is not None:
            self.file_stats.setdefault(event.file, FileTotals()).add(event.stats)
        if not self.live and not self.verbose:
            self.line(f"{_label(started) if started else event.file} {letters} {self.progress()}")
        self.draw_status(force=True)

    def on_plan(self, event: events.Plan) -> None:
        self.rule("plan (dry run)")
        for unit in event.units:
            expected = "new" if unit.expected is None else f"{unit.expected:.2f}s"
            self.line(f"{expected:>9}  {unit.label}")
        self.rule("expected time per runner")
        for index, lane in enumerate(event.runners):
            known = sum(u.expected or 0.0 for u in lane)
            new = sum(1 for u in lane if u.expected is None)
            extra = f" + {new} new files" if new else ""
            self.line(f"runner {index}: {len(lane)} units, {known:.2f}s{extra}")

    def on_coverage_report(self, event: events.CoverageReport) -> None:
        self.coverage = event

    def on_stop_build(self, event: messages.StopBuild) -> None:
        self.line(f"!!! {event.reason} !!!" if event.exit_code != 4 else f"ERROR: {event.reason}")

    def on_runner_died(self, event: messages.RunnerDied) -> None:
        started = self.running.pop(f"{event.worker}/{event.runner}", None)
        letters = "".join(self.letters.pop(f"{event.worker}/{event.runner}", []))
        if started is not None and not self.live:
            self.line(f"{_label(started)} {letters} (its runner died)")
        where = f" while running {event.test or event.file}" if event.file else ""
        self.line(f"ERROR: runner {event.worker}/{event.runner} died ({event.reason}){where}")

    def on_build_finished(self, event: events.BuildFinished) -> None:
        self.clear_status()
        self.print_problems()
        if event.not_run:
            self.rule("not run")
            for item in event.not_run:
                self.line(f"{item.file}: {item.reason}")
        if self.flaky:
            self.rule("flaky tests (failed, then passed on a retry)")
            for result in self.flaky:
                self.line(f"FLAKY {result.test}")
                for attempt in result.attempts:
                    self.line(f"    {attempt.outcome} on {attempt.worker}/{attempt.runner}: "
                              f"{attempt.message}"[:self.width])
        self.print_file_stats()
        self.print_coverage()
        summary = self.framework_summary
        if summary is not None:   # pytest's own, after medusa's: its last word is seen
            self.line(summary.text)
        if self.problems and not (summary and summary.short_summary):
            self.rule("short test summary info")
            for result in self.problems:
                runs = f" (after {len(result.attempts) + 1} runs)" if result.attempts else ""
                self.line(f"{result.outcome.upper()} {result.test}{runs} - {result.message}"[:self.width])
        self.rule(summary_text(event), end=True)

    # --- pieces ----------------------------------------------------------------------------

    def print_problems(self) -> None:
        for title, outcome in (("ERRORS", "error"), ("FAILURES", "failed")):
            results = [r for r in self.problems if r.outcome == outcome]
            if not results:
                continue
            self.rule(title)
            for result in results:
                self.rule(f"{result.test} ({result.worker}/{result.runner})", char="_")
                self.line(result.longrepr.rstrip() or result.message)
                for section_title, text in result.sections:
                    if text.strip():
                        self.rule(section_title, char="-")
                        self.line(text.rstrip())

    def print_file_stats(self) -> None:
        """The slowest files and the heaviest in memory (messages.FileStats)."""
        if not self.file_stats:
            return
        totals = sorted(self.file_stats.items(), key=lambda item: -item[1].wall)
        self.rule("slowest files (wall, CPU user+system)", char="-")
        for file, t in totals[:TOP_FILES]:
            self.line(f"{t.wall:8.2f}s {t.cpu:8.2f}s cpu  {file}")
        heaviest = sorted(self.file_stats.items(), key=lambda item: -item[1].peak_rss)
        self.rule("most memory (peak RSS of the runner while it ran the file)", char="-")
        for file, t in heaviest[:TOP_FILES]:
            self.line(f"{t.peak_rss / MiB:8.1f} MiB  {file}")
        for file, t in sorted(self.file_stats.items()):
            if t.children_left:
                pids = ", ".join(str(pid) for pid in t.children_left)
                self.line(f"WARNING: {file} left {len(t.children_left)} child process"
                          f"{'es' if len(t.children_left) > 1 else ''} running (pid {pids})")

    def print_coverage(self) -> None:
        event = self.coverage
        if event is None:
            return
        self.rule("coverage", char="-")
        if event.error:
            self.line(f"WARNING: {event.error}")
            return
        if event.text:
            self.line(event.text.rstrip())
        for path in event.written:
            self.line(f"coverage report written to {path}")
        self.line(f"total coverage: {event.total:.2f}%")

    def progress(self) -> str:
        if not self.files_total:
            return ""
        return f"[{100 * self.files_done // self.files_total:3d}%]"

    def draw_status(self, force: bool = False) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < REDRAW_SECONDS:
            return
        self.last_draw = now
        counts = " ".join(f"{n} {o}" for o, n in sorted(self.counts.items()))
        running = " ".join(f"{r}:{os.path.basename(_label(f))}"
                           for r, f in sorted(self.running.items()))
        text = f"{self.progress()} {self.files_done}/{self.files_total} files {counts} | {running}"
        self.write("\r" + text[: self.width - 1] + "\x1b[K")
        self.status_shown = True

    def clear_status(self) -> None:
        if self.status_shown:
            self.write("\r\x1b[K")
            self.status_shown = False

    def line(self, text: str) -> None:
        self.clear_status()
        self.write(text + "\n")

    def write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:   # `medusa | head`: the reader left; the build goes on
            self.out = open(os.devnull, "w")

    def rule(self, title: str, char: str = "=", end: bool = False) -> None:
        text = f" {title} "
        side = max(3, (self.width - len(text)) // 2)
        self.line(char * side + text + char * (side if end else max(3, self.width - side - len(text))))


class FileTotals:
    """A file's statistics over its parts (a split file ran on several runners)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.peak_rss = 0
        self.children_left: tuple[int, ...] = ()

    def add(self, stats: messages.FileStats) -> None:
        self.wall += stats.wall
        self.cpu += stats.cpu_user + stats.cpu_system
        self.peak_rss = max(self.peak_rss, stats.peak_rss)
        self.children_left += stats.children_left


def summary_text(event: events.BuildFinished) -> str:
    parts = [f"{n} {_plural(n, name)}" for name, n in event.counts]
    if event.not_run:
        parts.append(f"{len(event.not_run)} files not run")
    text = ", ".join(parts) or event.message or "no tests ran"
    if parts and event.message:
        text += f" ({event.message})"
    return f"{text} in {event.duration:.2f}s"


def _label(started: events.FileStarted) -> str:
    label = file_label(started.file, started.part, started.parts)
    return f"{label} [retry]" if started.retry else label


def _plural(count: int, noun: str) -> str:
    """As pytest writes them: "1 warning", "2 warnings", "1 error", "2 errors"."""
    if noun == "warnings" and count == 1:
        return "warning"
    if noun == "error" and count != 1:
        return "errors"
    return noun


def _where(event: messages.InitializerOutput | messages.InitializerResult) -> str:
    if event.runner is None:
        return f"worker {event.worker}"
    return f"runner {event.worker}/{event.runner}"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
