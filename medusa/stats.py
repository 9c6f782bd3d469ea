"""What this machine can give a build.

`decide_auto_runners()` is what `--local auto` means: the CPUs this process may really
use (os.cpu_count() reports the host's CPUs even where CPU affinity or a container's
cgroup quota allows fewer), limited by the memory
this process may still use and by CPUs that other work keeps busy, with the reason.

Pure helpers (`decide`, `cpu_count_from`, `cgroup_dirs_from`, ...) take measured numbers
or file contents and return a decision, so tests can feed them any machine; the thin
`read_*` functions measure this one.

Also what the report folder shows of processes and hosts: `FileMeter` measures each file
in its runner (time, CPU, peak memory, I/O, threads, children left behind) and
`HostSampler` the worker's machine over time.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from medusa.messages import FileStats, HostSample

MiB = 1024 ** 2
GiB = 1024 ** 3

# A runner is forked from a worker that has already loaded the framework, so the
# interpreter, pytest and the project's imports are shared copy-on-write. What a runner
# adds is the pages it dirties (refcount updates touch shared objects, which gc.freeze()
# limits), its collected tests and what the tests themselves allocate: tens of MiB for a
# small suite, a few hundred for a Django-sized one. 300 MiB is the cautious end of that:
# on a laptop with 16 GiB free it never limits, on a 1 GiB container it keeps a 2-CPU
# quota from starting runners that would be OOM-killed halfway through the suite.
RUNNER_MEMORY_BYTES = 300 * MiB

# A CPU counts as taken by other work once the load keeps it three-quarters busy. Below
# that a runner on it still gets most of it, and the load average's own noise (a shell,
# a cron job, processes waiting on I/O, which Linux counts too) does not cost a runner.
LOAD_SLACK = 0.25

# The load average lags: a build that ended 30 s ago still shows as load 0.8 per runner
# (it decays with a 1-minute time constant). So when the load would cost runners, CPU
# use is sampled for this long, and only work that is still running counts.
BUSY_SAMPLE_SECONDS = 0.1

# cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit number.
UNLIMITED_BYTES = 2 ** 60

CGROUP_MOUNT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Capacity:
    runners: int                 # what `--local auto` starts
    reason: str                  # one line for the console: the limiting factor first
    cpus: int                    # usable CPUs (affinity, cgroup quota)
    memory_runners: int | None   # runners the available memory holds; None: not measured
    load: float                  # 1-minute load average of the host
    busy: float | None = None    # CPUs busy right now; sampled only when the load was high

    @property
    def pool(self) -> int:
        """Runner slots this host offers all medusa builds together: CPUs and memory, but
        not the load, because the governor counts the other builds' runners itself (their
        load would otherwise be counted twice)."""
        return max(1, min(self.cpus, self.memory_runners if self.memory_runners is not None
                          else self.cpus))


# ---- pure decisions -------------------------------------------------------------------

def cpu_count_from(affinity: int, quota: float | None) -> int:
    """CPUs to use: the affinity mask, cut down by a cgroup quota (rounded up: a quota of
    1.5 CPUs keeps two runners busy most of the time)."""
    if quota is not None and quota < affinity:
        return max(1, math.ceil(quota))
    return max(1, affinity)


def describe_cpus(affinity: int, quota: float | None) -> str:
    limit = "no cgroup quota" if quota is None else f"cgroup quota {quota:g}"
    return f"affinity {affinity}, {limit}"


def memory_runners_for(available: int | None, per_runner: int = RUNNER_MEMORY_BYTES) -> int | None:
    return None if available is None else max(0, available) // per_runner


def available_memory(host_available: int | None, cgroup_headroom: int | None) -> int | None:
    """What this process may still allocate: the host's free memory, or less where a
    cgroup limit leaves less."""
    known = [value for value in (host_available, cgroup_headroom) if value is not None]
    return min(known) if known else None


def cpus_taken(load: float, busy: float | None = None) -> int:
    """Whole CPUs other work keeps busy. `busy` (a sample of now) caps the load average,
    which still remembers work that has ended."""
    other = load if busy is None else min(load, busy)
    return max(0, math.floor(other + LOAD_SLACK))


def load_may_limit(cpus: int, host_cpus: int, load: float) -> bool:
    """Whether the load average alone would cost runners (then it is worth sampling)."""
    return host_cpus - cpus_taken(load) < cpus


def decide(cpus: int, cpu_detail: str, host_cpus: int, available: int | None,
           load: float, busy: float | None = None) -> Capacity:
    """runners = max(1, min(usable CPUs, host CPUs - CPUs taken by others, memory runners)).

    The load is compared with the host's CPU count, not with ours: the load average is
    host-wide, so in a 2-CPU container on a 64-CPU host a load of 40 leaves our 2 free.
    """
    memory = memory_runners_for(available)
    limits = [(cpus, "cpus"), (host_cpus - cpus_taken(load, busy), "load")]
    if memory is not None:
        limits.append((memory, "memory"))
    lowest, factor = min(limits, key=lambda limit: limit[0])   # first wins a tie: CPUs
    runners = max(1, lowest)
    if factor == "cpus":
        memory_text = ("memory unknown" if available is None
                       else f"{available / GiB:.1f} GiB available")
        reason = (f"auto: {cpus} usable CPU{_s(cpus)} ({cpu_detail}), {memory_text}, "
                  f"load {load:.1f}")
    elif factor == "load":
        now = "" if busy is None else f" ({busy:.1f} busy now)"
        reason = (f"auto: {runners} runner{_s(runners)}: load average {load:.1f} on "
                  f"{host_cpus} CPUs{now}")
    else:
        reason = (f"auto: {runners} runner{_s(runners)}: {(available or 0) / GiB:.1f} GiB "
                  f"available at {RUNNER_MEMORY_BYTES // MiB} MiB per runner "
                  f"({cpus} usable CPU{_s(cpus)})")
    return Capacity(runners, reason, cpus, memory, load, busy)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


# ---- cgroups: which directories limit this process ------------------------------------

def cgroup_dirs_from(mountinfo: str, proc_cgroup: str, controller: str) -> list[Path]:
    """The cgroup directories that limit this process for `controller` ("memory", "cpu"),
    its own first, then each parent up to the hierarchy's mount: a limit on any of them
    applies. v1 hierarchies that carry the controller and the v2 hierarchy both count;
    a directory without the limit files simply adds nothing."""
    own = _own_cgroups(proc_cgroup)
    dirs: list[Path] = []
    for mount_root, mount_point, fstype, options in _cgroup_mounts(mountinfo):
        if fstype == "cgroup2":
            path = own.get("")
        elif controller in options:
            path = next((own[key] for key in own if controller in key.split(",")), None)
        else:
            continue
        dirs += _dirs_up(Path(mount_point), mount_root, path)
    return dirs


def _cgroup_mounts(mountinfo: str) -> list[tuple[str, str, str, list[str]]]:
    """(root, mount point, fstype, super options) of each cgroup mount in mountinfo."""
    mounts = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        separator = fields.index("-")
        fstype = fields[separator + 1] if len(fields) > separator + 1 else ""
        if fstype in ("cgroup", "cgroup2") and len(fields) > separator + 3:
            mounts.append((_unescape(fields[3]), _unescape(fields[4]), fstype,
                           fields[separator + 3].split(",")))
    return mounts


def _own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """controllers ("memory", "cpu,cpuacct"; "" for v2) -> this process's cgroup path."""
    own = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            own[parts[1]] = parts[2]
    return own


def _dirs_up(mount_point: Path, mount_root: str, path: str | None) -> list[Path]:
    """From our cgroup's directory up to the mount point. Inside a cgroup namespace (or
    where the path does not resolve) only the mount point is ours to read."""
    leaf = mount_point
    if path is not None:
        relative = os.path.relpath(path, mount_root)
        if relative != ".." and not relative.startswith("../"):
            candidate = mount_point / relative
            if candidate.is_dir():
                leaf = candidate
    dirs = [leaf]
    while dirs[-1] != mount_point and mount_point in dirs[-1].parents:
        dirs.append(dirs[-1].parent)
    return dirs


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def cpu_quota_in(dirs: list[Path]) -> float | None:
    """The smallest CFS quota (in CPUs) set on any of the directories; None: no limit."""
    quotas = [quota for quota in map(_cpu_quota_of, dirs) if quota is not None]
    return min(quotas) if quotas else None


def _cpu_quota_of(directory: Path) -> float | None:
    try:                                     # v2: "max 100000" or "150000 100000"
        quota, period = (directory / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:                                     # v1: quota -1 means no limit
        quota_us = int((directory / "cpu.cfs_quota_us").read_text())
        period_us = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def memory_headroom_in(dirs: list[Path]) -> int | None:
    """Bytes the tightest memory limit on any of the directories still allows; None: no
    limit. Usage is counted as the kernel's OOM killer sees it: without the inactive page
    cache, which it reclaims before killing anything."""
    rooms = [room for room in map(_memory_headroom_of, dirs) if room is not None]
    return max(0, min(rooms)) if rooms else None


def _memory_headroom_of(directory: Path) -> int | None:
    v2_limits = [_read_bytes(directory / name) for name in ("memory.max", "memory.high")]
    v2 = [limit for limit in v2_limits if limit is not None]
    if v2:
        limit, usage = min(v2), _read_bytes(directory / "memory.current")
        inactive = _stat_value(directory / "memory.stat", "inactive_file")
    else:
        limit = _read_bytes(directory / "memory.limit_in_bytes")
        usage = _read_bytes(directory / "memory.usage_in_bytes")
        inactive = _stat_value(directory / "memory.stat", "total_inactive_file")
    if limit is None or limit >= UNLIMITED_BYTES or usage is None:
        return None
    return limit - max(0, usage - (inactive or 0))


def _read_bytes(path: Path) -> int | None:
    """A limit or usage file: a number, or None for "max", a missing or unreadable file."""
    try:
        text = path.read_text().strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        return None


def _stat_value(path: Path, key: str, separator: str | None = " ") -> int | None:
    """The number after `key` in a "key value" file (memory.stat, /proc/meminfo)."""
    try:
        for line in path.read_text().splitlines():
            fields = line.split(separator)
            if len(fields) >= 2 and fields[0] == key:
                return int(fields[1])
    except (OSError, ValueError):
        pass
    return None


# ---- measuring this machine -----------------------------------------------------------

def read_cgroup_dirs(controller: str) -> list[Path]:
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        proc_cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:                          # not Linux, or /proc not mounted
        return [CGROUP_MOUNT, CGROUP_MOUNT / controller]
    return cgroup_dirs_from(mountinfo, proc_cgroup, controller)


def read_affinity() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cgroup_cpu_quota() -> float | None:
    """CPUs allowed by the cgroup's CFS quota, or None where there is no limit."""
    return cpu_quota_in(read_cgroup_dirs("cpu"))


# psutil is not among medusa's install requirements (setup.cfg): where it is missing,
# Linux's /proc gives the same numbers, and elsewhere they are simply not measured.

def read_available_memory() -> int | None:
    return available_memory(read_host_available(), memory_headroom_in(read_cgroup_dirs("memory")))


def read_host_available() -> int | None:
    try:
        import psutil
    except ImportError:
        return _meminfo_available()
    try:
        return psutil.virtual_memory().available
    except (OSError, RuntimeError):          # psutil cannot read /proc/meminfo
        return None


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    value = _stat_value(path, "MemAvailable:", separator=None)
    return None if value is None else value * 1024          # the file counts in kB


def read_load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:                          # no load average on this platform
        return 0.0


def read_busy_cpus(seconds: float = BUSY_SAMPLE_SECONDS) -> float | None:
    """CPUs busy over the next `seconds` (this process sleeps meanwhile, so it is not
    counted); None where CPU times cannot be read."""
    try:
        import psutil
    except ImportError:
        return _proc_stat_busy(seconds)
    return psutil.cpu_percent(interval=seconds) / 100 * (os.cpu_count() or 1)


def _proc_stat_busy(seconds: float, path: Path = Path("/proc/stat")) -> float | None:
    before = _cpu_ticks(path)
    time.sleep(seconds)
    after = _cpu_ticks(path)
    if before is None or after is None or after[1] <= before[1]:
        return None
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total * (os.cpu_count() or 1)


def _cpu_ticks(path: Path) -> tuple[int, int] | None:
    """(busy, total) ticks of all CPUs: idle and iowait are not busy; guest time is
    already counted in user time, so it is left out of the total."""
    try:
        ticks = [int(field) for field in path.read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    total = sum(ticks)
    return total - ticks[3] - ticks[4], total


# The least a runner can cost: a forked interpreter's own pages, before any test runs.
# An explicit `--local N` may ask for more than `auto` would start (tests that wait on
# I/O), but not for more runners than the host can hold at this much each.
RUNNER_FLOOR_BYTES = 32 * MiB
# Processes kept free for everything else of the user (a shell, ssh, the tests' own).
SPARE_PROCESSES = 64


def most_runners(available: int | None, process_limit: int | None,
                 processes: int) -> tuple[int | None, str]:
    """The most runners a host can hold, and what limits it (None: nothing known)."""
    limits = []
    if available is not None:
        limits.append((max(1, available // RUNNER_FLOOR_BYTES),
                       f"{available / GiB:.1f} GiB available at {RUNNER_FLOOR_BYTES // MiB} "
                       f"MiB per runner at least"))
    if process_limit is not None:
        limits.append((max(1, process_limit - processes - SPARE_PROCESSES),
                       f"a limit of {process_limit} processes, {processes} of yours running"))
    if not limits:
        return None, ""
    return min(limits, key=lambda limit: limit[0])


def _owned(pid: str) -> bool:
    """The process is this user's (the process limit counts a user's own)."""
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.getuid()
    except OSError:
        return False


def read_most_runners() -> tuple[int | None, str]:
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    limit = None if soft == resource.RLIM_INFINITY else soft
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        limit = pid_max if limit is None else min(limit, pid_max)
        running = sum(1 for name in os.listdir("/proc") if name.isdigit() and _owned(name))
    except (OSError, ValueError):
        running = 0
    return most_runners(read_available_memory(), limit, running)


def decide_auto_runners(sample_seconds: float = BUSY_SAMPLE_SECONDS) -> Capacity:
    """What `--local auto` means on this host now, and why."""
    affinity, quota = read_affinity(), cgroup_cpu_quota()
    cpus = cpu_count_from(affinity, quota)
    host_cpus = max(os.cpu_count() or 1, cpus)
    load = read_load()
    busy = read_busy_cpus(sample_seconds) if load_may_limit(cpus, host_cpus, load) else None
    return decide(cpus, describe_cpus(affinity, quota), host_cpus, read_available_memory(),
                  load, busy)


# ---- per file: how a runner's process fared (messages.FileStats) ------------------------
# Read straight from /proc: a handful of small reads per file, cheap enough to measure
# every file of a suite of tiny ones. Where /proc is missing (not Linux) psutil is used if
# it is installed, else only times are measured.

PROC_SELF = "/proc/self"


def _read_proc(path: str) -> bytes:
    """A small /proc file, without pathlib's and text decoding's cost (this runs twice
    per file in every runner)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ProcessCounters:
    at: float                 # time.monotonic()
    cpu_user: float
    cpu_system: float
    read_bytes: int
    write_bytes: int


def read_counters() -> ProcessCounters:
    times = os.times()   # children that ended (and were reaped) count: a test's subprocess
    read, written = _io_counters()
    return ProcessCounters(time.monotonic(), times.user + times.children_user,
                           times.system + times.children_system, read, written)


def _io_counters() -> tuple[int, int]:
    try:
        text = _read_proc(PROC_SELF + "/io")
    except OSError:
        return _psutil_io()
    return _field(text, b"rchar:"), _field(text, b"wchar:")


def _field(text: bytes, key: bytes) -> int:
    at = text.find(key)
    if at < 0:
        return 0
    return int(text[at + len(key):].split(None, 1)[0])


def _psutil_io() -> tuple[int, int]:
    try:
        import psutil
        io = psutil.Process().io_counters()
        return getattr(io, "read_chars", io.read_bytes), getattr(io, "write_chars", io.write_bytes)
    except (ImportError, AttributeError, OSError):
        return 0, 0


def reset_peak_memory() -> bool:
    """Start a new high-water mark of this process's RSS (Linux: clear_refs "5"); False
    where the kernel does not allow it (the peak is then the process's lifetime peak)."""
    try:
        fd = os.open(PROC_SELF + "/clear_refs", os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, b"5")
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def read_status() -> tuple[int, int]:
    """(peak RSS in bytes, threads) of this process."""
    try:
        text = _read_proc(PROC_SELF + "/status")
    except OSError:
        return _psutil_status()
    return _field(text, b"VmHWM:") * 1024, _field(text, b"Threads:")


def _psutil_status() -> tuple[int, int]:
    try:
        import psutil
        process = psutil.Process()
        memory = process.memory_info()
        return getattr(memory, "peak_wset", memory.rss), process.num_threads()
    except (ImportError, OSError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 0


def child_pids() -> set[int]:
    """This process's running children (each of its threads' children, from /proc)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(PROC_SELF + "/task")
    except OSError:
        return _psutil_children()
    for task in tasks:
        try:
            found.update(map(int, _read_proc(f"{PROC_SELF}/task/{task}/children").split()))
        except OSError:   # a thread that just ended, or no CONFIG_PROC_CHILDREN
            continue
    return found


def _psutil_children() -> set[int]:
    try:
        import psutil
        return {child.pid for child in psutil.Process().children()}
    except (ImportError, OSError):
        return set()


class _OpenProc:
    """/proc/self files kept open for the runner's life: pread at offset 0 makes the
    kernel write them anew, so a file costs no open or close (FileMeter runs for every
    file of a suite of tiny ones). None where a file cannot be opened."""

    def __init__(self) -> None:
        self.io = _open_proc(PROC_SELF + "/io", os.O_RDONLY)
        self.status = _open_proc(PROC_SELF + "/status", os.O_RDONLY)
        self.clear_refs = _open_proc(PROC_SELF + "/clear_refs", os.O_WRONLY)
        # the main thread's children; the other threads' are read only when there are
        # other threads
        self.children = _open_proc(f"{PROC_SELF}/task/{os.getpid()}/children", os.O_RDONLY)

    def counters(self) -> ProcessCounters:
        if self.io is None:
            return read_counters()
        times = os.times()
        text = os.pread(self.io, 4096, 0)
        return ProcessCounters(time.monotonic(), times.user + times.children_user,
                               times.system + times.children_system,
                               _field(text, b"rchar:"), _field(text, b"wchar:"))

    def reset_peak(self) -> bool:
        if self.clear_refs is None:
            return False
        try:
            os.write(self.clear_refs, b"5")
            return True
        except OSError:
            return False

    def peak_and_threads(self) -> tuple[int, int]:
        if self.status is None:
            return read_status()
        text = os.pread(self.status, 8192, 0)
        return _field(text, b"VmHWM:") * 1024, _field(text, b"Threads:")

    def child_pids(self, threads: int) -> set[int]:
        if self.children is None or threads != 1:
            return child_pids()
        return set(map(int, os.pread(self.children, 65536, 0).split()))


def _open_proc(path: str, flags: int) -> int | None:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError:
        return None


class FileMeter:
    """Measures one file at a time in a runner: start() when it is handed out, stop() at
    its end. Made in the runner (its /proc/self is the runner's)."""

    def __init__(self) -> None:
        self.proc: _OpenProc | None = None
        self.before: ProcessCounters | None = None
        # children running when the file starts are not its own; between files a runner
        # starts none, so the last file's end tells (one scan of /proc per file, not two)
        self.children: set[int] | None = None
        self.peak_is_file = False

    def start(self) -> None:
        if self.proc is None:
            self.proc = _OpenProc()
        self.peak_is_file = self.proc.reset_peak()
        if self.children is None:
            self.children = child_pids()
        self.before = self.proc.counters()

    def stop(self) -> FileStats | None:
        if self.before is None or self.proc is None:
            return None
        after = self.proc.counters()
        peak, threads = self.proc.peak_and_threads()
        children = self.proc.child_pids(threads)
        left = tuple(sorted(children - (self.children or set())))
        self.children = children
        before, self.before = self.before, None
        return FileStats(
            wall=after.at - before.at, cpu_user=after.cpu_user - before.cpu_user,
            cpu_system=after.cpu_system - before.cpu_system, peak_rss=peak,
            peak_is_file=self.peak_is_file, read_bytes=after.read_bytes - before.read_bytes,
            write_bytes=after.write_bytes - before.write_bytes, threads=threads,
            children_left=left)


# ---- per host: CPU, memory and load over time (messages.HostSample) ---------------------

class HostSampler:
    """Takes a HostSample every `every` seconds, when asked with `due()`."""

    def __init__(self, worker: str, every: float) -> None:
        self.worker = worker
        self.every = every
        self.next_at = time.monotonic()
        self.ticks = _cpu_ticks(Path("/proc/stat"))

    def due(self) -> HostSample | None:
        now = time.monotonic()
        if not self.every or now < self.next_at:
            return None
        self.next_at = now + self.every
        return self.sample()

    def sample(self) -> HostSample:
        ticks = _cpu_ticks(Path("/proc/stat"))
        percent = 0.0
        if ticks is not None and self.ticks is not None and ticks[1] > self.ticks[1]:
            percent = 100.0 * (ticks[0] - self.ticks[0]) / (ticks[1] - self.ticks[1])
        elif ticks is None:
            percent = _psutil_cpu_percent()
        self.ticks = ticks
        total, available = _memory_totals()
        return HostSample(self.worker, time.time(), round(percent, 1),
                          max(0, total - available), total, read_load())


def _memory_totals() -> tuple[int, int]:
    """(total, available) bytes of the host."""
    total = _stat_value(Path("/proc/meminfo"), "MemTotal:", separator=None)
    available = _meminfo_available()
    if total is not None and available is not None:
        return total * 1024, available
    try:
        import psutil
        memory = psutil.virtual_memory()
        return memory.total, memory.available
    except (ImportError, OSError):
        return 0, 0


def _psutil_cpu_percent() -> float:
    try:
        import psutil
        return psutil.cpu_percent(interval=None)
    except ImportError:
        return 0.0
