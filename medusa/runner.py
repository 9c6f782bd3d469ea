"""A runner: forked from the worker after the framework is loaded; runs one file at a time.

The runner talks only to its worker, over its own pipe. It asks for a file, runs it through
the driver (which streams a Result per test and ends with FileComplete), and asks again,
until the worker says Shutdown.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection

from medusa import messages, transport
from medusa.drivers import Driver

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RunnerIdentity:
    worker: str
    index: int
    count: int
    run_id: str


class WorkerChannel:
    """The driver's view of the worker (drivers.Channel)."""

    def __init__(self, conn: Connection, identity: RunnerIdentity) -> None:
        self._conn = conn
        self._id = identity

    def next_file(self) -> messages.RunFile | None:
        transport.send(self._conn, messages.RequestFile(self._id.index))
        message = transport.recv(self._conn)
        return message if isinstance(message, messages.RunFile) else None   # or Shutdown

    def result(self, **fields: object) -> None:
        transport.send(self._conn, messages.Result(
            worker=self._id.worker, runner=self._id.index, **fields))  # type: ignore[arg-type]

    def file_complete(self, file: str, duration: float, tests: int, deselected: int = 0,
                      warnings: int = 0, timings: tuple[tuple[str, float], ...] = ()) -> None:
        transport.send(self._conn, messages.FileComplete(
            self._id.worker, self._id.index, file, duration, tests, deselected, warnings,
            timings))

    def stop_build(self, file: str, reason: str, exit_code: int) -> None:
        transport.send(self._conn, messages.StopBuild(
            self._id.worker, self._id.index, file, reason, exit_code))


def fork(driver: Driver, identity: RunnerIdentity,
         close_in_child: list[Connection]) -> tuple[int, Connection]:
    """Start a runner; returns its pid and the worker's end of its pipe.

    `close_in_child` are the worker's other connections (to the master, to the other
    runners): the child must not hold them, or a dead peer would never look dead.
    """
    worker_end, runner_end = Pipe()
    pid = os.fork()
    if pid:
        runner_end.close()
        return pid, worker_end
    code = 3
    try:
        worker_end.close()
        for conn in close_in_child:
            conn.close()
        code = _runner_main(driver, runner_end, identity)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _runner_main(driver: Driver, conn: Connection, identity: RunnerIdentity) -> int:
    _die_with_parent()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.update({
        "MEDUSA_WORKER": identity.worker,
        "MEDUSA_RUNNER": str(identity.index),
        "MEDUSA_RUNNERS": str(identity.count),
        "MEDUSA_RUN_ID": identity.run_id,
    })
    return driver.serve(WorkerChannel(conn, identity), identity.index)


def _die_with_parent() -> None:
    """If the worker is killed, the kernel kills its runners too (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
