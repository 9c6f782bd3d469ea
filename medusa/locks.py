"""Lock files that say "alive": a process holds an flock on one for as long as it (and the
children it forked, which share the descriptor) lives, and the kernel lets go however they
end, SIGKILL included. Another process tells a dead owner from a live one by trying the
lock."""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path


def lock_free(path: Path, remove: bool = False) -> bool | None:
    """Whether nobody holds the lock file (None: there is none); with remove, a free one
    is removed while locked, so that nobody takes it in between."""
    try:
        descriptor = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    else:
        if remove:
            path.unlink(missing_ok=True)
        return True
    finally:
        os.close(descriptor)
