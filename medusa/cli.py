"""The `medusa` command: arguments, exit codes, and the `medusa worker` entry.

Exit codes are pytest's: 0 all passed, 1 tests failed, 2 interrupted, 3 internal error,
4 usage error, 5 no tests collected.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import traceback
from typing import NoReturn

import medusa
from medusa import reporters
from medusa.integrations import ci
from medusa.master import BuildSettings, Master

OK, TESTS_FAILED, INTERRUPTED, INTERNAL_ERROR, USAGE_ERROR, NO_TESTS = range(6)

INTERNAL_ERROR_TEXT = "medusa: internal error (a bug in medusa; please report it with this traceback)"
USAGE = "medusa [PATHS...] [--local N|auto] [--format NAME[:PATH]]... [-- FRAMEWORK ARGS]"


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="medusa", usage=USAGE,
        description="Run a test suite in parallel: files are handed to forked runners, "
                    "results stream back to one place.",
        epilog="Everything after -- goes to the test framework, e.g. medusa -- -k slow -x.")
    parser.add_argument("paths", nargs="*", metavar="PATHS",
                        help="test files or folders (default: what pytest would collect)")
    parser.add_argument("--local", metavar="N|auto", default="auto", type=_runner_count,
                        help="runners on this machine (default: auto: one per CPU this "
                             "process may use, fewer when memory is short or the host busy)")
    parser.add_argument("--max-host-runners", metavar="N", type=_runner_count,
                        help="cap on the runners of all medusa builds on this host together "
                             "(default: $MEDUSA_MAX_HOST_RUNNERS, else what auto would run)")
    parser.add_argument("--timeout", metavar="SECONDS", type=_seconds,
                        help="a test running longer is stopped: its runner's stacks go in the "
                             "report, the test is an error, the rest of its file runs on")
    parser.add_argument("--retries", metavar="N", type=_count, default=0,
                        help="run a failed test again, up to N times, on another runner where "
                             "there is one; one that then passes is reported as flaky")
    parser.add_argument("--worker-timeout", metavar="SECONDS", type=_seconds, default=60.0,
                        help="a worker that says nothing for this long (it sends a heartbeat "
                             "every 2 s) is declared lost (default: 60)")
    parser.add_argument("--format", metavar="NAME[:PATH]", action="append", default=[],
                        help="add a report: json:PATH (one JSON object per event); "
                             "the console report is always on")
    parser.add_argument("--ci", choices=ci.CHOICES,
                        help="the CI server this runs on, for its reports and a plain "
                             "console (default: $MEDUSA_CI, else auto: found from the "
                             "environment); none: no CI defaults")
    parser.add_argument("--junit-suites", choices=("file", "run"), default="file",
                        help="junit: a testsuite per test file (default), or one for the run")
    parser.add_argument("--driver", metavar="NAME|auto",
                        help="the test framework: pytest, unittest, behave, or command (any "
                             "test command); auto (the default) picks one from the project")
    command = parser.add_argument_group(
        "the command driver (a command per unit, e.g. go test -json {unit}; these mean "
        "--driver command)")
    command.add_argument("--command", metavar="TEMPLATE",
                         help="run per unit; {unit} is the unit, {name} its last part without "
                              "extension (in a go.mod project: go test -json {unit})")
    command.add_argument("--units", metavar="GLOB", action="append", default=[],
                         help="the units: files or folders that match (repeatable)")
    command.add_argument("--units-command", metavar="COMMAND",
                         help="the units: what this command prints, one per line "
                              "(in a go.mod project: go list ./...)")
    command.add_argument("--junit-xml", metavar="PATH",
                         help="the JUnit XML the command writes for a unit, a path template "
                              "that may be a glob, e.g. target/surefire-reports/TEST-*.{name}.xml")
    order = parser.add_argument_group("order and splitting (from the timing history in .medusa/)")
    order.add_argument("--failed-first", action=argparse.BooleanOptionalAction, default=True,
                       help="run the files that failed last time first (default: on)")
    order.add_argument("--split", action=argparse.BooleanOptionalAction, default=True,
                       help="hand out the tests of a file longer than one runner's share "
                            "of the build to several runners (default: on)")
    order.add_argument("--no-split-file", metavar="GLOB", action="append", default=[],
                       help="never split the files that match, e.g. tests/test_db_*.py")
    order.add_argument("--history", action=argparse.BooleanOptionalAction, default=True,
                       help="read and write the timing history (default: on)")
    order.add_argument("--dry-run", action="store_true",
                       help="print the planned order and the expected time per runner; run nothing")
    parser.add_argument("--version", action="version", version=f"medusa {medusa.__version__}")
    return parser


def _runner_count(value: str) -> str | int:
    if value == "auto":
        return value
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}")
    if count < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1 runner, got {count}")
    return count


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}")
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {count}")
    return count


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}")
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return seconds


def split_framework_args(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        return worker_entry(argv[1:])
    try:
        return run_build(argv)
    except UsageError as exc:
        print(f"medusa: error: {exc} (see medusa --help)", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("medusa: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception:
        print(INTERNAL_ERROR_TEXT, file=sys.stderr)
        traceback.print_exc()
        return INTERNAL_ERROR


def run_build(argv: list[str]) -> int:
    own, framework_args = split_framework_args(argv)
    parser = build_parser()
    options, unknown = parser.parse_known_args(own)
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)}; "
                         f"framework options go after --, e.g. medusa -- {unknown[0]}")
    check_paths(options.paths)
    formats = [_parse_format(spec) for spec in options.format]
    fan_out = reporters.Reporters(_create_reporters(formats, options))
    driver, driver_options = driver_choice(options)
    settings = BuildSettings(paths=tuple(options.paths), framework_args=tuple(framework_args),
                             runners=None if options.local == "auto" else options.local,
                             max_host_runners=options.max_host_runners, cwd=os.getcwd(),
                             argv=tuple(argv), history=options.history,
                             failed_first=options.failed_first, split=options.split,
                             no_split=tuple(options.no_split_file), dry_run=options.dry_run,
                             timeout=options.timeout, worker_timeout=options.worker_timeout,
                             retries=options.retries, driver=driver or "auto",
                             driver_options=driver_options)
    signal.signal(signal.SIGTERM, _interrupt)
    master = Master(settings, fan_out)
    code = master.run()
    failures = [master.internal_error] if master.internal_error else []
    failures += fan_out.failures
    if failures:
        print(INTERNAL_ERROR_TEXT + "\n" + "\n".join(failures), file=sys.stderr)
        return INTERNAL_ERROR
    return code


def driver_choice(options: argparse.Namespace) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """--driver (None: not given), and the command driver's settings, which mean
    --driver command."""
    from medusa.drivers.command_driver import CommandSettings
    settings = CommandSettings(command=options.command or "", units=tuple(options.units),
                               units_command=options.units_command or "",
                               junit_xml=options.junit_xml or "")
    if not settings.to_options():
        return options.driver, ()
    if options.driver not in (None, "auto", "command"):
        raise UsageError(f"--command, --units, --units-command and --junit-xml are settings "
                         f"of the command driver, not of --driver {options.driver}")
    return "command", settings.to_options()


def check_paths(paths: list[str]) -> None:
    for path in paths:
        # a test id (tests/t.py::test_x) or behave's FILE:LINE names a file that must exist
        if not os.path.exists(re.sub(r":[0-9:]+$", "", path.split("::")[0])):
            raise UsageError(f"file or directory not found: {path}")


def _parse_format(spec: str) -> tuple[str, str | None]:
    try:
        return reporters.parse_format(spec)
    except reporters.FormatError as exc:
        raise UsageError(str(exc))


def _create_reporters(formats: list[tuple[str, str | None]],
                      options: argparse.Namespace) -> list[reporters.Reporter]:
    """The console, the --format reports, and those of the CI server medusa runs on
    (integrations/ci.py). On a CI server, or with a report on stdout beside it, the
    console writes plain lines: no status line redrawn in place."""
    try:
        detection = ci.detect(options.ci or ci.choice_from_environment(), os.environ)
    except ValueError as exc:
        raise UsageError(str(exc))
    chosen = ci.choose_formats(detection.platform, formats)
    on_stdout = any(not reporters.FORMATS[name][1] for name, _ in chosen if name != "console")
    note = ci.describe(detection, chosen[len(formats):])
    if note:
        print(note, flush=True)
    console_out = ci.PlainStream(sys.stdout) if detection.platform or on_stdout else sys.stdout
    made = []
    for name, path in chosen:
        if name == "console":
            continue
        extra = {"suites": options.junit_suites} if name == "junit" else {}
        try:
            made.append(reporters.create(name, path, sys.stdout, **extra))
        except (OSError, ValueError) as exc:   # a path that cannot be written, say
            raise UsageError(f"--format {name}{':' + path if path else ''}: {exc}")
    # the console last: its summary line ends the output, after what the others print
    return made + [reporters.create("console", None, console_out)]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def worker_entry(argv: list[str] | None = None) -> int:
    from medusa import worker
    return worker.main(sys.argv[1:] if argv is None else argv)
