"""Reporters consume the master's event stream; none talks to a worker.

An event is a frozen dataclass (events.py, and some messages.py ones); a reporter handles
the events it cares about with `on_<event name>` methods and ignores the rest. Adding an
output format is adding a module here and a line to FORMATS.
"""
from __future__ import annotations

import importlib
import traceback
from typing import IO

from medusa.messages import event_name

# name -> (module:class, whether it needs a path)
FORMATS = {
    "console": ("medusa.reporters.console:ConsoleReporter", False),
    "json": ("medusa.reporters.jsonlog:JsonReporter", True),
    "html": ("medusa.reporters.html:HtmlReporter", True),
    # CI formats: integrations/ (installed as medusa.integrations)
    "junit": ("medusa.integrations.junit.reporter:JUnitReporter", True),
    "teamcity": ("medusa.integrations.teamcity.reporter:TeamCityReporter", False),
    "github": ("medusa.integrations.github.reporter:GitHubReporter", False),
    "buildbot": ("medusa.integrations.buildbot.reporter:BuildbotReporter", False),
}


class FormatError(ValueError):
    """A --format value that names no format, or lacks a path the format needs."""


class Reporter:
    def handle(self, event: object) -> None:
        handler = getattr(self, "on_" + event_name(event), None)
        if handler is not None:
            handler(event)

    def close(self) -> None:
        pass


class Reporters:
    """Fans every event out to all reporters. A reporter that raises is our bug: it is
    switched off, its traceback kept for the "internal error" message, and the others
    go on, so their files still get written."""

    def __init__(self, reporters: list[Reporter]) -> None:
        self.reporters = reporters
        self.failures: list[str] = []

    def emit(self, event: object) -> None:
        for reporter in list(self.reporters):
            self._call(reporter, reporter.handle, event)

    def close(self) -> None:
        for reporter in list(self.reporters):
            self._call(reporter, reporter.close)

    def _call(self, reporter: Reporter, method, *args: object) -> None:
        try:
            method(*args)
        except Exception:
            self.reporters.remove(reporter)
            self.failures.append(f"reporter {type(reporter).__name__}:\n{traceback.format_exc()}")


def parse_format(spec: str) -> tuple[str, str | None]:
    """`json:out/events.jsonl` -> ("json", "out/events.jsonl"); checks name and path."""
    name, _, path = spec.partition(":")
    if name not in FORMATS:
        raise FormatError(f"unknown format {name!r} (known: {', '.join(sorted(FORMATS))})")
    needs_path = FORMATS[name][1]
    if needs_path and not path:
        raise FormatError(f"format {name!r} needs a path: --format {name}:PATH")
    return name, (path or None)


def create(name: str, path: str | None, stream: IO[str], **options: object) -> Reporter:
    """`options` go to the reporter's constructor (--junit-suites to junit's)."""
    module_name, _, class_name = FORMATS[name][0].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(path, **options) if FORMATS[name][1] else cls(stream, **options)
