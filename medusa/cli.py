"""The `medusa` command: arguments, exit codes, and the `medusa worker` entry.

Exit codes are pytest's: 0 all passed, 1 tests failed, 2 interrupted, 3 internal error,
4 usage error, 5 no tests collected.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import medusa
from medusa import config, reporters, sharding
from medusa.integrations import ci
from medusa.config import Value, WorkerSpec, check_connect
from medusa.master import BuildSettings, Master
from medusa.report_folder import ReportFolder

OK, TESTS_FAILED, INTERRUPTED, INTERNAL_ERROR, USAGE_ERROR, NO_TESTS = range(6)

INTERNAL_ERROR_TEXT = "medusa: internal error (a bug in medusa; please report it with this traceback)"
USAGE = ("medusa [PATHS...] [--local N|auto] [--format NAME[:PATH]]... [--config FILE] "
         "[-- FRAMEWORK ARGS]")
COMMAND_LINE = "command line"
# the defaults of the keys that are not BuildSettings fields, as `medusa config` shows them
NOT_SETTINGS = {"ci": "auto ($MEDUSA_CI, else found from the environment)",
                "junit_suites": "file"}


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
    parser.add_argument("--config", metavar="FILE",
                        help="the configuration file (default: $MEDUSA_CONFIG, else "
                             "medusa/config.yml here or in a folder above)")
    parser.add_argument("--show-config", action="store_true",
                        help="print the effective configuration and where each value came "
                             "from; run nothing (also: medusa config)")
    parser.add_argument("--local", metavar="N|auto", type=_local_runners,
                        help="runners on this machine (default: auto: one per CPU this "
                             "process may use, fewer when memory is short or the host busy)")
    parser.add_argument("--ssh", metavar="[USER@]HOST[:PORT]:RUNNERS", action="append",
                        default=[], type=_ssh_worker,
                        help="also a worker on that host, reached over ssh (repeatable), e.g. "
                             "ci@build-7:8; the tree is copied to ~/medusa-work/<project> "
                             "there (more settings: workers: in the config file)")
    parser.add_argument("--max-host-runners", metavar="N", type=_setting("max_host_runners"),
                        help="cap on the runners of all medusa builds on this host together "
                             "(default: $MEDUSA_MAX_HOST_RUNNERS, else what auto would run)")
    parser.add_argument("--timeout", metavar="SECONDS", type=_setting("timeout"),
                        help="a test running longer is stopped: its runner's stacks go in the "
                             "report, the test is an error, the rest of its file runs on")
    parser.add_argument("--retries", metavar="N", type=_setting("retries"),
                        help="run a failed test again, up to N times, on another runner where "
                             "there is one; one that then passes is reported as flaky")
    parser.add_argument("--worker-timeout", metavar="SECONDS", type=_setting("worker_timeout"),
                        help="a worker that says nothing for this long (it sends a heartbeat "
                             "every 2 s) is declared lost (default: 60)")
    parser.add_argument("--format", metavar="NAME[:PATH]", action="append", default=[],
                        help="add a report: json:PATH (one JSON object per event); "
                             "the console report is always on")
    parser.add_argument("--ci", choices=ci.CHOICES,
                        help="the CI server this runs on, for its reports and a plain "
                             "console (default: $MEDUSA_CI, else auto: found from the "
                             "environment); none: no CI defaults")
    parser.add_argument("--junit-suites", choices=("file", "run"),
                        help="junit: a testsuite per test file (default), or one for the run")
    parser.add_argument("--driver", metavar="NAME|auto",
                        help="the test framework: pytest, unittest, behave, or command (any "
                             "test command); auto (the default) picks one from the project")
    parser.add_argument("--collect", choices=("session", "file"),
                        help="pytest: collect the whole session once per worker, as pytest "
                             "does (session, the default), or each file in the runner that "
                             "runs it (file)")
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
    report = parser.add_argument_group(
        "the report folder: runner logs, artifacts, coverage (see README, \"The report folder\")")
    report.add_argument("--report-dir", metavar="DIR",
                        help="where runner logs, artifacts and coverage data land "
                             "(default: medusa-report)")
    report.add_argument("--log-level", metavar="LEVEL", type=_setting("log_level"),
                        help="Python logging records of this level and up also go to the "
                             "runners' logs (and the console), e.g. INFO")
    report.add_argument("--cov", metavar="SOURCE", action="append", nargs="?", const="",
                        help="measure coverage in every runner and combine it; SOURCE (a "
                             "package or folder, repeatable) limits it, as coverage's --source")
    report.add_argument("--cov-report", metavar="TYPE", action="append", default=[],
                        type=_coverage_report,
                        help="term (default), term-missing, xml[:PATH], html[:DIR], "
                             "json[:PATH], lcov[:PATH] (repeatable)")
    report.add_argument("--cov-branch", action="store_true", default=None,
                        help="measure branch coverage too")
    order = parser.add_argument_group("order and splitting (from the timing history in .medusa/)")
    order.add_argument("--failed-first", action=argparse.BooleanOptionalAction,
                       help="run the files that failed last time first (default: on)")
    order.add_argument("--split", action=argparse.BooleanOptionalAction,
                       help="hand out the tests of a file longer than one runner's share "
                            "of the build to several runners (default: on)")
    order.add_argument("--no-split-file", metavar="GLOB", action="append", default=[],
                       help="never split the files that match, e.g. tests/test_db_*.py")
    order.add_argument("--shard", metavar="K/N", type=_shard,
                       help="run only the K-th of N parts of the files, cut by time from the "
                            "history, the same on every CI job; auto: K and N from the CI's "
                            "parallel job variables (GitLab, Buildkite, CircleCI)")
    order.add_argument("--history", action=argparse.BooleanOptionalAction,
                       help="read and write the timing history (default: on)")
    order.add_argument("--dry-run", action="store_true",
                       help="print the planned order and the expected time per runner; run nothing")
    parser.add_argument("--version", action="version", version=f"medusa {medusa.__version__}")
    return parser


def _shard(text: str) -> sharding.Shard:
    try:
        return sharding.parse(text)
    except sharding.ShardError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--shard ")) from None


def _coverage_report(value: str) -> str:
    from medusa.coverage_support import parse_report
    try:
        parse_report(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))
    return value


def _setting(key: str):
    """An option's value read as the config file's key of that name is read: one set of
    rules and messages for both."""
    def read(value: str) -> object:
        try:
            return config.KEYS[key].read(value, Path.cwd())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc))
    return read


def _local_runners(value: str) -> str | int:
    # a runner count is read as max_host_runners is: a whole number, at least 1
    return "auto" if value == "auto" else _setting("max_host_runners")(value)


def _ssh_worker(value: str) -> WorkerSpec:
    """`ci@build-7:8` (8 runners), `ci@build-7:2222:8` (port 2222), `build-7` (auto)."""
    target, runners = value, None
    head, _, tail = value.rpartition(":")
    if head and tail.isdigit() and not head.endswith("]"):
        target, runners = head, int(tail)
    elif tail == "auto":
        target = head
    if not target.rpartition("@")[2]:
        raise argparse.ArgumentTypeError(f"expected [USER@]HOST[:PORT]:RUNNERS, got {value!r}")
    if runners == 0:
        raise argparse.ArgumentTypeError(f"needs at least 1 runner, got {value!r}")
    try:
        check_connect(target)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return WorkerSpec("ssh", runners, connect=target)


def split_framework_args(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def _never_fail_on_bad_text() -> None:
    """Text that is not valid UTF-8 (a test's message with surrogates, a file named
    test_\\xff.py) is printed with backslash escapes, as pytest prints it, not a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None, as_module: bool = False) -> int:
    """`as_module`: started as `python -m medusa`, which (like `python -m pytest`) puts
    the current folder on sys.path of the tests."""
    argv = sys.argv[1:] if argv is None else argv
    _never_fail_on_bad_text()
    if argv[:1] == ["worker"]:
        return worker_entry(argv[1:])
    if argv[:1] == ["setup"]:
        from medusa import scaffold
        return scaffold.main(argv[1:])
    if argv[:1] == ["config"]:
        argv = ["--show-config", *argv[1:]]
    try:
        return run_build(argv, as_module)
    except UsageError as exc:
        print(f"medusa: error: {exc} (see medusa --help)", file=sys.stderr)
        return USAGE_ERROR
    except config.ConfigError as exc:
        print(f"medusa: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("medusa: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception:
        print(INTERNAL_ERROR_TEXT, file=sys.stderr)
        traceback.print_exc()
        return INTERNAL_ERROR


def run_build(argv: list[str], as_module: bool = False) -> int:
    own, framework_args = split_framework_args(argv)
    parser = build_parser()
    options, unknown = parser.parse_known_args(own)
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)}; "
                         f"framework options go after --, e.g. medusa -- {unknown[0]}")
    config_path = config.find_config(options.config, Path.cwd())
    values = config.load(config_path) if config_path else {}
    values.update(command_line_values(options, framework_args, values))
    settings = build_settings(values, config_path, argv, options.dry_run)
    settings = dataclasses.replace(settings, cwd_on_path=as_module)
    if options.show_config:
        print(describe(settings, values, config_path), end="")
        return OK
    check_paths(settings.paths)
    if answered_by_pytest(settings):
        reason = _needs_one_process(settings.framework_args)
        if reason:
            print(f"medusa: {reason}: pytest runs this build itself, in one process in the "
                  f"foreground", file=sys.stderr, flush=True)
        return run_pytest_itself(settings)
    try:
        ReportFolder(settings.report_dir).check()
    except OSError as exc:
        raise UsageError(f"--report-dir {settings.report_dir}: {exc}")
    formats = [_parse_format(spec, values["reporters"].source)
               for spec in values.get("reporters", Value((), "")).value]
    framework_args, junitxml = take_junitxml(settings.framework_args)
    settings = dataclasses.replace(settings, framework_args=framework_args)
    made = _create_reporters(formats, values.get("ci", Value(None, "")).value,
                             values.get("junit_suites", Value("file", "")).value,
                             verbosity(framework_args))
    if junitxml:
        made.insert(0, _pytest_junitxml(junitxml))
    fan_out = reporters.Reporters(made)
    signal.signal(signal.SIGTERM, _interrupt)
    master = Master(settings, fan_out)
    code = master.run()
    failures = [master.internal_error] if master.internal_error else []
    failures += fan_out.failures
    if failures:
        print(INTERNAL_ERROR_TEXT + "\n" + "\n".join(failures), file=sys.stderr)
        return INTERNAL_ERROR
    return code


def command_line_values(options: argparse.Namespace, framework_args: list[str],
                        from_file: dict[str, Value]) -> dict[str, Value]:
    """What the command line sets. Lists (framework arguments, reports, no-split globs)
    add to the file's; everything else replaces it."""
    given: dict[str, object] = {
        "max_host_runners": options.max_host_runners, "timeout": options.timeout,
        "worker_timeout": options.worker_timeout, "retries": options.retries,
        "history": options.history, "failed_first": options.failed_first,
        "split": options.split, "report_dir": options.report_dir,
        "log_level": options.log_level, "coverage_branch": options.cov_branch,
        "ci": options.ci, "junit_suites": options.junit_suites, "collect": options.collect,
        "shard": options.shard,
    }
    values = {key: Value(value, COMMAND_LINE) for key, value in given.items() if value is not None}
    driver, driver_options = driver_choice(options)
    if driver:
        values["driver"] = Value(driver, COMMAND_LINE)
    if driver_options:
        values["command_driver"] = Value(driver_options, COMMAND_LINE)
    if options.paths:
        values["paths"] = Value(tuple(options.paths), COMMAND_LINE)
    if options.cov is not None:   # --cov alone measures what coverage would; --cov=SRC limits
        values["coverage"] = Value(tuple(dict.fromkeys(s for s in options.cov if s)), COMMAND_LINE)
    if options.cov_report:
        values["coverage_report"] = Value(tuple(options.cov_report), COMMAND_LINE)
    workers = from_file.get("workers", Value(BuildSettings().workers, "")).value
    if options.local is not None:
        runners = None if options.local == "auto" else options.local
        at = next((i for i, w in enumerate(workers) if w.type == "local"), None)
        if at is None:
            workers = (WorkerSpec("local", runners), *workers)
        else:
            workers = (*workers[:at], dataclasses.replace(workers[at], runners=runners),
                       *workers[at + 1:])
    if options.local is not None or options.ssh:
        project = Path.cwd()
        ssh = [dataclasses.replace(spec, directory=config.default_directory(project))
               for spec in options.ssh]
        values["workers"] = Value(config.name_workers([*workers, *ssh]), COMMAND_LINE)
    for key, extra in (("framework_args", tuple(framework_args)),
                       ("reporters", tuple(options.format)),
                       ("no_split", tuple(options.no_split_file))):
        if extra:
            before = from_file.get(key)
            source = f"{before.source} + {COMMAND_LINE}" if before else COMMAND_LINE
            values[key] = Value((before.value if before else ()) + extra, source)
    return values


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


def build_settings(values: dict[str, Value], config_path: Path | None, argv: list[str],
                   dry_run: bool) -> BuildSettings:
    fields = {f.name for f in dataclasses.fields(BuildSettings)}
    chosen = {key: value.value for key, value in values.items() if key in fields}
    if "command_driver" in values:   # the command driver's settings mean that driver
        if chosen.get("driver", "command") not in ("auto", "command"):
            raise config.ConfigError(f"{values['command_driver'].source}: command_driver: "
                                     f"these are settings of driver: command, not of "
                                     f"driver: {chosen['driver']}")
        chosen["driver"] = "command"
        chosen["driver_options"] = values["command_driver"].value
    if "environment" not in chosen:
        # medusa/environment.py beside the config file (or here) is used when it exists
        project = config.project_folder(config_path) if config_path else Path.cwd()
        if (project / config.ENVIRONMENT_FILE).is_file():
            chosen["environment"] = str(project / config.ENVIRONMENT_FILE)
    if chosen.get("environment"):
        chosen["environment"] = os.path.abspath(chosen["environment"])
    return BuildSettings(**chosen, cwd=os.getcwd(), argv=tuple(argv), dry_run=dry_run)


def describe(settings: BuildSettings, values: dict[str, Value],
             config_path: Path | None) -> str:
    """`medusa config`: every key's value and where it came from."""
    lines = [f"config file: {config_path if config_path else '(none)'}"]
    for key in config.KEYS:
        if key in values:
            value, source = values[key].value, values[key].source
        else:
            value, source = getattr(settings, key, NOT_SETTINGS.get(key, ())), "default"
            if key == "environment" and value:
                source = "found beside the config"
        lines.append(f"{key:<17} {_show(value):<40} # {source}")
    return "\n".join(lines) + "\n"


def _show(value: object) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], WorkerSpec):
        return ", ".join(f"{w.name}: {w.type}, runners {w.runners or 'auto'}" for w in value)
    if value is None:
        return "none"
    return repr(value)


# pytest options that print something and run no test (--collect-only, --fixtures, ...):
# pytest itself answers them, as `pytest` would, in one process.
PYTEST_ANSWERS = frozenset({
    "--collect-only", "--co", "--collectonly", "--fixtures", "--funcargs",
    "--fixtures-per-test", "--markers", "--setup-plan", "--setupplan",
    "--help", "-h", "--version", "-V"})
# Options whose whole point is one process: the debugger needs the terminal and the
# test's own process; a stepwise run stops at the first failure and starts from it next
# time, an order only one process keeps. pytest itself runs those builds, as it would.
PYTEST_IN_ONE_PROCESS = {
    "--pdb": "--pdb: the debugger needs the terminal and the failing test's process",
    "--trace": "--trace: the debugger needs the terminal and each test's process",
    "--sw": "--sw: a stepwise run stops at the first failure and starts from it next time",
    "--stepwise": "--stepwise: a stepwise run stops at the first failure and starts from "
                  "it next time",
    "--sw-skip": "--sw-skip: a stepwise run stops at the second failure and starts from "
                 "it next time",
    "--stepwise-skip": "--stepwise-skip: a stepwise run stops at the second failure and "
                       "starts from it next time",
    # pytest-benchmark's records of a run: one process's timings (pytest-xdist turns
    # benchmarks off for the same reason; each runner would write its own file)
    **{option: f"{option}: pytest-benchmark's timings are only sound in one process"
       for option in ("--benchmark-json", "--benchmark-save", "--benchmark-autosave",
                      "--benchmark-compare", "--benchmark-compare-fail", "--benchmark-only",
                      "--benchmark-histogram")},
}
_PYTEST_ITSELF = "import sys; {strip}import pytest; sys.exit(pytest.main())"


def _needs_one_process(framework_args: tuple[str, ...]) -> str:
    return next((PYTEST_IN_ONE_PROCESS[name] for name in _option_names(framework_args)
                 if name in PYTEST_IN_ONE_PROCESS), "")


def _option_names(framework_args: tuple[str, ...]) -> set[str]:
    """`--benchmark-json=out.json` -> `--benchmark-json`."""
    return {arg.split("=", 1)[0] if arg.startswith("--") else arg for arg in framework_args}


def answered_by_pytest(settings: BuildSettings) -> bool:
    if not (PYTEST_ANSWERS | set(PYTEST_IN_ONE_PROCESS)) & _option_names(settings.framework_args):
        return False
    from medusa.drivers import auto
    return auto.picks_pytest(settings.driver, Path.cwd(), settings.paths, settings.driver_options)


def run_pytest_itself(settings: BuildSettings) -> int:
    """`medusa -- --co -q` prints what `pytest --co -q` prints and exits as it does."""
    import subprocess
    # like the `pytest` command, not `python -c`: no current folder on sys.path, unless
    # medusa was started as `python -m medusa` (then as `python -m pytest`)
    strip = "" if settings.cwd_on_path else "sys.path[:] = [p for p in sys.path if p != '']; "
    command = [sys.executable, "-c", _PYTEST_ITSELF.format(strip=strip),
               *settings.framework_args, *settings.paths]
    return subprocess.call(command, env={**os.environ, **dict(settings.env)})


def check_paths(paths: list[str]) -> None:
    for path in paths:
        # a test id (tests/t.py::test_x) or behave's FILE:LINE names a file that must exist
        if not os.path.exists(re.sub(r":[0-9:]+$", "", path.split("::")[0])):
            raise UsageError(f"file or directory not found: {path}")


def _parse_format(spec: str, source: str) -> tuple[str, str | None]:
    try:
        return reporters.parse_format(spec)
    except reporters.FormatError as exc:
        if source == COMMAND_LINE:
            raise UsageError(str(exc))
        raise config.ConfigError(f"{source}: reporters: {exc}")


def verbosity(framework_args: tuple[str, ...]) -> int:
    """pytest's -v/-vv/--verbose less -q/--quiet, from the framework arguments."""
    level = 0
    for argument in framework_args:
        if argument in ("--verbose", "--quiet"):
            level += 1 if argument == "--verbose" else -1
        elif argument.startswith("-") and not argument.startswith("--") \
                and set(argument[1:]) <= {"v", "q"}:
            level += argument.count("v") - argument.count("q")
    return level


def _create_reporters(formats: list[tuple[str, str | None]], ci_choice: str | None,
                      junit_suites: str, verbose: int = 0) -> list[reporters.Reporter]:
    """The console, the --format reports, and those of the CI server medusa runs on
    (integrations/ci.py). On a CI server, or with a report on stdout beside it, the
    console writes plain lines: no status line redrawn in place."""
    try:
        detection = ci.detect(ci_choice or ci.choice_from_environment(), os.environ)
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
        extra = {"suites": junit_suites} if name == "junit" else {}
        try:
            made.append(reporters.create(name, path, sys.stdout, **extra))
        except (OSError, ValueError) as exc:   # a path that cannot be written, say
            raise UsageError(f"--format {name}{':' + path if path else ''}: {exc}")
    # the console last: its summary line ends the output, after what the others print
    return made + [reporters.create("console", None, console_out, verbose=max(0, verbose))]


JUNITXML_OPTIONS = ("--junitxml", "--junit-xml")


def take_junitxml(framework_args: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """pytest's --junitxml PATH, taken out of the framework arguments: every runner
    would write its own tests to PATH over the others'. medusa's JUnit report writes
    it instead, for the whole build."""
    kept: list[str] = []
    path = ""
    arguments = iter(framework_args)
    for argument in arguments:
        option, equals, value = argument.partition("=")
        if option in JUNITXML_OPTIONS:
            path = value if equals else next(arguments, "")
        else:
            kept.append(argument)
    return tuple(kept), path


def _pytest_junitxml(path: str) -> reporters.Reporter:
    """--junitxml=PATH as pytest writes it: one testsuite with every testcase."""
    try:
        return reporters.create("junit", path, sys.stdout, suites="run")
    except (OSError, ValueError) as exc:
        raise UsageError(f"--junitxml {path}: {exc}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def worker_entry(argv: list[str] | None = None) -> int:
    from medusa import worker
    return worker.main(sys.argv[1:] if argv is None else argv)
