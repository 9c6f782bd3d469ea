"""pytest's private names that medusa leans on to configure pytest, start its session and
drive its terminal reporter, in one place, with what differs between pytest 7.4, 8.x and 9.x (the versions the tests run: 7.4.4, 8.0.2,
8.4.2 and the newest)."""
from __future__ import annotations

import io
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
