"""Every private name of pytest that medusa leans on, in one place, with what differs
between pytest 7.4, 8.x and 9.x (the tests run 7.4.4, 8.0.2, 8.4.2 and the newest; tox.ini
the oldest and newest of each): to configure pytest and start its session, collect and
tear down, drive its terminal reporter, and rewrite asserts ahead of collection.

Elsewhere medusa uses pytest's public API only."""
from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable

import pytest
from _pytest._io import TerminalWriter

VERSION = tuple(int(part) for part in pytest.__version__.split(".")[:2] if part.isdigit())


def prepare_config(args: list[str], plugins: Iterable[object] = ()) -> Any:
    """pytest's Config, as the `pytest` command makes it from `args` (ini files, plugins,
    the initial conftest.py files); `plugins` are registered before the options are parsed."""
    from _pytest.config import _prepareconfig
    return _prepareconfig(args, plugins=list(plugins))


def new_session(config: Any) -> Any:
    """A pytest Session, as pytest's wrap_session starts it."""
    from _pytest.main import Session
    session = Session.from_config(config)
    session.exitstatus = pytest.ExitCode.OK
    return session


def report_header(config: Any, reporter: Any) -> list[str]:
    """The lines of pytest_report_header of every plugin but the terminal reporter's
    own, in the order pytest writes them."""
    remove = [reporter] if reporter is not None else []
    caller = config.pluginmanager.subset_hook_caller("pytest_report_header", remove)
    kwargs: dict[str, Any] = {"config": config, "start_path": config.invocation_params.dir}
    if VERSION < (8, 0):   # the py.path twin, gone in pytest 8
        from _pytest.compat import legacy_path
        kwargs["startdir"] = legacy_path(config.invocation_params.dir)
    lines: list[str] = []
    for line_or_lines in reversed(caller(**kwargs)):
        lines.extend([line_or_lines] if isinstance(line_or_lines, str) else line_or_lines)
    return lines


def set_writer(config: Any, reporter: Any, file: IO[str]) -> None:
    """Make the terminal reporter write to `file` from now on."""
    if reporter is not None:
        from _pytest.config import create_terminal_writer
        reporter._tw = create_terminal_writer(config, file)


class _SilentWriter(TerminalWriter):
    """Writes nothing, at no cost: the reporter writes a letter per replayed report."""

    def write(self, *args: Any, **kwargs: Any) -> None:
        pass

    write_raw = line = sep = write

    def flush(self) -> None:
        pass


def silence(reporter: Any) -> None:
    """The terminal reporter counts what it hears but writes nothing, no progress either
    (it would write its last "[100%]" into the summary)."""
    reporter._tw = _SilentWriter(io.StringIO())   # no file to leave unclosed
    reporter.showfspath = False
    if hasattr(reporter, "_show_progress_info"):
        reporter._show_progress_info = False


def plugins_write_to(config: Any, file: IO[str]) -> None:
    """`config.get_terminal_writer()`, which plugins that write to the terminal themselves
    use (pytest-timeout's stack dump, --setup-show), writes to `file`, apart from the
    terminal reporter's own writer."""
    from _pytest.config import create_terminal_writer
    writer = create_terminal_writer(config, file)
    config.get_terminal_writer = lambda: writer


def stand_in_for_junitxml(config: Any, recorder: Any) -> None:
    """`record_xml_attribute` and `record_testsuite_property` write into `recorder` (its
    `node_reporter(nodeid).add_attribute(name, value)` and `add_global_property(name,
    value)`), where pytest's junitxml is off, as it is in a runner (and an xdist worker,
    where they write nowhere). junitxml's unconfigure unregisters whatever it finds."""
    from _pytest.junitxml import xml_key
    if config.stash.get(xml_key, None) is None:
        config.pluginmanager.register(recorder, "medusa-junit-recorder")
        config.stash[xml_key] = recorder


def quiet_reporter(reporter: Any, sections: Iterable[str]) -> None:
    """Make these TerminalReporter methods (summary_failures, ...) write nothing."""
    for name in sections:
        if hasattr(reporter, name):
            setattr(reporter, name, lambda *args, **kwargs: None)


# --- configure, collect, tear down -------------------------------------------------------

def conftest_import_failure() -> type[Exception]:
    """The exception pytest raises for a conftest.py that fails to import."""
    from _pytest.config import ConftestImportFailure
    return ConftestImportFailure


def conftest_error_printer() -> Any:
    """pytest's printer of a conftest import error (pytest 8.4.2 on), or None."""
    try:
        from _pytest.config import print_conftest_import_error
    except ImportError:
        return None
    return print_conftest_import_error


def configure(config: Any) -> None:
    """pytest_configure of every plugin, as pytest's main runs it."""
    config._do_configure()


def unconfigure(config: Any) -> None:
    """pytest_unconfigure and the config's cleanups, once."""
    config._ensure_unconfigure()


def in_confcutdir(config: Any, path: Path) -> bool:
    """Whether pytest loads the conftest.py files of `path` (it is not above --confcutdir)."""
    return config.pluginmanager._is_in_confcutdir(path)


def collect_one_node(node: Any) -> Any:
    """The CollectReport of `node`, with pytest's collection hooks around it."""
    from _pytest.runner import collect_one_node as collect
    return collect(node)


def collection_warnings(config: Any) -> Any:
    """A context that records and filters warnings as pytest's collection does."""
    try:
        from _pytest.warnings import catch_warnings_for_item
    except ImportError:
        return contextlib.nullcontext()
    return catch_warnings_for_item(config=config, ihook=config.hook, when="collect", item=None)


def set_initial_paths(session: Any, paths: list[Path]) -> None:
    """The paths pytest was given, which it never ignores, nor the folders above them."""
    session._initialpaths = frozenset(paths)
    session._initialpaths_with_parents = frozenset(
        [*paths, *(parent for path in paths for parent in path.parents)])


def forget_collected(session: Any) -> None:
    """Empty the session's cache of collected nodes (Session.genitems fills it)."""
    session._collection_cache = {}


def teardown_to(session: Any, nextitem: Any) -> None:
    """Tear down what `nextitem` does not share (None: everything, the session too)."""
    session._setupstate.teardown_exact(nextitem)


def basetemp(config: Any) -> str:
    """pytest's temporary folder for this config, made as pytest makes it."""
    return str(config._tmp_path_factory.getbasetemp())


def renew_tmp_path_factory(config: Any) -> None:
    """`tmp_path_factory` starts again from `config.option.basetemp`."""
    from _pytest.tmpdir import TempPathFactory
    config._tmp_path_factory = TempPathFactory.from_config(config, _ispytest=True)


def fnmatch_ex(pattern: str, path: Path) -> bool:
    """pytest's matching of python_files and norecursedirs patterns."""
    from _pytest.pathlib import fnmatch_ex as match
    return match(pattern, path)


# --- assertion rewriting (pytest_rewrite.py) ---------------------------------------------

_REWRITE_NAMES = ("assertstate_key", "get_cache_dir", "try_makedirs", "_read_pyc",
                  "_rewrite_test", "_write_pyc", "PYC_TAIL")


@dataclass(frozen=True)
class Rewriter:
    """pytest's assert rewriting for one config, and its cache of rewritten modules."""
    config: Any
    state: Any      # pytest's AssertionState
    module: Any     # _pytest.assertion.rewrite

    def test_file_patterns(self) -> list[str]:
        return list(self.state.hook.fnpats)

    def rewrite_into_cache(self, file: Path) -> None:
        """Rewrite `file` into pytest's cache, unless it is there already (its errors,
        a syntax error say, are the caller's)."""
        rewrite = self.module
        pyc = rewrite.get_cache_dir(file) / (file.name[:-3] + rewrite.PYC_TAIL)
        if rewrite._read_pyc(file, pyc) is not None or not rewrite.try_makedirs(pyc.parent):
            return
        stamp, code = rewrite._rewrite_test(file, self.config)
        rewrite._write_pyc(self.state, code, stamp, pyc)

    @contextlib.contextmanager
    def cache_in(self, folder: Path) -> Iterator[None]:
        """pytest's cache of rewritten modules is below `folder` while the block runs,
        not in __pycache__ beside the sources."""
        rewrite = self.module
        beside_the_source = rewrite.get_cache_dir
        rewrite.get_cache_dir = lambda file_path: folder / Path(*file_path.parts[1:-1])
        try:
            yield
        finally:
            rewrite.get_cache_dir = beside_the_source


def rewriter(config: Any) -> Rewriter | None:
    """pytest's assert rewriting, if it rewrites (not under --assert=plain) and has the
    names medusa uses."""
    try:
        from _pytest.assertion import rewrite
    except ImportError:
        return None
    if not all(hasattr(rewrite, name) for name in _REWRITE_NAMES):
        return None
    state = config.stash.get(rewrite.assertstate_key, None)
    if state is None or getattr(state, "mode", None) != "rewrite" or state.hook is None:
        return None
    return Rewriter(config, state, rewrite)
