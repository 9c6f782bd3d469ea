"""The master's side of a framework's own session (pytest's: pytest_controller.py), and
the build without one. Kept apart from pytest_controller.py, which imports pytest: the
master of a unittest or behave build may have no pytest."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from medusa.messages import FrameworkEvents, Result


@dataclass(frozen=True)
class Summary:
    text: str             # what pytest and its plugins wrote at the session's end
    exit_code: int        # the build's, after pytest's session ended
    reason: str = ""      # why a plugin changed it ("" when none did)
    short_summary: bool = False   # pytest wrote its own short test summary (-rA, ...)


class NoController:
    """The build without a controller session (not pytest, or pytest not configurable
    in the master)."""

    active = False
    wants_reports = False

    def __init__(self, reason: str = "") -> None:
        self.reason = reason   # why not, when it was tried

    def header(self) -> tuple[str, ...]:
        return ()

    def workerinput(self, workerid: str) -> dict[str, Any]:
        return {}

    def run_loop(self, loop: Callable[[], int]) -> None:
        loop()

    def result(self, result: Result) -> None:
        pass

    def collected(self, tests: int) -> None:
        pass

    def replay(self, events: FrameworkEvents) -> None:
        pass

    def node_down(self, workerid: str, output: dict[str, Any], error: str | None) -> None:
        pass

    def finish(self, exit_code: int) -> Summary:
        return Summary("", exit_code)
