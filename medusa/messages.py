"""Everything that travels between master, worker and runner.

Each message is a small frozen dataclass; the wire carries nothing else. The flow is the
seed's (see the README of the original gem):

    worker -> master   Ping, InitializerStart/Output/Result (setup_worker), InitializerEnd,
                       WorkerBegin | WorkerStartupFailure, Heartbeat, Died
    runner -> worker -> master   InitializerStart/Output/Result (setup_runner)
    master -> worker   Configure, RunFile, NoMoreWork, StopTests, Shutdown
    runner -> worker -> master   RequestFile, Result (as ResultBatch), FileComplete, StopBuild
    worker -> master   RunnerDied  (a runner ended while it held a file)
    runner -> worker -> master   RunnerOutput  (pytest: its workeroutput, at its end)
    worker -> runner   RunFile, Shutdown

Configure is ours: the master hands a connected worker its settings over the
authenticated connection, so nothing about the build is on a command line.
Result, FileComplete, WorkerBegin, WorkerStartupFailure and RunnerDied are also events
that reporters receive unchanged (see events.py for the ones the master makes itself).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


# pytest hooks called in a worker or runner, for the controller session in the master to
# call again (drivers/pytest_controller.py): (kind, plain data), kind one of "logstart",
# "report" (pytest_report_to_serializable's), "warning", "logfinish"
FrameworkEvents = tuple[tuple[str, dict[str, object]], ...]


def event_name(message: object) -> str:
    """`FileComplete` -> `file_complete`: the name handlers and the JSON log use."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(message).__name__).lower()


# --- worker start-up -------------------------------------------------------------------

@dataclass(frozen=True)
class Ping:
    """First message of a worker: who it is."""
    worker: str
    host: str
    pid: int
    python: str


@dataclass(frozen=True)
class Configure:
    """The master's answer to Ping: what this worker is to do."""
    worker: str
    run_id: str
    runners: int | None           # None: decided on the worker's host (auto)
    driver: str
    paths: tuple[str, ...]
    framework_args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    max_host_runners: int | None = None   # the host-wide cap (governor.py), if given
    timeout: float | None = None          # seconds a test may run before it is killed
    max_replacements: int = 3             # runners it may replace, per runner slot
    environment: str = ""                 # the hooks file (environment.py), if any
    # the driver's own settings as (name, value) pairs, e.g. the command driver's
    # command template (drivers.DriverOptions; command_driver.CommandSettings)
    driver_options: tuple[tuple[str, str], ...] = ()
    # the report folder's parts (logs, statistics, artifacts, coverage: see below)
    log_level: str = ""                   # Python logging records also go to runner logs
    sample_every: float = 2.0             # seconds between HostSamples (0: none)
    artifact_limit: int = 100 * 1024 * 1024   # bytes shipped per test
    coverage: tuple[str, ...] | None = None   # measure these sources (() : the rootdir)
    coverage_branch: bool = False
    # the current folder goes first on sys.path of the worker and its runners, as
    # `python -m pytest` puts it there (medusa was started as `python -m medusa`)
    cwd_on_path: bool = False
    # runners are numbered across the build, for plugins that know pytest-xdist's
    # workers (gw0, gw1, ...): this worker's runner 0 is number `first_runner`, and the
    # other workers have about `other_runners` (PYTEST_XDIST_WORKER_COUNT)
    first_runner: int = 0
    other_runners: int = 0
    # the master holds a pytest controller session (drivers/pytest_controller.py): the
    # runners send it their pytest reports, and are pytest-xdist workers from the start
    # with these extra `config.workerinput` keys (its plugins' pytest_configure_node)
    controller: bool = False
    controller_reports: bool = False   # ... and its plugins read every test's reports
    workerinput: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class WorkerWaiting:
    """The worker waits for a runner slot of its host (other builds hold them all)."""
    worker: str
    reason: str


@dataclass(frozen=True)
class WorkerBegin:
    """The framework is loaded (and its session collected) and the runners are forked;
    `files` is what the worker found, in the order the framework would run them."""
    worker: str
    runners: int
    runners_reason: str   # why that many: "--local 4", "auto: 2 usable CPUs ..."
    rootdir: str
    framework: str
    files: tuple[str, ...]
    startup_seconds: float
    maxfail: int = 0      # stop handing out work after this many failures (0: never)
    # the test ids of each file, when the worker collected the whole session (pytest);
    # None: the runners find a file's tests as they run it
    tests: tuple[tuple[str, ...], ...] | None = None
    deselected: int = 0   # by that collection
    warnings: int = 0     # raised during that collection
    # that collection's warnings, for the master's controller session (FrameworkEvents)
    framework_events: FrameworkEvents = ()


@dataclass(frozen=True)
class WorkerStartupFailure:
    """The worker could not load the framework (bad conftest, unknown option, ...)."""
    worker: str
    message: str          # one line for the user
    detail: str           # the framework's own output or the traceback
    exit_code: int        # 4 for the user's mistakes, 3 for ours


# --- environment hooks (hooks.py) ---------------------------------------------------------

@dataclass(frozen=True)
class InitializerStart:
    """An environment hook begins (runner None: a worker hook)."""
    worker: str
    runner: int | None
    hook: str


@dataclass(frozen=True)
class InitializerOutput:
    """What the hook printed, its subprocesses included."""
    worker: str
    runner: int | None
    hook: str
    text: str


@dataclass(frozen=True)
class InitializerResult:
    worker: str
    runner: int | None
    hook: str
    ok: bool
    seconds: float
    message: str = ""     # one line: the exception
    detail: str = ""      # its traceback


@dataclass(frozen=True)
class InitializerEnd:
    """The worker's own set-up hooks are done (each runner runs its own as it starts)."""
    worker: str


# --- running ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestFile:
    """A runner's first request; after that, each FileComplete is also a request (one
    message less per file, which counts when files are small)."""
    runner: int


@dataclass(frozen=True)
class RunFile:
    runner: int
    file: str
    tests: tuple[str, ...] = ()     # only these test ids (a part of a split file)
    exclude: tuple[str, ...] = ()   # all but these (the last part of a split file)
    generation: int = 0   # which runner of that index it is for: the RunnerDied messages
                          # the master had of it. A RunFile sent to a runner that died
                          # meanwhile must not reach its replacement.


@dataclass(frozen=True)
class Attempt:
    """An earlier run of a test that failed, kept when the test was run again (--retries)."""
    outcome: str          # failed or error
    when: str
    duration: float
    message: str
    longrepr: str
    worker: str
    runner: int


@dataclass(frozen=True)
class Result:
    """One test's outcome, as pytest counts it (a failing teardown adds a second Result).

    With --retries, a test that failed is run again before it is reported; `attempts` are
    its earlier failed runs, oldest first. A test that passed on a retry has the outcome
    "flaky": it neither passed nor failed."""
    worker: str
    runner: int
    file: str
    test: str             # the framework's test id (pytest node id)
    outcome: str          # passed failed error skipped xfailed xpassed (or a plugin's own)
    when: str             # setup call teardown collect
    duration: float       # seconds, all phases of the test
    message: str = ""     # one line: the exception, or the skip reason
    longrepr: str = ""    # the full failure text (traceback)
    sections: tuple[tuple[str, str], ...] = ()   # captured output: (title, text)
    path: str = ""        # source file of the test, relative to the rootdir
    line: int = 0         # 1-based; 0 when unknown
    attempts: tuple[Attempt, ...] = ()
    # bytes [start, end) of its runner's log (report folder: logs/<worker>/<runner>.log)
    # written while it ran; () when the driver did not say when it started
    log: tuple[int, ...] = ()
    # the files it left in $MEDUSA_ARTIFACTS_DIR: names in that folder from the runner;
    # on the master, their paths in the report folder (artifacts/<test>/<name>)
    artifacts: tuple[str, ...] = ()
    # what the test recorded about itself (pytest's record_property): (name, value)
    properties: tuple[tuple[str, str], ...] = ()
    # pytest's record_xml_attribute: attributes of its JUnit testcase, (name, value)
    xml_attributes: tuple[tuple[str, str], ...] = ()
    # pytest's record_testsuite_property, called while it ran: (name, value)
    suite_properties: tuple[tuple[str, str], ...] = ()
    # what pytest's hooks said while it ran, for the master's controller session; the
    # master takes them out before reporters see the result
    framework_events: FrameworkEvents = ()


@dataclass(frozen=True)
class RunnerOutput:
    """Runner -> worker -> master as a runner's session ends: what a pytest-xdist worker
    sends its controller at the end (`config.workeroutput`: pytest-cov's data file, ...),
    and the hooks called after its last test."""
    worker: str
    runner: int
    workerid: str         # gw<N>
    output: dict[str, object]
    framework_events: FrameworkEvents = ()


@dataclass(frozen=True)
class TestStarted:
    """Runner -> worker, on the results pipe: which test runs now. The worker needs it
    to time tests out and to say which test a dead runner was running; it goes no
    further."""
    test: str
    log_at: int = -1    # the length of the runner's log as it started (logs.py); -1: no log


@dataclass(frozen=True)
class ResultBatch:
    """The worker relays the results its runners sent meanwhile in one message: a
    message per test would cost the master more than a small test takes."""
    results: tuple[Result, ...]


@dataclass(frozen=True)
class FileComplete:
    worker: str
    runner: int
    file: str
    duration: float       # wall seconds in the runner, collection included
    tests: int            # tests collected (after deselection)
    deselected: int = 0
    warnings: int = 0             # raised by its tests
    import_warnings: int = 0      # raised while it was collected (once per part, if split)
    timings: tuple[tuple[str, float], ...] = ()   # (test id, seconds) in the order run
    stopped: bool = False         # ended early, told to (StopTests): not all tests ran
    stats: FileStats | None = None   # how its runner's process fared (None: not measured)


@dataclass(frozen=True)
class StopBuild:
    """A runner asks to end the whole build: pytest.exit() or KeyboardInterrupt in a
    test, a node id that does not exist (a usage error, as in pytest)."""
    worker: str
    runner: int
    file: str
    reason: str
    exit_code: int


@dataclass(frozen=True)
class NoMoreWork:
    """Master -> worker, the answer to a runner's RequestFile when the queue is empty:
    that runner ends its session now, while the others finish their last files."""
    runner: int
    generation: int = 0   # as RunFile's


@dataclass(frozen=True)
class StopTests:
    """Master -> worker: --maxfail was reached, stop the tests that run now. Each busy
    runner ends its file at once (a signal interrupts the test it is in), says so with
    FileComplete(stopped=True) and ends its session as usual, so pytest still records
    the failures for --lf; a runner that does not stop in time is killed."""
    reason: str


@dataclass(frozen=True)
class Shutdown:
    """Worker -> runner: finish the session and exit. Master -> worker: stop now (abort)."""
    reason: str = ""


@dataclass(frozen=True)
class RunnerDied:
    """A runner ended without being asked to (crash, signal, os._exit, a timeout)."""
    worker: str
    runner: int
    file: str             # the file it held, or "" when idle
    reason: str           # "exit code 3", "killed by signal 9 (SIGKILL)", "timed out after 5 s"
    test: str = ""        # the test it was running ("": none, e.g. while importing)
    timed_out: bool = False   # killed by the worker for overrunning --timeout
    done: tuple[str, ...] = ()   # tests of that file whose results it had sent
    stacks: str = ""      # its Python stacks, when it was timed out
    last_words: str = ""  # what it wrote while running that test: a crash's traceback,
                          # pytest-timeout's stack dump (the end of it, at most LAST_WORDS)


@dataclass(frozen=True)
class Heartbeat:
    """Worker -> master when it has said nothing else for a while: a worker that stays
    silent for --worker-timeout is declared lost."""
    worker: str


@dataclass(frozen=True)
class Died:
    """Last message of a worker: all its runners are gone."""
    worker: str
    runners_lost: int = 0
    notes: tuple[str, ...] = field(default=())


# --- the report folder: logs, statistics, probes, artifacts, coverage ----------------------
# (report_folder.py writes what these carry; stats.py, artifacts.py, probes.py and
# coverage_support.py make them)

@dataclass(frozen=True)
class FileStats:
    """How a runner's process fared while it ran one file (part of FileComplete)."""
    wall: float           # seconds from RunFile to FileComplete
    cpu_user: float       # CPU seconds of the runner (and of its children that ended)
    cpu_system: float
    peak_rss: int         # bytes: the file's own peak (the kernel's high-water mark, reset
    peak_is_file: bool    # at its start); False: the runner's peak so far (no reset here)
    read_bytes: int       # through system calls: files, pipes, sockets (/proc/self/io)
    write_bytes: int
    threads: int          # threads of the runner at the file's end
    children_left: tuple[int, ...] = ()   # its child processes still running at the end


@dataclass(frozen=True)
class LogChunk:
    """Worker -> master: the next bytes of a runner's log (its stdout and stderr, and
    Python logging with --log-level), from `offset`. A replaced runner goes on in the
    same log."""
    worker: str
    runner: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class ArtifactChunk:
    """Runner -> worker -> master, before the test's Result: part of a file the test
    left in $MEDUSA_ARTIFACTS_DIR."""
    worker: str
    runner: int
    test: str
    name: str             # its path in the test's folder, "/"-separated
    offset: int
    data: bytes
    size: int             # of the whole file


@dataclass(frozen=True)
class HostSample:
    """Worker -> master every `sample_every` seconds: how busy its machine is."""
    worker: str
    at: float             # the worker's time.time()
    cpu_percent: float    # all CPUs of the host, since the last sample
    memory_used: int      # bytes (total - available)
    memory_total: int
    load: float           # 1-minute load average


@dataclass(frozen=True)
class ProbeSample:
    """One reading of a resource probe: a command of config.yml (worker "master") or a
    PROBES entry of environment.py (sampled by each worker)."""
    worker: str
    name: str
    at: float             # time.time() where it was taken
    value: float | None   # None: the probe failed (see error)
    unit: str = ""
    error: str = ""


@dataclass(frozen=True)
class CoverageFile:
    """Worker -> master before Died: one coverage data file of the worker or a runner."""
    worker: str
    name: str
    data: bytes
    rootdir: str          # the worker's folder: its paths are remapped to the master's

