"""How a runner gets the pytest items of the unit it is given: two ways to collect.

`SessionCollection` (the default): the worker collects the whole session once, before it
forks, exactly as the `pytest` command does (pytest_collection: every test module
imported, -k/-m/--lf/--deselect and pytest_collection_modifyitems applied once over all
items, pytest_collection_finish called, session.items complete). A runner inherits the
collected items copy-on-write and picks those of its unit. Session fixtures and plugins
see the whole suite, as under pytest.

`FileCollection` (`collect: file`): the worker only finds the files; a runner imports and
collects a file when it is given that file. Cheaper on suites of many tiny files whose
collection dominates, but session fixtures and collection hooks see only the files of
their runner: modifyitems runs once per file, pytest_collection_finish never.

Both answer `collect(work)`: the items to run, and the collection reports (errors,
module-level skips) the runner reports for that unit.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medusa.drivers import StartupError, pytest_compat
from medusa.drivers.common import Selection, relative
from medusa.drivers.pytest_replay import HookLog
from medusa.messages import RunFile


class BuildStop(Exception):
    """Something in a file that ends the whole build, as it would end pytest's session."""

    def __init__(self, reason: str, exit_code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


def usage_error_text(exc: BaseException) -> str:
    """pytest's UsageError on one line."""
    return "; ".join(" ".join(str(arg).split()) for arg in exc.args)


def exit_code_of(exc: Any) -> int:
    """The code a pytest.exit() asks for (pytest's own default: interrupted, 2)."""
    return 2 if exc.returncode is None else int(exc.returncode)


class _Recorder:
    """Registered while the worker collects: what pytest's collection says besides the items."""

    def __init__(self, log: HookLog) -> None:
        self.log = log
        self.deselected = 0
        self.warnings = 0
        self.order: dict[str, None] = {}          # files, in the order collection met them
        self.problems: dict[str, list[Any]] = {}  # file -> its failed or skipped reports

    def pytest_collectreport(self, report: Any) -> None:
        file = _file_part(report.nodeid)
        self.order.setdefault(file, None)
        if not report.passed:
            self.problems.setdefault(file, []).append(report)

    def pytest_deselected(self, items: list[Any]) -> None:
        self.deselected += len(items)

    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str,
                                location: Any) -> None:
        self.log.warning(warning_message, when, nodeid, location)
        if when == "collect":
            self.warnings += 1


class SessionCollection:
    """The whole session, collected in the worker before the fork."""

    def __init__(self, session: Any, log: HookLog) -> None:
        config = session.config
        recorder = _Recorder(log)
        config.pluginmanager.register(recorder, "medusa-collection")
        try:
            # the worker makes os._exit() raise meanwhile (exits.py): one in a test module
            # is that file's collection error, as a sys.exit() there is under pytest
            config.hook.pytest_collection(session=session)
        except pytest.UsageError as exc:   # a path or node id that does not exist: pytest exits 4
            raise StartupError("pytest: " + usage_error_text(exc)) from exc
        except pytest.exit.Exception as exc:
            raise StartupError(f"pytest.exit() while collecting: {exc.msg}",
                               exit_code=exit_code_of(exc)) from exc
        finally:
            config.pluginmanager.unregister(recorder)
        self.by_file: dict[str, list[Any]] = {}
        for item in session.items:
            self.by_file.setdefault(file_of(item), []).append(item)
        self.problems = recorder.problems
        self.files = _file_order(list(self.by_file), recorder.order, self.problems)
        self.tests: tuple[tuple[str, ...], ...] | None = tuple(
            tuple(item.nodeid for item in self.by_file.get(file, ())) for file in self.files)
        self.deselected = recorder.deselected
        self.warnings = recorder.warnings

    def collect(self, work: RunFile) -> tuple[list[Any], list[Any]]:
        selection = Selection.of(work)
        items = [item for item in self.by_file.get(work.file, []) if selection.wants(item.nodeid)]
        return items, self.problems.get(work.file, [])


def file_of(item: Any) -> str:
    """The file an item belongs to, as its node id names it (`tests/t.py`): its nearest
    File collector (a doctest text file, a YAML file of a plugin...)."""
    for node in reversed(item.listchain()):
        if isinstance(node, pytest.File):
            return node.nodeid or _file_part(item.nodeid)
    return _file_part(item.nodeid)


def _file_part(nodeid: str) -> str:
    return nodeid.split("::", 1)[0] or "."


def _file_order(with_items: list[str], met: dict[str, None],
                problems: dict[str, list[Any]]) -> tuple[str, ...]:
    """Files in the order pytest runs them. A plugin that reordered the items across files
    (pytest-randomly, say) decides; otherwise the order collection met them in, with the
    files that failed to collect where they are."""
    in_collection_order = [file for file in met if file in problems or file in with_items]
    if [file for file in in_collection_order if file in with_items] != with_items:
        return tuple(dict.fromkeys([*with_items, *problems]))
    return tuple(dict.fromkeys([*in_collection_order, *with_items, *problems]))


# --- one file at a time, in the runner (collect: file) ------------------------------------

class FileCollection:
    """Only the files, found in the worker; each runner collects the files it runs."""

    def __init__(self, session: Any) -> None:
        if not hasattr(pytest, "Directory"):
            raise StartupError(f"collect: file needs pytest 8 or newer (its directory "
                               f"collectors); this is pytest {pytest.__version__}")
        self.session = session
        self.config = session.config
        # made in the worker as it finds the files, inherited by the runners: pytest binds
        # a folder's conftest fixtures to the folder's node the first time it is collected
        self.tree = _Tree(session)
        self.files = tuple(_last_failed_only(session.config,
                                             _find_files(session, session.config, self.tree)))
        self.tests: tuple[tuple[str, ...], ...] | None = None   # known once they run
        self.deselected = 0   # counted by each runner as it collects
        self.warnings = 0

    def collect(self, work: RunFile) -> tuple[list[Any], list[Any]]:
        """Collect one file the way pytest's own collection reaches it, through the same
        directory nodes every time: asking pytest to collect the path instead would list
        (and make a node for) every file of its folder, for every file. Its reports reach
        the runner through pytest's hooks."""
        with _collection_warnings(self.config):
            return self._collect(work), []

    def _collect(self, work: RunFile) -> list[Any]:
        session, hook, file = self.session, self.config.hook, work.file
        collectors = [] if "::" in file else self.tree.files(self.config.rootpath / file)
        selection = Selection.of(work)
        if not collectors:   # a node id, a folder that failed to collect, a declined folder
            return [item for item in self._collect_by_argument(file)
                    if selection.wants(item.nodeid)]
        items: list[Any] = []
        for collector in collectors:
            items.extend(session.genitems(collector))
        pytest_compat.forget_collected(session)   # genitems' cache would keep every file alive
        items = [item for item in items if selection.wants(item.nodeid)]
        session.items = items
        hook.pytest_collection_modifyitems(session=session, config=self.config, items=items)
        # No pytest_collection_finish: pytest 9.2 drops the conftests of every folder not
        # collected yet when it runs, and this runner's collection is not finished.
        return items

    def _collect_by_argument(self, file: str) -> list[Any]:
        try:
            return list(self.session.perform_collect([str(self.config.rootpath / file)]))
        except pytest.UsageError as exc:   # a node id or file that does not exist: pytest exits 4
            raise BuildStop(usage_error_text(exc), 4) from exc


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
        self.failures: set[Path] = set()

    def files(self, path: Path) -> list[Any]:
        """The File collectors pytest makes for this path in its folder (none: unknown)."""
        directory = self.directory(path.parent)
        if directory is None:
            return []
        return [node for node in self.listing(directory).get(path, [])
                if isinstance(node, pytest.File)]

    def failed(self, directory: Any) -> bool:
        """The folder's listing failed (its conftest.py, say): the runner that gets one of
        its files reports the failure."""
        self.listing(directory)
        return directory.path in self.failures

    def directory(self, path: Path) -> Any:
        if path not in self.nodes:
            self.nodes[path] = self._make_directory(path)
        return self.nodes[path]

    def _make_directory(self, path: Path) -> Any:
        above = path.parent
        if above == path or not pytest_compat.in_confcutdir(self.session.config, above):
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
            report = pytest_compat.collect_one_node(directory)
            children: dict[Path, list[Any]] = {}
            for node in report.result if report.passed else []:
                children.setdefault(node.path, []).append(node)
            if not report.passed:
                self.failures.add(directory.path)
            self.listings[directory.path] = children
        return self.listings[directory.path]


def _last_failed_only(config: Any, files: list[str]) -> list[str]:
    """--lf: only the files with a known failure, when there are any. pytest skips the
    other files once its collection met a failure; each runner collecting on its own
    would run whole every file it happened to get before one (the files, not the tests,
    would then depend on the order runners asked for work)."""
    plugin = config.pluginmanager.get_plugin("lfplugin")
    if plugin is None or not config.getoption("lf") or not plugin.lastfailed:
        return files
    failed = {str(nodeid).split("::")[0] for nodeid in plugin.lastfailed}
    return [file for file in files if file.split("::")[0] in failed] or files


def _collection_warnings(config: Any) -> Any:
    """Warnings raised while a file is collected are recorded (and filtered, so that
    `filterwarnings = error` applies) as pytest's own collection does it."""
    return pytest_compat.collection_warnings(config)


def _find_files(session: Any, config: Any, tree: _Tree) -> list[str]:
    """The files pytest would collect for its arguments, relative to the rootdir, without
    importing a test module; through the directory nodes the runners will use."""
    rootpath: Path = config.rootpath
    invocation = Path(config.invocation_params.dir)
    if config.option.pyargs:
        raise StartupError("--pyargs needs the whole session collected: it does not work "
                           "with collect: file")
    initial = [(invocation / arg.split("::")[0]).resolve() for arg in config.args]
    # pytest neither ignores an argument it was given nor the folders above it
    pytest_compat.set_initial_paths(session, initial)

    found: dict[str, None] = {}

    def add(path: Path, suffix: str = "") -> None:
        found[relative(path, rootpath) + suffix] = None

    def walk(node: Any) -> None:
        if isinstance(node, pytest.File) or not isinstance(node, pytest.Collector):
            add(node.path)
        elif isinstance(node, pytest.Directory):
            if tree.failed(node):
                add(node.path)
            for children in tree.listing(node).values():
                for child in children:
                    walk(child)
        else:
            report = pytest_compat.collect_one_node(node)
            if not report.passed:   # the runner that gets it reports the same failure
                add(node.path)
                return
            for child in report.result:
                walk(child)

    for arg, path in zip(config.args, initial):
        if "::" in arg:
            add(path, "::" + arg.split("::", 1)[1])
        elif path.is_dir():
            directory = tree.directory(path)
            if directory is not None:
                walk(directory)
        elif path.is_file():
            for collector in tree.files(path):
                walk(collector)
        else:
            raise StartupError(f"file or directory not found: {arg}")
    return list(found)
