"""Artifacts: files a test leaves for people to look at (screenshots, HTML dumps).

Before each test the runner points $MEDUSA_ARTIFACTS_DIR at an empty folder of its own;
what the test writes there is shipped to the master in ArtifactChunk messages (over the
results pipe, so they arrive before the test's Result, which names them), up to
`artifact_limit` bytes per test. The master writes them to
<report folder>/artifacts/<test as a path>/ (report_folder.py) and puts their paths in
the Result, for the JSON log, JUnit XML and the HTML report.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from typing import Callable

from medusa.messages import ArtifactChunk

ENV = "MEDUSA_ARTIFACTS_DIR"
CHUNK_BYTES = 1 << 20
NAME_LIMIT = 100      # characters of one path part; longer ones keep a hash of the rest


class ArtifactCollector:
    """In a runner: a folder per test under `base`, emptied once its files are shipped."""

    def __init__(self, worker: str, runner: int, base: str, limit: int,
                 send: Callable[[object], None]) -> None:
        self.worker = worker
        self.runner = runner
        self.base = base
        self.limit = limit
        self.send = send
        self.test = ""            # whose folder $MEDUSA_ARTIFACTS_DIR is now
        self.folder = ""
        self.count = 0

    def begin(self, test: str) -> None:
        """A test (or, before its first test, a file) starts with an empty folder: the
        last one while nothing was written in it (one listing per test, no more)."""
        self.test = test
        if self.folder and not _has_files(self.folder):
            return
        self.finish(self.test)   # files of a test that had no Result: dropped
        self.count += 1
        self.folder = os.path.join(self.base, str(self.count))
        os.makedirs(self.folder, exist_ok=True)
        os.environ[ENV] = self.folder

    def collect(self, test: str) -> tuple[str, ...]:
        """The test's files, shipped; their names, for its Result."""
        if test != self.test or not self.folder or not _has_files(self.folder):
            return ()
        names = self._ship()
        self.finish(test)
        return names

    def finish(self, test: str) -> None:
        """Its folder is done with: the next test gets a new one."""
        if test == self.test and self.folder and _has_files(self.folder):
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = ""

    def _ship(self) -> tuple[str, ...]:
        shipped, total = [], 0
        for path, name in _files(self.folder):
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            if total + size > self.limit:
                # said in the runner's log, which the user sees beside the result
                print(f"medusa: artifact {name} of {self.test} not shipped: {size} bytes "
                      f"would pass the limit of {self.limit} bytes per test "
                      f"(artifact_limit)", file=sys.stderr, flush=True)
                continue
            if self._send_file(path, name, size):
                shipped.append(name)
                total += size
        return tuple(shipped)

    def _send_file(self, path: str, name: str, size: int) -> bool:
        try:
            with open(path, "rb") as source:
                offset = 0
                while True:
                    data = source.read(CHUNK_BYTES)
                    if not data and offset:
                        return True
                    self.send(ArtifactChunk(self.worker, self.runner, self.test, name,
                                            offset, data, size))
                    offset += len(data)
                    if not data:   # an empty file: one empty chunk
                        return True
        except OSError:
            return False


def _has_files(folder: str) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError:   # a test removed it: it is made again
        return True


def _files(folder: str) -> list[tuple[str, str]]:
    """(path, name relative to folder with "/") of every file below, in a stable order."""
    found = []
    for directory, dirs, files in os.walk(folder):
        dirs.sort()
        for file in sorted(files):
            path = os.path.join(directory, file)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append((path, os.path.relpath(path, folder).replace(os.sep, "/")))
    return found


# --- on the master ------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\[\]=,+@]")


def test_path(test: str) -> str:
    """A test id as a relative folder: `tests/t.py::TestA::test_b[x/1]` ->
    `tests/t.py/TestA/test_b[x_1]`; never absolute, never with `..`."""
    file, _, rest = test.partition("::")
    parts = [p for p in file.split("/") if p] + [p for p in rest.split("::") if p]
    return "/".join(_safe_part(part) for part in parts) or "_"


def _safe_part(part: str) -> str:
    safe = _UNSAFE.sub("_", part)
    if safe in (".", ".."):
        safe = safe.replace(".", "_")
    if len(safe) > NAME_LIMIT:
        digest = hashlib.sha1(part.encode()).hexdigest()[:10]
        safe = f"{safe[:NAME_LIMIT - 11]}-{digest}"
    return safe


def safe_name(name: str) -> str | None:
    """A shipped file's name, if it stays inside its folder."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    return "/".join(parts)
