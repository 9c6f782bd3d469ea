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
    """Make `remote_dir` (on the SFTP server) hold what `root` holds.

    Nothing outside `remote_dir` is written or removed: a remote link is never followed
    (a folder that was a link here is a link there until this sync replaces it), and the
    remote manifest's entries are only trusted if they name a path inside the folder.
    """
    wanted = local_files(root, exclude)
    _makedirs(sftp, remote_dir, set())
    before = _read_manifest(sftp, remote_dir)
    folders = _RemoteFolders(sftp, remote_dir)
    sent = sent_bytes = 0
    for relative, entry in sorted(wanted.items()):
        if before.get(relative) == list(entry):
            continue
        target = folders.prepare(relative)
        if entry[0] == "link":
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
        if folders.holds(relative):
            removed += _remove(sftp, posixpath.join(remote_dir, relative))
    _write_manifest(sftp, remote_dir, wanted)
    return SyncResult(sent, removed, len(wanted) - sent, sent_bytes)


class _RemoteFolders:
    """The folders below the remote root, checked with lstat (never through a link)."""

    def __init__(self, sftp: Any, root: str) -> None:
        self.sftp = sftp
        self.root = root
        self.real: set[str] = set()   # relative folders known to be real folders

    def prepare(self, relative: str) -> str:
        """The remote path for `relative`, with real folders above it and nothing in its
        place: a stale link or a folder where a file goes, a file where a folder goes."""
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in self.real:
                continue
            path = posixpath.join(self.root, folder)
            kind = self._kind(path)
            if kind != "dir":
                if kind is not None:
                    _remove_tree(self.sftp, path)
                self.sftp.mkdir(path)
            self.real.add(folder)
        target = posixpath.join(self.root, relative)
        if self._kind(target) is not None:
            _remove_tree(self.sftp, target)
        return target

    def holds(self, relative: str) -> bool:
        """Whether `relative` (from the remote manifest) names a path inside the root,
        through real folders only."""
        if not _is_inside(relative):
            return False
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in self.real:
                if self._kind(posixpath.join(self.root, folder)) != "dir":
                    return False
                self.real.add(folder)
        return True

    def _kind(self, path: str) -> str | None:
        try:
            mode = self.sftp.lstat(path).st_mode
        except OSError:
            return None
        return "dir" if stat.S_ISDIR(mode) else "link" if stat.S_ISLNK(mode) else "file"


def _is_inside(relative: object) -> bool:
    return (isinstance(relative, str) and bool(relative) and "\0" not in relative
            and not relative.startswith("/") and posixpath.normpath(relative) == relative
            and relative != ".." and not relative.startswith("../"))


def _remove_tree(sftp: Any, path: str) -> None:
    """Remove a remote file, link or folder (its content first), following no link."""
    try:
        mode = sftp.lstat(path).st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        for name in sftp.listdir(path):
            _remove_tree(sftp, posixpath.join(path, name))
        sftp.rmdir(path)
    else:
        sftp.remove(path)


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
    _remove(sftp, partial)   # a link left there would be written through
    with sftp.open(partial, "w") as manifest:
        manifest.write(json.dumps({k: list(v) for k, v in files.items()}).encode("utf-8"))
    sftp.posix_rename(partial, final)
