"""The unittest driver: plain unittest suites, with no pytest anywhere in the process.

Worker side (`prepare`): the framework arguments are those of `python -m unittest discover`
(`-s START`, `-p PATTERN`, `-t TOP`, `-k NAME`, `-f`, `-b`, `--locals`); PATHS are start
folders or test files. The start folders are walked as unittest's discovery walks them
(sorted, only files whose name matches the pattern, only folders that are packages), but
no test module is imported here: only the packages, since a package's `load_tests` decides
whether discovery goes into it. Each test module is a unit; so is a package that has
`load_tests` (which loads its whole tree) or test cases of its own (`pkg/__init__.py`).

Runner side (`serve`): a unit is imported in the runner that runs it, loaded with
unittest's own loader (so `load_tests` and `-k` work as in unittest) and run as one
top-level suite with a fresh result: setUpModule/tearDownModule and setUpClass/
tearDownClass run around the file as unittest runs them, and end with the file.

Test ids are pytest-style, from the file and the class, so that history, splitting and
reports work as for pytest (and pytest, running the same tests, gives the same ids):
- a test: `tests/test_x.py::TestC::test_m`
- a subtest: `tests/test_x.py::TestC::test_m (i=1)` (unittest's own description of it)
- a class or module fixture that failed or skipped: `tests/test_x.py::TestC::setUpClass`,
  `tests/test_x.py::setUpModule` (unittest's "setUpClass (tests.test_x.TestC)")
- a module that failed to import or to load: `tests/test_x.py`

Outcomes are what unittest's result counts: passed, failed (addFailure), error (addError),
skipped, xfailed (an expected failure), a failing subtest (failed, or error for an
exception other than the test's failureException; a passing subtest is not counted, as in
unittest). An unexpected success is "failed" with the message "unexpected success": it
makes unittest's run fail, as it makes pytest's.
"""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import importlib
import inspect
import os
import re
import signal
import sys
import time
import unittest
import warnings
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import NoReturn

from medusa.drivers import STOP_SIGNAL, Channel, DriverOptions, Prepared, StartupError
from medusa.drivers.common import (
    Selection,
    describe_exception,
    first_line,
    format_exception,
    relative,
    truncate,
)
from medusa.messages import RunFile

ExcInfo = tuple[type[BaseException], BaseException, TracebackType]

# unittest.loader's rule for the files discovery considers: a valid module name
VALID_MODULE_NAME = re.compile(r"[_a-z]\w*\.py$", re.IGNORECASE)
# how unittest names a class or module fixture that failed: "setUpClass (pkg.mod.TestC)"
FIXTURE_DESCRIPTION = re.compile(r"^(\w+) \((.*)\)$")


@dataclass(frozen=True)
class Options:
    """`python -m unittest discover`'s options."""
    start: str = "."
    pattern: str = "test*.py"
    top: str | None = None
    name_patterns: tuple[str, ...] = ()   # -k, as unittest turns them into fnmatch patterns
    failfast: bool = False
    buffer: bool = False
    tb_locals: bool = False


@dataclass(frozen=True)
class Unit:
    """A test module (or a package's __init__) and how unittest would import it."""
    module: str                # dotted name, relative to `top`
    top: str                   # the top-level folder it is imported from (on sys.path)
    path: str                  # its .py file
    package: bool = False      # a package: loaded with its load_tests, if it has one
    pattern: str | None = None   # discovery's pattern, passed on to load_tests


class UnittestDriver:
    name = "unittest"

    def __init__(self) -> None:
        self.rootdir = ""
        self.options = Options()
        self.units: dict[str, Unit] = {}
        self.result: Result | None = None   # of the unit running now
        self.stopping = False               # the master stopped the tests (--maxfail)

    # --- worker side ---------------------------------------------------------------------

    def prepare(self, paths: tuple[str, ...], framework_args: tuple[str, ...],
                options: DriverOptions = (), processes: int = 1) -> Prepared:
        self.options = parse_options(framework_args)
        self.rootdir = os.getcwd()
        # `python -m unittest` runs with the current folder first on sys.path; tests may
        # import the project's modules from there
        if self.rootdir not in sys.path:
            sys.path.insert(0, self.rootdir)
        for path in paths or (self.options.start,):
            # `tests/test_x.py::TestC::test_m` (a test id) runs what it names
            file, marker, inside = path.partition("::")
            for unit in self._units_of(file):
                self.units.setdefault(relative(unit.path, self.rootdir) + marker + inside, unit)
        version = sys.version.split()[0]
        return Prepared(rootdir=self.rootdir, framework=f"unittest (Python {version})",
                        files=tuple(self.units), maxfail=1 if self.options.failfast else 0)

    def _units_of(self, path: str) -> list[Unit]:
        if os.path.isdir(path):
            top = os.path.abspath(self.options.top or path)
            return discover(os.path.abspath(path), top, self.options.pattern)
        if os.path.isfile(path) and path.endswith(".py"):
            # as `python -m unittest tests/test_x.py`: imported from the current folder
            return [Unit(module_name(path, self.rootdir), self.rootdir, os.path.abspath(path))]
        raise StartupError(f"unittest: not a folder or a .py file: {path}")

    # --- runner side ---------------------------------------------------------------------

    def serve(self, channel: Channel, runner: int) -> int:
        signal.signal(STOP_SIGNAL, self._stop)
        while (work := channel.next_file()) is not None:
            try:
                self.run_unit(channel, work)
            except KeyboardInterrupt:
                channel.stop_build(work.file, f"KeyboardInterrupt in {work.file}", 2)
                break
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        """STOP_SIGNAL (--maxfail reached): no test starts after the one running now, which
        ends as it would (the worker kills a runner that takes too long); unittest's own
        way to stop a run, as its -f does."""
        self.stopping = True
        if self.result is not None:
            self.result.stop()

    def run_unit(self, channel: Channel, work: RunFile) -> None:
        started = time.perf_counter()
        unit = self.units[work.file]
        selection = Selection.of(work, base=base_test, wanted=selectable)
        if "::" in work.file and not selection.tests:
            selection = dataclasses.replace(selection, tests=frozenset({work.file}))
        report = Reporter(channel, work.file, unit, self.rootdir, selection)
        suite = None if self.stopping else self._load(unit, report)
        tests = ran = 0
        if suite is not None:
            if not report.selection.everything:
                suite = unittest.TestSuite([test for test in iterate(suite)
                                            if report.selection.wants(report.test_id(test))])
            tests = suite.countTestCases()
            ran = self._run(suite, report)
        channel.file_complete(work.file, time.perf_counter() - started, tests,
                              timings=tuple(report.timings),
                              stopped=self.stopping and (ran < tests or suite is None))

    def _load(self, unit: Unit, report: Reporter) -> unittest.TestSuite | None:
        """The unit's tests as unittest's loader finds them; None if it cannot be imported
        (reported as unittest reports it: an error, or a skip for SkipTest)."""
        try:
            module = import_unit(unit)
        except KeyboardInterrupt:
            raise
        except unittest.SkipTest as skip:
            report.collected("skipped", str(skip), "")
            return None
        except BaseException as exc:   # unittest's loader catches everything here too
            report.collected("error", describe_exception(exc), format_exception(exc))
            return None
        loader = unittest.TestLoader()
        loader.testNamePatterns = list(self.options.name_patterns) or None
        # What discovery would have set on its loader: the top-level folder (load_tests in
        # a package calls loader.discover() without one), and the package being loaded
        # (so that its load_tests, discovering its own folder, does not load it again).
        loader._top_level_dir = unit.top   # type: ignore[attr-defined]
        if unit.package:
            loader._loading_packages.add(unit.module)   # type: ignore[attr-defined]
        return loader.loadTestsFromModule(module, pattern=unit.pattern)

    def _run(self, suite: unittest.TestSuite, report: Reporter) -> int:
        """Run the unit's suite; returns how many of its tests ran."""
        result = Result(report, buffer=self.options.buffer, tb_locals=self.options.tb_locals)
        self.result = result
        if self.stopping:   # the stop came while the module was imported
            result.stop()
        with warnings.catch_warnings():
            if not sys.warnoptions:   # as unittest's runner: show each warning once
                warnings.simplefilter("default")
            result.startTestRun()
            try:
                # A top-level run: module and class fixtures are torn down at its end.
                suite(result)
            finally:
                result.stopTestRun()
                self.result = None
        return result.testsRun


class Reporter:
    """Turns what unittest's result hears into medusa Results for one unit."""

    def __init__(self, channel: Channel, file: str, unit: Unit, rootdir: str,
                 selection: Selection) -> None:
        self.channel = channel
        self.file = file                      # the unit, as the master named it
        self.source = file.split("::")[0]     # its file: test ids start with it
        self.unit = unit
        self.rootdir = rootdir
        self.selection = selection
        self.timings: list[tuple[str, float]] = []
        self.started: dict[int, float] = {}

    def test_id(self, test: unittest.TestCase) -> str:
        # unittest's own helper classes are private; their ids are not file-based
        if isinstance(test, unittest.case._SubTest):   # type: ignore[attr-defined]
            return f"{self.test_id(test.test_case)} {test._subDescription()}"
        if isinstance(test, unittest.suite._ErrorHolder):   # type: ignore[attr-defined]
            return self._fixture_id(test.description)
        if _is_stand_in(test):
            return self.source
        if type(test) is unittest.FunctionTestCase or not hasattr(test, "_testMethodName"):
            return f"{self.source}::{test.id()}"   # FunctionTestCase, doctests: their own names
        return f"{self._file_of(type(test).__module__)}::{type(test).__qualname__}" \
               f"::{test._testMethodName}"

    def _fixture_id(self, description: str) -> str:
        """"setUpClass (tests.test_x.TestC)" -> tests/test_x.py::TestC::setUpClass."""
        match = FIXTURE_DESCRIPTION.match(description)
        if match is None:
            return f"{self.source}::{description}"
        fixture, dotted = match.groups()
        module = _longest_module_prefix(dotted)
        inside = dotted[len(module) + 1:] if module else dotted
        return "::".join(part for part in (self._file_of(module), inside, fixture) if part)

    def _file_of(self, module_name: str) -> str:
        """The unit's own file for its tests; a package's load_tests may bring tests of
        other modules: those are named after their own file."""
        if not self.unit.package or module_name == self.unit.module:
            return self.source
        module = sys.modules.get(module_name)
        path = getattr(module, "__file__", None)
        return relative(path, self.rootdir) if path else self.source

    # --- what the result hears -----------------------------------------------------------

    def start(self, test: unittest.TestCase) -> None:
        self.started[id(test)] = time.perf_counter()
        self.channel.test_started(self.test_id(test))

    def stop(self, test: unittest.TestCase) -> None:
        began = self.started.pop(id(test), None)
        if began is not None and not _is_stand_in(test):
            self.timings.append((self.test_id(test), time.perf_counter() - began))

    def outcome(self, test: unittest.TestCase, outcome: str, message: str = "",
                longrepr: str = "") -> None:
        test_id = self.test_id(test)
        if not self.selection.wants(test_id):
            return   # a module fixture's result belongs to the part that runs the rest
        began = self.started.get(id(getattr(test, "test_case", test)))
        path, line = self._location(test)
        self.channel.result(file=self.file, test=test_id, outcome=outcome,
                            when=_phase(test), message=first_line(message),
                            duration=time.perf_counter() - began if began else 0.0,
                            longrepr=truncate(longrepr), path=path, line=line)

    def collected(self, outcome: str, message: str, longrepr: str) -> None:
        """The unit could not be imported."""
        self.channel.result(file=self.file, test=self.source, outcome=outcome, when="collect",
                            duration=0.0, message=first_line(message), longrepr=longrepr,
                            path=self.source, line=0)

    def _location(self, test: unittest.TestCase) -> tuple[str, int]:
        test = getattr(test, "test_case", test)   # a subtest is where its test is
        method = getattr(type(test), getattr(test, "_testMethodName", "") or "", None)
        code = getattr(inspect.unwrap(method), "__code__", None) if callable(method) else None
        if code is None:
            return self.source, 0
        return relative(code.co_filename, self.rootdir), code.co_firstlineno


class Result(unittest.TestResult):
    """unittest's own result, telling the Reporter as it goes."""

    def __init__(self, report: Reporter, buffer: bool, tb_locals: bool) -> None:
        super().__init__()
        self.report = report
        self.buffer = buffer
        self.tb_locals = tb_locals

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self.report.start(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        self.report.stop(test)
        # With -b unittest echoes a failing test's output; it is in that test's report
        self._mirrorOutput = False
        super().stopTest(test)

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self.report.outcome(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: ExcInfo) -> None:
        super().addFailure(test, err)
        self._report_exception(test, "failed", err)

    def addError(self, test: unittest.TestCase, err: ExcInfo) -> None:
        super().addError(test, err)
        self._report_exception(test, "error", err)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self.report.outcome(test, "skipped", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: ExcInfo) -> None:
        super().addExpectedFailure(test, err)
        self._report_exception(test, "xfailed", err)

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self.report.outcome(test, "failed", "unexpected success",
                            "unexpected success: the test is marked @expectedFailure "
                            "but passed")

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase,
                   err: ExcInfo | None) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:   # a passing subtest is not counted, as in unittest
            failed = issubclass(err[0], test.failureException)
            self._report_exception(subtest, "failed" if failed else "error", err)

    def _report_exception(self, test: unittest.TestCase, outcome: str, err: ExcInfo) -> None:
        self.report.outcome(test, outcome, describe_exception(err[1]),
                            self._exc_info_to_string(err, getattr(test, "test_case", test)))


# --- discovery, as unittest.TestLoader.discover walks ------------------------------------

def discover(start: str, top: str, pattern: str) -> list[Unit]:
    if not _inside(start, top):
        raise StartupError(f"unittest: the start folder {start} is not inside the "
                           f"top-level folder {top}")
    if start != top and not os.path.isfile(os.path.join(start, "__init__.py")):
        raise StartupError(f"unittest: start directory is not importable: {start!r} "
                           f"(a start folder below the top-level folder -t must be a package)")
    if top not in sys.path:   # all test modules are imported from the top-level folder
        sys.path.insert(0, top)
    return list(_walk(start, top, pattern))


def _walk(folder: str, top: str, pattern: str):
    if folder != top:
        unit, go_on = _package(folder, top, pattern)
        if unit is not None:
            yield unit
        if not go_on:
            return
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            if VALID_MODULE_NAME.match(name) and fnmatch.fnmatch(name, pattern):
                yield Unit(module_name(path, top), top, path, pattern=pattern)
        elif os.path.isfile(os.path.join(path, "__init__.py")):
            yield from _walk(path, top, pattern)


def _package(folder: str, top: str, pattern: str) -> tuple[Unit | None, bool]:
    """A package is imported (discovery needs to know whether it has load_tests): is it a
    unit, and does discovery go on into it?"""
    unit = Unit(module_name(folder, top), top, os.path.join(folder, "__init__.py"),
                package=True, pattern=pattern)
    try:
        package = importlib.import_module(unit.module)
    except KeyboardInterrupt:
        raise
    except BaseException:
        return unit, False   # its runner imports it again and reports what goes wrong
    if hasattr(package, "load_tests"):
        return unit, False   # its load_tests loads the whole package
    own_tests = unittest.TestLoader().loadTestsFromModule(package).countTestCases()
    return (unit if own_tests else None), True


def module_name(path: str, top: str) -> str:
    path = os.path.abspath(path)
    if not _inside(path, top):
        raise StartupError(f"unittest: {path} is not inside the top-level folder {top}")
    stem = os.path.splitext(os.path.normpath(path))[0]
    return os.path.relpath(stem, top).replace(os.sep, ".")


def import_unit(unit: Unit) -> ModuleType:
    module = importlib.import_module(unit.module)
    # unittest's own check: a module of that name imported from elsewhere is not the file
    found = os.path.splitext(os.path.realpath(getattr(module, "__file__", None) or unit.path))[0]
    if found.lower() != os.path.splitext(os.path.realpath(unit.path))[0].lower():
        raise ImportError(f"{unit.module!r} module incorrectly imported from "
                          f"{os.path.dirname(found)!r}. Expected "
                          f"{os.path.dirname(unit.path)!r}. Is this module globally installed?")
    return module


def _inside(path: str, folder: str) -> bool:
    relative_path = os.path.relpath(path, folder)
    return not relative_path.startswith(os.pardir) and not os.path.isabs(relative_path)


def iterate(suite: unittest.TestSuite):
    """The tests of a suite, in the order a run meets them."""
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from iterate(test)
        else:
            yield test


def base_test(test_id: str) -> str:
    """The test a result belongs to: a subtest's id is its test's and a description after
    a space (Python names have no spaces)."""
    return test_id.split(" ", 1)[0]


def selectable(test_id: str) -> str:
    """What runs a result's id again: a subtest's test, a class fixture's class, a module
    fixture's module (its file)."""
    test = base_test(test_id)
    head, _, last = test.rpartition("::")
    if last in ("setUpClass", "tearDownClass"):
        return head
    if last in ("setUpModule", "tearDownModule"):
        return head.split("::")[0]
    return test


def _is_stand_in(test: object) -> bool:
    """unittest's stand-ins for a module that did not import or load (a failed import, a
    failing load_tests, SkipTest raised while importing)."""
    return type(test).__name__ in ("_FailedTest", "ModuleSkipped") and \
        type(test).__module__ == "unittest.loader"


def _phase(test: object) -> str:
    if _is_stand_in(test):
        return "collect"
    if isinstance(test, unittest.suite._ErrorHolder):   # type: ignore[attr-defined]
        return "setup" if test.description.startswith("setUp") else "teardown"
    return "call"


def _longest_module_prefix(dotted: str) -> str:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in sys.modules:
            return ".".join(parts[:end])
    return ""


# --- options -----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise StartupError(f"unittest: {message} (framework options after -- are those of "
                           f"python -m unittest discover)")


def parse_options(args: tuple[str, ...]) -> Options:
    parser = _Parser(prog="unittest", add_help=False)
    parser.add_argument("-s", "--start-directory", dest="start")
    parser.add_argument("-p", "--pattern")
    parser.add_argument("-t", "--top-level-directory", dest="top")
    parser.add_argument("-k", dest="names", action="append", default=[])
    parser.add_argument("-f", "--failfast", action="store_true")
    parser.add_argument("-b", "--buffer", action="store_true")
    parser.add_argument("--locals", action="store_true")
    # accepted for the sake of copied command lines: medusa does the reporting and Ctrl-C
    for flag in ("-c", "--catch", "-v", "--verbose", "-q", "--quiet"):
        parser.add_argument(flag, action="store_true", dest=f"ignored_{flag.strip('-')}")
    parser.add_argument("positional", nargs="*")
    parsed = parser.parse_args(list(args))
    positional = list(parsed.positional)
    if positional[:1] == ["discover"]:
        positional.pop(0)
    if len(positional) > 3:
        parser.error(f"unrecognized arguments: {' '.join(positional[3:])}")
    # `discover [START [PATTERN [TOP]]]`, as unittest takes them
    start, pattern, top = (positional + [None, None, None])[:3]
    return Options(start=parsed.start or start or ".",
                   pattern=parsed.pattern or pattern or "test*.py",
                   top=parsed.top or top,
                   name_patterns=tuple(p if "*" in p else f"*{p}*" for p in parsed.names),
                   failfast=parsed.failfast, buffer=parsed.buffer, tb_locals=parsed.locals)
