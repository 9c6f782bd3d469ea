"""The command driver: any test command, run once per work unit (Go, Java, shell...).

Work units are the PATHS given, else what a command lists (`go list ./...`, one per line),
else the files and folders a glob finds. Each runner runs the command template for the
units it gets (`go test -json {unit}`, `mvn -q surefire:test -Dtest={name}`), in the
rootdir, with the runner's MEDUSA_* variables in its environment. Results come from, in
order of preference:
1. `go test -json` events in the command's output (test2json's format): a result per test
   and subtest, streamed as each one ends;
2. the JUnit XML file(s) the command writes (`--junit-xml`, a path template that may be a
   glob; only files written while the command ran count): a result per test case;
3. the exit code alone: one result for the unit, passed on 0, failed otherwise.
A command that exits non-zero with no failing test to show for it (a build that failed, a
crash outside a test) adds an error for the unit, with the command's output.

The command cannot run a part of a unit, so a unit is never split: FileComplete carries no
per-test timings. A unit rerun after its runner died runs whole again, and only the
results not reported before count.

Templates: `{unit}` is the unit (shell-quoted in the command), `{name}` its last path part
without extension (`src/test/java/com/x/CalcTest.java` -> `CalcTest`, `example.com/m/calc`
-> `calc`), `{args}` the framework arguments given after `--` (appended at the end when
the template does not place them).
"""
from __future__ import annotations

import ctypes
import glob
import json
import os
import select
import shlex
import signal
import subprocess
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from medusa.drivers import STOP_SIGNAL, Channel, DriverOptions, Prepared, StartupError
from medusa.drivers.common import Selection, first_line, truncate
from medusa.messages import RunFile

GO_COMMAND = "go test -json {unit}"
GO_UNITS = "go list ./..."
# listing the units happens once, before any test runs; a hung listing must not hang the build
LIST_TIMEOUT_SECONDS = 600
PR_SET_PDEATHSIG = 1
# how often a silent command is checked for having exited (leaving its output held open)
POLL_SECONDS = 0.2
MAX_FD = 1 << 16
# lines of go test's own (not a test's) output that say nothing about what failed
GO_NOISE = ("FAIL", "PASS", "ok  ", "=== ", "--- ", "#", "exit status")


@dataclass(frozen=True)
class CommandSettings:
    """Everything the command driver is told: from the command line (`--command`,
    `--units`, `--units-command`, `--junit-xml`) or the config file's `command_driver:`."""
    command: str = ""                  # template run per unit
    units: tuple[str, ...] = ()        # globs of units (files or folders), relative to rootdir
    units_command: str = ""            # prints the units, one per line
    junit_xml: str = ""                # path template of the JUnit XML the command writes

    def to_options(self) -> DriverOptions:
        pairs = [("command", self.command), ("units_command", self.units_command),
                 ("junit_xml", self.junit_xml), *(("units", glob) for glob in self.units)]
        return tuple((name, value) for name, value in pairs if value)

    @classmethod
    def from_options(cls, options: DriverOptions) -> CommandSettings:
        values = dict(options)
        return cls(command=values.get("command", ""),
                   units=tuple(value for name, value in options if name == "units"),
                   units_command=values.get("units_command", ""),
                   junit_xml=values.get("junit_xml", ""))

    def for_project(self, root: Path, paths: tuple[str, ...]) -> CommandSettings:
        """Go's defaults in a Go module, for whatever is not given."""
        if not (root / "go.mod").is_file():
            return self
        listed = paths or self.units or self.units_command
        return CommandSettings(command=self.command or GO_COMMAND, units=self.units,
                               units_command=self.units_command or ("" if listed else GO_UNITS),
                               junit_xml=self.junit_xml)


class CommandDriver:
    name = "command"

    def __init__(self) -> None:
        self.settings = CommandSettings()
        self.rootdir = Path()
        self.args: tuple[str, ...] = ()
        self.process: subprocess.Popen[bytes] | None = None   # the command running now
        self.stopping = False   # the master stopped the tests (--maxfail)

    # --- worker side ---------------------------------------------------------------------

    def prepare(self, paths: tuple[str, ...], framework_args: tuple[str, ...],
                options: DriverOptions = (), processes: int = 1) -> Prepared:
        self.rootdir = Path.cwd()
        self.args = framework_args
        self.settings = CommandSettings.from_options(options).for_project(self.rootdir, paths)
        if not self.settings.command:
            raise StartupError("the command driver needs a command: --command TEMPLATE, "
                               "e.g. --command 'go test -json {unit}' (a go.mod gives that one)")
        units = self._units(paths)
        return Prepared(rootdir=str(self.rootdir), framework=f"command: {self.settings.command}",
                        files=tuple(dict.fromkeys(units)))

    def _units(self, paths: tuple[str, ...]) -> list[str]:
        if paths:
            return list(paths)
        if self.settings.units_command:
            return list_units(self.settings.units_command, self.rootdir)
        if self.settings.units:
            return [unit for pattern in self.settings.units
                    for unit in find_units(pattern, self.rootdir)]
        raise StartupError("the command driver needs its units: PATHS, --units GLOB or "
                           "--units-command COMMAND")

    # --- runner side ---------------------------------------------------------------------

    def serve(self, channel: Channel, runner: int) -> int:
        signal.signal(STOP_SIGNAL, self._stop)
        while (work := channel.next_file()) is not None:
            self.run_unit(channel, work)
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        """STOP_SIGNAL (--maxfail reached): the command is ended; what it reported until
        then counts, the rest of the unit is listed as not run."""
        self.stopping = True
        if self.process is not None and self.process.poll() is None:
            end_group(self.process.pid, signal.SIGTERM)

    def run_unit(self, channel: Channel, work: RunFile) -> None:
        started, wall_start = time.perf_counter(), time.time()
        unit = work.file
        if self.stopping:
            channel.file_complete(unit, 0.0, 0, stopped=True)
            return
        if unit in work.exclude:
            # a runner died running it outside any test it named (and it was reported as
            # an error): running it again would end the same way
            channel.file_complete(unit, 0.0, 0)
            return
        report = UnitReport(channel, unit, Selection.of(work))
        go = GoEvents(report)
        report.between_tests()
        run = run_command(render(self.settings.command, unit, self.args, quote=True),
                          self.rootdir, go.feed, self._started)
        self.process = None
        if self.stopping:
            # ended by _stop: its exit code and missing reports say nothing about the tests
            channel.file_complete(unit, time.perf_counter() - started, report.tests + 1,
                                  stopped=True)
            return
        if go.seen:
            go.finish(run)
        elif self.settings.junit_xml:
            pattern = render(self.settings.junit_xml, unit, self.args, quote=False)
            report_junit(report, run, self.rootdir / pattern, wall_start)
        elif go_build_failed(run.output):
            report.unit_error(run, "collect", go_failure_line(run.output, f"exit code {run.code}"))
        else:
            report.exit_code(run)
        channel.file_complete(unit, time.perf_counter() - started, report.tests)

    def _started(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        if self.stopping:   # stopped while it was being started
            end_group(process.pid, signal.SIGTERM)


@dataclass
class Run:
    code: int
    seconds: float
    output: list[str] = field(default_factory=list)   # lines that were not events

    @property
    def text(self) -> str:
        return truncate("".join(self.output))


def run_command(command: str, cwd: Path, on_line: Callable[[str], bool],
                on_start: Callable[[subprocess.Popen[bytes]], None] = lambda process: None) -> Run:
    """Run `command` with sh, its stderr merged into its stdout; each line goes to
    `on_line`, which returns whether it was an event (else it is kept as output).

    The command runs in a process group of its own, and whatever it leaves running there
    is ended with it: when it exits, and when its runner dies first (a guard process
    sees to that: a runner killed for --timeout can clean up nothing itself)."""
    started = time.perf_counter()
    process = subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               preexec_fn=_own_group)
    run = Run(code=0, seconds=0.0)
    with Guard(process.pid), process.stdout:   # type: ignore[union-attr]
        on_start(process)
        for line in _lines(process):
            if not on_line(line):
                run.output.append(line)
        run.code = process.wait()
        end_group(process.pid, signal.SIGKILL)
    run.seconds = time.perf_counter() - started
    return run


def _lines(process: subprocess.Popen[bytes]) -> Iterator[str]:
    """The command's output, line by line, until every writer closed it; once the
    command has exited, what it left running (and holding the pipe) is ended."""
    assert process.stdout is not None
    fd, pending, ended = process.stdout.fileno(), b"", False
    while True:
        ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
        if not ready:
            if process.poll() is not None and not ended:
                end_group(process.pid, signal.SIGKILL)
                ended = True
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield (line + b"\n").decode("utf-8", errors="replace")
    if pending:
        yield pending.decode("utf-8", errors="replace")


def _own_group() -> None:
    """In the command's process, before it starts: a process group of its own (the
    guard ends it whole), and the kernel kills it if its runner dies."""
    os.setpgid(0, 0)
    _parent_death_signal(signal.SIGKILL)


def _parent_death_signal(sig: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass


def end_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Guard:
    """A small forked process that ends the command's process group when the runner dies
    (the kernel sends it SIGTERM then: PR_SET_PDEATHSIG), or when medusa ends the worker's
    process group (SIGTERM too). The runner kills it quietly when the command is done."""

    def __init__(self, group: int) -> None:
        self.group = group
        self.pid = 0

    def __enter__(self) -> Guard:
        runner = os.getpid()
        pid = os.fork()
        if pid == 0:
            self._watch(runner)
        self.pid = pid
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def _watch(self, runner: int) -> None:
        try:
            # nothing of the runner's: its pipes to the worker must close when it dies
            os.closerange(3, MAX_FD)
            signal.signal(signal.SIGTERM, lambda signum, frame: self._end())
            signal.signal(STOP_SIGNAL, signal.SIG_IGN)
            _parent_death_signal(signal.SIGTERM)
            if os.getppid() != runner:   # the runner died before the line above
                self._end()
            while True:
                signal.pause()
        finally:
            os._exit(0)

    def _end(self) -> None:
        end_group(self.group, signal.SIGKILL)
        os._exit(0)


class UnitReport:
    """The results of one unit, as far as its RunFile wants them."""

    def __init__(self, channel: Channel, unit: str, selection: Selection) -> None:
        self.channel = channel
        self.unit = unit
        self.selection = selection
        self.tests = 0

    def started(self, test: str) -> None:
        if self.selection.wants(test):
            self.channel.test_started(test)

    def between_tests(self) -> None:
        """The whole unit is "the test" while the command runs no test it named (building,
        TestMain, tests a rerun leaves out): a --timeout or a crash then is the unit's."""
        self.channel.test_started(self.unit)

    def result(self, test: str, outcome: str, duration: float, message: str = "",
               longrepr: str = "", when: str = "call",
               sections: tuple[tuple[str, str], ...] = ()) -> None:
        if not self.selection.wants(test):
            return
        self.tests += 1
        self.channel.result(file=self.unit, test=test, outcome=outcome, when=when,
                            duration=duration, message=first_line(message),
                            longrepr=truncate(longrepr), sections=sections,
                            path=self.unit, line=0)

    def exit_code(self, run: Run) -> None:
        if run.code == 0:
            self.result(self.unit, "passed", run.seconds)
        else:
            self.result(self.unit, "failed", run.seconds,
                        f"exit code {run.code}: {_last_line(run.output)}", run.text)

    def unit_error(self, run: Run, when: str, message: str) -> None:
        self.result(self.unit, "error", run.seconds, message, run.text, when=when)


# --- go test -json -------------------------------------------------------------------------

class GoEvents:
    """test2json's events (`go test -json`): Action run/pause/cont/output/pass/fail/skip
    (and start, build-output, build-fail in newer Go), with Package and, for a test's own
    events, Test. A test's result comes with its pass/fail/skip; its output is kept until
    then."""

    def __init__(self, report: UnitReport) -> None:
        self.report = report
        self.seen = False
        self.outputs: dict[tuple[str, str], list[str]] = {}
        self.package_output: dict[str, list[str]] = {}
        self.failed_packages: list[str] = []
        self.packages_with_failures: set[str] = set()
        self.packages_with_tests: set[str] = set()

    def feed(self, line: str) -> bool:
        event = _json_object(line)
        if event is None or "Action" not in event:
            return False
        self.seen = True
        package, test, action = event.get("Package", ""), event.get("Test"), event["Action"]
        if test:
            self._test_event(package, test, action, event)
        elif action in ("output", "build-output"):
            self.package_output.setdefault(package, []).append(event.get("Output", ""))
        elif action in ("fail", "build-fail"):
            self.failed_packages.append(package or event.get("ImportPath", ""))
        return True

    def _test_event(self, package: str, test: str, action: str, event: dict) -> None:
        test_id = f"{package}::{test}"
        if action == "run":
            self.outputs[(package, test)] = []
            self.report.started(test_id)
        elif action == "output":
            self.outputs.setdefault((package, test), []).append(event.get("Output", ""))
        elif action in ("pass", "fail", "skip"):
            output = "".join(self.outputs.pop((package, test), []))
            outcome = {"pass": "passed", "fail": "failed", "skip": "skipped"}[action]
            self.packages_with_tests.add(package)
            if outcome == "failed":
                self.packages_with_failures.add(package)
            failed = outcome == "failed"
            # a failure's output is its report; the others keep theirs as captured output
            self.report.result(test_id, outcome, float(event.get("Elapsed") or 0.0),
                               _go_message(output) if outcome != "passed" else "",
                               output if failed else "",
                               sections=(("Captured output", output),)
                               if _has_own_words(output) and not failed else ())
            self.report.between_tests()

    def finish(self, run: Run) -> None:
        """A package that failed with no failing test to show for it (a build error, a
        panic or os.Exit outside a test, TestMain) is an error of its own."""
        for package in dict.fromkeys(self.failed_packages):
            if package in self.packages_with_failures:
                continue
            output = "".join(self.package_output.get(package, [])) + run.text
            when = "teardown" if package in self.packages_with_tests else "collect"
            self.report.result(package or self.report.unit, "error", run.seconds,
                               go_failure_line(output.splitlines(keepends=True),
                                               "the package failed outside its tests "
                                               "(TestMain, os.Exit, a panic, a timeout)"),
                               output, when=when)
        if run.code != 0 and not self.failed_packages and not self.packages_with_failures:
            self.report.unit_error(run, "collect",
                                   go_failure_line(run.output, f"exit code {run.code}"))


def go_build_failed(output: list[str]) -> bool:
    """Older Go prints a build failure as plain text, without a single event."""
    return any("[build failed]" in line or "[setup failed]" in line for line in output)


def go_failure_line(output: list[str], otherwise: str) -> str:
    """The line that says what went wrong: a panic, a compiler error..."""
    for line in output:
        text = line.strip()
        if text and not text.startswith(GO_NOISE):
            return text
    return otherwise


def _go_message(output: str) -> str:
    """A test's own words: its first line that is not go's `=== RUN` / `--- FAIL` framing;
    else go's verdict line (a test failed by its subtests says nothing itself)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    own = [line for line in lines if not line.startswith(("=== ", "--- "))]
    if own:
        return own[0]
    verdicts = [line.removeprefix("--- ") for line in lines if line.startswith("--- ")]
    return verdicts[-1] if verdicts else ""


def _has_own_words(output: str) -> bool:
    """More than go's `=== RUN` / `--- PASS` framing."""
    return any(line.strip() and not line.strip().startswith(("=== ", "--- "))
               for line in output.splitlines())


def _json_object(line: str) -> dict | None:
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- JUnit XML -----------------------------------------------------------------------------

def report_junit(report: UnitReport, run: Run, pattern: Path, since: float) -> None:
    files = [path for path in sorted(glob.glob(str(pattern), recursive=True))
             if os.path.getmtime(path) >= since - 1.0]   # a report left by an earlier run is not news
    if not files:
        report.unit_error(run, "collect", f"no JUnit XML written at {pattern} "
                                          f"(exit code {run.code})")
        return
    failures = 0
    for path in files:
        try:
            cases = list(junit_cases(path))
        except (ElementTree.ParseError, OSError) as exc:
            report.unit_error(run, "collect", f"could not read the JUnit XML {path}: {exc}")
            failures += 1
            continue
        for case in cases:
            report.result(f"{report.unit}::{case.name}", case.outcome, case.seconds,
                          case.message, case.text, sections=case.sections)
            failures += case.outcome in ("failed", "error")
    if run.code != 0 and not failures:
        report.unit_error(run, "teardown", f"exit code {run.code} with no failing test: "
                                           f"{_last_line(run.output)}")


@dataclass(frozen=True)
class JUnitCase:
    name: str               # classname::name
    outcome: str
    seconds: float
    message: str = ""
    text: str = ""
    sections: tuple[tuple[str, str], ...] = ()


def junit_cases(path: str) -> Iterator[JUnitCase]:
    """Every <testcase> of a JUnit XML file (<testsuites>, nested <testsuite>s or one)."""
    root = ElementTree.parse(path).getroot()
    for case in root.iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        outcome, message, text = "passed", "", ""
        for tag, meaning in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            found = case.find(tag)
            if found is not None:
                outcome = meaning
                text = (found.text or "").strip()
                message = found.get("message") or first_line(text) or found.get("type", "")
                break
        sections = tuple((title, (case.findtext(tag) or "").strip())
                         for tag, title in (("system-out", "Captured stdout"),
                                            ("system-err", "Captured stderr"))
                         if (case.findtext(tag) or "").strip())
        yield JUnitCase("::".join(part for part in (classname, name) if part), outcome,
                        _seconds(case.get("time")), message, text, sections)


def _seconds(value: str | None) -> float:
    try:
        return float((value or "0").replace(",", ""))
    except ValueError:
        return 0.0


# --- units and templates -------------------------------------------------------------------

def list_units(command: str, root: Path) -> list[str]:
    try:
        listed = subprocess.run(["/bin/sh", "-c", command], cwd=root, capture_output=True,
                                text=True, timeout=LIST_TIMEOUT_SECONDS,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise StartupError(f"the units command did not finish within "
                           f"{LIST_TIMEOUT_SECONDS} s: {command}") from None
    if listed.returncode != 0:
        raise StartupError(f"the units command failed with exit code {listed.returncode}: "
                           f"{command}", (listed.stdout + listed.stderr).strip())
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]


def find_units(pattern: str, root: Path) -> list[str]:
    found = sorted(glob.glob(pattern, root_dir=root, recursive=True))
    return [path.replace(os.sep, "/") for path in found]


def render(template: str, unit: str, args: tuple[str, ...], quote: bool) -> str:
    """Fill in {unit}, {name} and {args}; no other braces are touched (shell commands have
    their own)."""
    value = shlex.quote(unit) if quote else unit
    name = shlex.quote(unit_name(unit)) if quote else unit_name(unit)
    text = template.replace("{unit}", value).replace("{name}", name)
    extra = shlex.join(args) if quote else " ".join(args)
    if "{args}" in text:
        return text.replace("{args}", extra)
    return f"{text} {extra}" if extra and quote else text


def unit_name(unit: str) -> str:
    last = PurePosixPath(unit.rstrip("/")).name
    return os.path.splitext(last)[0] if "." in last and not last.startswith(".") else last


def _last_line(output: list[str]) -> str:
    for line in reversed(output):
        if line.strip():
            return line.strip()
    return ""
