"""The host-wide runner governor: all medusa builds on one machine share one pool of
runner slots, so two builds started together on a 2-CPU machine run 2 runners between
them, not 4.

A slot is a lock file `slot-<i>.lock` in a shared folder; holding the slot means holding
an exclusive flock on it through an open file descriptor. The kernel drops the lock when
the last descriptor sharing it is closed: when the process ends, however it ends
(SIGKILL included), and forked runners that inherited the descriptor keep the slot as
long as they live. A crashed build therefore never leaks slots, and there is no daemon,
no pid file and nothing to clean up.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from medusa.stats import Capacity, decide_auto_runners, read_most_runners

DIRECTORY_VARIABLE = "MEDUSA_GOVERNOR_DIR"
MAX_RUNNERS_VARIABLE = "MEDUSA_MAX_HOST_RUNNERS"
DEFAULT_DIRECTORY = Path("/tmp/medusa-governor")
# Every user's builds share the folder (sticky, like /tmp: nobody removes another's
# files) and every user may lock every slot file.
DIRECTORY_MODE = 0o1777
SLOT_MODE = 0o666


class GovernorTimeout(TimeoutError):
    """No slot became free within the time the caller allowed."""


class Slots:
    """Slots held by this process: released by `release()`, by leaving a `with` block, or
    by the process ending. A forked child shares the slots until it ends too."""

    def __init__(self, held: list[tuple[int, int]]) -> None:
        self._held = held             # (slot index, open fd holding its lock)

    @property
    def count(self) -> int:
        return len(self._held)

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(index for index, _ in self._held)

    def release(self) -> None:
        # Close, never LOCK_UN: unlocking would take the slot from forked runners that
        # share the descriptor; closing only drops this process's share of it.
        held, self._held = self._held, []
        for _, fd in held:
            os.close(fd)

    def __enter__(self) -> Slots:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Slots(indices={self.indices})"


class Governor:
    def __init__(self, directory: Path, pool_size: int) -> None:
        if pool_size < 1:
            raise ValueError(f"a governor needs at least one slot, got pool size {pool_size}")
        self.directory = Path(directory)
        self.pool_size = pool_size

    def acquire(self, wanted: int, *, wait: bool = True,
                on_wait: Callable[[str], None] | None = None, poll_seconds: float = 0.5,
                timeout: float | None = None) -> Slots:
        """Takes min(wanted, free) slots at once. When none is free: with wait=False
        returns no slots; otherwise tells on_wait (once) and polls until one is free,
        raising GovernorTimeout after `timeout` seconds. It never waits for more than
        one: a build starts with what it gets rather than wait for a full share."""
        if wanted < 1:
            raise ValueError(f"wanted must be at least 1, got {wanted}")
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while True:
            slots = self.try_acquire(wanted)
            if slots.count or not wait:
                return slots
            if on_wait is not None and not told:
                on_wait(self.busy_message())
                told = True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise GovernorTimeout(f"no runner slot became free within {timeout:g} s: "
                                      f"{self._all_in_use()}")
            time.sleep(poll_seconds if remaining is None else min(poll_seconds, remaining))

    def try_acquire(self, wanted: int) -> Slots:
        """Whatever free slots there are, up to `wanted`, without blocking."""
        self._make_directory()
        held: list[tuple[int, int]] = []
        for index in range(self.pool_size):
            if len(held) >= wanted:
                break
            fd = self._lock(index)
            if fd is not None:
                held.append((index, fd))
        return Slots(held)

    def busy_message(self) -> str:
        return f"waiting for a runner slot: {self._all_in_use()}"

    def _all_in_use(self) -> str:
        return (f"all {self.pool_size} slot{'' if self.pool_size == 1 else 's'} of this host "
                f"are in use by other medusa builds (slot files in {self.directory})")

    def slot_path(self, index: int) -> Path:
        return self.directory / f"slot-{index}.lock"

    def _lock(self, index: int) -> int | None:
        """An fd holding slot `index`, or None when another holds it."""
        fd = _open_slot(self.slot_path(index))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        return fd

    def _make_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True)
        except FileExistsError:
            return
        # mkdir's mode is cut by the umask; only the creator can widen it.
        os.chmod(self.directory, DIRECTORY_MODE)


def _open_slot(path: Path) -> int:
    # O_NOFOLLOW: the folder is world-writable, so a slot "file" could be a symlink that
    # another user planted to make us create files elsewhere. Read-only is enough to lock,
    # and lets us lock a file another user created with a narrower mode. The fd is not
    # inherited across exec (Python's default), only by forked runners.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, SLOT_MODE)
    info = os.fstat(fd)
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != SLOT_MODE:
        os.fchmod(fd, SLOT_MODE)      # the umask narrowed it when we created it
    return fd


def default_directory(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get(DIRECTORY_VARIABLE) or DEFAULT_DIRECTORY)


def pool_size_from(env: Mapping[str, str], configured: int | None,
                   capacity: int) -> tuple[int, bool, str]:
    """(pool size, whether a cap was set explicitly, why). --max-host-runners wins, then
    MEDUSA_MAX_HOST_RUNNERS, else what this host can hold (stats.Capacity.pool)."""
    if configured is not None:
        if configured < 1:
            raise ValueError(f"--max-host-runners must be at least 1, got {configured}")
        return configured, True, f"--max-host-runners {configured}"
    text = env.get(MAX_RUNNERS_VARIABLE, "").strip()
    if text:
        try:
            size = int(text)
        except ValueError:
            size = 0
        if size < 1:
            raise ValueError(f"{MAX_RUNNERS_VARIABLE} must be a whole number of at least 1, "
                             f"got {text!r}")
        return size, True, f"{MAX_RUNNERS_VARIABLE}={size}"
    size = max(1, capacity)
    return size, False, f"host capacity {size}"


def runners_to_start(requested: int | None, slots_got: int, cap_set: bool) -> int:
    """How many runners a worker starts once it holds `slots_got` slots.

    - requested None (`--local auto`): as many as slots were got; the other builds on the
      host hold the rest.
    - an explicit request (`--local N`) without a configured host cap: N, in full. The user
      said how many; the slots it did get still count against auto builds beside it, so
      the worker should acquire with wait=False and start N whatever it got.
    - an explicit request with a cap (--max-host-runners, MEDUSA_MAX_HOST_RUNNERS on a
      shared CI machine): min(N, slots got); the cap is the machine owner's word.

    0 means nothing may start yet: where the answer depends on the slots, acquire with
    wait=True, which returns at least one.
    """
    if requested is None:
        return slots_got
    if cap_set:
        return min(requested, slots_got)
    return requested


@dataclass(frozen=True)
class Reservation:
    """How many runners a worker starts on this host, why, and the slots it holds."""
    runners: int
    reason: str
    slots: Slots | None


def reserve(requested: int | None, max_host_runners: int | None,
            on_wait: Callable[[str], None], env: Mapping[str, str] = os.environ) -> Reservation:
    """Decide this host's runner count (`requested` None: auto) and take the slots.

    A build started inside a medusa runner (medusa testing itself) runs in its parent's
    slot: it takes none, or it could wait for slots its own parent holds.
    """
    if requested is not None:
        most, limit = read_most_runners()
        if most is not None and requested > most:
            raise ValueError(f"{requested} runners asked for; this host holds at most "
                             f"{most} ({limit})")
    capacity = decide_auto_runners()
    if env.get("MEDUSA_RUNNER") is not None:
        count = requested or capacity.runners
        return Reservation(count, _why(requested, capacity) + "; inside a medusa runner, "
                                  "so outside the host's runner pool", None)
    pool, cap_set, pool_reason = pool_size_from(env, max_host_runners, capacity.pool)
    governor = Governor(default_directory(env), pool)
    wait = requested is None or cap_set
    slots = governor.acquire(requested or capacity.runners, wait=wait, on_wait=on_wait)
    count = runners_to_start(requested, slots.count, cap_set)
    reason = _why(requested, capacity)
    if count < (requested or capacity.runners):
        reason += f"; {slots.count} of the host's {pool} runner slots were free ({pool_reason})"
    return Reservation(count, reason, slots)


def _why(requested: int | None, capacity: Capacity) -> str:
    return capacity.reason if requested is None else f"{requested} asked for"
