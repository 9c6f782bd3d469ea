"""os._exit() in user code that the worker runs itself: environment.py and its hooks,
conftest.py, test modules as they are imported.

Such a call would end the worker, and with it every runner of the machine, and all the
user would see is "connection closed". While that code runs, os._exit raises ProcessExit
instead, and the caller reports the mistake as the user's, saying where it happened. A
process the code forked itself still exits for real.
"""
from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator


class ProcessExit(Exception):
    """os._exit(code), called where the process must not end."""

    def __init__(self, code: int) -> None:
        super().__init__(f"os._exit({code}), which would have ended medusa's worker and "
                         f"every runner of this machine")
        self.code = code


@contextlib.contextmanager
def exit_raises() -> Iterator[None]:
    real, here = os._exit, os.getpid()

    def refuse(code: int) -> None:
        if os.getpid() != here:
            real(code)
        raise ProcessExit(code)

    os._exit = refuse   # type: ignore[assignment]
    try:
        yield
    finally:
        os._exit = real


def where(exc: BaseException) -> str:
    """`conftest.py:3`: the last frame of the traceback, where the exit was called."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, ProcessExit) and len(frames) > 1:
        frames = frames[:-1]   # refuse() itself
    if not frames:
        return "?"
    return f"{os.path.relpath(frames[-1].filename)}:{frames[-1].lineno}"


def describe(exc: BaseException) -> str:
    """`os._exit(3)` or `sys.exit(3)`."""
    if isinstance(exc, ProcessExit):
        return f"os._exit({exc.code})"
    return f"sys.exit({getattr(exc, 'code', None)!r})"
