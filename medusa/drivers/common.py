"""What every driver needs and no framework gives: which tests of a unit a RunFile asks
for, and text made fit for a Result.

Nothing here imports a test framework: the unittest driver must run where pytest is not
installed.
"""
from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medusa.grouping import group_names
from medusa.messages import RunFile

# A longer traceback or captured output is cut from the front (the end says what failed).
MAX_TEXT_CHARS = 1_000_000


@dataclass(frozen=True)
class Selection:
    """The tests a RunFile wants: only `tests` (ids or groups) when given, never `exclude`.

    `base` maps an id to the test it belongs to (a subtest to its test): when a runner
    died, `exclude` lists every id it had reported, and a test with any result is done."""
    tests: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    @classmethod
    def of(cls, work: RunFile, base: Callable[[str], str] = lambda test: test,
           wanted: Callable[[str], str] = lambda test: test) -> Selection:
        """`wanted` maps an id asked for (a retry's) to what the framework can select: a
        subtest to its test, a class fixture to its class; an id that maps to the file
        itself (a module fixture) asks for the whole file."""
        tests = frozenset(wanted(test) for test in work.tests)
        if any("::" not in test for test in tests):
            tests = frozenset()
        return cls(tests, frozenset(base(test) for test in work.exclude))

    @property
    def everything(self) -> bool:
        return not self.tests and not self.exclude

    def wants(self, test_id: str) -> bool:
        if self.everything:
            return True
        names = group_names(test_id)
        return (not self.tests or bool(names & self.tests)) and not names & self.exclude


def first_line(text: str) -> str:
    """A Result's message is one line."""
    for line in str(text).strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def describe_exception(exc: BaseException) -> str:
    """`ValueError: boom`, one line (a multi-line message keeps its first line)."""
    text = first_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def format_exception(exc: BaseException) -> str:
    return truncate("".join(traceback.format_exception(exc)))


def truncate(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    cut = len(text) - MAX_TEXT_CHARS
    return f"[medusa: {cut} characters cut]\n" + text[cut:]


def relative(path: str | Path, root: str | Path) -> str:
    """`path` relative to the rootdir, with forward slashes (as test ids have them)."""
    return os.path.relpath(os.path.abspath(path), os.path.abspath(root)).replace(os.sep, "/")
