"""The user's environment hooks (medusa/environment.py), called at fixed points of a build.

    def setup_worker(ctx):     in the worker, before it loads the test framework (once per
                               machine: start a service, create a template database)
    def setup_runner(ctx):     in each runner, right after it is forked (ctx.runner is its
                               index: create its own database, pick its port)
    def teardown_runner(ctx):  in the worker, after a runner ended, however it ended
    def teardown_worker(ctx):  in the worker, after all its runners ended

Every hook is optional. What a hook prints (its subprocesses too) and how it ended reach
the master as InitializerStart / InitializerOutput / InitializerResult messages, which
the reporters show. A setup hook that raises fails its worker; a teardown hook that raises
is reported and fails the build, but the other teardowns still run.
"""
from __future__ import annotations

import difflib
import importlib.util
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from medusa import messages
from medusa.exits import exit_raises

HOOKS = ("setup_worker", "setup_runner", "teardown_runner", "teardown_worker")
MAX_OUTPUT_CHARS = 200_000


@dataclass(frozen=True)
class HookContext:
    """What a hook is told."""
    worker: str               # the worker's name ("local")
    run_id: str               # the build's id
    runners: int              # how many runners the worker has (0 before it knows)
    runner: int | None = None   # the runner's index, for the runner hooks


class HookError(Exception):
    """environment.py could not be loaded."""


class Hooks:
    def __init__(self, path: str = "") -> None:
        self.path = path
        self.module: ModuleType | None = _load(path) if path else None

    def has(self, name: str) -> bool:
        return self.module is not None and callable(getattr(self.module, name, None))

    def call(self, name: str, ctx: HookContext, send: Callable[[object], None]) -> bool:
        """Run hook `name` if environment.py defines it; True unless it raised."""
        if not self.has(name):
            return True
        hook = getattr(self.module, name)
        send(messages.InitializerStart(ctx.worker, ctx.runner, name))
        started = time.monotonic()
        error: BaseException | None = None
        with _captured_output() as output:
            try:
                with exit_raises():
                    hook(ctx)
            except Exception as exc:   # KeyboardInterrupt goes on: the build is ending
                error = exc
            except SystemExit as exc:
                error = exc
        if output.text:
            send(messages.InitializerOutput(ctx.worker, ctx.runner, name, output.text))
        message = "" if error is None else f"{name} raised {error!r}"
        detail = "" if error is None else "".join(traceback.format_exception(error))
        send(messages.InitializerResult(ctx.worker, ctx.runner, name, error is None,
                                        time.monotonic() - started, message, detail))
        return error is None


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("medusa_environment", path)
    if spec is None or spec.loader is None:
        raise HookError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        with exit_raises():
            spec.loader.exec_module(module)
    except FileNotFoundError:
        raise HookError(f"{path} does not exist") from None
    except BaseException as exc:
        raise HookError(f"{path} could not be loaded: {exc!r}\n"
                        + "".join(traceback.format_exception(exc))) from None
    for name in vars(module):   # a misspelt hook would silently never run
        close = difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.85)
        if close and name not in HOOKS:
            raise HookError(f"{path} defines {name}(), which medusa never calls "
                            f"(did you mean {close[0]}?)")
    return module


class _Output:
    text = ""


class _captured_output:
    """Everything written to file descriptors 1 and 2 meanwhile, subprocesses included."""

    def __enter__(self) -> _Output:
        self.output = _Output()
        self.file = tempfile.TemporaryFile()
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)
        return self.output

    def __exit__(self, *exc_info: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)
        self.file.seek(0)
        text = self.file.read().decode("utf-8", errors="replace")
        self.file.close()
        if len(text) > MAX_OUTPUT_CHARS:
            text = f"[medusa: {len(text) - MAX_OUTPUT_CHARS} characters cut]\n" + text[-MAX_OUTPUT_CHARS:]
        self.output.text = text
