"""Events that the master makes itself, for the reporters.

Reporters receive these and some messages unchanged (Result, FileComplete, WorkerBegin,
WorkerStartupFailure, RunnerDied; see messages.py). The handler for an event is
`on_<event_name>` (messages.event_name), and the JSON log names each line the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

from medusa.scheduler import Unit


@dataclass(frozen=True)
class BuildStarted:
    run_id: str
    started_at: float         # time.time()
    rootdir: str              # the directory medusa was started in
    workers: tuple[str, ...]
    argv: tuple[str, ...]
    report_dir: str = ""      # where logs, artifacts and coverage land (report_folder.py)


@dataclass(frozen=True)
class FileStarted:
    worker: str
    runner: int
    file: str
    part: int = 1             # of a file split between runners
    parts: int = 1
    retry: bool = False       # failed tests of the file run again (--retries)


@dataclass(frozen=True)
class Plan:
    """`medusa --dry-run`: the order of the work, and how it would fall to the runners
    if every unit took what the history expects."""
    units: tuple[Unit, ...]
    runners: tuple[tuple[Unit, ...], ...]


@dataclass(frozen=True)
class Output:
    """What a worker or its runners wrote to stdout/stderr outside pytest's capture
    (tests run with -s, crashes, warnings printed at start-up)."""
    worker: str
    text: str


@dataclass(frozen=True)
class WorkerLost:
    """A worker that ended or went silent without saying Died."""
    worker: str
    reason: str
    output: str               # the tail of what it printed


@dataclass(frozen=True)
class NotRun:
    file: str
    reason: str


@dataclass(frozen=True)
class BuildFinished:
    exit_code: int
    duration: float
    counts: tuple[tuple[str, int], ...]   # outcome -> number of results, in pytest's order
    not_run: tuple[NotRun, ...]
    message: str = ""         # why the build ended early, if it did


@dataclass(frozen=True)
class CoverageReport:
    """--cov: the runners' coverage combined, before BuildFinished."""
    text: str                 # the terminal report, when asked for (term, term-missing)
    total: float              # percent covered, as coverage counts it
    written: tuple[str, ...]  # the report files and folders written
    data_file: str            # the combined data file
    error: str = ""           # why there is no report (no data came back, say)



@dataclass(frozen=True)
class FrameworkHeader:
    """pytest builds: the lines pytest's plugins add to its header (pytest_report_header:
    pytest-randomly's seed, pytest-django's settings, ...), from the master's controller
    session (drivers/pytest_controller.py)."""
    lines: tuple[str, ...]


@dataclass(frozen=True)
class FrameworkSummary:
    """pytest builds: what pytest and its plugins wrote at the session's end, once for the
    whole build (the warnings summary, --durations, pytest-cov's report, plugins'
    sections), before BuildFinished. `short_summary`: it has pytest's short test summary
    (asked for with -r), which the console then does not repeat."""
    text: str
    short_summary: bool = False
