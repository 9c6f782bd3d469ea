"""The job summary: Markdown that GitHub shows on the workflow run's page.

GitHub takes at most 1 MiB from one step's summary file and drops all of it beyond that,
so the summary is built to fit what is left of that in the file: the counts always, then
the files not run, the failures with their tracebacks, and the flaky tests, as many of
each as fit, with a line that says how many did not.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Sequence

from medusa import events, messages
from medusa.reporters.console import summary_text

LIMIT_BYTES = 1024 * 1024
MARGIN_BYTES = 4096           # for what GitHub adds, and our own closing lines
TRACEBACK_CHARS = 20000       # of one failure


@dataclass(frozen=True)
class Outline:
    finished: events.BuildFinished
    problems: tuple[messages.Result, ...]
    flaky: tuple[messages.Result, ...]
    not_run: tuple[events.NotRun, ...]
    notes: tuple[str, ...] = ()           # workers that could not start or were lost


def render(outline: Outline, room: int) -> str:
    """The summary in at most `room` bytes (UTF-8)."""
    writer = _Writer(max(0, room - MARGIN_BYTES))
    finished = outline.finished
    mark = "✅" if finished.exit_code == 0 else "❌"
    writer.force(f"## {mark} medusa: {html.escape(summary_text(finished))}\n\n")
    rows = [(name, count) for name, count in finished.counts]
    if outline.not_run:
        rows.append(("files not run", len(outline.not_run)))
    if rows:
        writer.force("| | tests |\n| --- | ---: |\n"
                     + "".join(f"| {name} | {count} |\n" for name, count in rows) + "\n")
    for note in outline.notes:
        writer.force(f"> {_inline(note)}\n\n")
    _section(writer, "Not run", "files", outline.not_run,
             lambda item: f"- {_code(item.file)}: {_inline(item.reason)}\n")
    _section(writer, "Failures and errors", "failures", outline.problems, _problem)
    _section(writer, "Flaky (failed, then passed on a retry)", "flaky tests", outline.flaky,
             lambda r: f"- {_code(r.test)}: failed {len(r.attempts)}× before it passed "
                       f"(first: {_inline(r.attempts[0].message if r.attempts else '')})\n")
    return writer.text()


def _section(writer: "_Writer", title: str, what: str, items: Sequence, line) -> None:
    if not items:
        return
    if not writer.add(f"### {title} ({len(items)})\n\n"):
        writer.force(f"_{len(items)} {what} not listed here (too long for a summary): "
                     f"see the log._\n\n")
        return
    for index, item in enumerate(items):
        if not writer.add(line(item)):
            writer.force(f"\n_... and {len(items) - index} more {what}: see the log._\n")
            break
    writer.force("\n")


def _problem(result: messages.Result) -> str:
    where = "teardown of " if result.when == "teardown" else ""
    text = (result.longrepr or result.message).rstrip()
    if len(text) > TRACEBACK_CHARS:
        text = "...\n" + text[-TRACEBACK_CHARS:]
    fence = _fence(text)
    return (f"<details><summary>{result.outcome.upper()} {where}{_code(result.test)}: "
            f"{html.escape(_one_line(result.message))}</summary>\n\n"
            f"{fence}text\n{text}\n{fence}\n\n</details>\n\n")


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in the text (CommonMark's rule)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _code(text: str) -> str:
    """A test id as code: in HTML, since a Markdown code span cannot hold every id (a
    backtick, a pipe in a table); a line end in it is shown as \\n, as pytest shows it."""
    shown = text.replace("\r", "\\r").replace("\n", "\\n")
    return f"<code>{html.escape(shown)}</code>"


def _inline(text: str) -> str:
    """Text in a Markdown line: no tag, no emphasis, no table cell ends in it."""
    return re.sub(r"([\\`*_\[\]|~#])", r"\\\1", html.escape(_one_line(text), quote=False))


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Writer:
    def __init__(self, room: int) -> None:
        self.room = room
        self.parts: list[str] = []
        self.used = 0

    def add(self, text: str) -> bool:
        size = len(text.encode("utf-8", "backslashreplace"))   # as the file gets it
        if self.used + size > self.room:
            return False
        self.force(text)
        return True

    def force(self, text: str) -> None:
        """What must be there whatever the room (a heading, the counts, "N more")."""
        self.parts.append(text)
        self.used += len(text.encode("utf-8", "backslashreplace"))

    def text(self) -> str:
        return "".join(self.parts)
