"""pytest's hooks, told in one process and called again in another: the runners' side and
the master's side of the controller session (pytest_controller.py), as pytest-xdist's
workers and controller tell each other (its remote.py and dsession.py).

A runner (or the worker, for its collection) keeps a `HookLog`: each hook call that the
controller must see again becomes plain data, a (kind, fields) pair, and travels with the
next Result (messages.FrameworkEvents). Reports are serialized by pytest's own
pytest_report_to_serializable, so that plugins which add to reports keep what they add.
`replay` makes the calls again from that data in the master.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Any

import pytest

from medusa.messages import FrameworkEvents


class HookLog:
    """What the controller must hear of this process's hooks, until the next `take`:
    nothing unless `enabled`; the warnings; the reports only if the controller has a
    plugin that reads them (`reports`): telling a report costs more than a small test."""

    def __init__(self, config: Any, enabled: bool, reports: bool = False) -> None:
        self.config = config
        self.enabled = enabled
        self.reports = enabled and reports
        self.pending: list[tuple[str, dict[str, object]]] = []

    def logstart(self, nodeid: str, location: Any) -> None:
        if self.reports:
            self.pending.append(("logstart", {"nodeid": nodeid, "location": location}))

    def logfinish(self, nodeid: str, location: Any) -> None:
        if self.reports:
            self.pending.append(("logfinish", {"nodeid": nodeid, "location": location}))

    def report(self, report: Any) -> None:
        if self.reports:
            data = self.config.hook.pytest_report_to_serializable(config=self.config,
                                                                  report=report)
            self.pending.append(("report", data))

    def warning(self, warning_message: Any, when: str, nodeid: str, location: Any) -> None:
        if self.enabled:
            category = warning_message.category
            self.pending.append(("warning", {
                "message": str(warning_message.message),
                "category": f"{category.__module__}:{category.__qualname__}",
                "filename": warning_message.filename, "lineno": warning_message.lineno,
                "line": warning_message.line, "when": when, "nodeid": nodeid,
                "location": location}))

    def take(self) -> FrameworkEvents:
        taken, self.pending = tuple(self.pending), []
        return taken


def replay(config: Any, events: FrameworkEvents) -> None:
    """Call the hooks that `events` record, in their order, in this process's pytest."""
    hook = config.hook
    for kind, fields in events:
        if kind == "report":
            report = hook.pytest_report_from_serializable(config=config, data=fields)
            if report is None:   # a plugin's own report type nobody here can read
                continue
            if isinstance(report, pytest.CollectReport):
                hook.pytest_collectreport(report=report)
            else:
                hook.pytest_runtest_logreport(report=report)
        elif kind == "logstart":
            hook.pytest_runtest_logstart(nodeid=fields["nodeid"], location=fields["location"])
        elif kind == "logfinish":
            hook.pytest_runtest_logfinish(nodeid=fields["nodeid"], location=fields["location"])
        elif kind == "warning":
            hook.pytest_warning_recorded.call_historic(kwargs={
                "warning_message": _warning_message(fields), "when": fields["when"],
                "nodeid": fields["nodeid"], "location": fields["location"]})


def _warning_message(fields: dict[str, Any]) -> warnings.WarningMessage:
    """The warning again, of its own category where this process can import it."""
    category: type[Warning] = UserWarning
    module, _, name = str(fields["category"]).partition(":")
    try:
        found: Any = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
        if isinstance(found, type) and issubclass(found, Warning):
            category = found
    except Exception:   # a warning class of a test module, say: shown as a UserWarning
        pass
    text = str(fields["message"])
    try:
        message: Any = category(text)
    except Exception:   # a category whose constructor wants more than the text
        message = text
    return warnings.WarningMessage(message, category, str(fields["filename"]),
                                   int(fields["lineno"] or 0), line=fields["line"])
