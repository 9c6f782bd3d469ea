"""Copy the working tree to a folder on another machine over SFTP, sending what changed.

What is sent: in a git checkout, the files git would track (committed or not, minus what
.gitignore ignores); elsewhere every file below the folder. Never medusa's and pytest's
own state, caches and virtual environments, nor what the worker's `exclude` globs name.
"Changed" is judged by size and modification time against the manifest the previous sync
left in the remote folder (.medusa-sync.json), so a second sync of an unchanged tree sends
nothing; a file deleted here is deleted there.

SFTP rather than rsync: it rides on the connection medusa already has and needs nothing
but sshd on the other side.
"""
from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = ".medusa-sync.json"
ALWAYS_EXCLUDED = (".git", ".medusa", ".pytest_cache", "__pycache__", "*.pyc", ".venv",
                   "venv", ".tox", ".mypy_cache", "node_modules", MANIFEST)


@dataclass(frozen=True)
class SyncResult:
    sent: int
    removed: int
    unchanged: int
    bytes_sent: int

    def describe(self) -> str:
        return (f"synced: {_files(self.sent)} sent ({self.bytes_sent} bytes), "
                f"{self.removed} removed, {self.unchanged} unchanged")


def _files(count: int) -> str:
    return f"{count} file" + ("" if count == 1 else "s")


def local_files(root: Path, exclude: tuple[str, ...] = ()) -> dict[str, tuple[Any, ...]]:
    """Relative path -> (size, mtime in ns, permission bits) of what is to be sent, or
    ("link", target) for a symbolic link (made again there, pointing as it points here)."""
    patterns = ALWAYS_EXCLUDED + tuple(exclude)
    files = {}
    for relative in _candidates(root):
        if _excluded(relative, patterns):
            continue
        try:
            info = (root / relative).lstat()
        except OSError:   # listed by git, deleted since
            continue
        if stat.S_ISREG(info.st_mode):
            files[relative] = (info.st_size, info.st_mtime_ns, stat.S_IMODE(info.st_mode))
        elif stat.S_ISLNK(info.st_mode):
            files[relative] = ("link", os.readlink(root / relative))
    return files


def sync(sftp: Any, root: Path, remote_dir: str, exclude: tuple[str, ...] = ()) -> SyncResult:
    """Make `remote_dir` (on the SFTP server) hold what `root` holds."""
    wanted = local_files(root, exclude)
    _makedirs(sftp, remote_dir, set())
    before = _read_manifest(sftp, remote_dir)
    made: set[str] = {remote_dir}
    sent = sent_bytes = 0
    for relative, entry in sorted(wanted.items()):
        if before.get(relative) == list(entry):
            continue
        target = posixpath.join(remote_dir, relative)
        _makedirs(sftp, posixpath.dirname(target), made)
        if entry[0] == "link":
            _remove(sftp, target)
            sftp.symlink(entry[1], target)
            sent += 1
            continue
        size, mtime_ns, mode = entry
        sftp.put(str(root / relative), target)
        sftp.chmod(target, mode)
        sftp.utime(target, (mtime_ns / 1e9, mtime_ns / 1e9))
        sent += 1
        sent_bytes += size
    removed = 0
    for relative in sorted(set(before) - set(wanted)):
        removed += _remove(sftp, posixpath.join(remote_dir, relative))
    _write_manifest(sftp, remote_dir, wanted)
    return SyncResult(sent, removed, len(wanted) - sent, sent_bytes)


def _remove(sftp: Any, path: str) -> int:
    try:
        sftp.remove(path)
        return 1
    except OSError:
        return 0


def _candidates(root: Path) -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], cwd=root, capture_output=True,
                                timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):   # not a checkout, or no git
        return [str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() or p.is_symlink()]
    return [name for name in listed.decode("utf-8", "surrogateescape").split("\0") if name]


def _excluded(relative: str, patterns: tuple[str, ...]) -> bool:
    parts = relative.split("/")
    return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in patterns) \
        or any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)


def _makedirs(sftp: Any, path: str, made: set[str]) -> None:
    if not path or path in made or path in ("/", "."):
        return
    try:
        sftp.stat(path)
    except OSError:
        _makedirs(sftp, posixpath.dirname(path), made)
        try:
            sftp.mkdir(path)
        except OSError:
            sftp.stat(path)   # made meanwhile, or the real error
    made.add(path)


def _read_manifest(sftp: Any, remote_dir: str) -> dict[str, list[int]]:
    try:
        with sftp.open(posixpath.join(remote_dir, MANIFEST), "r") as manifest:
            data = json.loads(manifest.read().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_manifest(sftp: Any, remote_dir: str, files: dict[str, tuple[Any, ...]]) -> None:
    final = posixpath.join(remote_dir, MANIFEST)
    partial = final + ".partial"
    with sftp.open(partial, "w") as manifest:
        manifest.write(json.dumps({k: list(v) for k, v in files.items()}).encode("utf-8"))
    sftp.posix_rename(partial, final)
