"""Drivers: what medusa knows about one test framework.

A driver is used in two places:
- in the worker, `prepare()` loads the framework once (configuration, plugins, shared set-up)
  and finds the files to run (the work units: test files, feature files, Go packages...);
  a driver that can collects the whole session there (pytest: every test module imported,
  the collection hooks run once), so that the runners inherit it; the worker then forks
  its runners;
- in each forked runner, `serve()` runs units (a file, or some of its tests) for as long
  as the channel hands them out.

The runner side gets a `Channel` (runner.py): `next_file()` blocks until the master gives
this runner a file (a RunFile, which may select some of its tests; None: stop),
`result()` streams one test's outcome, `file_complete()` ends the file, `stop_build()`
asks the master to end the whole build.

When the master stops the build's tests (--maxfail reached), the worker sends each busy
runner STOP_SIGNAL. A driver that handles it ends its file early, reports
`file_complete(..., stopped=True)` and goes on; one that ignores it (the default) is
killed after a grace period.
"""
from __future__ import annotations

import base64
import importlib
import pickle
import signal
import sys
from dataclasses import dataclass
from typing import Any, Protocol

from medusa.messages import FrameworkEvents, RunFile

STOP_SIGNAL = signal.SIGUSR2

# name -> "module:class", imported only when chosen: the unittest driver must work where
# pytest is not installed. "auto" picks one of the others by looking at the project.
DRIVERS = {
    "pytest": "medusa.drivers.pytest_driver:PytestDriver",
    "unittest": "medusa.drivers.unittest_driver:UnittestDriver",
    "behave": "medusa.drivers.behave_driver:BehaveDriver",
    "command": "medusa.drivers.command_driver:CommandDriver",
    "auto": "medusa.drivers.auto:AutoDriver",
}

# A driver's own settings, as (name, value) pairs: they travel in Configure.driver_options
# and each driver reads its own (the command driver's: command_driver.CommandSettings).
DriverOptions = tuple[tuple[str, str], ...]
# ("collect", "file"): the pytest driver collects each file in the runner that runs it
# (pytest_collection.py), not the whole session in the worker.
COLLECT_OPTION = "collect"
# ("controller", pack({"workerinput": {...}, "reports": bool})): the master holds a pytest
# controller session (pytest_controller.py); the pytest driver is a pytest-xdist worker
# to plugins from its configure on, and sends the master its workeroutput, its warnings
# and (if "reports") its reports
CONTROLLER_OPTION = "controller"


def pack(value: object) -> str:
    """A driver option's value that is not text: plain data as pytest-xdist sends it to
    its workers (bytes, lists, sets... whatever a plugin put in workerinput), pickled as
    the messages from the authenticated master are."""
    return base64.b64encode(pickle.dumps(value)).decode("ascii")


def unpack(text: str) -> Any:
    return pickle.loads(base64.b64decode(text))


class StartupError(Exception):
    """The framework refused to start for a reason that is the user's to fix."""

    def __init__(self, message: str, detail: str = "", exit_code: int = 4) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.exit_code = exit_code


@dataclass(frozen=True)
class Prepared:
    rootdir: str
    framework: str            # name and version, for the report header
    files: tuple[str, ...]    # relative to rootdir, in the order the framework runs them
    maxfail: int = 0          # the framework's own "stop after N failures" (0: never)
    # the test ids of each file, when the worker collected them (the pytest driver's
    # whole-session collection); None: each runner finds a file's tests as it runs it
    tests: tuple[tuple[str, ...], ...] | None = None
    deselected: int = 0       # by that collection (-k, -m, --deselect, plugins)
    warnings: int = 0         # raised during that collection
    framework_events: FrameworkEvents = ()   # that collection's, for the controller


class Channel(Protocol):
    def next_file(self) -> RunFile | None: ...

    def test_started(self, test: str) -> None: ...

    def result(self, **fields: object) -> None: ...

    def file_complete(self, file: str, duration: float, tests: int, deselected: int = 0,
                      warnings: int = 0, import_warnings: int = 0,
                      timings: tuple[tuple[str, float], ...] = (),
                      stopped: bool = False) -> None: ...

    def stop_build(self, file: str, reason: str, exit_code: int) -> None: ...

    def runner_output(self, workerid: str, output: dict[str, object],
                      framework_events: FrameworkEvents = ()) -> None: ...


class Driver(Protocol):
    """`prepare` runs in the worker before the runners are forked; `processes` is how
    many processes it may use meanwhile (the runners' slots, not yet taken)."""

    name: str

    def prepare(self, paths: tuple[str, ...], framework_args: tuple[str, ...],
                options: DriverOptions = (), processes: int = 1) -> Prepared: ...

    def serve(self, channel: Channel, runner: int) -> int: ...


def create(name: str) -> Driver:
    try:
        spec = DRIVERS[name]
    except KeyError:
        raise StartupError(f"unknown driver {name!r} (known: {', '.join(sorted(DRIVERS))})")
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] == "medusa":
            raise
        # the framework the driver drives is not installed where the worker runs
        raise StartupError(f"the {name} driver needs {exc.name}, which {sys.executable} "
                           f"cannot import (pip install {exc.name})") from exc
    return getattr(module, class_name)()
