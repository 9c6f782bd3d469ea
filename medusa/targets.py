"""Targets: how a worker is started. `local` starts `medusa worker` as a child process;
`ssh` (ssh_target.py) starts it on another machine.

A target has: `start(address, authkey, cwd)`; `output`, a pipe of what the worker prints;
`exited()` and `exit_reason()`; `launched`, when the worker process was started (None:
not yet); `events()`, reporter events of its own making (the ssh target's setup
commands); `local_path(path)`, a path of the worker's tree as the same path here;
`stop(finishing)`.

The worker gets its own session (process group), so that a Ctrl-C on the terminal reaches
only the master, which then winds the build down, and so that the master can end the
worker, its runners and anything their tests left running with one signal.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import medusa

# Like the `pytest` command, the worker must not have the current directory on sys.path
# (`python -c` puts it first, as ''), or tests could import what plain pytest cannot. The
# folder holding medusa is put on sys.path only for the import of medusa itself.
_BOOT = (
    "import sys; sys.path[:] = [p for p in sys.path if p != '']; "
    "sys.path.append({where!r}); import medusa.worker; sys.path.remove({where!r}); "
    "sys.exit(medusa.worker.main(sys.argv[1:]))"
)


@dataclass
class LocalWorker:
    """The worker's stdout and stderr (its runners' too) come back through one pipe,
    `output`, that the master reads: output of tests run with -s reaches the user."""
    name: str
    process: subprocess.Popen[bytes] | None = None
    launched: float | None = None

    def start(self, address: tuple[str, int], authkey: bytes, cwd: str) -> None:
        self.launched = time.monotonic()
        where = str(Path(medusa.__file__).resolve().parent.parent)
        command = [sys.executable, "-c", _BOOT.format(where=where),
                   "--connect", f"{address[0]}:{address[1]}", "--name", self.name]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, cwd=cwd,
                                        start_new_session=True)
        assert self.process.stdin is not None
        self.process.stdin.write(authkey.hex().encode() + b"\n")
        self.process.stdin.close()

    def exited(self) -> bool:
        """True once the worker process has ended (it is not reaped yet: see stop())."""
        if self.process is None:
            return True
        try:
            info = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def exit_reason(self) -> str:
        return "its process exited"

    def events(self) -> list[object]:
        return []

    def local_path(self, path: str) -> str | None:
        return path

    def stop(self, finishing: bool = False, grace: float = 5.0) -> None:
        """End the worker's whole process group, then reap the worker. A worker that is
        `finishing` (it said Died) is first given a moment to exit by itself.

        The group is signalled before the worker is reaped: while it is a zombie its pid
        (the group's id) cannot be reused, so the signal cannot reach a stranger.
        """
        if self.process is None or self.process.returncode is not None:
            return
        deadline = time.monotonic() + grace
        while finishing and not self.exited() and time.monotonic() < deadline - grace / 2:
            time.sleep(0.01)
        if not self.exited():
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                while not self.exited() and time.monotonic() < deadline:
                    time.sleep(0.02)
            except KeyboardInterrupt:   # Ctrl-C again: no more waiting for its teardown
                pass
        _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()

    @property
    def output(self) -> IO[bytes] | None:
        return None if self.process is None else self.process.stdout


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
