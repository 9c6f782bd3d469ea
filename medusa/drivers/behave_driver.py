"""The behave driver: .feature files are the units.

Worker side (`prepare`): behave reads its configuration as the `behave` command does (its
config file: behave.ini, .behaverc, setup.cfg, tox.ini or pyproject.toml, then the
framework arguments: --tags, --name, --include, --exclude, -D, --lang...), finds the
features folder, runs `features/environment.py` and imports the step modules: once, before
the runners are forked. The feature files are found here, without being parsed.

Runner side (`serve`): the before_all hook runs once per runner, after_all when the runner
ends (like a session fixture). Each feature file is parsed in the runner that gets it and
run through behave's own model (Feature.run: before_feature/after_feature, backgrounds,
rules, before_scenario/after_scenario, tag hooks, cleanups, output capture). A scenario's
result is sent as soon as the next one starts (behave's formatter protocol tells us); an
outline gives a result per example row.

Test ids: `features/login.feature::Scenario name`, with the rule when there is one
(`features/a.feature::Rule name::Scenario name`); an example of an outline is named as
behave names it (`features/a.feature::Add -- @1.2 Small numbers`). A name used twice in a
file gets its line: `... (line 12)`.

Outcomes are behave's scenario statuses: passed, failed (an assertion), error (an
exception, an undefined or pending step, a failing hook or cleanup), skipped (by tags or a
hook or step that skips it; behave counts those too), untested scenarios (a run aborted
before them) as skipped. A failing before_feature/after_feature hook is an error of the
file itself (behave counts the feature as failed).

behave's formatters and reporters (-f, --junit, the summary) are not used: each runner
would write its own; medusa's reports (--format) stand in for them.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import time
from collections import Counter
from typing import Any

import behave
import behave.runner
from behave.configuration import Configuration
from behave.model import Rule, Status
from behave.parser import ParserError
from behave.runner import Context, Runner
from behave.runner_util import parse_features

from medusa.drivers import STOP_SIGNAL, Channel, DriverOptions, Prepared, StartupError
from medusa.drivers.common import (
    Selection,
    describe_exception,
    first_line,
    format_exception,
    relative,
    truncate,
)
from medusa.messages import RunFile

# behave's scenario statuses, as the outcomes medusa counts
OUTCOMES = {"passed": "passed", "failed": "failed", "skipped": "skipped",
            "untested": "skipped", "error": "error", "hook_error": "error",
            "cleanup_error": "error", "undefined": "error", "pending": "error",
            "pending_warn": "passed"}


class BehaveDriver:
    name = "behave"

    def __init__(self) -> None:
        self.rootdir = ""
        self.runner: Any = None
        self.locations: dict[str, list[Any]] = {}   # unit -> behave's file locations
        self.before_all_error = ""                  # in this runner
        self.last_file = ""
        self.stopping = False                       # the master stopped the tests (--maxfail)
        self.report: FeatureReport | None = None    # of the feature file running now

    # --- worker side ---------------------------------------------------------------------

    def prepare(self, paths: tuple[str, ...], framework_args: tuple[str, ...],
                options: DriverOptions = (), processes: int = 1) -> Prepared:
        _check_version(behave.__version__)
        self.rootdir = os.getcwd()
        config = _configuration([*framework_args, *paths])
        maxfail = 1 if config.stop else 0
        # stopping after a failure is the master's business, over all runners (WorkerBegin)
        config.stop = False
        config.reporters = []
        runner = Runner(config)
        # the registry `from behave import given` fills (as Runner.run_model takes it)
        runner.step_registry = behave.runner.the_step_registry
        # behave adds the features' base folder to sys.path for the run: for good here
        runner.path_manager.__enter__()
        try:
            runner.setup_paths()
        except Exception as exc:   # behave's ConfigError: no steps folder, no features
            raise StartupError(f"behave: {exc}") from exc
        runner.context = Context(runner)
        try:
            runner.load_hooks()
            runner.load_step_definitions()
        except Exception as exc:
            raise StartupError(f"behave could not load environment.py or the steps: {exc!r}",
                               format_exception(exc)) from exc
        runner.formatters = []
        self.runner = runner
        for location in runner.feature_locations():
            if not config.exclude(location.filename):
                self.locations.setdefault(relative(location.filename, self.rootdir),
                                          []).append(location)
        return Prepared(rootdir=self.rootdir, framework=f"behave {behave.__version__}",
                        files=tuple(self.locations), maxfail=maxfail)

    # --- runner side ---------------------------------------------------------------------

    def serve(self, channel: Channel, runner: int) -> int:
        signal.signal(STOP_SIGNAL, self._stop)
        self.before_all_error = self._hook("before_all")
        try:
            while (work := channel.next_file()) is not None:
                self.last_file = work.file
                if not self.run_unit(channel, work):
                    break
        finally:
            self._after_all(channel)
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        """STOP_SIGNAL (--maxfail reached): behave's own abort, quietly; the scenario that
        runs ends, the rest of the feature is left untested (and not reported)."""
        self.stopping = True
        if self.report is not None:
            self.report.stopped = True
        if self.runner.context is not None:
            self.runner.aborted = True

    def run_unit(self, channel: Channel, work: RunFile) -> bool:
        """Run one feature file; False when behave's run was aborted (the build stops)."""
        started = time.perf_counter()
        report = FeatureReport(channel, work.file, self.rootdir, Selection.of(work),
                               self.runner.config.tag_expression)
        self.report = report
        features = [] if self.stopping else self._parse(work.file, report)
        if self.before_all_error:
            report.file_error("setup", f"before_all hook failed: {self.before_all_error}")
            features = []
        for feature in features:
            self._run_feature(feature, report)
        stopped = self.stopping and (report.tests < report.selected or not features)
        channel.file_complete(work.file, time.perf_counter() - started, report.selected,
                              timings=tuple(report.timings), stopped=stopped)
        if self.runner.aborted and not self.stopping:
            channel.stop_build(work.file, f"behave's run was aborted in {work.file}", 2)
            return False
        return True

    def _parse(self, file: str, report: FeatureReport) -> list[Any]:
        try:
            return parse_features(self.locations[file], language=self.runner.config.lang)
        except (ParserError, OSError, UnicodeDecodeError) as exc:
            report.file_error("collect", describe_exception(exc), format_exception(exc))
            return []

    def _run_feature(self, feature: Any, report: FeatureReport) -> None:
        runner = self.runner
        report.name_scenarios(feature)
        for scenario in feature.walk_scenarios():
            if not report.selection.wants(report.ids[scenario]):
                scenario.mark_skipped()   # a part of a split file: not this part's
            else:
                report.selected += 1
        runner.feature = feature
        runner.formatters = [StreamingFormatter(report)]
        try:
            feature.run(runner)
        except KeyboardInterrupt:
            runner.abort(reason="KeyboardInterrupt")
        report.rest(feature)
        if feature.hook_failed or feature.status == Status.cleanup_error:
            report.file_error("teardown" if report.tests else "setup",
                              first_line(feature.error_message or "") or
                              f"feature {feature.status.name}",
                              feature.error_message or "")

    def _hook(self, name: str) -> str:
        """Run a run-level hook; what it printed when it failed ("" when it passed)."""
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            passed = self.runner.run_hook(name)
        if not passed:
            return first_line(printed.getvalue()) or f"{name} failed"
        sys.stdout.write(printed.getvalue())
        return ""

    def _after_all(self, channel: Channel) -> None:
        failure = self._hook("after_all")
        try:
            self.runner.context._do_remaining_cleanups()
        except Exception as exc:
            failure = failure or f"cleanup failed: {describe_exception(exc)}"
        if failure and self.last_file:
            channel.result(file=self.last_file, test=self.last_file, outcome="error",
                           when="teardown", duration=0.0, message=f"after_all: {failure}",
                           path=self.last_file, line=0)


class FeatureReport:
    """The results of one feature file, as far as its RunFile wants them."""

    def __init__(self, channel: Channel, file: str, rootdir: str, selection: Selection,
                 tags: Any = None) -> None:
        self.channel = channel
        self.file = file
        self.rootdir = rootdir
        self.selection = selection
        self.tags = tags        # behave's tag expression (--tags and the config file's)
        self.ids: dict[Any, str] = {}
        self.sent: set[str] = set()
        self.running: Any = None
        self.selected = 0       # scenarios of this part
        self.tests = 0          # reported
        self.stopped = False    # the tests were stopped: what did not start is not reported
        self.begun: set[Any] = set()   # scenarios behave started before that
        self.timings: list[tuple[str, float]] = []

    def name_scenarios(self, feature: Any) -> None:
        named = [(scenario, self._name(feature, scenario))
                 for scenario in feature.walk_scenarios()]
        twice = {name for name, count in Counter(name for _, name in named).items() if count > 1}
        for scenario, name in named:
            suffix = f" (line {scenario.line})" if name in twice else ""
            self.ids[scenario] = f"{self.file}::{name}{suffix}"

    @staticmethod
    def _name(feature: Any, scenario: Any) -> str:
        rule = next((item for item in feature.run_items if isinstance(item, Rule)
                     and scenario in item.walk_scenarios()), None)
        return f"{rule.name}::{scenario.name}" if rule is not None else scenario.name

    def starting(self, scenario: Any) -> None:
        """behave starts a scenario: the one before it has ended."""
        if self.running is not None:
            self.send(self.running)
        self.running = scenario
        if not self.stopped:
            self.begun.add(scenario)
        if scenario in self.ids and self.selection.wants(self.ids[scenario]):
            self.channel.test_started(self.ids[scenario])

    def rest(self, feature: Any) -> None:
        """The feature has ended: every scenario not sent yet (the last one, and those
        behave did not start: skipped by tags, or never reached)."""
        self.running = None
        for scenario in feature.walk_scenarios():
            self.send(scenario)

    def send(self, scenario: Any) -> None:
        test_id = self.ids.get(scenario)
        if test_id is None or test_id in self.sent or not self.selection.wants(test_id):
            return
        if self.stopped and scenario not in self.begun:
            return   # it did not run: the master lists it as not run
        self.sent.add(test_id)
        self.tests += 1
        status = scenario.status.name
        outcome = OUTCOMES.get(status, "error")
        duration = scenario.duration or 0.0
        if outcome not in ("skipped",):
            self.timings.append((test_id, duration))
        self.channel.result(file=self.file, test=test_id, outcome=outcome, when="call",
                            duration=duration, message=self._message(scenario, status),
                            longrepr=_longrepr(scenario) if outcome in ("failed", "error") else "",
                            sections=_sections(scenario),
                            path=relative(scenario.filename, self.rootdir), line=scenario.line)

    def _message(self, scenario: Any, status: str) -> str:
        if status == "skipped" and not getattr(scenario, "skip_reason", None) and \
                self.tags is not None and not scenario.should_run_with_tags(self.tags):
            return "not selected by the tags"
        return _message(scenario, status)

    def file_error(self, when: str, message: str, longrepr: str = "") -> None:
        self.channel.result(file=self.file, test=self.file, outcome="error", when=when,
                            duration=0.0, message=first_line(message),
                            longrepr=truncate(longrepr), path=self.file, line=0)


class StreamingFormatter:
    """A behave formatter (the calls Feature.run and Scenario.run make) that only tells
    the report when each scenario starts."""

    def __init__(self, report: FeatureReport) -> None:
        self.report = report

    def scenario(self, scenario: Any) -> None:
        self.report.starting(scenario)

    def __getattr__(self, name: str) -> Any:
        # uri, feature, rule, background, step, match, result, eof, close, embedding...
        return _ignore


def _ignore(*args: object, **kwargs: object) -> None:
    return None


def _message(scenario: Any, status: str) -> str:
    if status == "skipped":
        reason = getattr(scenario, "skip_reason", None)
        return first_line(reason) if reason else "skipped"
    if status == "untested":
        return "untested: the run was aborted before it"
    if scenario.hook_failed or status in ("hook_error", "cleanup_error"):
        return first_line(scenario.error_message or status)
    step = _failed_step(scenario)
    if step is None:
        return ""
    if step.status.name == "undefined":
        return f"undefined step: {step.keyword} {step.name}"
    if step.exception is not None:
        return describe_exception(step.exception)
    return first_line(step.error_message or step.status.name)


def _failed_step(scenario: Any) -> Any:
    return next((step for step in scenario.all_steps
                 if step.status.name in ("failed", "error", "undefined", "pending",
                                         "hook_error")), None)


def _longrepr(scenario: Any) -> str:
    step = _failed_step(scenario)
    parts = [_steps_text(scenario)]
    if step is not None and step.error_message:
        parts.append(f"{step.keyword} {step.name}:\n{step.error_message}")
    if scenario.error_message:
        parts.append(scenario.error_message)
    return truncate("\n\n".join(part for part in parts if part))


def _steps_text(scenario: Any) -> str:
    return "\n".join(f"{step.keyword} {step.name} ... {step.status.name}"
                     for step in scenario.all_steps)


def _sections(scenario: Any) -> tuple[tuple[str, str], ...]:
    sections = [("Steps", _steps_text(scenario))]
    captured = getattr(scenario, "captured", None)
    output = captured.make_report() if captured is not None and captured.has_output() else ""
    if output:
        sections.append(("Captured output", truncate(output)))
    return tuple(sections)


def _check_version(version: str) -> None:
    """Older behave has another runner model (no tag expressions v2, no Status enum)."""
    numbers = [int(part) for part in version.split(".")[:2] if part.isdigit()]
    if numbers < [1, 3]:
        raise StartupError(f"medusa needs behave 1.3 or newer; this environment has "
                           f"behave {version}")


def _configuration(args: list[str]) -> Any:
    """behave's Configuration, as the behave command makes it (config file included). Its
    argparse reports a bad argument on stderr and exits: that becomes a StartupError."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return Configuration(command_args=args)
    except SystemExit:
        lines = [line for line in errors.getvalue().splitlines() if line.strip()]
        raise StartupError(f"behave: {lines[-1] if lines else 'bad arguments'}",
                           errors.getvalue()) from None
    except Exception as exc:   # a broken config file, a bad tag expression
        raise StartupError(f"behave: {describe_exception(exc)}", format_exception(exc)) from exc
