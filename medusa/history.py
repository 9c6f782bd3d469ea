"""Timing history: how long each file (and each of its tests) took, and whether it
failed, the last time it ran. The scheduler orders and splits work by it.

One small JSON file per project, `.medusa/history.json` under the rootdir. Builds that
end at the same time each merge their own news into what is on disk under a lock, then
replace the file atomically, so neither loses the other's timings and no reader ever
sees half a file. Entries not seen for PRUNE_AFTER_DAYS are dropped.
"""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

VERSION = 1
HISTORY_FILE = ".medusa/history.json"   # under the project's rootdir
PRUNE_AFTER_DAYS = 30


@dataclass(frozen=True)
class FileTiming:
    seconds: float                         # wall time of the file in its runner
    failed: bool                           # a test of it failed or errored
    seen: float                            # when it last ran (time.time())
    tests: tuple[tuple[str, float], ...]   # (test id, seconds), in the file's order


class History:
    def __init__(self, files: dict[str, FileTiming] | None = None) -> None:
        self.files = dict(files or {})

    def get(self, file: str) -> FileTiming | None:
        return self.files.get(file)

    @classmethod
    def load(cls, path: Path) -> "History":
        """What is on disk; an absent or unreadable file is an empty history (the next
        build writes a good one)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls({name: _timing(entry) for name, entry in data["files"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls()


def record(path: Path, news: dict[str, FileTiming], now: float | None = None) -> None:
    """Merge `news` into the history at `path`, dropping entries not seen for a while."""
    now = time.time() if now is None else now
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = History.load(path).files
        merged.update(news)
        oldest = now - PRUNE_AFTER_DAYS * 86400
        kept = {name: timing for name, timing in merged.items() if timing.seen >= oldest}
        _write_atomically(path, {"version": VERSION,
                                 "files": {name: _entry(t) for name, t in sorted(kept.items())}})


def _write_atomically(path: Path, data: object) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        # a file name that is not UTF-8 is written as \udcff, which JSON reads back as it was
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as out:
            json.dump(data, out, indent=0, ensure_ascii=False)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _entry(timing: FileTiming) -> dict[str, object]:
    return {"seconds": round(timing.seconds, 4), "failed": timing.failed,
            "seen": round(timing.seen, 1), "tests": {t: round(s, 4) for t, s in timing.tests}}


def _timing(entry: dict) -> FileTiming:
    return FileTiming(float(entry["seconds"]), bool(entry["failed"]), float(entry["seen"]),
                      tuple((str(t), float(s)) for t, s in entry.get("tests", {}).items()))
