"""A runner: forked from the worker after the framework is loaded and its session collected;
runs one unit (a file, or a part of one) at a time.

The runner talks only to its worker, over its own pipe. It asks for a file, runs it through
the driver (which streams a Result per test and ends with FileComplete), and asks again,
until the worker says Shutdown.
"""
from __future__ import annotations

import ctypes
import faulthandler
import fcntl
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection

from medusa import artifacts, coverage_support, hooks, logs, messages, stats, transport
from medusa.drivers import STOP_SIGNAL, Driver
from medusa.drivers.common import MAX_TEXT_CHARS, truncate

# A result's one-line message, at most (its start is kept: the exception's name and why).
MAX_MESSAGE_CHARS = 10_000

PR_SET_PDEATHSIG = 1
STACKS_SIGNAL = signal.SIGUSR1
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


@dataclass(frozen=True)
class RunnerIdentity:
    worker: str
    index: int
    count: int
    run_id: str
    stacks_file: str = ""     # where its stacks go when the worker asks (SIGUSR1)
    log_file: str = ""        # where its stdout and stderr go (logs.py)
    log_level: str = ""       # Python logging records of this level and up go there too
    artifacts_dir: str = ""   # below it, a folder per test: $MEDUSA_ARTIFACTS_DIR
    artifact_limit: int = 0   # bytes shipped per test
    number: int = 0           # across the build: gw<number> to pytest-xdist-aware plugins
    build_runners: int = 0    # runners of the whole build (0: this worker's count)


@dataclass(frozen=True)
class RunnerPipes:
    """Two ways from a runner to its worker. `control` (both ways) carries requests and
    answers, and wakes the worker. `results` (one way) carries each test's result as soon
    as it is known, without waking the worker: it reads them when the runner next says
    something or at its next tick. A result written there survives the runner's crash,
    and a small test does not pay for a wake-up."""
    control: Connection
    results: Connection


class WorkerChannel:
    """The driver's view of the worker (drivers.Channel)."""

    def __init__(self, pipes: RunnerPipes, identity: RunnerIdentity) -> None:
        self._conn = pipes.control
        self._results = pipes.results
        self._id = identity
        self._pid = os.getpid()   # the runner's: a test's fork that runs on is not
        self._file = ""           # the unit it runs
        self._asked = False   # a FileComplete asks for the next file too
        self._meter = stats.FileMeter()
        self.log_fd = -1      # the runner's log, once its output goes there
        self._test = ""       # the test running now, and where the log was at its start
        self._log_start = 0
        self._artifacts = artifacts.ArtifactCollector(
            identity.worker, identity.index, identity.artifacts_dir, identity.artifact_limit,
            lambda chunk: transport.send(self._results, chunk)) if identity.artifacts_dir else None

    def next_file(self) -> messages.RunFile | None:
        if not self._asked:
            self._send(messages.RequestFile(self._id.index))
        self._asked = False
        message = transport.recv(self._conn)
        if not isinstance(message, messages.RunFile):
            return None   # Shutdown
        self._meter.start()
        self._file = message.file
        self._begin(message.file)   # what its import leaves goes with its collection error
        return message

    def test_started(self, test: str) -> None:
        self._only_the_runner()
        self._begin(test)
        transport.send(self._results, messages.TestStarted(
            test, self._log_start if self.log_fd >= 0 else -1))

    def _begin(self, test: str) -> None:
        self._test = test
        if self.log_fd >= 0:
            self._log_start = logs.position(self.log_fd)
        if self._artifacts is not None:
            self._artifacts.begin(test)

    def result(self, **fields: object) -> None:
        self._only_the_runner()
        # an exception with an 80 MB message would not fit a message to the worker
        message, longrepr = fields.get("message"), fields.get("longrepr")
        if isinstance(message, str) and len(message) > MAX_MESSAGE_CHARS:
            fields["message"] = (message[:MAX_MESSAGE_CHARS] + f" [medusa: "
                                 f"{len(message) - MAX_MESSAGE_CHARS} characters cut]")
        if isinstance(longrepr, str) and len(longrepr) > MAX_TEXT_CHARS:
            fields["longrepr"] = truncate(longrepr)
        test = fields.get("test")
        if test == self._test:
            if self.log_fd >= 0:
                fields["log"] = (self._log_start, logs.position(self.log_fd))
            if self._artifacts is not None:   # shipped first: the Result names them
                fields["artifacts"] = self._artifacts.collect(self._test)
        transport.send(self._results, messages.Result(
            worker=self._id.worker, runner=self._id.index, **fields))  # type: ignore[arg-type]

    def file_complete(self, file: str, duration: float, tests: int, deselected: int = 0,
                      warnings: int = 0, import_warnings: int = 0,
                      timings: tuple[tuple[str, float], ...] = (),
                      stopped: bool = False) -> None:
        if self._artifacts is not None:
            self._artifacts.finish(self._artifacts.test)
        self._send(messages.FileComplete(self._id.worker, self._id.index, file, duration,
                                         tests, deselected, warnings, import_warnings,
                                         timings, stopped, self._meter.stop()))
        self._asked = True

    def stop_build(self, file: str, reason: str, exit_code: int) -> None:
        self._send(messages.StopBuild(self._id.worker, self._id.index, file, reason,
                                      exit_code))

    def runner_output(self, workerid: str, output: dict[str, object],
                      framework_events: messages.FrameworkEvents = ()) -> None:
        self._send(messages.RunnerOutput(self._id.worker, self._id.index, workerid, output,
                                         framework_events))

    def tell(self, message: object) -> None:
        """Any other message for the worker to pass on (the environment hooks')."""
        self._send(message)

    def _send(self, message: object) -> None:
        self._only_the_runner()
        transport.send(self._conn, message)

    def _only_the_runner(self) -> None:
        """A test that forked and let its child return into the framework would have two
        processes run the rest of the file and report it twice. The child reports the
        test it came from as an error, and ends."""
        if os.getpid() == self._pid:
            return
        transport.send(self._results, messages.Result(
            worker=self._id.worker, runner=self._id.index, file=self._file,
            test=self._test, outcome="error", when="call", duration=0.0,
            message=f"the test forked, and its child (pid {os.getpid()}) returned into the "
                    f"test runner; it was ended (a child must end with os._exit())"))
        os._exit(1)


def fork(driver: Driver, identity: RunnerIdentity, close_in_child: list[Connection],
         environment: hooks.Hooks | None = None) -> tuple[int, RunnerPipes]:
    """Start a runner; returns its pid and the worker's ends of its pipes.

    `close_in_child` are the worker's other connections (to the master, to the other
    runners): the child must not hold them, or a dead peer would never look dead.
    """
    worker_control, runner_control = Pipe()
    worker_results, runner_results = Pipe(duplex=False)
    _enlarge(worker_results)
    pid = os.fork()
    if pid:
        runner_control.close()
        runner_results.close()
        return pid, RunnerPipes(worker_control, worker_results)
    code = 3
    try:
        worker_control.close()
        worker_results.close()
        for conn in close_in_child:
            conn.close()
        code = _runner_main(driver, RunnerPipes(runner_control, runner_results), identity,
                            environment or hooks.Hooks())
    except BaseException:
        traceback.print_exc()
    finally:
        coverage_support.save_in_runner()   # os._exit skips atexit, where coverage saves
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _runner_main(driver: Driver, pipes: RunnerPipes, identity: RunnerIdentity,
                 environment: hooks.Hooks) -> int:
    _die_with_parent()
    log_fd = logs.redirect_output(identity.log_file) if identity.log_file else -1
    if identity.log_level and log_fd >= 0:
        logs.log_records(log_fd, identity.log_level)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # a driver that can stop a file early handles it; the others finish (or are killed)
    signal.signal(STOP_SIGNAL, signal.SIG_IGN)
    if identity.stacks_file:
        # a test that runs past --timeout: the worker asks for every thread's stack first
        stacks = open(identity.stacks_file, "w")
        faulthandler.register(STACKS_SIGNAL, file=stacks, all_threads=True)
    os.environ.update({
        "MEDUSA_WORKER": identity.worker,
        "MEDUSA_RUNNER": str(identity.index),
        "MEDUSA_RUNNERS": str(identity.count),
        "MEDUSA_RUN_ID": identity.run_id,
        # what pytest-xdist tells its workers: plugins and fixtures that make a database,
        # a port or a file per worker read these (and the pytest driver's workerinput)
        "PYTEST_XDIST_WORKER": f"gw{identity.number}",
        "PYTEST_XDIST_WORKER_COUNT": str(identity.build_runners or identity.count),
        "PYTEST_XDIST_TESTRUNUID": identity.run_id,
    })
    channel = WorkerChannel(pipes, identity)
    channel.log_fd = log_fd
    ctx = hooks.HookContext(identity.worker, identity.run_id, identity.count, identity.index)
    if not environment.call("setup_runner", ctx, channel.tell):
        return 3   # the worker, told by the hook's result, ends the build on this machine
    return driver.serve(channel, identity.index)


def _enlarge(conn: Connection) -> None:
    """A bigger pipe lets a runner write a long traceback without waiting for the worker."""
    try:
        fcntl.fcntl(conn.fileno(), F_SETPIPE_SZ, 1 << 20)
    except OSError:   # above /proc/sys/fs/pipe-max-size: the default will do
        pass


def _die_with_parent() -> None:
    """If the worker is killed, the kernel kills its runners too (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
