"""The pytest driver: pytest loaded, configured and (by default) collected once in the
worker; the items run in the forked runners.

Worker side (`prepare`): pytest parses its configuration exactly as the `pytest` command
would (ini files, plugins, conftest.py files, the framework arguments), runs its configure
and session-start hooks, and collects: the whole session (pytest_collection, as pytest
itself), or only the files with `collect: file` (pytest_collection.py says what each
gives). Then pytest's global output capture is stopped: the runners must not share its
temporary files after the fork.

Runner side (`serve`): the session the worker collected, for the runner's whole life, as
a pytest-xdist worker has one. Our plugin takes over `pytest_runtestloop`: for each unit
the master hands out (a file, or a part of one), its items run through pytest's normal
protocol, each with the next one as `nextitem`. Module and class fixtures end with the
unit; package fixtures end when the runner moves to a file outside their package; session
fixtures live until the runner ends. Results are the categories pytest's own summary
counts.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import pytest

from medusa.drivers import (COLLECT_OPTION, CONTROLLER_OPTION, STOP_SIGNAL, Channel,
                            DriverOptions, Prepared, StartupError, unpack)
from medusa.drivers import pytest_compat
from medusa.drivers.common import format_exception, truncate
from medusa.drivers.pytest_collection import (BuildStop, FileCollection, SessionCollection,
                                              exit_code_of)
from medusa.drivers.pytest_replay import HookLog
from medusa.drivers.pytest_rewrite import rewritten_ahead
from medusa.messages import RunFile

OLDEST_PYTEST = (7, 4)
# record_property: at most this many per test, each name and value cut at this length
MAX_PROPERTIES = 1000
MAX_PROPERTY_CHARS = 10_000


class PytestDriver:
    name = "pytest"

    def __init__(self) -> None:
        self.config: Any = None
        self.session: Any = None
        self.collection: SessionCollection | FileCollection | None = None
        self.last_failed: dict[str, Any] | None = None
        self.basetemp = ""   # the build's temporary folder: a folder per runner below it
        self.log = HookLog(None, enabled=False)   # for the master's controller session

    # --- worker side ---------------------------------------------------------------------

    def prepare(self, paths: tuple[str, ...], framework_args: tuple[str, ...],
                options: DriverOptions = (), processes: int = 1) -> Prepared:
        self._check_version(pytest.__version__)
        self.config = config = _load_config([*framework_args, *paths])
        keep_xdist_out(config)
        controller = dict(options).get(CONTROLLER_OPTION)
        if controller is not None:
            # as pytest-xdist's workers: one before configure (pytest-cov starts its
            # worker side at sessionstart, here, so that imports are measured)
            asked = unpack(controller)
            _act_as_xdist_worker(config, asked["workerinput"])
            self.log = HookLog(config, enabled=True, reports=asked["reports"])
        try:
            pytest_compat.configure(config)
        except Exception as exc:
            raise StartupError(f"pytest's configure hooks failed: {exc!r}",
                               format_exception(exc)) from exc
        _silence_terminal_reporter(config)
        self.basetemp = _build_basetemp(config)
        self.last_failed = _read_last_failed(config)
        self.session = session = pytest_compat.new_session(config)
        config.hook.pytest_sessionstart(session=session)
        if dict(options).get(COLLECT_OPTION) == "file":
            self.collection = FileCollection(session)
        else:
            with rewritten_ahead(config, helpers=processes - 1):
                self.collection = SessionCollection(session, self.log)
        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.stop_global_capturing()
        return Prepared(rootdir=str(config.rootpath), framework=f"pytest {pytest.__version__}",
                        files=self.collection.files, tests=self.collection.tests,
                        deselected=self.collection.deselected,
                        warnings=self.collection.warnings,
                        maxfail=config.option.maxfail or 0,
                        framework_events=self.log.take())

    @staticmethod
    def _check_version(version: str) -> None:
        numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
        if numbers < OLDEST_PYTEST:
            raise StartupError(f"medusa needs pytest {'.'.join(map(str, OLDEST_PYTEST))} or "
                               f"newer; this environment has pytest {version}")

    # --- runner side ---------------------------------------------------------------------

    def serve(self, channel: Channel, runner: int) -> int:
        config, session = self.config, self.session
        assert self.collection is not None
        _give_runner_its_own_basetemp(config, self.basetemp)
        _merge_last_failed(config, self.last_failed)
        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            # as pytest leaves it after start-up: capturing, but suspended between tests
            capture.start_global_capturing()
            capture.suspend_global_capture()
        # Counting failures towards -x/--maxfail is the master's job, over all runners
        # (WorkerBegin tells it pytest's value); this runner counts its own, as pytest.
        config.option.maxfail = 0
        session.testsfailed = 0
        session.shouldfail = session.shouldstop = False
        _act_as_xdist_worker(config, getattr(config, "workerinput", None))
        recorder = JunitRecorder()
        pytest_compat.stand_in_for_junitxml(config, recorder)
        plugin = _RunnerPlugin(channel, session, self.collection, self.log, recorder)
        config.pluginmanager.register(plugin, "medusa-runner")
        plugin.registered = True
        signal.signal(STOP_SIGNAL, plugin.on_stop_signal)
        try:
            config.hook.pytest_runtestloop(session=session)
            plugin.teardown_session()
            session.exitstatus = _exit_status(session)
        except BaseException:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            raise
        finally:
            try:
                _skip_terminal_summary(config)
                config.hook.pytest_sessionfinish(session=session, exitstatus=session.exitstatus)
                _write_cache_as_the_controller(config)
                if self.log.enabled:
                    channel.runner_output(config.workerinput["workerid"],
                                          dict(config.workeroutput), self.log.take())
            finally:
                pytest_compat.unconfigure(config)
                if capture is not None:
                    capture.stop_global_capturing()
        return 0   # the runner did its part; the tests' verdicts went to the master


def _exit_status(session: Any) -> pytest.ExitCode:
    """What pytest's own session ends with (plugins read it in pytest_sessionfinish)."""
    if session.testsfailed:
        return pytest.ExitCode.TESTS_FAILED
    if session.testscollected == 0:
        return pytest.ExitCode.NO_TESTS_COLLECTED
    return pytest.ExitCode.OK


class _Stopped(KeyboardInterrupt):
    """Raised in a test by STOP_SIGNAL. pytest lets a KeyboardInterrupt through its test
    protocol without a report (any other exception would make the test fail)."""


class _RunnerPlugin:
    """Registered in each runner: pulls units from the channel and reports what happens."""

    def __init__(self, channel: Channel, session: Any,
                 collection: SessionCollection | FileCollection, log: HookLog,
                 recorder: JunitRecorder) -> None:
        self.channel = channel
        self.log = log
        self.recorder = recorder
        self.collection = collection
        self.session = session
        self.config = session.config
        self.file = ""
        self.last_test = ""
        self.deselected = 0
        self.warnings = 0
        self.import_warnings = 0
        self.reports: list[Any] = []
        self.timings: list[tuple[str, float]] = []
        self.registered = False   # pytest has replayed the warnings before us
        self.stopping = False     # the master stopped the tests: run no more
        self.in_test = False      # in a test's setup or call, where stopping may raise

    @pytest.hookimpl(tryfirst=True)   # first, so that pytest's own loop never runs
    def pytest_runtestloop(self, session: Any) -> bool:
        while (work := self.channel.next_file()) is not None:
            try:
                self.run_file(work)
            except BuildStop as stop:
                self.channel.stop_build(work.file, stop.reason, stop.exit_code)
                break
        return True

    def run_file(self, work: RunFile) -> None:
        started = time.perf_counter()
        self.file, self.deselected, self.timings = work.file, 0, []
        self.warnings = self.import_warnings = 0
        items, reports = self.collection.collect(work)
        for report in reports:   # collected in the worker: said here, with its unit
            self.pytest_collectreport(report)
        self._start_file(items)
        stopped = False
        for index, item in enumerate(items):
            if self.stopping:
                stopped = True
                break
            nextitem = items[index + 1] if index + 1 < len(items) else _FileBoundary(item)
            try:
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            except _Stopped:
                # the test has no report: it did not run to its end; its fixtures end
                # with the session, which ends next
                self.reports, stopped = [], True
                break
            except pytest.exit.Exception as exc:
                raise BuildStop(f"pytest.exit() in {item.nodeid}: {exc.msg}",
                                exit_code_of(exc)) from exc
            except KeyboardInterrupt as exc:
                raise BuildStop(f"KeyboardInterrupt in {item.nodeid}", 2) from exc
        self.channel.file_complete(work.file, time.perf_counter() - started, len(items),
                                   self.deselected, self.warnings, self.import_warnings,
                                   tuple(self.timings), stopped)

    def on_stop_signal(self, signum: int, frame: Any) -> None:
        """STOP_SIGNAL: stop at once inside a test, else before the next one. Never
        inside the teardown (half-ended fixtures) or our own reporting (a half-written
        message)."""
        self.stopping = True
        if self.in_test:
            self.in_test = False
            raise _Stopped()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item: Any) -> Any:
        yield from self._interruptible()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: Any) -> Any:
        yield from self._interruptible()

    def _interruptible(self) -> Any:
        if self.stopping:
            raise _Stopped()
        self.in_test = True
        try:
            yield
        finally:
            self.in_test = False

    def teardown_session(self) -> None:
        """End the session fixtures here, where a failure can still be reported: serial
        pytest reports it as an error at the teardown of the last test."""
        try:
            pytest_compat.teardown_to(self.session, None)
        except Exception as exc:
            self.channel.result(file=self.file, test=f"{self.last_test or self.file}",
                                outcome="error", when="teardown", duration=0.0,
                                message=f"session teardown: {exc!r}",
                                longrepr=format_exception(exc))

    def _start_file(self, items: list[Any]) -> None:
        """Tear down what the previous file left set up (its folders' package fixtures)
        and the new file does not share."""
        if not items:
            return
        try:
            pytest_compat.teardown_to(self.session, items[0])
        except Exception as exc:
            self.channel.result(file=self.file, test=self.last_test or self.file,
                                outcome="error", when="teardown", duration=0.0,
                                message=f"package teardown: {exc!r}",
                                longrepr=format_exception(exc))

    # --- what pytest tells us ------------------------------------------------------------

    def pytest_deselected(self, items: list[Any]) -> None:
        self.deselected += len(items)

    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str,
                                location: Any) -> None:
        if self.registered:   # not pytest's replay of the worker's (a historic hook)
            self.log.warning(warning_message, when, nodeid, location)
        if when == "collect":
            self.import_warnings += 1
        else:
            self.warnings += 1

    def pytest_collectreport(self, report: Any) -> None:
        # pytest's terminal counts a collector that failed as an error, one that skipped
        # (pytest.skip at module level) as skipped.
        if report.passed:
            return
        outcome = "error" if report.failed else "skipped"
        self.log.report(report)
        self.channel.result(file=self.file, test=report.nodeid or self.file, outcome=outcome,
                            when="collect", duration=getattr(report, "duration", 0.0) or 0.0,
                            message=_one_line(report), longrepr=_longrepr(report),
                            sections=_sections(report), path=self.file, line=0,
                            framework_events=self.log.take())

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.channel.test_started(nodeid)
        self.log.logstart(nodeid, location)

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.reports.append(report)
        self.log.report(report)

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.log.logfinish(nodeid, location)
        reports, self.reports = self.reports, []
        self.last_test = nodeid
        self.timings.append((nodeid, sum(r.duration for r in reports)))
        attributes, suite_properties = self.recorder.take()
        for report, outcome in _outcomes(self.config, reports):
            path, line = _location(report)
            self.channel.result(
                file=self.file, test=_test_id(report), outcome=outcome, when=report.when,
                duration=sum(r.duration for r in reports), message=_one_line(report),
                longrepr=_longrepr(report), sections=_sections(reports[-1]),
                path=path, line=line, properties=_properties(reports[-1]),
                xml_attributes=attributes, suite_properties=suite_properties,
                framework_events=self.log.take())   # the first result of the test has them


class JunitRecorder:
    """What pytest's junitxml would have written for record_xml_attribute and
    record_testsuite_property, kept for the test's result (pytest_compat.py puts it where
    pytest looks for its junitxml). Under pytest-xdist both write nowhere."""

    family = "xunit1"   # pytest warns of xunit2's schema only where --junitxml is given

    def __init__(self) -> None:
        self.attributes: list[tuple[str, str]] = []
        self.suite_properties: list[tuple[str, str]] = []

    def node_reporter(self, node: object) -> Any:
        # the fixture is the running test's (pytest passes its nodeid, or from 9.0 on an
        # id that is not): what it records is that test's
        recorded = self.attributes

        class Attributes:
            @staticmethod
            def add_attribute(name: object, value: object) -> None:
                recorded.append(_property(name, value))
        return Attributes()

    def add_global_property(self, name: object, value: object) -> None:
        self.suite_properties.append(_property(name, value))

    def take(self) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
        """What was recorded since the last test ended: the test's attributes, and the
        suite's properties."""
        attributes, self.attributes = tuple(self.attributes[:MAX_PROPERTIES]), []
        suite, self.suite_properties = tuple(self.suite_properties[:MAX_PROPERTIES]), []
        return attributes, suite


class _FileBoundary:
    """Stands for "the next test" after a unit's last one: everything inside the file
    (module, classes) is torn down; its folders (package fixtures) stay up in case the
    next file is in the same package, and the session stays up for good."""

    def __init__(self, last_item: Any) -> None:
        chain = last_item.listchain()
        files = [i for i, node in enumerate(chain) if isinstance(node, pytest.File)]
        self._chain = chain[:files[0]] if files else chain[:1]

    def listchain(self) -> list[Any]:
        return self._chain


def _outcomes(config: Any, reports: list[Any]) -> list[tuple[Any, str]]:
    """The results pytest counts for one test: every report that pytest's (and its
    plugins') pytest_report_teststatus puts in a category. That is the setup-or-call
    outcome, an error for a failing teardown, and one per reported subtest."""
    counted = []
    for report in reports:
        category = config.hook.pytest_report_teststatus(report=report, config=config)[0]
        if category:
            counted.append((report, category))
    return counted


def _test_id(report: Any) -> str:
    """A subtest's result is named after its test and its own description."""
    describe = getattr(report, "_sub_test_description", None)
    return f"{report.nodeid} {describe()}".rstrip() if describe else report.nodeid


def _location(report: Any) -> tuple[str, int]:
    path, lineno, _ = report.location
    return path, (lineno + 1 if lineno is not None else 0)


def _one_line(report: Any) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:   # a skip: (path, line, reason)
        reason = str(longrepr[2])
        return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.splitlines()[0] if crash.message else ""
    text = str(longrepr or "").strip()
    return text.splitlines()[-1] if text else ""


def _longrepr(report: Any) -> str:
    if not report.failed:
        return ""
    return truncate(report.longreprtext)


def _properties(report: Any) -> tuple[tuple[str, str], ...]:
    """record_property's (name, value) pairs, as text (as pytest's junitxml writes them)."""
    return tuple(_property(name, value) for name, value in report.user_properties[:MAX_PROPERTIES])


def _property(name: object, value: object) -> tuple[str, str]:
    return str(name)[:MAX_PROPERTY_CHARS], str(value)[:MAX_PROPERTY_CHARS]


def _sections(report: Any) -> tuple[tuple[str, str], ...]:
    return tuple((title, truncate(text)) for title, text in report.sections)


def _load_config(args: list[str]) -> Any:
    try:
        return pytest_compat.prepare_config(args)
    except pytest_compat.conftest_import_failure() as exc:
        first, _, rest = _conftest_error_text(exc).partition("\n")
        raise StartupError(first.rstrip("."), rest) from exc
    except pytest.UsageError as exc:
        # pytest's text has a usage line and its ini/rootdir: the "error:" line is the news
        lines = "\n".join(str(a) for a in exc.args).splitlines()
        errors = [line.split("error: ", 1)[-1] for line in lines if "error: " in line]
        message = "pytest: " + ("; ".join(errors) if errors else "; ".join(lines))
        raise StartupError(message, "\n".join(line for line in lines if line.startswith("  "))) from exc
    except ImportError as exc:    # -p with a plugin that is not installed
        raise StartupError(f"pytest could not start: {exc}") from exc
    except Exception as exc:  # a plugin's own bug, a broken ini file, ...
        raise StartupError(f"pytest could not start: {exc!r}", format_exception(exc)) from exc


def _conftest_error_text(exc: Any) -> str:
    """pytest's own words and its trimmed traceback (pytest 8.4.2 and later can say it;
    before, the same first line and the whole traceback)."""
    import io
    print_conftest_import_error = pytest_compat.conftest_error_printer()
    if print_conftest_import_error is None:
        cause = getattr(exc, "cause", None) or getattr(exc, "excinfo", (None, None, None))[1]
        detail = format_exception(cause) if isinstance(cause, BaseException) else ""
        return f"ImportError while loading conftest '{exc.path}'.\n{detail}"
    text = io.StringIO()
    print_conftest_import_error(exc, file=text)
    return text.getvalue()


LAST_FAILED = "cache/lastfailed"


def _read_last_failed(config: Any) -> dict[str, Any] | None:
    cache = getattr(config, "cache", None)
    return None if cache is None else dict(cache.get(LAST_FAILED, {}))


def _merge_last_failed(config: Any, before: dict[str, Any] | None) -> None:
    """pytest's cacheprovider writes the failures it saw to .pytest_cache at the end of
    the session (what --lf reruns). Every runner does; so that the last one to end does
    not overwrite the others', each applies only its own changes to what is on disk."""
    cache = getattr(config, "cache", None)
    if cache is None or before is None:
        return
    plain_set = cache.set

    def merging_set(key: str, value: object) -> None:
        if key != LAST_FAILED or not isinstance(value, dict):
            return plain_set(key, value)
        import fcntl
        with open(cache.mkdir("medusa") / "lastfailed.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = dict(cache.get(LAST_FAILED, {}))
            for nodeid in before.keys() - value.keys():   # passed in this runner
                current.pop(nodeid, None)
            current.update({k: v for k, v in value.items() if k not in before})
            plain_set(LAST_FAILED, current)

    cache.set = merging_set


def _write_cache_as_the_controller(config: Any) -> None:
    """pytest's cache plugins leave the records of --lf and --nf to pytest-xdist's
    controller when they run in one of its workers (config.workerinput): a runner
    writes its own (merged with the other runners' by _merge_last_failed), as each did
    before it was an xdist worker to plugins."""
    cache = getattr(config, "cache", None)
    if cache is None or config.getoption("cacheshow") or config.getoption("collectonly"):
        return
    failures = config.pluginmanager.get_plugin("lfplugin")
    if failures is not None:
        # str(): pytest 9.2 keeps node ids as NodeId objects, written as text
        cache.set(LAST_FAILED, {_writable(test): value
                                for test, value in failures.lastfailed.items()})
    new_first = config.pluginmanager.get_plugin("nfplugin")
    if new_first is not None:
        cache.set("cache/nodeids", sorted(_writable(test) for test in new_first.cached_nodeids))


def _writable(nodeid: object) -> str:
    """A node id as UTF-8 can hold it: a file name that is not UTF-8 (test_\\xff.py) keeps
    its bytes as surrogates, which pytest's cache cannot write (pytest itself ends in an
    internal error there)."""
    return str(nodeid).encode("utf-8", "backslashreplace").decode("utf-8")


def _silence_terminal_reporter(config: Any) -> None:
    """Each runner's own pytest report (header, "collected N items", summary) would only
    repeat what the master reports: it goes nowhere. The runner's stdout itself stays
    connected to the user, for tests run with -s, and so does what plugins write to the
    terminal themselves: pytest-timeout's stack dump, before it ends the runner, reaches
    the runner's log and the report of the test it ended."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        pytest_compat.silence(reporter)
    pytest_compat.plugins_write_to(config, sys.stdout)


def _skip_terminal_summary(config: Any) -> None:
    """A runner's terminal summary would go nowhere (see above), yet plugins do costly
    work for it (hypothesis imports itself whole there): with every runner ending at
    once that cost the build a second. Without the terminal reporter at the session's
    end, pytest_terminal_summary is never called; nothing else of the run needs it then."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        config.pluginmanager.unregister(reporter)


def _act_as_xdist_worker(config: Any, given: dict[str, Any] | None) -> None:
    """To plugins a runner is a pytest-xdist worker: `config.workerinput` is how they tell
    (pytest-django suffixes its test databases by the workerid; xdist's worker_id and
    testrun_uid fixtures read it), with pytest-xdist installed or not. `given`: what the
    master's controller session gave (workerid, workercount, testrunuid and its plugins'
    keys); in a runner, the PYTEST_XDIST_* variables it set (runner.py) say the rest."""
    workerinput = dict(given or {})
    if "PYTEST_XDIST_WORKER" in os.environ:   # a runner
        workerinput.update(workerid=os.environ["PYTEST_XDIST_WORKER"],
                           workercount=int(os.environ["PYTEST_XDIST_WORKER_COUNT"]),
                           testrunuid=os.environ["PYTEST_XDIST_TESTRUNUID"])
    workerinput["mainargv"] = list(sys.argv)
    config.workerinput = workerinput
    config.workeroutput = {}


def keep_xdist_out(config: Any) -> None:
    """medusa is the one that runs in parallel: an `-n auto` in the project's addopts
    must not make every runner start pytest-xdist workers of its own."""
    if config.pluginmanager.hasplugin("xdist"):
        config.option.dist = "no"
        config.option.numprocesses = None
        config.option.tx = []


def _build_basetemp(config: Any) -> str:
    """The build's temporary folder, made once in the worker as pytest makes its own: a
    new numbered /tmp/pytest-of-USER/pytest-N (old ones pruned), or --basetemp, emptied."""
    given = config.option.basetemp
    if given:
        import shutil
        shutil.rmtree(given, ignore_errors=True)
        os.makedirs(given, exist_ok=True)
        return str(given)
    return pytest_compat.basetemp(config)


def _give_runner_its_own_basetemp(config: Any, basetemp: str) -> None:
    """Each runner has a folder of its own below the build's, named as pytest-xdist names
    its workers' (popen-gw0, ...): tests do not clobber each other's files, and fixtures
    that share state through `tmp_path_factory.getbasetemp().parent` (xdist's recipe)
    find one folder for the build."""
    worker = os.environ["PYTEST_XDIST_WORKER"]
    config.option.basetemp = os.path.join(basetemp, f"popen-{worker}")
    pytest_compat.renew_tmp_path_factory(config)
