"""The controller session: pytest in the master, in the role pytest-xdist's controller has.

What pytest and its plugins do once per session must happen once for the whole build:
the JUnit XML of an `addopts = --junitxml`, pytest-cov's combined report and its
`--cov-fail-under` gate, the warnings summary, `--durations`, `-r` and every plugin's
terminal section. So the master configures pytest as `pytest -n` would in its
controller process: the project's configuration, plugins and conftest.py files, no
collection. Then, as xdist's dsession does:

- each worker is a node to `pytest_configure_node`, whose additions to `workerinput`
  travel in Configure (pytest-cov tells its workers where the combined data goes);
- the runners' hook calls (pytest_replay.py) are called again here as their Results come;
- the master's event loop runs inside `pytest_runtestloop`, so that plugins wrapping it
  (pytest-cov reports there, and fails the session under its gate) see the build end;
- each runner's `workeroutput` reaches `pytest_testnodedown`;
- `pytest_sessionfinish` gets the build's exit status, and the terminal summary is kept
  for the console, without the parts medusa's console prints itself (failures, errors,
  the counts line).

It needs pytest and the project's plugins importable in the master, which runs in the
project's environment. When it cannot start (a conftest.py that needs what only the
workers' environment hooks provide, say), the build runs without it and says so.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import traceback
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

from medusa.drivers import pytest_compat
from medusa.drivers.controller import Summary
from medusa.drivers.pytest_replay import replay
from medusa.messages import FrameworkEvents, Result

# pytest's short summary chars that medusa's console lists itself
CONSOLE_CHARS = set("fEwN")
REPORT_HOOKS = ("pytest_runtest_logreport", "pytest_runtest_logstart",
                "pytest_runtest_logfinish", "pytest_collectreport")
# pytest's plugins that hear reports only for what medusa's console says itself (the
# letters, the counts, live logs)
OWN_COUNTS = {"_pytest.terminal", "_pytest.main", "_pytest.logging"}
# plugins whose terminal summary reads their own records, not the reporter's stats
SUMMARY_WITHOUT_STATS = {"pytest_cov.plugin", "pytest_benchmark.plugin",
                         "_hypothesis_pytestplugin", "pytest_django.plugin", "pytest_randomly",
                         "syrupy", "xdist.plugin", "xdist.looponfail"}
PROBLEMS = ("failed", "error")


class ControllerUnavailable(Exception):
    """pytest could not be configured in the master."""


class _ControllerRole:
    """Registered before pytest parses its options: to pytest-cov the master is xdist's
    controller (it decides that from the parsed options, before configure)."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_load_initial_conftests(self, early_config: Any) -> Any:
        namespace = early_config.known_args_namespace
        if getattr(namespace, "dist", "no") == "no":
            namespace.dist = "load"
        yield


class _XdistHooks:
    """pytest-xdist's hooks that plugins implement for its controller, declared here
    when pytest-xdist is not installed."""

    @pytest.hookspec
    def pytest_configure_node(self, node: Any) -> None: ...

    @pytest.hookspec
    def pytest_testnodedown(self, node: Any, error: Any) -> None: ...


@dataclass
class _Node:
    """What plugins read of an xdist node (a runner, here)."""
    config: Any           # the controller's, as xdist's WorkerController.config
    workerid: str
    workerinput: dict[str, Any]
    workeroutput: dict[str, Any] = field(default_factory=dict)

    @property
    def gateway(self) -> Any:
        return _Gateway(self.workerid)

    @property
    def nodemanager(self) -> Any:
        return _NodeManager()


@dataclass(frozen=True)
class _Gateway:
    id: str

    def _rinfo(self) -> Any:
        return _Rinfo()


@dataclass(frozen=True)
class _Rinfo:
    platform: str = sys.platform
    version_info: tuple[Any, ...] = tuple(sys.version_info)
    executable: str = sys.executable
    cwd: str = field(default_factory=os.getcwd)


@dataclass(frozen=True)
class _NodeManager:
    roots: tuple[str, ...] = ()   # rsync roots: medusa's ssh sync has its own


class _Loop:
    """Our pytest_runtestloop: the master's event loop."""

    def __init__(self, controller: PytestController, loop: Callable[[], int]) -> None:
        self.controller = controller
        self.loop = loop
        self.failures = 0
        self.done = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: Any) -> bool:
        self.failures = self.loop()
        self.done = True
        session.testsfailed = self.failures
        # what plugins write after the loop (pytest-cov's gate) is part of the summary
        self.controller.start_summary()
        return True


class PytestController:
    active = True

    def __init__(self, args: list[str], runners: int, run_id: str) -> None:
        self.runners = runners
        self.run_id = run_id
        self.summary = io.StringIO()
        self.plugin_error = ""
        self.failed_by_plugins = False
        self.config = config = _configure(args)
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self._silence()
        self.session = pytest_compat.new_session(config)
        try:
            config.hook.pytest_sessionstart(session=self.session)
        except (Exception, SystemExit) as exc:   # a conftest's, a plugin's
            pytest_compat.unconfigure(config)
            raise ControllerUnavailable(f"pytest_sessionstart failed: {exc!r}") from exc
        self.wants_reports = self._wants_reports()

    def _wants_reports(self) -> bool:
        """Whether the runners must send every report: a plugin here reads them (pytest's
        --junitxml, --durations, -r with passes or skips, any plugin of a third party), or
        only what the summary needs without them (warnings, workeroutput)."""
        if self.config.option.durations is not None or self.keep_short_summary:
            return True
        hook = self.config.hook
        return (any(_module(impl.plugin) not in OWN_COUNTS
                    for name in REPORT_HOOKS for impl in getattr(hook, name).get_hookimpls())
                # a conftest.py or a plugin that reads terminalreporter.stats there
                or any(not _module(impl.plugin).startswith("_pytest.")
                       and _module(impl.plugin) not in SUMMARY_WITHOUT_STATS
                       for impl in hook.pytest_terminal_summary.get_hookimpls()))

    @property
    def keep_short_summary(self) -> bool:
        """pytest's short test summary is wanted for more than failures and errors."""
        return bool(set(str(self.config.option.reportchars or "")) - CONSOLE_CHARS)

    # --- start --------------------------------------------------------------------------

    def header(self) -> tuple[str, ...]:
        """The lines plugins add to pytest's header (pytest_report_header), without
        pytest's own (platform, rootdir: medusa's console says those)."""
        try:
            lines = pytest_compat.report_header(self.config, self.reporter)
        except Exception as exc:
            return (f"medusa: a plugin's pytest_report_header failed: {exc!r}",)
        return tuple(lines)

    def workerinput(self, workerid: str) -> dict[str, Any]:
        """What plugins add to a worker's `workerinput` (pytest_configure_node)."""
        node = _Node(self.config, workerid, {"workerid": workerid, "workercount": self.runners,
                                             "testrunuid": self.run_id})
        before = set(node.workerinput)
        with self._plugins_calls():
            self.config.hook.pytest_configure_node(node=node)
        return {key: value for key, value in node.workerinput.items() if key not in before}

    # --- the build ----------------------------------------------------------------------

    def run_loop(self, loop: Callable[[], int]) -> None:
        """Run `loop` (the build; it returns the number of failures) as the session's
        pytest_runtestloop."""
        plugin = _Loop(self, loop)
        self.config.pluginmanager.register(plugin, "medusa-controller-loop")
        try:
            self.config.hook.pytest_runtestloop(session=self.session)
        except Exception:
            if not plugin.done:
                raise   # the build's own failure, not a plugin's
            self.plugin_error = traceback.format_exc()
        finally:
            self.config.pluginmanager.unregister(plugin)
        self.failed_by_plugins = self.session.testsfailed > plugin.failures

    def collected(self, tests: int) -> None:
        """The suite the first worker collected (session.testscollected, as plugins read
        it at the end)."""
        self.session.testscollected = tests

    def replay(self, events: FrameworkEvents) -> None:
        with self._plugins_calls():
            replay(self.config, events)

    def result(self, result: Result) -> None:
        """A test's verdict reached the build: its hooks, again here. A result made by
        medusa itself (a runner that crashed or timed out in it) is a failed report, as
        xdist makes one for the test a crashed worker was running."""
        if result.framework_events:
            self.replay(result.framework_events)
        elif result.when != "collect" and self.wants_reports:
            with self._plugins_calls():
                self._made_report(result)

    def _made_report(self, result: Result) -> None:
        name = ".".join(result.test.split("::")[1:])
        location = (result.path or result.file, result.line - 1 if result.line else None, name)
        report = pytest.TestReport(
            nodeid=result.test, location=location, keywords={},
            outcome="failed" if result.outcome in PROBLEMS else
                    "skipped" if result.outcome == "skipped" else "passed",
            longrepr=(result.longrepr or result.message or None),
            when=result.when if result.when in ("setup", "call", "teardown") else "call",
            duration=result.duration)
        hook = self.config.hook
        hook.pytest_runtest_logstart(nodeid=result.test, location=location)
        hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=result.test, location=location)

    def node_down(self, workerid: str, output: dict[str, Any], error: str | None) -> None:
        with self._plugins_calls():
            node = _Node(self.config, workerid, {"workerid": workerid},
                         _coverage_in_this_tree(dict(output), os.getcwd()))
            self.config.hook.pytest_testnodedown(node=node, error=error)

    @contextlib.contextmanager
    def _plugins_calls(self) -> Iterator[None]:
        """A plugin that fails in a hook here is the plugin's error, not the master's: the
        build goes on, and ends as pytest's INTERNALERROR would (exit 3, its traceback)."""
        try:
            yield
        except Exception:
            self.plugin_error = self.plugin_error or traceback.format_exc()

    # --- the end ------------------------------------------------------------------------

    def start_summary(self) -> None:
        pytest_compat.set_writer(self.config, self.reporter, self.summary)

    def finish(self, exit_code: int) -> Summary:
        """End the session with the build's exit code; what it printed, and the code
        after the plugins' gates."""
        reason = ""
        if self.failed_by_plugins and exit_code in (0, 5):
            exit_code, reason = 1, "a pytest plugin failed the session (see its summary)"
        if self.plugin_error:
            exit_code, reason = 3, "internal error in a pytest plugin"
        self.start_summary()
        short = self._trim_summary()
        self.session.exitstatus = exit_code
        try:
            self.config.hook.pytest_sessionfinish(session=self.session, exitstatus=exit_code)
        except Exception:
            self.plugin_error = traceback.format_exc()
            exit_code, reason = 3, "internal error in a pytest plugin"
        finally:
            try:
                pytest_compat.unconfigure(self.config)
            except Exception:
                self.plugin_error = self.plugin_error or traceback.format_exc()
        if int(self.session.exitstatus) != exit_code and not self.plugin_error:
            exit_code = int(self.session.exitstatus)   # pytest 9.2's --max-warnings, say
            reason = reason or f"pytest ended its session with exit status {exit_code}"
        text = self.summary.getvalue().strip("\n")
        if self.plugin_error:
            text += "\n" + self.plugin_error
        return Summary(text, exit_code, reason, short)

    def _silence(self) -> None:
        """The terminal reporter counts what is replayed (its summary needs that) but
        writes nothing until the summary: medusa's console shows the run."""
        if self.reporter is not None:
            pytest_compat.silence(self.reporter)

    def _trim_summary(self) -> bool:
        """Leave out of pytest's summary what the console prints itself; True if pytest's
        short test summary stays (-r with more than failures and errors)."""
        if self.reporter is None:
            return False
        keep_short = self.keep_short_summary
        # the interruption too: medusa says it (and pytest's own wants its traceback)
        quiet = ["summary_errors", "summary_failures", "summary_stats",
                 "_report_keyboardinterrupt"]
        if not keep_short:
            quiet.append("short_test_summary")
        pytest_compat.quiet_reporter(self.reporter, quiet)
        return keep_short


def _configure(args: list[str]) -> Any:
    from medusa.drivers.pytest_driver import keep_xdist_out
    try:
        config = pytest_compat.prepare_config(args, plugins=[_ControllerRole()])
    except BaseException as exc:   # a conftest.py's error, a usage error, an exit...
        raise ControllerUnavailable(_one_line(exc)) from exc
    try:
        if not hasattr(config.hook, "pytest_configure_node"):
            config.pluginmanager.add_hookspecs(_XdistHooks)
        keep_xdist_out(config)
        pytest_compat.configure(config)
        _no_cache_writes(config)
    except BaseException as exc:
        pytest_compat.unconfigure(config)
        raise ControllerUnavailable(f"pytest's configure hooks failed: {_one_line(exc)}") from exc
    return config


def _coverage_in_this_tree(output: dict[str, Any], here: str) -> dict[str, Any]:
    """pytest-cov's data from a runner in another tree (an ssh worker's copy) names that
    tree's files; pytest-cov 7 does not map them back when it combines, so they are
    mapped here, as medusa's own --cov maps a remote worker's."""
    remote = output.get("cov_worker_path")
    if not remote or "cov_worker_data" not in output:   # a runner in this tree: no data
        return output
    from coverage import CoverageData
    theirs, ours = CoverageData(no_disk=True), CoverageData(no_disk=True)
    theirs.loads(output["cov_worker_data"])
    prefix = remote.rstrip(os.sep) + os.sep
    ours.update(theirs, map_path=lambda path: os.path.join(here, path[len(prefix):])
                if path.startswith(prefix) else path)
    return {**output, "cov_worker_data": ours.dumps(), "cov_worker_path": here}


def _module(plugin: object) -> str:
    return plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__


def _no_cache_writes(config: Any) -> None:
    """--lf's and --nf's records are the runners' to write (pytest_driver merges them):
    the controller, which collects nothing, would write back stale ones."""
    for name in ("lfplugin", "nfplugin"):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]

