"""Runner logs: everything a runner writes to its stdout and stderr (its tests with -s,
their subprocesses, a crash's traceback) and, with --log-level, Python logging records.

In the runner, file descriptors 1 and 2 are pointed at the runner's log file on the
worker's machine right after the fork, so that nothing escapes it, C code and child
processes included. The worker reads what is new in each log at every tick and ships it
to the master as LogChunk messages, whole and in order (for a remote worker too); the
master writes it to <report folder>/logs/<worker>/<runner>.log and shows it on the
console as before, so output of tests run with -s still reaches the user.

A test's Result says which bytes of the log were written while it ran (`Result.log`).
"""
from __future__ import annotations

import logging
import os
import sys

from medusa.messages import LogChunk

CHUNK_BYTES = 1 << 20          # per message: a test that prints megabytes streams them
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# --- in the runner ----------------------------------------------------------------------------

def redirect_output(path: str) -> int:
    """Point stdout and stderr (the file descriptors, and so every writer) at the log;
    returns a descriptor of it, for positions."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    return fd


def log_records(fd: int, level: str) -> None:
    """--log-level: records of that level and above go to the log too, as pytest's
    --log-file-level would: the root logger lets them through."""
    handler = logging.StreamHandler(open(os.dup(fd), "a", encoding="utf-8", buffering=1))
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    number = logging.getLevelName(level.upper())
    if root.level > number:
        root.setLevel(number)
    root.addHandler(handler)


def position(fd: int) -> int:
    """The log's length now, with what Python still buffers written first."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    try:
        return os.fstat(fd).st_size
    except OSError:
        return 0


# --- in the worker ----------------------------------------------------------------------------

class LogTail:
    """One runner's log on the worker: what was shipped so far, and what is new. It
    outlives the runner: a replacement writes on in the same file."""

    def __init__(self, worker: str, runner: int, path: str) -> None:
        self.worker = worker
        self.runner = runner
        self.path = path
        self.shipped = 0
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        self.fd = os.open(path, os.O_RDONLY)

    def new_chunks(self) -> list[LogChunk]:
        chunks = []
        while True:
            data = os.pread(self.fd, CHUNK_BYTES, self.shipped)
            if not data:
                return chunks
            chunks.append(LogChunk(self.worker, self.runner, self.shipped, data))
            self.shipped += len(data)

    def read_from(self, start: int, limit: int) -> str:
        """What was written from `start` on, its last `limit` bytes at most."""
        end = os.fstat(self.fd).st_size
        start = max(start, end - limit)
        return os.pread(self.fd, end - start, start).decode(errors="replace")

    def close(self) -> None:
        os.close(self.fd)
