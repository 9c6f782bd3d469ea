"""Test modules' asserts rewritten in parallel, ahead of the worker's collection.

pytest rewrites the asserts of every test module it imports (parse, transform, compile).
On a suite of many small files that is half of the collection, and the worker collects
the whole session in one process while the runners' slots are still idle. So the worker
forks helpers into those slots. They rewrite the files that collection will import
last, and store the result in pytest's own cache of rewritten modules. Collection starts
from the first file and finds the rest done.

It is only a cache. A file no helper reached, or one guessed wrong, is rewritten by
pytest as always. A cached module is used only if it matches its source, which pytest
checks.

pytest normally writes that cache to `__pycache__` beside the sources, and the helpers
write it there too. Under PYTHONDONTWRITEBYTECODE nothing may be written beside the
sources: the helpers then write into a temporary folder, pytest reads from it while the
worker collects, and the folder is removed afterwards.

This leans on private names of `_pytest.assertion.rewrite` (pytest_compat.Rewriter),
stable from pytest 7.4 to 9. Where they are missing, the helpers are not used.
"""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medusa.drivers import pytest_compat
from medusa.drivers.pytest_compat import Rewriter

# Fewer files than this: forking helpers costs more than it saves.
MIN_FILES = 16
# How long a helper may take to finish its file once collection is done.
HELPER_GRACE_SECONDS = 10.0


@contextlib.contextmanager
def rewritten_ahead(config: Any, helpers: int) -> Iterator[None]:
    """While the block collects, `helpers` processes rewrite the test modules from the
    end of the collection order."""
    rewriter = pytest_compat.rewriter(config)
    files = _likely_test_files(config, rewriter) if helpers > 0 and rewriter is not None else []
    if rewriter is None or len(files) < MIN_FILES:
        yield
        return
    with _cache_folder(rewriter):
        stop_reading, stop_writing = os.pipe()
        pids: list[int] = []
        try:
            for index in range(helpers):
                pids.append(_fork_helper(rewriter, files[::-1][index::helpers],
                                         stop_reading, stop_writing))
        except OSError:   # no process to be had (a process limit): fewer helpers, or none
            pass
        os.close(stop_reading)
        try:
            yield
        finally:
            os.close(stop_writing)   # the helpers stop after the file they are on
            _wait_for(pids)


def _wait_for(pids: list[int]) -> None:
    """Each helper ends after its file. One that does not (a fork taken while another
    thread of the worker held a lock the helper then needs) is killed: pytest replaces a
    cached module whole, so at worst a temporary file of it is left, never a torn one."""
    deadline = time.monotonic() + HELPER_GRACE_SECONDS
    for pid in pids:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)


@contextlib.contextmanager
def _cache_folder(rewriter: Rewriter) -> Iterator[None]:
    """Under PYTHONDONTWRITEBYTECODE, pytest's cache of rewritten modules moves into a
    temporary folder for as long as the block runs."""
    if not sys.dont_write_bytecode:
        yield
        return
    folder = Path(tempfile.mkdtemp(prefix="medusa-rewritten-"))
    try:
        with rewriter.cache_in(folder):
            yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fork_helper(rewriter: Rewriter, files: list[Path], stop_reading: int,
                 stop_writing: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        os.close(stop_writing)
        # the worker's handlers clean up after the worker: not this process's business
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for file in files:
            if select.select([stop_reading], [], [], 0)[0]:
                break
            try:
                rewriter.rewrite_into_cache(file)
            except Exception:   # a syntax error, say: collection reports it, as it would
                pass
    finally:
        os._exit(0)   # nothing of the worker's (atexit, buffered output) runs here


def _likely_test_files(config: Any, rewriter: Rewriter) -> list[Path]:
    """The files pytest will probably import as test modules, in collection order (a
    guess: a wrong one costs a helper some work, nothing else)."""
    fnmatch_ex = pytest_compat.fnmatch_ex
    patterns = rewriter.test_file_patterns()
    ignored = {Path(path).resolve() for path in config.getoption("ignore") or ()}
    skipped_dirs = list(config.getini("norecursedirs"))
    invocation = Path(config.invocation_params.dir)
    found: list[Path] = []

    def wanted_dir(path: Path) -> bool:
        return (path not in ignored and not any(fnmatch_ex(p, path) for p in skipped_dirs)
                and not (path / "pyvenv.cfg").is_file())

    def walk(folder: Path) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if wanted_dir(path):
                    walk(path)
            elif (entry.name.endswith(".py") and path not in ignored
                  and any(fnmatch_ex(pattern, path) for pattern in patterns)):
                found.append(path)

    if config.option.pyargs:
        return []
    for arg in config.args:
        path = (invocation / arg.split("::")[0]).resolve()
        if path.is_dir():
            walk(path)
        elif path.suffix == ".py":
            found.append(path)   # a file named on the command line is rewritten anyway
    return list(dict.fromkeys(found))
