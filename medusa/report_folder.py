"""The report folder (--report-dir, default medusa-report/): where a build's logs,
artifacts and coverage land on the master, from every worker, local or remote.

    medusa-report/
      logs/<worker>/<runner>.log        each runner's stdout, stderr (and logging)
      artifacts/<test as a path>/...    files tests left in $MEDUSA_ARTIFACTS_DIR
      coverage/                         the runners' coverage data, combined (--cov)

A build starts by removing what an earlier build left in these three (and nothing else:
a JSON log may live there too). A part is made only when something goes in it, with a
marker file in it: a folder of that name that medusa did not make is never removed (the
build refuses such a report folder before it starts).
"""
from __future__ import annotations

import os
import shutil

from medusa import artifacts
from medusa.coverage_support import DATA_NAME

PARTS = ("logs", "artifacts", "coverage")
MARKER = ".made-by-medusa"


class ReportFolder:
    def __init__(self, root: str) -> None:
        self.root = root
        self.open_logs: dict[tuple[str, int], int] = {}            # -> descriptor
        self.artifact_dirs: dict[tuple[str, int, str], str] = {}   # (worker, runner, test)
        self.taken: set[str] = set()                               # artifact folders used

    def check(self) -> None:
        """Fail before the build, not in its middle: the folder must be makeable here."""
        existing = os.path.abspath(self.root)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise OSError(f"{existing} is not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write in {existing}")
        for part in PARTS:
            path = os.path.join(self.root, part)
            if os.path.exists(path) and not os.path.exists(os.path.join(path, MARKER)):
                raise FileExistsError(f"{path} exists and is not medusa's (a build empties "
                                      "its logs/, artifacts/ and coverage/): choose another "
                                      "report folder")

    def clear(self) -> None:
        for part in PARTS:
            path = os.path.join(self.root, part)
            if os.path.exists(os.path.join(path, MARKER)):
                shutil.rmtree(path, ignore_errors=True)

    def _part(self, part: str) -> str:
        """The part's folder, made (with its marker) the first time something goes in."""
        path = os.path.join(self.root, part)
        marker = os.path.join(path, MARKER)
        if not os.path.exists(marker):
            os.makedirs(path, exist_ok=True)
            with open(marker, "w"):
                pass
        return path

    def log_path(self, worker: str, runner: int) -> str:
        return os.path.join(self.root, "logs", worker_folder(worker), f"{runner}.log")

    def write_log(self, worker: str, runner: int, offset: int, data: bytes) -> None:
        key = (worker, runner)
        if key not in self.open_logs:
            self._part("logs")
            path = self.log_path(worker, runner)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.open_logs[key] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.pwrite(self.open_logs[key], data, offset)

    def write_artifact(self, worker: str, runner: int, test: str, name: str,
                       offset: int, data: bytes) -> None:
        safe = artifacts.safe_name(name)
        if safe is None:
            return
        self._part("artifacts")
        path = os.path.join(self.artifact_dir(worker, runner, test), *safe.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "r+b" if offset else "wb") as out:
            out.seek(offset)
            out.write(data)

    def artifact_dir(self, worker: str, runner: int, test: str) -> str:
        """The test's folder; a second run of it (--retries) gets one of its own."""
        key = (worker, runner, test)
        if key not in self.artifact_dirs:
            base = os.path.join(self.root, "artifacts", artifacts.test_path(test))
            folder, number = base, 2
            while folder in self.taken:
                folder, number = f"{base}@{number}", number + 1
            self.taken.add(folder)
            self.artifact_dirs[key] = folder
        return self.artifact_dirs[key]

    def artifact_paths(self, worker: str, runner: int, test: str,
                       names: tuple[str, ...]) -> tuple[str, ...]:
        """The Result has come: where its files are; the next run starts a new folder."""
        folder = self.artifact_dirs.pop((worker, runner, test), None)
        if folder is None:
            return ()
        return tuple(os.path.join(folder, *n.split("/")) for n in names
                     if artifacts.safe_name(n) is not None)

    def write_coverage_part(self, worker: str, name: str, data: bytes) -> None:
        """A runner's coverage data file, named so that coverage's combine finds it."""
        parts = os.path.join(self.coverage_dir(), "parts")
        os.makedirs(parts, exist_ok=True)
        path = os.path.join(parts, f"{DATA_NAME}.{worker_folder(worker)}.{os.path.basename(name)}")
        with open(path, "wb") as out:
            out.write(data)

    def coverage_dir(self) -> str:
        return self._part("coverage")

    def close(self) -> None:
        for fd in self.open_logs.values():
            os.close(fd)
        self.open_logs.clear()


def worker_folder(name: str) -> str:
    """A worker's name as one folder name (an ssh worker is named after its host)."""
    return artifacts.test_path(name).replace("/", "_")
