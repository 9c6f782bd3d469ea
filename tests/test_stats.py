"""medusa.stats: what `--local auto` means. The decision is checked with numbers for
machines we do not have (containers, busy hosts, small memory), the readers on this one,
including under a one-CPU affinity mask in a child process."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medusa import stats  # noqa: E402
from medusa.stats import GiB, MiB, RUNNER_MEMORY_BYTES  # noqa: E402


def decide(cpus=2, host_cpus=None, available=16 * GiB, load=0.0, busy=None):
    detail = stats.describe_cpus(cpus, None)
    return stats.decide(cpus, detail, host_cpus or cpus, available, load, busy)


# ---- the decision ------------------------------------------------------------------------

def test_idle_host_runs_one_runner_per_cpu_and_says_so():
    capacity = decide(cpus=2, available=21.3 * GiB, load=0.4)
    assert capacity.runners == 2
    assert capacity.reason == ("auto: 2 usable CPUs (affinity 2, no cgroup quota), "
                               "21.3 GiB available, load 0.4")
    assert capacity.memory_runners == int(21.3 * GiB) // RUNNER_MEMORY_BYTES
    assert capacity.busy is None


def test_load_from_other_work_takes_cpus_away():
    capacity = decide(cpus=2, load=1.9, busy=1.8)
    assert capacity.runners == 1
    assert capacity.reason == "auto: 1 runner: load average 1.9 on 2 CPUs (1.8 busy now)"


def test_a_lagging_load_average_of_work_that_ended_costs_nothing():
    # the previous build's runners still show in the 1-minute average; the sample of now
    # shows idle CPUs
    capacity = decide(cpus=2, load=1.9, busy=0.1)
    assert capacity.runners == 2
    assert capacity.reason.startswith("auto: 2 usable CPUs")


@pytest.mark.parametrize("load, taken", [(0.0, 0), (0.74, 0), (0.75, 1), (1.2, 1), (1.8, 2),
                                         (7.9, 8)])
def test_a_cpu_counts_as_taken_once_three_quarters_busy(load, taken):
    assert stats.cpus_taken(load) == taken


def test_the_busy_sample_caps_the_load_but_never_raises_it():
    assert stats.cpus_taken(0.5, busy=2.0) == 0
    assert stats.cpus_taken(2.0, busy=0.9) == 1


def test_load_is_compared_with_the_whole_host_not_with_our_share():
    # a 2-CPU container on a 64-CPU host whose load is 40: 24 CPUs are idle
    assert decide(cpus=2, host_cpus=64, load=40.0, busy=40.0).runners == 2
    # the same host nearly full: only one left
    capacity = decide(cpus=2, host_cpus=64, load=63.0, busy=63.0)
    assert capacity.runners == 1
    assert "load average 63.0 on 64 CPUs" in capacity.reason


def test_memory_limits_runners_and_names_the_memory():
    capacity = decide(cpus=8, available=GiB)
    assert capacity.runners == GiB // RUNNER_MEMORY_BYTES == 3
    assert capacity.reason == ("auto: 3 runners: 1.0 GiB available at 300 MiB per runner "
                               "(8 usable CPUs)")


def test_never_fewer_than_one_runner():
    capacity = decide(cpus=2, available=10 * MiB, load=12.0, busy=12.0)
    assert capacity.runners == 1
    assert capacity.memory_runners == 0


def test_unknown_memory_does_not_limit():
    capacity = decide(cpus=4, available=None)
    assert (capacity.runners, capacity.memory_runners) == (4, None)
    assert "memory unknown" in capacity.reason


def test_pool_counts_cpus_and_memory_but_not_the_load():
    # the governor counts other builds' runners itself; their load must not count twice
    assert decide(cpus=8, load=6.0, busy=6.0).pool == 8
    assert decide(cpus=8, available=GiB).pool == 3


def test_capacity_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        decide().runners = 5


@pytest.mark.parametrize("affinity, quota, cpus", [(8, None, 8), (8, 1.5, 2), (8, 0.2, 1),
                                                   (2, 4.0, 2), (0, None, 1)])
def test_cpu_count_from_affinity_and_quota(affinity, quota, cpus):
    assert stats.cpu_count_from(affinity, quota) == cpus


def test_available_memory_is_the_tighter_of_host_and_cgroup():
    assert stats.available_memory(8 * GiB, None) == 8 * GiB
    assert stats.available_memory(8 * GiB, GiB) == GiB
    assert stats.available_memory(None, None) is None


# ---- cgroups, from file contents -----------------------------------------------------------

def mountinfo_line(mount_point: Path, fstype: str, options: str, root: str = "/") -> str:
    return f"35 31 0:32 {root} {mount_point} rw,relatime - {fstype} {fstype} rw,{options}"


def test_v1_memory_hierarchy_walks_from_our_cgroup_up_to_the_mount(tmp_path):
    memory = tmp_path / "memory"
    (memory / "process_api" / "abc").mkdir(parents=True)
    mountinfo = "\n".join([mountinfo_line(tmp_path / "cpu", "cgroup", "cpu"),
                           mountinfo_line(memory, "cgroup", "memory")])
    proc_cgroup = "4:memory:/process_api/abc\n1:cpu:/\n0::/\n"
    assert stats.cgroup_dirs_from(mountinfo, proc_cgroup, "memory") == [
        memory / "process_api" / "abc", memory / "process_api", memory]
    assert stats.cgroup_dirs_from(mountinfo, proc_cgroup, "cpu") == [tmp_path / "cpu"]


def test_v2_and_a_cgroup_namespace(tmp_path):
    (tmp_path / "user.slice" / "build").mkdir(parents=True)
    mountinfo = mountinfo_line(tmp_path, "cgroup2", "nsdelegate")
    assert stats.cgroup_dirs_from(mountinfo, "0::/user.slice/build\n", "memory") == [
        tmp_path / "user.slice" / "build", tmp_path / "user.slice", tmp_path]
    # inside a namespace our cgroup is the mount's root: only the mount is ours
    assert stats.cgroup_dirs_from(mountinfo, "0::/\n", "cpu") == [tmp_path]
    # a path that does not resolve below the mount: fall back to the mount
    assert stats.cgroup_dirs_from(mountinfo, "0::/elsewhere\n", "cpu") == [tmp_path]


def write(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("_", ".", 1)).write_text(text)
    return directory


def test_cpu_quota_v1_v2_and_the_tightest_of_the_chain(tmp_path):
    v2 = write(tmp_path / "v2", cpu_max="150000 100000\n")
    v2_free = write(tmp_path / "v2free", cpu_max="max 100000\n")
    v1 = write(tmp_path / "v1", cpu_cfs_quota_us="50000\n", cpu_cfs_period_us="100000\n")
    v1_free = write(tmp_path / "v1free", cpu_cfs_quota_us="-1\n", cpu_cfs_period_us="100000\n")
    assert stats.cpu_quota_in([v2]) == 1.5
    assert stats.cpu_quota_in([v1]) == 0.5
    assert stats.cpu_quota_in([v2_free, v1_free, tmp_path / "missing"]) is None
    assert stats.cpu_quota_in([v2, v1_free, v1]) == 0.5


def test_memory_headroom_counts_usage_without_inactive_page_cache(tmp_path):
    v2 = write(tmp_path / "v2", memory_max=str(2 * GiB), memory_high="max",
               memory_current=str(GiB), memory_stat=f"anon 1\ninactive_file {256 * MiB}\n")
    assert stats.memory_headroom_in([v2]) == GiB + 256 * MiB
    v2_high = write(tmp_path / "v2high", memory_max="max", memory_high=str(GiB),
                    memory_current=str(512 * MiB), memory_stat="inactive_file 0\n")
    assert stats.memory_headroom_in([v2_high]) == 512 * MiB
    v1 = write(tmp_path / "v1", memory_limit_in_bytes=str(GiB),
               memory_usage_in_bytes=str(GiB + MiB), memory_stat="total_inactive_file 0\n")
    assert stats.memory_headroom_in([v1]) == 0          # over the limit: nothing left


def test_unlimited_memory_is_no_limit(tmp_path):
    v1 = write(tmp_path / "v1", memory_limit_in_bytes="9223372036854771712\n",
               memory_usage_in_bytes=str(GiB))
    v2 = write(tmp_path / "v2", memory_max="max\n", memory_current=str(GiB))
    assert stats.memory_headroom_in([v1, v2, tmp_path / "missing"]) is None


# ---- this machine ------------------------------------------------------------------------

def test_the_readers_on_this_machine():
    capacity = stats.decide_auto_runners()
    affinity = len(os.sched_getaffinity(0))
    assert 1 <= capacity.cpus <= affinity
    if stats.cgroup_cpu_quota() is None:
        assert capacity.cpus == affinity
    assert 1 <= capacity.runners <= capacity.cpus
    assert capacity.reason.startswith("auto: ")
    assert capacity.load == pytest.approx(os.getloadavg()[0], abs=1.0)
    available = stats.read_available_memory()
    assert 0 < available <= psutil.virtual_memory().total


def run_in_child(code: str) -> dict:
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_auto_is_one_runner_under_a_one_cpu_affinity_mask():
    # in a child, so that this process keeps its CPUs
    found = run_in_child(
        "import json, os\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from medusa import stats\n"
        "capacity = stats.decide_auto_runners()\n"
        "print(json.dumps({'runners': capacity.runners, 'cpus': capacity.cpus,\n"
        "                  'reason': capacity.reason}))\n")
    assert found["runners"] == found["cpus"] == 1
    assert "affinity 1" in found["reason"] or "1 runner" in found["reason"], found


def test_without_psutil_proc_gives_the_same_numbers():
    # psutil is a test extra, not an install requirement of medusa
    found = run_in_child(
        "import json, sys\n"
        "sys.modules['psutil'] = None   # import psutil now raises ImportError\n"
        "from medusa import stats\n"
        "capacity = stats.decide_auto_runners()\n"
        "print(json.dumps({'runners': capacity.runners, 'cpus': capacity.cpus,\n"
        "                  'available': stats.read_host_available(),\n"
        "                  'busy': stats.read_busy_cpus(0.05)}))\n")
    assert 1 <= found["runners"] <= found["cpus"]
    assert found["available"] == pytest.approx(psutil.virtual_memory().available, rel=0.2)
    assert 0 <= found["busy"] <= os.cpu_count()


def test_proc_files_are_parsed(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683652 kB\nMemAvailable:    1048576 kB\n")
    assert stats._meminfo_available(meminfo) == GiB
    proc_stat = tmp_path / "stat"
    proc_stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    assert stats._cpu_ticks(proc_stat) == (150, 1000)
    assert stats._meminfo_available(tmp_path / "missing") is None


def test_most_runners_is_the_lower_of_memory_and_the_process_limit():
    floor = stats.RUNNER_FLOOR_BYTES
    assert stats.most_runners(100 * floor, None, 0)[0] == 100
    most, why = stats.most_runners(100 * floor, 1000, 950)
    assert most == 1000 - 950 - stats.SPARE_PROCESSES or most == 1, (most, why)
    assert "limit of 1000 processes" in why
    assert stats.most_runners(None, 10_000, 100) == (10_000 - 100 - stats.SPARE_PROCESSES,
                                                     "a limit of 10000 processes, 100 of yours running")
    assert stats.most_runners(None, None, 5) == (None, "")
