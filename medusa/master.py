"""The master: starts the workers, owns the queue, and turns messages into reporter events.

One event loop: every message from a worker is dispatched, by its type, to an `on_<name>`
method below (as pytest-xdist's dsession does). Order of work is the scheduler's business;
sockets are transport's; starting processes is the targets'.
"""
from __future__ import annotations

import codecs
import dataclasses
import os
import secrets
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING

from medusa import coverage_support, events, exits, history, messages, sharding, transport
from medusa.config import WorkerSpec
from medusa.drivers import COLLECT_OPTION, auto
from medusa.drivers.controller import NoController
from medusa.probes import CommandProbe, CommandProbes
from medusa.report_folder import ReportFolder
from medusa.reporters import Reporters
from medusa.retries import PROBLEMS, Retries
from medusa.scheduler import Scheduler, Unit, part_name, simulate
from medusa.sharding import Shard
from medusa.ssh_target import SshWorker
from medusa.targets import LocalWorker

if TYPE_CHECKING:
    from medusa.drivers.pytest_controller import PytestController

# pytest's order of outcomes in its summary line
OUTCOME_ORDER = ("failed", "passed", "skipped", "deselected", "xfailed", "xpassed",
                 "warnings", "error", "flaky")
CONNECT_SECONDS = 60.0
STOP_GRACE = 5.0        # seconds a worker told to stop has before it is killed
TEARDOWN_GRACE = 30.0   # ... when the build was interrupted (a second Ctrl-C cuts it short)
OUTPUT_TAIL_LINES = 40
# MEDUSA_CONTROLLER=off: no pytest session in the master (its plugins' reports go with it),
# for a master that cannot or should not load the project's plugins, and for the benchmark
# that measures what the session costs
CONTROLLER_VARIABLE = "MEDUSA_CONTROLLER"


@dataclass(frozen=True)
class BuildSettings:
    paths: tuple[str, ...] = ()
    framework_args: tuple[str, ...] = ()
    workers: tuple[WorkerSpec, ...] = (WorkerSpec("local", None, "local"),)  # runners
                                      # None: auto, decided by each worker on its host
    max_host_runners: int | None = None
    driver: str = "auto"          # a name in drivers.DRIVERS; auto: the worker picks
    collect: str = "session"      # pytest: the whole session in each worker, or "file":
                                  # each file in the runner that runs it
    cwd_on_path: bool = False     # started as `python -m medusa`: the workers put the
                                  # current folder on sys.path, as `python -m pytest` does
    cwd: str = "."
    argv: tuple[str, ...] = ()
    history: bool = True          # read and write .medusa/history.json
    failed_first: bool = True
    split: bool = True            # split a file longer than a runner's share
    no_split: tuple[str, ...] = ()  # globs of files never to split
    shard: Shard | None = None    # run only this part of the files (--shard K/N)
    dry_run: bool = False         # print the plan, run nothing
    timeout: float | None = None  # seconds per test
    worker_timeout: float = 60.0  # a working worker silent this long is lost
    retries: int = 0              # times a failed test runs again before it counts
    maxfail: int | None = None    # stop after this many failures (None: the framework's)
    max_replacements: int = 3     # runners a worker may replace, per runner slot
    env: tuple[tuple[str, str], ...] = ()   # for the workers and their runners
    environment: str = ""         # the hooks file (environment.py), if any
    # the driver's own settings, (name, value) pairs (drivers.DriverOptions)
    driver_options: tuple[tuple[str, str], ...] = ()
    # the report folder: logs, statistics, probes, artifacts, coverage
    report_dir: str = "medusa-report"
    log_level: str = ""           # Python logging of runners into their logs, from this level
    sample_every: float = 2.0     # seconds between samples of each worker's host (0: never)
    artifact_limit: int = 100 * 1024 * 1024   # bytes of artifacts shipped per test
    probes: tuple[CommandProbe, ...] = ()      # commands of config.yml, run by the master
    coverage: tuple[str, ...] | None = None    # --cov sources; None: no coverage
    coverage_branch: bool = False
    coverage_report: tuple[str, ...] = ()      # term, term-missing, xml:PATH, html:DIR, ...


@dataclass
class WorkerState:
    target: LocalWorker | SshWorker
    conn: Connection | None = None
    began: bool = False
    ended: bool = False
    said_died: bool = False       # it ended its runners and is on its way out
    last_heard: float = 0.0
    in_flight: dict[int, Unit] = field(default_factory=dict)  # runner -> its work
    waiting: list[int] = field(default_factory=list)          # runners without work
    ran: dict[int, set[str]] = field(default_factory=dict)   # runner -> tests of its unit
                                                             # with results
    output_tail: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_TAIL_LINES))
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))
    log_decoders: dict[int, codecs.IncrementalDecoder] = field(default_factory=dict)
    rootdir: str = ""             # its tree there (WorkerBegin), for coverage's paths
    first_runner: int = 0         # its runner 0 is gw<first_runner> to xdist's plugins
    deaths: Counter[int] = field(default_factory=Counter)   # runner -> RunnerDied heard

    @property
    def name(self) -> str:
        return self.target.name


class Master:
    def __init__(self, settings: BuildSettings, reporters: Reporters) -> None:
        self.settings = settings
        self.reporters = reporters
        self.run_id = secrets.token_hex(6)
        self.authkey = transport.new_authkey()
        self.workers = [WorkerState(LocalWorker(spec.name) if spec.type == "local"
                                    else SshWorker(_without_report_dir(spec, settings), settings.cwd))
                        for spec in settings.workers]
        self.by_output: dict[int, WorkerState] = {}
        self.by_conn: dict[Connection, WorkerState] = {}
        self.unidentified: list[Connection] = []
        self.scheduler: Scheduler | None = None     # made when the first worker reports files
        self.suite: messages.WorkerBegin | None = None   # the first worker's collection
        self.shard_files: frozenset[str] | None = None   # --shard: this job's files
        self.reported: dict[str, set[str]] = {}    # file -> tests with a verdict
        self.history_path: Path | None = None
        self.finished_parts: dict[str, list[tuple[Unit, messages.FileComplete]]] = {}
        self.failed_files: set[str] = set()
        self.untimed_files: set[str] = set()   # a runner died in them: timings are partial
        self.import_warnings: dict[str, int] = {}
        self.collect_errors: set[tuple[str, str]] = set()
        self.retries = Retries(settings.retries)
        self.counts: Counter[str] = Counter()
        self.not_run: list[events.NotRun] = []
        self.startup_failure: messages.WorkerStartupFailure | None = None
        self.hook_failures: list[messages.InitializerResult] = []
        self.stopped: messages.StopBuild | None = None
        self.maxfail = 0
        self.stop_message = ""
        self.interrupted = False
        self.internal_error = ""
        self.started = time.monotonic()
        self.folder = ReportFolder(settings.report_dir)
        self.probes = CommandProbes(settings.probes, settings.cwd)
        self.coverage_roots: list[tuple[str, str]] = []   # (local, remote) per data file
        self.folder_failed = False   # a write failed (and was reported once)
        # pytest's own session in the master, for what it does once per build
        self.controller: PytestController | NoController = NoController()
        self.framework_reason = ""   # why pytest's session changed the exit code

    # --- the build ---------------------------------------------------------------------

    def run(self) -> int:
        server = transport.Server(self.authkey)
        try:
            if not self.settings.dry_run:
                self.folder.clear()   # what an earlier build left there
            self.emit(events.BuildStarted(
                self.run_id, time.time(), os.path.abspath(self.settings.cwd),
                tuple(w.name for w in self.workers), self.settings.argv,
                self.settings.report_dir))
            self.probes.start()
            for worker in self.workers:
                worker.target.start(server.address, self.authkey, self.settings.cwd)
                if worker.target.output is not None:
                    os.set_blocking(worker.target.output.fileno(), False)
                    self.by_output[worker.target.output.fileno()] = worker
            self.controller = self.start_controller()
            try:
                self.controller.run_loop(lambda: self.loop_until_done(server))
            except KeyboardInterrupt:
                self.interrupted = True
                self.abandon_all("interrupted")
            except Exception:
                # our bug: still end every process and give the reporters what finished
                self.internal_error = traceback.format_exc()
                self.abandon_all("medusa had an internal error")
        finally:
            self.probes.stop()
            for worker in self.workers:
                # an interrupted worker runs its teardown hooks (dropping databases on a
                # loaded machine can take seconds): it is given longer before SIGKILL
                worker.target.stop(finishing=worker.said_died,
                                   grace=TEARDOWN_GRACE if self.interrupted else STOP_GRACE)
                self.read_output(worker)   # what it wrote while it ended
            server.close()
            self.folder.close()
        return self.finish()

    def start_controller(self) -> PytestController | NoController:
        settings = self.settings
        if settings.dry_run or not auto.picks_pytest(settings.driver, Path(settings.cwd),
                                                     settings.paths, settings.driver_options):
            return NoController()
        if os.environ.get(CONTROLLER_VARIABLE) == "off":   # the user's choice: nothing to say
            return NoController()
        try:
            from medusa.drivers.pytest_controller import ControllerUnavailable, PytestController
        except ImportError as exc:   # pytest is only where the workers run
            return NoController(f"pytest cannot be imported here: {exc}")
        runners = sum(spec.runners or os.cpu_count() or 1 for spec in settings.workers)
        try:
            # the project's conftest.py files run here too: an os._exit() in one must not
            # end the master (the workers report it)
            with exits.exit_raises():
                controller = PytestController([*settings.framework_args, *settings.paths],
                                              runners, self.run_id)
        except ControllerUnavailable as exc:
            return NoController(str(exc))
        lines = controller.header()
        if lines:
            self.emit(events.FrameworkHeader(lines))
        return controller

    def loop_until_done(self, server: transport.Server) -> int:
        """The build; the number of failures it had (pytest's session.testsfailed)."""
        self.loop(server)
        return self.counts["failed"] + self.counts["error"]

    def loop(self, server: transport.Server) -> None:
        while not all(w.ended for w in self.workers):
            ready = wait([server, *self.unidentified, *self.by_conn, *self.by_output],
                         timeout=0.5)
            for source in ready:
                if isinstance(source, int):
                    if source in self.by_output:
                        self.read_output(self.by_output[source])
                elif source is server:
                    self.unidentified.extend(server.accepted())
                elif source in self.unidentified:
                    self.identify(source)
                elif source in self.by_conn:   # not ended by an earlier message of this round
                    self.receive(self.by_conn[source])
            for worker in self.workers:
                for event in worker.target.events():   # an ssh worker's setup commands
                    self.emit(event)
            for sample in self.probes.drain():   # config.yml's probe commands
                self.emit(sample)
            self.check_processes()

    def identify(self, conn: Connection) -> None:
        """An authenticated connection's first message must be the Ping of a worker we started."""
        self.unidentified.remove(conn)
        try:
            ping = transport.recv(conn)
        except (EOFError, OSError):
            conn.close()
            return
        worker = next((w for w in self.workers if isinstance(ping, messages.Ping)
                       and w.name == ping.worker and w.conn is None), None)
        if worker is None:
            conn.close()
            return
        worker.conn = conn
        self.by_conn[conn] = worker
        spec = next(s for s in self.settings.workers if s.name == worker.name)
        numbering = _runner_numbering(self.settings.workers, worker.name)
        worker.first_runner = numbering["first_runner"]
        workerinput = self.controller.workerinput(f"gw{worker.first_runner}")
        transport.send(conn, messages.Configure(
            worker.name, self.run_id, spec.runners, self.settings.driver,
            self.settings.paths, self.settings.framework_args, env=self.settings.env,
            max_host_runners=self.settings.max_host_runners, timeout=self.settings.timeout,
            max_replacements=self.settings.max_replacements,
            environment=_in_tree(self.settings.environment, self.settings.cwd),
            driver_options=self.settings.driver_options + (
                ((COLLECT_OPTION, "file"),) if self.settings.collect == "file" else ()),
            cwd_on_path=self.settings.cwd_on_path,
            **numbering, controller=self.controller.active,
            controller_reports=self.controller.wants_reports,
            workerinput=tuple(workerinput.items()),
            log_level=self.settings.log_level, sample_every=self.settings.sample_every,
            artifact_limit=self.settings.artifact_limit, coverage=self.settings.coverage,
            coverage_branch=self.settings.coverage_branch))

    def receive(self, worker: WorkerState) -> None:
        assert worker.conn is not None
        worker.last_heard = time.monotonic()
        try:
            message = transport.recv(worker.conn)
        except (EOFError, OSError) as exc:
            reason = "connection closed" if isinstance(exc, EOFError) else f"connection error: {exc}"
            self.worker_lost(worker, reason)
            return
        handler = getattr(self, "on_" + messages.event_name(message), None)
        if handler is None:
            raise RuntimeError(f"unexpected message from worker {worker.name}: {message!r}")
        handler(worker, message)

    # --- messages ----------------------------------------------------------------------

    def on_worker_begin(self, worker: WorkerState, message: messages.WorkerBegin) -> None:
        worker.began = True
        worker.rootdir = message.rootdir
        collection_events, message = message.framework_events, dataclasses.replace(
            message, framework_events=())
        if self.suite is not None:
            self.emit(self.in_shard(message))
            self.check_same_suite(worker, message)
            return
        self.suite = message
        past = history.History()
        local_rootdir = worker.target.local_path(message.rootdir)
        if self.settings.history and local_rootdir is not None:
            self.history_path = Path(local_rootdir) / history.HISTORY_FILE
            past = history.History.load(self.history_path)
        files = self.choose_shard(list(message.files), past)
        self.emit(self.in_shard(message))
        self.controller.replay(collection_events)   # once: every worker collects the same
        self.controller.collected(sum(len(tests) for tests in self.in_shard(message).tests or ()))
        # the collection's own counts, once for the build (every worker collects the same)
        self.counts["deselected"] += message.deselected
        self.counts["warnings"] += message.warnings
        # the runners of all workers share the work; a worker not begun yet with auto
        # runners is guessed to have as many as this one
        runners = sum(spec.runners or message.runners for spec in self.settings.workers)
        self.scheduler = Scheduler(files, runners, past,
                                   self.settings.failed_first, self.settings.split,
                                   self.settings.no_split)
        self.maxfail = message.maxfail if self.settings.maxfail is None else self.settings.maxfail
        if self.settings.dry_run:
            self.emit(events.Plan(tuple(self.scheduler.plan),
                                  simulate(self.scheduler.plan, runners)))
            self.scheduler.drop_queued()   # planned, not "not run"
            self.stop_everything("dry run")

    def choose_shard(self, files: list[str], past: history.History) -> list[str]:
        """--shard K/N: this job's part of the files; the others are other jobs'."""
        shard = self.settings.shard
        if shard is None:
            return files
        self.shard_files = frozenset(sharding.files_of(shard, files, past))
        self.emit(events.Output("master", (
            f"medusa: shard {shard}: {len(self.shard_files)} of {len(files)} files, cut "
            f"{sharding.digest(files, past, shard.total)} (the same on every job that found "
            f"the same files and read the same timing history; a shard does not write it)\n")))
        return [file for file in files if file in self.shard_files]

    def in_shard(self, message: messages.WorkerBegin) -> messages.WorkerBegin:
        """What a worker found, as far as this job's shard goes (all of it without one)."""
        if self.shard_files is None:
            return message
        keep = [index for index, file in enumerate(message.files) if file in self.shard_files]
        return dataclasses.replace(
            message, files=tuple(message.files[i] for i in keep),
            tests=None if message.tests is None else tuple(message.tests[i] for i in keep))

    def check_same_suite(self, worker: WorkerState, message: messages.WorkerBegin) -> None:
        """Every worker must run the suite the plan was made from (as xdist refuses
        workers that collected different tests): a test the master never heard of
        cannot run, nor can one be missing where its unit is sent."""
        assert self.suite is not None
        if (message.files, message.tests) == (self.suite.files, self.suite.tests):
            return
        first = _all_tests(self.suite)
        here = _all_tests(message)
        extra, missing = sorted(here - first), sorted(first - here)
        example = (extra or missing or ["(the order of the files)"])[0]
        self.send(worker, messages.Shutdown("it collected a different suite"))
        self.worker_lost(worker, f"it collected a different suite than {self.suite.worker}: "
                                 f"{len(extra)} tests only on {worker.name}, {len(missing)} "
                                 f"only on {self.suite.worker} (e.g. {example}); its runners "
                                 f"were not used")

    def on_worker_waiting(self, worker: WorkerState, message: messages.WorkerWaiting) -> None:
        self.emit(message)

    def on_worker_startup_failure(self, worker: WorkerState,
                                  message: messages.WorkerStartupFailure) -> None:
        self.startup_failure = self.startup_failure or message
        worker.said_died = True   # it exits by itself now: give it the moment to
        self.emit(message)
        if worker.began:   # a runner's set-up failed: its work goes to the other workers
            self.worker_lost(worker, message.message, announce=False)
        else:
            self.end_worker(worker)

    def on_initializer_start(self, worker: WorkerState,
                             message: messages.InitializerStart) -> None:
        self.emit(message)

    def on_initializer_output(self, worker: WorkerState,
                              message: messages.InitializerOutput) -> None:
        self.emit(message)

    def on_initializer_result(self, worker: WorkerState,
                              message: messages.InitializerResult) -> None:
        if not message.ok:
            self.hook_failures.append(message)
        self.emit(message)

    def on_initializer_end(self, worker: WorkerState, message: messages.InitializerEnd) -> None:
        self.emit(message)

    def on_request_file(self, worker: WorkerState, message: messages.RequestFile) -> None:
        worker.waiting.append(message.runner)
        self.hand_out_work()

    def on_result_batch(self, worker: WorkerState, message: messages.ResultBatch) -> None:
        for result in message.results:
            self.on_result(worker, result)

    def on_result(self, worker: WorkerState, message: messages.Result) -> None:
        if message.artifacts:   # shipped before it: their paths in the report folder
            message = dataclasses.replace(message, artifacts=self.folder.artifact_paths(
                worker.name, message.runner, message.test, message.artifacts))
        worker.ran.setdefault(message.runner, set()).add(message.test)
        if not self.hold(worker, message):
            self.report(message)

    def report(self, message: messages.Result) -> None:
        """A test's verdict: counted, passed to the reporters, and towards --maxfail."""
        if message.when == "collect":
            # every part of a split file that fails to import says so: count it once
            if (message.file, message.test) in self.collect_errors:
                return
            self.collect_errors.add((message.file, message.test))
        self.counts[message.outcome] += 1
        self.reported.setdefault(message.file, set()).add(message.test)
        self.controller.result(message)
        self.emit(dataclasses.replace(message, framework_events=()))
        if message.outcome in PROBLEMS:
            self.failed_files.add(message.file)
            failures = self.counts["failed"] + self.counts["error"]
            if failures == self.maxfail and self.scheduler is not None:
                # as pytest's -x/--maxfail: nothing new starts, and what runs stops
                reason = f"stopped after {failures} failures (--maxfail={self.maxfail})"
                for unit in self.scheduler.drop_queued():
                    self.give_up(unit, reason)
                self.stop_message = reason
                for worker in self.workers:   # and what runs stops at once
                    if worker.in_flight and not worker.ended and worker.conn is not None:
                        self.send(worker, messages.StopTests(reason))

    def on_file_complete(self, worker: WorkerState, message: messages.FileComplete) -> None:
        unit = worker.in_flight.pop(message.runner, None)
        if unit is None:   # work of a runner declared dead meanwhile: already listed
            worker.waiting.append(message.runner)
            self.hand_out_work()
            return
        assert self.scheduler is not None
        self.scheduler.finished(unit)
        settled = self.settle(worker, message.runner, unit)
        if message.stopped:   # told to stop (--maxfail): what it did not run is listed
            ran = worker.ran.get(message.runner, set())
            left = f"{message.tests - len(ran)} of its {message.tests} tests did not run"
            self.give_up(unit.without(ran), f"{self.stop_message or 'stopped'}; {left}")
            self.untimed_files.add(unit.file)
        elif unit.retry_of:
            # a retried test that did not run again (gone from the file): its last run counts
            ran = worker.ran.get(message.runner, set())
            self.report_last_runs([t for t in unit.tests
                                   if t not in settled and t not in ran and t not in unit.exclude])
        else:
            self.finished_parts.setdefault(unit.file, []).append((unit, message))
        self.counts["deselected"] += message.deselected
        self.counts["warnings"] += message.warnings
        # every part of a split file imports it: its import warnings count once
        self.import_warnings[unit.file] = max(self.import_warnings.get(unit.file, 0),
                                              message.import_warnings)
        self.emit(message)
        worker.waiting.append(message.runner)   # FileComplete asks for the next file too
        self.hand_out_work()

    def on_runner_output(self, worker: WorkerState, message: messages.RunnerOutput) -> None:
        self.controller.replay(message.framework_events)
        self.controller.node_down(message.workerid, message.output, None)

    def on_runner_died(self, worker: WorkerState, message: messages.RunnerDied) -> None:
        worker.deaths[message.runner] += 1
        # to plugins, a node that went down without its output (as xdist's crashed workers)
        self.controller.node_down(f"gw{worker.first_runner + message.runner}", {},
                                  message.reason)
        unit = worker.in_flight.get(message.runner)
        if message.runner in worker.waiting:
            worker.waiting.remove(message.runner)
        what = f"runner {worker.name}/{message.runner} died ({message.reason})"
        if unit is not None and message.test and not self.stop_message:
            # the test it was running is an error (which --retries may run again); once
            # the build is stopping it is only a test that did not run to its end
            self.untimed_files.add(unit.file)
            self.on_result(worker, messages.Result(
                worker=worker.name, runner=message.runner, file=unit.file, test=message.test,
                outcome="error", when="call", duration=0.0,
                message=message.reason if message.timed_out else f"{what} while running this test",
                longrepr="\n\n".join(filter(None, (message.stacks or what,
                                                     message.last_words.rstrip())))))
        self.emit(message)
        if unit is None:
            return
        worker.in_flight.pop(message.runner)
        if not message.file:   # it died before its file reached it: nothing of it ran
            if self.stop_message:
                self.give_up(unit, self.stop_message)
            else:
                assert self.scheduler is not None
                self.scheduler.give_back(unit, unit)
                self.hand_out_work()
            return
        settled = self.settle(worker, message.runner, unit)
        if not message.test:   # it died outside a test (importing the file, say)
            self.give_up(unit.without(settled), what)
            return
        if self.stop_message:
            self.give_up(unit.without(set(message.done)), f"{self.stop_message}; {what}")
            return
        # What it had not run yet goes to another runner (if nothing is left, the runner
        # that gets it finds no test and says so at once).
        rest = unit.without(set(message.done) | {message.test})
        assert self.scheduler is not None
        if unit.retry_of and set(rest.tests) <= set(rest.exclude):
            self.scheduler.finished(unit)   # a retry with nothing left in it
        else:
            self.scheduler.give_back(unit, rest)
        self.hand_out_work()

    # --- retries (--retries N; the policy is retries.py's) -------------------------------------

    def hold(self, worker: WorkerState, result: messages.Result) -> bool:
        """With --retries, a unit's results wait for its end (retries.py says why)."""
        if not self.settings.retries or result.when == "collect" or self.stop_message:
            return False
        if result.runner not in worker.in_flight:   # the session's end, after its last unit
            return False
        self.retries.hold((worker.name, result.runner), result)
        return True

    def settle(self, worker: WorkerState, runner: int, unit: Unit,
               may_retry: bool = True) -> frozenset[str]:
        """The unit on `runner` ended: each test it held runs again or is reported.
        Returns the tests it decided on."""
        settled = self.retries.settle((worker.name, runner), unit,
                                      may_retry and not self.stop_message)
        for result in settled.verdicts:
            self.report(result)
        if settled.again is not None and self.scheduler is not None:
            self.scheduler.retry(settled.again)
        return settled.decided

    def report_last_runs(self, tests: list[str]) -> None:
        for result in self.retries.last_runs(tests):
            self.report(result)

    def on_stop_build(self, worker: WorkerState, message: messages.StopBuild) -> None:
        self.emit(message)
        self.stopped = self.stopped or message
        self.stop_everything(f"the build was stopped: {message.reason}")

    def stop_everything(self, reason: str) -> None:
        """End the build now: nothing more is handed out, every worker is stopped, and
        what did not run is listed with the reason."""
        for worker in self.workers:
            if not worker.ended and worker.conn is not None:
                self.send(worker, messages.Shutdown(reason))
        self.abandon_all(reason)
        for worker in self.workers:
            self.end_worker(worker)

    def on_heartbeat(self, worker: WorkerState, message: messages.Heartbeat) -> None:
        pass   # hearing it is the point (receive() noted the time)

    # --- the report folder (report_folder.py) --------------------------------------------

    def on_log_chunk(self, worker: WorkerState, message: messages.LogChunk) -> None:
        """A runner's output: into its log, and on to the console as before."""
        self.store(self.folder.write_log, worker.name, message.runner, message.offset,
                   message.data)
        decoder = worker.log_decoders.setdefault(
            message.runner, codecs.getincrementaldecoder("utf-8")(errors="replace"))
        text = decoder.decode(message.data)
        if text:
            worker.output_tail.extend(text.splitlines())
            self.emit(events.Output(worker.name, text))

    def on_artifact_chunk(self, worker: WorkerState, message: messages.ArtifactChunk) -> None:
        self.store(self.folder.write_artifact, worker.name, message.runner, message.test,
                   message.name, message.offset, message.data)

    def store(self, write, *args: object) -> None:
        """A full disk, say, costs the report folder what it cannot hold, not the build."""
        try:
            write(*args)
        except OSError as exc:
            if not self.folder_failed:
                self.folder_failed = True
                self.emit(events.Output("master", f"medusa: cannot write to the report "
                                                  f"folder {self.settings.report_dir}: {exc}\n"))

    def on_host_sample(self, worker: WorkerState, message: messages.HostSample) -> None:
        self.emit(message)

    def on_probe_sample(self, worker: WorkerState, message: messages.ProbeSample) -> None:
        self.emit(message)

    def on_coverage_file(self, worker: WorkerState, message: messages.CoverageFile) -> None:
        self.store(self.folder.write_coverage_part, worker.name, message.name, message.data)
        local = worker.target.local_path(message.rootdir)
        if local is not None:
            self.coverage_roots.append((local, message.rootdir))

    def on_died(self, worker: WorkerState, message: messages.Died) -> None:
        worker.said_died = True
        self.end_worker(worker)

    def read_output(self, worker: WorkerState) -> None:
        """Pass on what the worker's pipe holds now (it is non-blocking)."""
        pipe = worker.target.output
        while pipe is not None and not pipe.closed:
            try:
                data = os.read(pipe.fileno(), 1 << 16)
            except BlockingIOError:
                return
            if not data:   # every process that held the pipe has ended
                self.by_output.pop(pipe.fileno(), None)
                pipe.close()
            text = worker.decoder.decode(data, final=not data)
            if text:
                worker.output_tail.extend(text.splitlines())
                self.emit(events.Output(worker.name, text))

    # --- work ----------------------------------------------------------------------------

    def hand_out_work(self) -> None:
        """Give every waiting runner a file; with the queue empty, let it go (the seed's
        NoMoreWork), so it ends its session while the others finish. With --retries an
        idle runner stays while others run: it is where their failed tests run again."""
        if self.scheduler is None:
            return
        for worker in self.workers:
            for runner in list(worker.waiting):
                if worker.ended:
                    break
                worker.waiting.remove(runner)
                unit = self.scheduler.next_unit(f"{worker.name}/{runner}", self.others_free())
                if unit is None and self.settings.retries and not self.stop_message and (
                        self.scheduler.queued
                        or any(w.in_flight for w in self.workers if not w.ended)):
                    worker.waiting.append(runner)
                    continue
                if unit is None:
                    self.send(worker, messages.NoMoreWork(runner, worker.deaths[runner]))
                    continue
                worker.in_flight[runner] = unit
                worker.ran[runner] = set()
                self.send(worker, messages.RunFile(runner, unit.file, unit.tests, unit.exclude,
                                                   worker.deaths[runner]))
                self.emit(events.FileStarted(worker.name, runner, unit.file, unit.part,
                                             unit.parts, bool(unit.retry_of)))

    def others_free(self) -> bool:
        """Is any runner, besides the one being served, running or waiting for work?"""
        return any(w.in_flight or w.waiting for w in self.workers if not w.ended)

    def send(self, worker: WorkerState, message: object) -> None:
        assert worker.conn is not None
        try:
            transport.send(worker.conn, message)
        except OSError as exc:
            self.worker_lost(worker, f"connection error: {exc}")

    # --- workers that end ----------------------------------------------------------------

    def check_processes(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.ended:
                continue
            if worker.target.exited():
                self.drain(worker)   # what it sent before it exited still counts
                self.worker_lost(worker, worker.target.exit_reason())
            elif worker.began and now - worker.last_heard > self.settings.worker_timeout:
                silence = f"it said nothing for {self.settings.worker_timeout:g} s"
                self.worker_lost(worker, silence)
                worker.target.stop()
            elif worker.conn is None and worker.target.launched is not None \
                    and now - worker.target.launched > CONNECT_SECONDS:
                self.worker_lost(worker, f"it did not connect within {CONNECT_SECONDS:.0f} s")

    def drain(self, worker: WorkerState) -> None:
        """Read every message a worker's connection still holds (its last logs, coverage
        data and Died come just before it exits)."""
        while not worker.ended and worker.conn is not None:
            try:
                if not worker.conn.poll():
                    return
            except (OSError, ValueError):
                return
            self.receive(worker)

    def worker_lost(self, worker: WorkerState, reason: str, announce: bool = True) -> None:
        if worker.ended:
            return
        worker.ended = True   # nothing more goes to it (settling below may want to)
        self.read_output(worker)
        if announce:
            self.emit(events.WorkerLost(worker.name, reason, "\n".join(worker.output_tail)))
        # its work goes to the workers that are left; with none, it is listed as not run
        others = any(not w.ended and w is not worker for w in self.workers)
        for runner, unit in list(worker.in_flight.items()):
            self.settle(worker, runner, unit, may_retry=others)
            rest = unit.without(worker.ran.get(runner, set()))
            if self.stop_message:   # --maxfail was reached: nothing runs again
                self.give_up(rest, f"{self.stop_message}; worker {worker.name} was lost")
            elif others and self.scheduler is not None:
                self.scheduler.give_back(unit, rest)
            else:
                self.give_up(unit, f"worker {worker.name} was lost ({reason})")
        worker.in_flight.clear()
        self.end_worker(worker)
        self.hand_out_work()

    def end_worker(self, worker: WorkerState) -> None:
        worker.ended = True
        worker.waiting.clear()
        if worker.conn is not None:
            self.by_conn.pop(worker.conn, None)
            worker.conn.close()
        if all(w.ended for w in self.workers):
            self.abandon_all("no worker left to run it")

    def abandon_all(self, reason: str) -> None:
        for worker in self.workers:
            for runner, unit in list(worker.in_flight.items()):
                self.settle(worker, runner, unit, may_retry=False)
                self.give_up(unit, reason)
            worker.in_flight.clear()
        if self.scheduler is not None:
            for unit in self.scheduler.drop_queued():
                self.give_up(unit, reason)

    def give_up(self, unit: Unit, reason: str) -> None:
        """A unit that will not run (or not to its end): listed, with why."""
        if self.scheduler is not None:
            self.scheduler.finished(unit)
        if unit.retry_of:   # its tests ran and failed: that stands
            self.report_last_runs([t for t in unit.tests if t not in unit.exclude])
            return
        where = f" ({part_name(unit.part, unit.parts)})" if unit.parts > 1 else ""
        not_run = events.NotRun(unit.file, reason + where)
        self.not_run.append(not_run)
        self.emit(not_run)   # as it happens (a CI server shows it at once); again at the end

    # --- the end ---------------------------------------------------------------------------

    def finish(self) -> int:
        self.counts["warnings"] += sum(self.import_warnings.values())
        self.list_unreported_tests()
        self.record_history()
        self.report_coverage()
        code = self.end_framework_session(self.exit_code())
        counts = tuple((name, self.counts[name]) for name in OUTCOME_ORDER if self.counts[name])
        counts += tuple(sorted((n, c) for n, c in self.counts.items()
                               if n not in OUTCOME_ORDER and c))
        self.emit(events.BuildFinished(code, time.monotonic() - self.started, counts,
                                       tuple(self.not_run), self.end_message()))
        self.reporters.close()
        return code

    def end_framework_session(self, code: int) -> int:
        """pytest's session in the master ends with the build's exit code: its summary (said
        only when the tests ran), and the code after its plugins' gates."""
        if isinstance(self.controller, NoController):
            if self.controller.reason and self.scheduler is not None:
                self.emit(events.Output("master", f"medusa: pytest's session summary (plugins' "
                                                  f"reports, warnings) is off: the master "
                                                  f"could not configure pytest: "
                                                  f"{self.controller.reason}\n"))
            return code
        with exits.exit_raises():   # a conftest's pytest_sessionfinish is an error then
            summary = self.controller.finish(code)
        if self.scheduler is None:
            return code
        if summary.text.strip():
            self.emit(events.FrameworkSummary(summary.text, summary.short_summary))
        self.framework_reason = summary.reason
        return summary.exit_code

    def list_unreported_tests(self) -> None:
        """Nothing is lost: a test the worker collected that has no result (and whose file
        is not listed as not run already) is listed as not run, with its name."""
        if self.suite is None or self.suite.tests is None or self.settings.dry_run \
                or self.stop_message or self.stopped or self.interrupted or self.internal_error:
            return
        listed = {not_run.file for not_run in self.not_run}
        suite = self.in_shard(self.suite)   # other shards' files are other jobs' to report
        assert suite.tests is not None
        for file, tests in zip(suite.files, suite.tests):
            seen = self.reported.get(file, set())
            missing = [test for test in tests if test not in seen
                       and not any(other.startswith(test + " ") for other in seen)]  # subtests
            if missing and file not in listed:
                self.give_up(Unit(file), f"{len(missing)} of its {len(tests)} collected tests "
                                         f"had no result: {', '.join(missing[:3])}"
                                         + (", ..." if len(missing) > 3 else ""))

    def report_coverage(self) -> None:
        """--cov: combine what the workers sent and write the reports, before the end."""
        if self.settings.coverage is None or self.settings.dry_run:
            return
        parts = os.path.join(self.settings.report_dir, "coverage", "parts")
        if not os.path.isdir(parts) or not os.listdir(parts):
            self.emit(events.CoverageReport("", 0.0, (), "", "no coverage data came back "
                                            "from the workers"))
            return
        try:
            outcome = coverage_support.combine_and_report(
                self.folder.coverage_dir(), self.coverage_roots, self.settings.coverage_report,
                self.settings.coverage_branch)
        except Exception as exc:   # coverage's own errors (no data, a source it cannot read)
            self.emit(events.CoverageReport("", 0.0, (), "", f"coverage failed: {exc}"))
            return
        self.emit(events.CoverageReport(outcome.text, outcome.total, outcome.written,
                                        outcome.data_file))

    def record_history(self) -> None:
        """Timings of the files that ran to their end, all parts of them. Not under
        --shard: the other jobs of the build cut from the same history (and may run
        after this one, in this checkout)."""
        if self.history_path is None or self.scheduler is None or self.settings.dry_run \
                or self.settings.shard is not None:
            return
        now = time.time()
        news = {}
        for file, parts in self.finished_parts.items():
            if len(parts) != parts[0][0].parts or file in self.untimed_files:
                continue
            parts.sort(key=lambda done: done[0].part)
            news[file] = history.FileTiming(
                seconds=sum(done.duration for _, done in parts),
                failed=file in self.failed_files, seen=now,
                tests=tuple(timing for _, done in parts for timing in done.timings))
        if news:
            try:
                history.record(self.history_path, news, now)
            except OSError as exc:   # a read-only checkout still gets its build
                self.emit(events.Output("master", f"medusa: could not save the timing "
                                                  f"history to {self.history_path}: {exc}\n"))

    def exit_code(self) -> int:
        if self.internal_error:
            return 3
        if self.settings.dry_run and self.scheduler is not None:
            return 0
        if self.interrupted:
            return 2
        if self.stopped is not None:
            return self.stopped.exit_code
        if self.scheduler is None:
            if self.startup_failure:
                return self.startup_failure.exit_code
            # every worker was lost before it began: ssh refused, no such python there...
            # the environment's problem, said in the worker_lost lines; a crash of ours
            # in a worker is a WorkerStartupFailure with code 3
            return 4 if self.workers and not any(w.began for w in self.workers) else 3
        if self.counts["failed"] or self.counts["error"] or self.not_run or self.hook_failures:
            return 1
        tests = sum(c for n, c in self.counts.items() if n not in ("deselected", "warnings"))
        return 5 if tests == 0 else 0

    def end_message(self) -> str:
        if self.internal_error:
            return "internal error"
        if self.settings.dry_run:
            return "dry run: nothing was run"
        if self.interrupted:
            return "interrupted"
        if self.stopped is not None:
            return f"stopped: {self.stopped.reason}"
        if self.stop_message:
            return self.stop_message
        if self.scheduler is None:
            return "no worker started" if self.startup_failure is None else "the worker could not start"
        if not self.scheduler.files:
            return "no tests found"
        if self.framework_reason:
            return self.framework_reason
        if self.hook_failures:   # the tests may all have passed: say why the build failed
            return "environment hook failed: " + ", ".join(
                f"{h.hook} on {h.worker}" + ("" if h.runner is None else f"/{h.runner}")
                for h in self.hook_failures)
        return ""

    def emit(self, event: object) -> None:
        self.reporters.emit(event)


# numbers kept for the runners of a worker whose host decides how many it has (auto)
AUTO_RUNNER_NUMBERS = 1000


def _runner_numbering(workers: tuple[WorkerSpec, ...], name: str) -> dict[str, int]:
    """Where a worker's runner numbers start (gw<N> to xdist-aware plugins: unique in the
    build), and about how many runners the others have. With one worker: gw0 to gw<n-1>,
    as under `pytest -n n`."""
    first = others = 0
    before = True
    for spec in workers:
        if spec.name == name:
            before = False
            continue
        first += (spec.runners or AUTO_RUNNER_NUMBERS) if before else 0
        others += spec.runners or os.cpu_count() or 1
    return {"first_runner": first, "other_runners": others}


def _all_tests(begin: messages.WorkerBegin) -> set[str]:
    return set(begin.files) | {test for tests in begin.tests or () for test in tests}


def _without_report_dir(spec: WorkerSpec, settings: BuildSettings) -> WorkerSpec:
    """An earlier build's logs and artifacts are not copied to a remote worker."""
    inside = os.path.relpath(os.path.abspath(settings.report_dir), os.path.abspath(settings.cwd))
    if inside.startswith(".."):
        return spec
    return dataclasses.replace(spec, exclude=(*spec.exclude, inside.replace(os.sep, "/") + "/*"))


def _in_tree(path: str, root: str) -> str:
    """A file of the project as every worker can find it: relative to the tree it runs in
    (the same here and, synced, on an ssh worker's host); a file outside stays absolute."""
    if not path:
        return path
    relative = os.path.relpath(path, root)
    return path if relative.startswith("..") else relative
