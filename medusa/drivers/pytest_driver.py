"""The pytest driver: load pytest once in the worker, run one file at a time in each runner.

Worker side (`prepare`): pytest parses its configuration exactly as the `pytest` command
would (ini files, plugins, conftest.py files, the framework arguments), runs its configure
hooks, and walks the test directories with pytest's own collectors down to the files
(python_files, norecursedirs, --ignore, collect_ignore all apply) without importing a test
module. Then pytest's global output capture is stopped: the runners must not share its
temporary files after the fork.

Runner side (`serve`): one pytest session for the runner's whole life, as a pytest-xdist
worker has. Our plugin takes over `pytest_runtestloop`: for each file the master hands
out, the file is collected in this runner and its tests run through pytest's normal
protocol. Module and class fixtures end with their file; package fixtures end when the
runner moves to a file outside their package; session fixtures live until the runner
ends. Results are the categories pytest's own summary counts.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from medusa.drivers import STOP_SIGNAL, Channel, DriverOptions, Prepared, StartupError
from medusa.messages import RunFile

MAX_SECTION_CHARS = 1_000_000


class PytestDriver:
    name = "pytest"

    def __init__(self) -> None:
        self.config: Any = None
        self.session: Any = None
        self.last_failed: dict[str, Any] | None = None

    # --- worker side ---------------------------------------------------------------------

    def prepare(self, paths: tuple[str, ...], framework_args: tuple[str, ...],
                options: DriverOptions = ()) -> Prepared:
        self._check_version(pytest.__version__)
        self.config = _load_config([*framework_args, *paths])
        _keep_xdist_out(self.config)
        _fresh_basetemp(self.config)
        try:
            self.config._do_configure()
        except Exception as exc:
            raise StartupError(f"pytest's configure hooks failed: {exc!r}",
                               _format_exception(exc)) from exc
        capture = self.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.stop_global_capturing()
        _silence_terminal_reporter(self.config)
        self.last_failed = _read_last_failed(self.config)
        from _pytest.main import Session
        self.session = Session.from_config(self.config)
        files = _find_files(self.session, self.config)
        return Prepared(rootdir=str(self.config.rootpath),
                        framework=f"pytest {pytest.__version__}", files=tuple(files),
                        maxfail=self.config.option.maxfail or 0)

    @staticmethod
    def _check_version(version: str) -> None:
        major = int(version.split(".")[0])
        if major < 8:
            raise StartupError(f"medusa needs pytest 8 or newer; this environment has pytest {version}")

    # --- runner side ---------------------------------------------------------------------

    def serve(self, channel: Channel, runner: int) -> int:
        config, session = self.config, self.session
        _give_runner_its_own_basetemp(config, runner)
        _merge_last_failed(config, self.last_failed)
        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            # as pytest leaves it after start-up: capturing, but suspended between tests
            capture.start_global_capturing()
            capture.suspend_global_capture()
        # Counting failures towards -x/--maxfail is the master's job, over all runners
        # (WorkerBegin tells it pytest's value).
        config.option.maxfail = 0
        session.testsfailed = 0
        plugin = _RunnerPlugin(channel, session, _Tree(session))
        config.pluginmanager.register(plugin, "medusa-runner")
        signal.signal(STOP_SIGNAL, plugin.on_stop_signal)
        exitstatus = 0
        try:
            config.hook.pytest_sessionstart(session=session)
            config.hook.pytest_runtestloop(session=session)
            plugin.teardown_session()
        except BaseException:
            exitstatus = 3
            raise
        finally:
            try:
                _skip_terminal_summary(config)
                config.hook.pytest_sessionfinish(session=session, exitstatus=exitstatus)
            finally:
                config._ensure_unconfigure()
                if capture is not None:
                    capture.stop_global_capturing()
        return exitstatus


class BuildStop(Exception):
    """Something in a file that ends the whole build, as it would end pytest's session."""

    def __init__(self, reason: str, exit_code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


class _Stopped(KeyboardInterrupt):
    """Raised in a test by STOP_SIGNAL. pytest lets a KeyboardInterrupt through its test
    protocol without a report (any other exception would make the test fail)."""


class _RunnerPlugin:
    """Registered in each runner: pulls files from the channel and reports what happens."""

    def __init__(self, channel: Channel, session: Any, tree: _Tree) -> None:
        self.channel = channel
        self.tree = tree
        self.session = session
        self.config = session.config
        self.file = ""
        self.last_test = ""
        self.deselected = 0
        self.warnings = 0
        self.import_warnings = 0
        self.reports: list[Any] = []
        self.timings: list[tuple[str, float]] = []
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
        file = work.file
        self.file, self.deselected, self.timings = file, 0, []
        self.warnings = self.import_warnings = 0
        with _collection_warnings(self.config):
            items = self._collect(work)
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
                code = 2 if exc.returncode is None else int(exc.returncode)
                raise BuildStop(f"pytest.exit() in {item.nodeid}: {exc.msg}", code) from exc
            except KeyboardInterrupt as exc:
                raise BuildStop(f"KeyboardInterrupt in {item.nodeid}", 2) from exc
        self.channel.file_complete(file, time.perf_counter() - started, len(items),
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

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: Any) -> Any:
        return (yield from self._interruptible())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: Any) -> Any:
        return (yield from self._interruptible())

    def _interruptible(self) -> Any:
        if self.stopping:
            raise _Stopped()
        self.in_test = True
        try:
            return (yield)
        finally:
            self.in_test = False

    def teardown_session(self) -> None:
        """End the session fixtures here, where a failure can still be reported: serial
        pytest reports it as an error at the teardown of the last test."""
        try:
            self.session._setupstate.teardown_exact(None)
        except Exception as exc:
            self.channel.result(file=self.file, test=f"{self.last_test or self.file}",
                                outcome="error", when="teardown", duration=0.0,
                                message=f"session teardown: {exc!r}",
                                longrepr=_format_exception(exc))

    def _collect(self, work: RunFile) -> list[Any]:
        """Collect one file the way pytest's own collection reaches it, through the same
        directory nodes every time: asking pytest to collect the path instead would list
        (and make a node for) every file of its folder, for every file."""
        session, hook, file = self.session, self.config.hook, work.file
        collectors = [] if "::" in file else self.tree.files(self.config.rootpath / file)
        if not collectors:   # a node id, a folder that failed to collect, a declined folder
            return _select(work, self._collect_by_argument(file))
        items: list[Any] = []
        for collector in collectors:
            items.extend(session.genitems(collector))
        session._collection_cache = {}   # genitems' cache would keep every file alive
        items = _select(work, items)
        session.items = items
        hook.pytest_collection_modifyitems(session=session, config=self.config, items=items)
        # No pytest_collection_finish: pytest 9.2 drops the conftests of every folder not
        # collected yet when it runs, and this runner's collection is not finished.
        return items

    def _collect_by_argument(self, file: str) -> list[Any]:
        from _pytest.config import UsageError
        try:
            return list(self.session.perform_collect([str(self.config.rootpath / file)]))
        except UsageError as exc:   # a node id or file that does not exist: pytest exits 4
            raise BuildStop("; ".join(" ".join(str(a).split()) for a in exc.args), 4) from exc

    def _start_file(self, items: list[Any]) -> None:
        """Tear down what the previous file left set up (its folders' package fixtures)
        and the new file does not share."""
        if not items:
            return
        try:
            self.session._setupstate.teardown_exact(items[0])
        except Exception as exc:
            self.channel.result(file=self.file, test=self.last_test or self.file,
                                outcome="error", when="teardown", duration=0.0,
                                message=f"package teardown: {exc!r}",
                                longrepr=_format_exception(exc))

    # --- what pytest tells us ------------------------------------------------------------

    def pytest_deselected(self, items: list[Any]) -> None:
        self.deselected += len(items)

    def pytest_warning_recorded(self, when: str) -> None:
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
        self.channel.result(file=self.file, test=report.nodeid or self.file, outcome=outcome,
                            when="collect", duration=getattr(report, "duration", 0.0) or 0.0,
                            message=_one_line(report), longrepr=_longrepr(report),
                            sections=_sections(report), path=self.file, line=0)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.channel.test_started(nodeid)

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.reports.append(report)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        reports, self.reports = self.reports, []
        self.last_test = nodeid
        self.timings.append((nodeid, sum(r.duration for r in reports)))
        for report, outcome in _outcomes(self.config, reports):
            path, line = _location(report)
            self.channel.result(
                file=self.file, test=_test_id(report), outcome=outcome, when=report.when,
                duration=sum(r.duration for r in reports), message=_one_line(report),
                longrepr=_longrepr(report), sections=_sections(reports[-1]),
                path=path, line=line)


def _select(work: RunFile, items: list[Any]) -> list[Any]:
    """The tests of this part of a split file, or what a dead runner left of a file (all
    of them for a whole file). Selections name tests, or groups: a class or a function
    with all its parameters (`tests/t.py::TestA`, `tests/t.py::test_p`)."""
    wanted, unwanted = set(work.tests), set(work.exclude)
    if not wanted and not unwanted:
        return items
    return [item for item in items
            if (not wanted or _names(item.nodeid) & wanted) and not _names(item.nodeid) & unwanted]


def _names(nodeid: str) -> set[str]:
    """A test id and the groups it belongs to: `f.py::C::t[1]` -> itself, `f.py::C::t`,
    `f.py::C`."""
    names = {nodeid, nodeid.split("[", 1)[0]}
    parts = nodeid.split("[", 1)[0].split("::")
    names.update("::".join(parts[:end]) for end in range(2, len(parts)))
    return names


class _FileBoundary:
    """Stands for "the next test" after a file's last one: everything inside the file
    (module, classes) is torn down; its folders (package fixtures) stay up in case the
    next file is in the same package, and the session stays up for good."""

    def __init__(self, last_item: Any) -> None:
        chain = last_item.listchain()
        files = [i for i, node in enumerate(chain) if isinstance(node, pytest.File)]
        self._chain = chain[:files[0]] if files else chain[:1]

    def listchain(self) -> list[Any]:
        return self._chain


class _Tree:
    """pytest's directory nodes (Dir, Package) of one runner, each collected once.

    A directory is listed the first time a file in it is run (pytest's own collection of
    it: conftest fixtures are bound to it then), and its nodes are reused for every later
    file, so package fixtures keep their identity and no folder is listed twice.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.nodes: dict[Path, Any] = {}
        self.listings: dict[Path, dict[Path, list[Any]]] = {}   # folder -> path -> nodes

    def files(self, path: Path) -> list[Any]:
        """The File collectors pytest makes for this path in its folder (none: unknown)."""
        directory = self.directory(path.parent)
        if directory is None:
            return []
        return [node for node in self.listing(directory).get(path, [])
                if isinstance(node, pytest.File)]

    def directory(self, path: Path) -> Any:
        if path not in self.nodes:
            self.nodes[path] = self._make_directory(path)
        return self.nodes[path]

    def _make_directory(self, path: Path) -> Any:
        above = path.parent
        if above == path or not self.session.config.pluginmanager._is_in_confcutdir(above):
            # the top folder of the tree, as pytest's Session starts it
            return self.session.gethookproxy(above).pytest_collect_directory(
                path=path, parent=self.session)
        parent = self.directory(above)
        if parent is None:
            return None
        return next((node for node in self.listing(parent).get(path, [])
                     if isinstance(node, pytest.Directory)), None)

    def listing(self, directory: Any) -> dict[Path, list[Any]]:
        if directory.path not in self.listings:
            from _pytest.runner import collect_one_node
            report = collect_one_node(directory)
            children: dict[Path, list[Any]] = {}
            for node in report.result if report.passed else []:
                children.setdefault(node.path, []).append(node)
            self.listings[directory.path] = children
        return self.listings[directory.path]


def _collection_warnings(config: Any) -> Any:
    """Warnings raised while a file is collected are recorded (and filtered, so that
    `filterwarnings = error` applies) as pytest's own collection does it."""
    import contextlib
    try:
        from _pytest.warnings import catch_warnings_for_item
    except ImportError:
        return contextlib.nullcontext()
    return catch_warnings_for_item(config=config, ihook=config.hook, when="collect", item=None)


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
    return _truncate(report.longreprtext)


def _sections(report: Any) -> tuple[tuple[str, str], ...]:
    return tuple((title, _truncate(text)) for title, text in report.sections)


def _truncate(text: str) -> str:
    if len(text) <= MAX_SECTION_CHARS:
        return text
    cut = len(text) - MAX_SECTION_CHARS
    return f"[medusa: {cut} characters cut]\n" + text[cut:]


def _load_config(args: list[str]) -> Any:
    import io

    from _pytest.config import (
        ConftestImportFailure,
        UsageError,
        _prepareconfig,
        print_conftest_import_error,
    )
    try:
        return _prepareconfig(args)
    except ConftestImportFailure as exc:
        text = io.StringIO()   # pytest's own words and its trimmed traceback
        print_conftest_import_error(exc, file=text)
        first, _, rest = text.getvalue().partition("\n")
        raise StartupError(first.rstrip("."), rest) from exc
    except UsageError as exc:
        # pytest's text has a usage line and its ini/rootdir: the "error:" line is the news
        lines = "\n".join(str(a) for a in exc.args).splitlines()
        errors = [line.split("error: ", 1)[-1] for line in lines if "error: " in line]
        message = "pytest: " + ("; ".join(errors) if errors else "; ".join(lines))
        raise StartupError(message, "\n".join(line for line in lines if line.startswith("  "))) from exc
    except ImportError as exc:    # -p with a plugin that is not installed
        raise StartupError(f"pytest could not start: {exc}") from exc
    except Exception as exc:  # a plugin's own bug, a broken ini file, ...
        raise StartupError(f"pytest could not start: {exc!r}", _format_exception(exc)) from exc


def _find_files(session: Any, config: Any) -> list[str]:
    """The files pytest would collect for its arguments, relative to the rootdir."""
    from _pytest.runner import collect_one_node
    rootpath: Path = config.rootpath
    invocation = Path(config.invocation_params.dir)
    initial = [(invocation / arg.split("::")[0]).resolve() for arg in config.args]
    # pytest neither ignores an argument it was given nor the folders above it
    session._initialpaths = frozenset(initial)
    session._initialpaths_with_parents = frozenset(
        [*initial, *(parent for path in initial for parent in path.parents)])

    found: dict[str, None] = {}

    def add(path: Path, suffix: str = "") -> None:
        found[_relative(path, rootpath) + suffix] = None

    def walk(node: Any) -> None:
        if isinstance(node, pytest.File) or not isinstance(node, pytest.Collector):
            add(node.path)
            return
        report = collect_one_node(node)
        if not report.passed:   # the runner that gets it reports the same failure
            add(node.path)
            return
        for child in report.result:
            walk(child)

    for arg, path in zip(config.args, initial):
        if "::" in arg:
            add(path, "::" + arg.split("::", 1)[1])
        elif path.is_dir():
            directory = session.gethookproxy(path.parent).pytest_collect_directory(
                path=path, parent=session)
            if directory is not None:
                walk(directory)
        elif path.is_file():
            for collector in session.gethookproxy(path).pytest_collect_file(
                    file_path=path, parent=session):
                walk(collector)
        else:
            raise StartupError(f"file or directory not found: {arg}")
    return list(found)


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


def _silence_terminal_reporter(config: Any) -> None:
    """Each runner's own pytest report (header, "collected N items", summary) would only
    repeat what the master reports: it goes nowhere. The runner's stdout itself stays
    connected to the user, for tests run with -s."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        from _pytest.config import create_terminal_writer
        reporter._tw = create_terminal_writer(config, open(os.devnull, "w"))


def _skip_terminal_summary(config: Any) -> None:
    """A runner's terminal summary would go nowhere (see above), yet plugins do costly
    work for it (hypothesis imports itself whole there): with every runner ending at
    once that cost the build a second. Without the terminal reporter at the session's
    end, pytest_terminal_summary is never called; nothing else of the run needs it then."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        config.pluginmanager.unregister(reporter)


def _keep_xdist_out(config: Any) -> None:
    """medusa is the one that runs in parallel: an `-n auto` in the project's addopts
    must not make every runner start pytest-xdist workers of its own."""
    if config.pluginmanager.hasplugin("xdist"):
        config.option.dist = "no"
        config.option.numprocesses = None
        config.option.tx = []


def _fresh_basetemp(config: Any) -> None:
    """With --basetemp pytest empties the folder when it starts: done once, in the worker."""
    given = config.option.basetemp
    if given:
        import shutil
        shutil.rmtree(given, ignore_errors=True)
        os.makedirs(given, exist_ok=True)


def _give_runner_its_own_basetemp(config: Any, runner: int) -> None:
    """With --basetemp every runner would wipe the same folder: give each its own below it."""
    given = config.option.basetemp
    if not given:
        return
    from _pytest.tmpdir import TempPathFactory
    config.option.basetemp = os.path.join(given, f"runner-{runner}")
    config._tmp_path_factory = TempPathFactory.from_config(config, _ispytest=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return os.path.relpath(path, root).replace(os.sep, "/")


def _format_exception(exc: BaseException) -> str:
    import traceback
    return "".join(traceback.format_exception(exc))
