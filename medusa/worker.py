"""`medusa worker`: one per machine. Connects back to the master, loads the framework and
collects its session once (the worker collects, the runners run), forks the runners,
relays their messages and watches them.

Started by a target (targets.py) with the master's address on the command line and the
authkey on stdin, so the key is never visible in `ps`.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import tempfile
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

from medusa import (coverage_support, drivers, exits, gc_freeze, governor, hooks, locks, logs,
                    messages, probes, runner, stats, transport)

# How often results that runners wrote are passed on when nothing else happens.
RESULTS_TICK_SECONDS = 0.1
# After asking a runner that overran --timeout for its stacks, how long to let it write.
STACKS_GRACE_SECONDS = 0.5
# Silence longer than this is broken by a Heartbeat (the master's limit is much longer).
HEARTBEAT_SECONDS = 2.0
# A runner told to stop its tests (StopTests) that still holds its file after this long
# is killed: its test ignores the signal (stuck in C code, or the driver cannot stop).
STOP_GRACE_SECONDS = 2.0
# What a runner sends, on which of its pipes; anything else there was written by a test.
CONTROL_MESSAGES = (messages.RequestFile, messages.FileComplete, messages.StopBuild,
                    messages.RunnerOutput, messages.InitializerStart, messages.InitializerOutput,
                    messages.InitializerResult)
RESULT_MESSAGES = (messages.TestStarted, messages.Result, messages.ArtifactChunk)
# The most of a dead runner's output that goes into its test's report.
LAST_WORDS = 64 * 1024
# A worker's scratch folder (runner logs, artifacts, stack dumps), in the temporary folder,
# and the lock file in it that says the worker still lives.
SCRATCH_PREFIX = "medusa-worker-"
SCRATCH_LOCK = ".alive"


@dataclass
class RunnerSlot:
    index: int
    pid: int
    conn: Connection          # control: requests and answers
    results: Connection       # one way: its results, read when convenient
    stacks_file: str = ""     # where it dumps its stacks on SIGUSR1 (with --timeout)
    file: str = ""            # what it is running; "" when idle
    test: str = ""            # the test it is running; "" between tests
    test_started: float = 0.0
    test_log_at: int = -1     # its log's length as the test started (-1: unknown)
    done: list[str] = field(default_factory=list)   # tests of `file` with results
    timed_out: float = 0.0    # the --timeout it overran, once killed for it
    stop_by: float = 0.0      # told to stop its tests: the time it must have by
    killed_for: str = ""      # why the worker killed it, if it did (besides --timeout)
    waiting: bool = False     # it asked for a file and has no answer yet
    stopping: bool = False    # it was told to end
    generation: int = 0       # runners of this index that died before it


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medusa worker")
    parser.add_argument("--connect", required=True, help="HOST:PORT of the master")
    parser.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    # the master ends a worker with SIGTERM: clean up on the way out (runners reset it)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    host, _, port = args.connect.rpartition(":")
    authkey = bytes.fromhex(sys.stdin.readline().strip())
    conn = transport.connect((host, int(port)), authkey)
    transport.send(conn, messages.Ping(args.name, socket.gethostname(), os.getpid(),
                                       sys.version.split()[0]))
    configure = transport.recv(conn)
    assert isinstance(configure, messages.Configure), configure
    try:
        return Worker(conn, configure).run()
    finally:
        # from here on the interpreter shuts down: a SIGTERM now must end it quietly,
        # not raise SystemExit inside its shutdown (a traceback in the user's output)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Worker:
    def __init__(self, master: Connection, configure: messages.Configure) -> None:
        self.master = master
        self.cfg = configure
        self.runners: dict[int, RunnerSlot] = {}
        self.driver: drivers.Driver | None = None
        self.replacements = 0
        self.runner_count = 0
        self.slots: governor.Slots | None = None
        # room for the runners' logs and artifacts, and the stack dumps of runners that
        # overrun --timeout
        self.scratch, self.scratch_lock = make_scratch()
        self.logs: dict[int, logs.LogTail] = {}   # runner index -> its log (logs.py)
        self.host = stats.HostSampler(configure.worker, configure.sample_every)
        self.probes = probes.FunctionProbes(configure.worker, ())
        self.coverage: object = None   # coverage.Coverage, with --cov
        self.last_sent = time.monotonic()
        self.lost: list[str] = []
        self.hooks = hooks.Hooks()
        self.set_up = False       # setup_worker ran and did not fail: teardown_worker runs

    def run(self) -> int:
        try:
            return self.serve()
        finally:
            self.kill_runners()   # the way out of an abort: their teardowns run too
            self.tear_down_worker()
            for tail in self.logs.values():
                tail.close()
            if self.scratch:
                shutil.rmtree(self.scratch, ignore_errors=True)
                os.close(self.scratch_lock)

    def end_leftovers(self) -> None:
        """Processes the tests started and left running outside the worker's process
        group (a daemon that called setsid), which the master's signal to the group
        would not reach: found by the build's marks in their environment."""
        left = left_by_tests(self.cfg.run_id, self.cfg.worker)
        for pid, _ in left:   # a chance to shut down cleanly first
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and any(_alive(pid) for pid, _ in left):
            time.sleep(0.05)
        for pid, command in left:
            _signal(pid, signal.SIGKILL)
            print(f"medusa: ended process {pid} ({command}), which a test of this build left "
                  f"running", flush=True)

    def tear_down_worker(self) -> None:
        if self.set_up:
            self.set_up = False
            self.hooks.call("teardown_worker", self.context(), self.send_if_heard)

    def context(self, runner_index: int | None = None) -> hooks.HookContext:
        return hooks.HookContext(self.cfg.worker, self.cfg.run_id, self.runner_count,
                                 runner_index)

    def serve(self) -> int:
        started = time.monotonic()
        os.environ.update(dict(self.cfg.env))
        if self.cfg.cwd_on_path:
            sys.path.insert(0, os.getcwd())
        try:
            # held until this process and its runners end (the kernel lets go then)
            reservation = governor.reserve(self.cfg.runners, self.cfg.max_host_runners,
                                           self.tell_waiting)
        except ValueError as exc:   # a bad MEDUSA_MAX_HOST_RUNNERS, more runners than fit
            self.send(messages.WorkerStartupFailure(self.cfg.worker, str(exc), "", 4))
            return 4
        self.runner_count = reservation.runners
        self.slots = reservation.slots   # kept open for as long as this worker lives
        if not self.start_coverage():
            return 4
        if not self.set_up_worker():
            return 1
        try:
            self.probes = probes.FunctionProbes(self.cfg.worker, probes.from_environment(
                self.hooks.module, self.cfg.environment))
        except ValueError as exc:
            self.send(messages.WorkerStartupFailure(self.cfg.worker, str(exc), "", 4))
            return 4
        try:
            driver = drivers.create(self.cfg.driver)
            with exits.exit_raises():
                prepared = driver.prepare(self.cfg.paths, self.cfg.framework_args,
                                          self.driver_options(), processes=self.runner_count)
        except (SystemExit, exits.ProcessExit) as exc:   # conftest.py, a plugin (an exit in
            # a test module is only that file's collection error: pytest catches it)
            self.send(messages.WorkerStartupFailure(
                self.cfg.worker, f"{exits.describe(exc)} at {exits.where(exc)} while "
                                 f"the test framework started (it would have ended the worker)",
                traceback.format_exc(), 4))
            return 4
        except drivers.StartupError as exc:
            self.send(messages.WorkerStartupFailure(self.cfg.worker, exc.message, exc.detail,
                                                    exc.exit_code))
            return exc.exit_code
        except Exception as exc:
            self.send(messages.WorkerStartupFailure(
                self.cfg.worker, f"internal error while starting the worker: {exc!r}",
                traceback.format_exc(), 3))
            return 3
        self.send(messages.WorkerBegin(self.cfg.worker, self.runner_count, reservation.reason,
                                       prepared.rootdir, prepared.framework, prepared.files,
                                       time.monotonic() - started, prepared.maxfail,
                                       prepared.tests, prepared.deselected, prepared.warnings,
                                       prepared.framework_events))
        self.driver = driver
        # Objects made so far (the framework, the user's modules) are never freed: keeping
        # the collector off them keeps their pages shared between the runners.
        gc_freeze.freeze()
        for index in range(self.runner_count):
            self.start_runner(index)
        self.relay()
        self.tear_down_worker()   # it may stop services of its own first
        self.end_leftovers()
        self.ship_logs()
        self.ship_coverage()
        self.send(messages.Died(self.cfg.worker, len(self.lost), tuple(self.lost)))
        return 0

    def start_coverage(self) -> bool:
        """--cov: measuring starts before environment.py and the framework load (see
        coverage_support.py)."""
        if self.cfg.coverage is None:
            return True
        try:
            self.coverage = coverage_support.start_in_worker(
                self.cfg.coverage, self.cfg.coverage_branch, os.path.join(self.scratch, "coverage"))
        except coverage_support.CoverageError as exc:
            self.send(messages.WorkerStartupFailure(self.cfg.worker, str(exc), "", 4))
            return False
        return True

    def ship_coverage(self) -> None:
        if self.coverage is None:
            return
        files = coverage_support.finish_in_worker(self.coverage,
                                                  os.path.join(self.scratch, "coverage"))
        for name, data in files:
            self.send(messages.CoverageFile(self.cfg.worker, name, data, os.getcwd()))

    def ship_logs(self, index: int | None = None) -> None:
        """What the runners (or one of them) wrote to their logs since the last time."""
        tails = self.logs.values() if index is None else [self.logs[index]]
        for tail in tails:
            for chunk in tail.new_chunks():
                self.send(chunk)

    def set_up_worker(self) -> bool:
        """environment.py: loaded here, so the runners inherit it; setup_worker runs before
        the framework loads. A failure fails this worker (the build goes on elsewhere)."""
        if not self.cfg.environment:
            return True
        try:
            self.hooks = hooks.Hooks(self.cfg.environment)
        except hooks.HookError as exc:
            message, _, detail = str(exc).partition("\n")
            self.send(messages.WorkerStartupFailure(self.cfg.worker, message, detail, 4))
            return False
        ctx = self.context()
        if not self.hooks.call("setup_worker", ctx, self.send):
            self.send(messages.WorkerStartupFailure(
                self.cfg.worker, f"setup_worker in {self.cfg.environment} failed", "", 1))
            return False
        self.set_up = True
        self.send(messages.InitializerEnd(self.cfg.worker))
        return True

    def driver_options(self) -> drivers.DriverOptions:
        """The driver's settings, and what a controller session in the master asks: the
        workerinput of this worker's first runner (each runner has its own workerid)."""
        if not self.cfg.controller:
            return self.cfg.driver_options
        workerinput = {"workerid": f"gw{self.cfg.first_runner}",
                       "workercount": self.runner_count + self.cfg.other_runners,
                       "testrunuid": self.cfg.run_id, **dict(self.cfg.workerinput)}
        asked = {"workerinput": workerinput, "reports": self.cfg.controller_reports}
        return (*self.cfg.driver_options, (drivers.CONTROLLER_OPTION, drivers.pack(asked)))

    def start_runner(self, index: int, generation: int = 0) -> None:
        assert self.driver is not None
        stacks = os.path.join(self.scratch, f"runner-{index}.stacks") if self.cfg.timeout else ""
        if index not in self.logs:
            self.logs[index] = logs.LogTail(self.cfg.worker, index,
                                            os.path.join(self.scratch, f"runner-{index}.log"))
        identity = runner.RunnerIdentity(
            self.cfg.worker, index, self.runner_count, self.cfg.run_id, stacks,
            log_file=self.logs[index].path, log_level=self.cfg.log_level,
            artifacts_dir=os.path.join(self.scratch, f"artifacts-{index}"),
            artifact_limit=self.cfg.artifact_limit, number=self.cfg.first_runner + index,
            build_runners=self.runner_count + self.cfg.other_runners)
        others = [self.master, *(c for slot in self.runners.values()
                                 for c in (slot.conn, slot.results))]
        pid, pipes = runner.fork(self.driver, identity, others, self.hooks)
        self.runners[index] = RunnerSlot(index, pid, pipes.control, pipes.results, stacks,
                                         generation=generation)

    # --- the event loop --------------------------------------------------------------------

    def relay(self) -> None:
        last_tick = time.monotonic()
        while self.runners:
            by_conn = {slot.conn: slot for slot in self.runners.values()}
            for conn in wait([self.master, *by_conn], timeout=RESULTS_TICK_SECONDS):
                if conn is self.master:
                    self.from_master()
                elif by_conn[conn].index in self.runners:
                    self.from_runner(by_conn[conn])
            # a runner deep in a long file says nothing else for a while
            if time.monotonic() - last_tick >= RESULTS_TICK_SECONDS:
                last_tick = time.monotonic()
                for slot in list(self.runners.values()):
                    self.relay_results(slot)
                    self.check_timeout(slot)
                    self.check_stopped(slot)
                self.ship_logs()
                self.sample()
                if last_tick - self.last_sent >= HEARTBEAT_SECONDS:
                    self.send(messages.Heartbeat(self.cfg.worker))

    def sample(self) -> None:
        """The host's load and environment.py's probes, when they are due."""
        host = self.host.due()
        if host is not None:
            self.send(host)
        for sample in self.probes.due():
            self.send(sample)

    def from_master(self) -> None:
        try:
            message = transport.recv(self.master)
        except (EOFError, OSError):
            self.kill_runners()     # the master is gone: nobody wants our results
            raise SystemExit(2)
        # one method per message, named as the master names its handlers
        handler = getattr(self, "on_" + messages.event_name(message), None)
        if handler is None:
            raise RuntimeError(f"unexpected message from the master: {message!r}")
        handler(message)

    def on_run_file(self, message: messages.RunFile) -> None:
        slot = self.current(message.runner, message.generation)
        if slot is None:   # for a runner that died: the master gives its file to another
            return
        slot.file, slot.waiting, slot.done = message.file, False, []
        transport.send(slot.conn, message)

    def on_stop_tests(self, message: messages.StopTests) -> None:
        self.stop_tests()

    def on_no_more_work(self, message: messages.NoMoreWork) -> None:
        slot = self.current(message.runner, message.generation)
        if slot is not None:
            self.stop_runner(slot)

    def on_shutdown(self, message: messages.Shutdown) -> None:
        self.kill_runners()
        raise SystemExit(2)

    def current(self, index: int, generation: int) -> RunnerSlot | None:
        """The runner a message of the master is for, unless it died before it came (the
        master counts the deaths it was told of: a message sent before it heard of one
        is for the runner that died)."""
        slot = self.runners.get(index)
        return slot if slot is not None and slot.generation == generation else None

    def from_runner(self, slot: RunnerSlot) -> None:
        # its results written before this message go first
        self.relay_results(slot)
        message = self.read_runner(slot, slot.conn, CONTROL_MESSAGES)
        if message is None:
            # outside the except block: a replacement forked there would carry the
            # EOFError as the context of every exception its tests raise
            self.relay_results(slot)
            self.runner_ended(slot)
            return
        if isinstance(message, (messages.RequestFile, messages.FileComplete)):
            slot.file, slot.test, slot.waiting, slot.stop_by = "", "", True, 0.0
            self.ship_logs(slot.index)   # what it printed comes before its file's end
        self.send(message)
        if isinstance(message, messages.InitializerResult) and not message.ok:
            # a runner that cannot be set up: neither can its replacements
            self.send(messages.WorkerStartupFailure(
                self.cfg.worker, f"setup_runner failed on runner {slot.index}: "
                                 f"{message.message}", message.detail, 1))
            raise SystemExit(1)

    def read_runner(self, slot: RunnerSlot, conn: Connection,
                    expected: tuple[type, ...]) -> object | None:
        """The runner's next message on `conn`; None once it is gone. Anything but one of
        our messages means a test wrote into the pipes its runner inherited: that runner
        is ended (its test an error that says so, its file goes on elsewhere) and no
        other."""
        if slot.killed_for:
            return None
        try:
            message = transport.recv(conn)
        except EOFError:
            return None
        except OSError as exc:
            if exc.errno is not None:   # the pipe broke: the runner is gone
                return None
            message = exc   # "bad message length": text read as a frame's header
        except Exception as exc:   # the bytes are not a pickle: UnpicklingError and kin
            message = exc
        if isinstance(message, expected):
            return message
        slot.killed_for = (f"killed: its pipe to the worker carried something that is not "
                           f"a medusa message ({_junk(message)}); did a test write "
                           f"to a file descriptor it inherited?")
        _signal(slot.pid, signal.SIGKILL)
        return None

    def relay_results(self, slot: RunnerSlot) -> None:
        results = []
        try:
            while not slot.killed_for and slot.results.poll():
                message = self.read_runner(slot, slot.results, RESULT_MESSAGES)
                if message is None:
                    break
                if isinstance(message, messages.TestStarted):
                    slot.test, slot.test_started = message.test, time.monotonic()
                    slot.test_log_at = message.log_at
                    continue
                if isinstance(message, messages.ArtifactChunk):
                    if results:   # in order: the test's artifacts come before its Result
                        self.send(messages.ResultBatch(tuple(results)))
                        results = []
                    self.send(message)
                    continue
                results.append(message)
                slot.done.append(message.test)
                if message.test == slot.test:   # its results come when it has ended
                    slot.test = ""
        except (EOFError, OSError):
            pass   # the runner is gone; its control pipe says so too
        if results:
            self.send(messages.ResultBatch(tuple(results)))

    def check_timeout(self, slot: RunnerSlot) -> None:
        """A test past --timeout: the runner writes its stacks, then is killed; the test
        is reported as timed out and the rest of its file runs elsewhere."""
        limit = self.cfg.timeout
        if not limit or not slot.test or slot.timed_out:
            return
        if time.monotonic() - slot.test_started < limit:
            return
        slot.timed_out = limit
        try:
            os.kill(slot.pid, runner.STACKS_SIGNAL)
            time.sleep(STACKS_GRACE_SECONDS)
            os.kill(slot.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_tests(self) -> None:
        """Every busy runner ends its file now (drivers.STOP_SIGNAL)."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for slot in self.runners.values():
            if slot.file and not slot.stop_by:
                slot.stop_by = deadline
                _signal(slot.pid, drivers.STOP_SIGNAL)

    def check_stopped(self, slot: RunnerSlot) -> None:
        if slot.stop_by and slot.file and not slot.killed_for and time.monotonic() > slot.stop_by:
            slot.killed_for = f"killed: it did not stop its tests within {STOP_GRACE_SECONDS:g} s"
            _signal(slot.pid, signal.SIGKILL)

    def stop_runner(self, slot: RunnerSlot) -> None:
        slot.waiting, slot.stopping = False, True
        transport.send(slot.conn, messages.Shutdown("no more work"))

    def runner_ended(self, slot: RunnerSlot) -> None:
        del self.runners[slot.index]
        slot.conn.close()
        slot.results.close()
        status = _reap(slot.pid)
        self.ship_logs(slot.index)   # its last words (a crash's traceback) first
        self.hooks.call("teardown_runner", self.context(slot.index), self.send)
        if status == 0 and slot.stopping:
            return
        reason = _describe_status(status)
        if slot.timed_out:
            reason = f"timed out after {slot.timed_out:g} s"
        elif slot.killed_for:
            reason = slot.killed_for
        self.lost.append(f"runner {slot.index}: {reason}")
        # a suite that kills every runner must not make the worker fork forever
        replace = not slot.stopping and self.replacements < self.cfg.max_replacements * self.runner_count
        if not replace and not slot.stopping:
            reason += f"; not replaced: {self.replacements} runners were replaced already"
        self.send(messages.RunnerDied(self.cfg.worker, slot.index, slot.file, reason,
                                      slot.test, bool(slot.timed_out), tuple(slot.done),
                                      _read(slot.stacks_file), self.last_words(slot)))
        if replace:
            self.replacements += 1
            self.start_runner(slot.index, slot.generation + 1)

    def last_words(self, slot: RunnerSlot) -> str:
        """What a dead runner wrote while running its test, for that test's report: the
        end of it, where a crash's traceback or pytest-timeout's stack dump is."""
        if not slot.test or slot.test_log_at < 0:
            return ""
        return self.logs[slot.index].read_from(slot.test_log_at, LAST_WORDS)

    def kill_runners(self) -> None:
        for slot in self.runners.values():
            _signal(slot.pid, signal.SIGKILL)
            _reap(slot.pid)
        for index in self.runners:
            self.hooks.call("teardown_runner", self.context(index), self.send_if_heard)
        self.runners.clear()

    def send(self, message: object) -> None:
        transport.send(self.master, message)
        self.last_sent = time.monotonic()

    def send_if_heard(self, message: object) -> None:
        """On the way out the master may be gone; the teardowns run all the same."""
        try:
            self.send(message)
        except (OSError, ValueError):
            pass

    def tell_waiting(self, reason: str) -> None:
        self.send(messages.WorkerWaiting(self.cfg.worker, reason))


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:   # it has just ended: the worker hears of it next
        pass


def _read(path: str) -> str:
    if not path:
        return ""
    try:
        with open(path, errors="replace") as stacks:
            return stacks.read()
    except OSError:
        return ""


def _reap(pid: int) -> int:
    """Wait for a runner and return its wait status (as os.waitpid gives it)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {number} ({name})"
    return f"exit code {os.WEXITSTATUS(status)}"


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that is not us."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def left_by_tests(run_id: str, worker: str) -> list[tuple[int, str]]:
    """(pid, command line) of the processes of this user whose environment carries this
    build's run id and this worker's name (runners export both, so whatever a test
    starts inherits them). Linux only: elsewhere, none."""
    marks = {f"MEDUSA_RUN_ID={run_id}".encode(), f"MEDUSA_WORKER={worker}".encode()}
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    found = []
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                if not marks <= set(environ.read().split(b"\0")):
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:   # gone meanwhile, or another user's
            continue
        found.append((pid, command.strip()[:200]))
    return found


def make_scratch() -> tuple[str, int]:
    """A scratch folder for this worker, and the descriptor of the lock it holds on it
    for as long as it or a runner it forked lives (the kernel lets go when they end).
    First the folders whose workers died without removing them (SIGKILL) are removed:
    the lock on those is free."""
    top = tempfile.gettempdir()
    for entry in os.scandir(top):
        if entry.name.startswith(SCRATCH_PREFIX):
            _remove_if_orphaned(entry)
    folder = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
    # locked under another name first: a worker starting beside this one must never see
    # the lock file unlocked and take the folder for a dead worker's
    making = os.path.join(folder, SCRATCH_LOCK + ".new")
    lock = os.open(making, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    os.rename(making, os.path.join(folder, SCRATCH_LOCK))
    return folder, lock


def _remove_if_orphaned(entry: os.DirEntry[str]) -> None:
    try:
        if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != os.getuid():
            return
        # None (no lock file): being made right now, or left by a medusa without locks
        free = locks.lock_free(Path(entry.path, SCRATCH_LOCK))
    except OSError:   # not ours to lock
        return
    if free:
        shutil.rmtree(entry.path, ignore_errors=True)


def _junk(thing: object) -> str:
    """What came instead of a message, in a few words."""
    if isinstance(thing, Exception):
        text = f"{type(thing).__name__}: {thing}"
    else:
        text = f"a {type(thing).__name__}"
    return text if len(text) <= 120 else text[:117] + "..."
