"""GitHub Actions workflow commands: `::error file=F,line=L,title=T::message`.

The runner reads a command from one line of the step's output. In the message, % and line
ends are percent-encoded; in a property also : and , (they separate the properties), as
the actions toolkit encodes them.
"""
from __future__ import annotations

from dataclasses import dataclass

# What the GitHub UI shows of one step: 10 error, 10 warning and 10 notice annotations
# (and 50 in a job); any more are dropped without a word.
PER_KIND = 10
# The most of a message we send: the traceback's tail, which names the failing line.
MESSAGE_CHARS = 4000


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


@dataclass(frozen=True)
class Annotation:
    kind: str                 # error, warning, notice
    message: str
    title: str = ""
    file: str = ""
    line: int = 0

    def command(self) -> str:
        properties = [f"{key}={escape_property(str(value))}" for key, value in
                      (("file", self.file), ("line", self.line), ("title", self.title))
                      if value]
        message = self.message
        if len(message) > MESSAGE_CHARS:
            message = "...\n" + message[-MESSAGE_CHARS:]
        head = f"::{self.kind}" + (" " + ",".join(properties) if properties else "")
        return f"{head}::{escape_data(message)}"


class Budget:
    """At most PER_KIND annotations of one kind: the first PER_KIND - 1 go out as they
    happen, the last place is kept for the end, for the one that comes next or, when
    more come, for a count of them: so that a reader knows there is more than he sees."""

    def __init__(self, kind: str, what: str) -> None:
        self.kind = kind
        self.what = what                     # "failures", for "and 3 more failures"
        self.sent = 0
        self.held: list[Annotation] = []

    def offer(self, annotation: Annotation) -> Annotation | None:
        if self.sent < PER_KIND - 1:
            self.sent += 1
            return annotation
        self.held.append(annotation)
        return None

    def finish(self) -> Annotation | None:
        if not self.held:
            return None
        if len(self.held) == 1:
            return self.held[0]
        return Annotation(self.kind, f"{len(self.held)} more {self.what} are not annotated "
                                     f"(GitHub shows {PER_KIND} per step): see the job "
                                     f"summary and the log",
                          title=f"medusa: {len(self.held)} more {self.what}")
