"""medusa.governor with real processes: builds that start together share the host's slots
and never hold more than the pool between them, a killed build gives its slots back at
once, a waiting build gets the next slot that is freed, and the policy for how many
runners a worker starts."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medusa.governor import (  # noqa: E402
    DEFAULT_DIRECTORY, Governor, GovernorTimeout, default_directory, pool_size_from,
    runners_to_start)

# A child build: says it is ready, waits for the start signal, acquires, writes what it
# got, holds it. argv: directory pool wanted out go hold_seconds
BUILD = """
import json, os, sys, time
from pathlib import Path
from medusa.governor import Governor
directory, pool, wanted, out, go, hold = sys.argv[1:7]
Path(out + ".ready").touch()
while not os.path.exists(go):
    time.sleep(0.002)
waited = []
slots = Governor(Path(directory), int(pool)).acquire(int(wanted), on_wait=waited.append,
                                                    poll_seconds=0.02, timeout=30)
got, indices = time.time(), slots.indices
Path(out + ".held").write_text(json.dumps(indices))
time.sleep(float(hold))
released = time.time()
slots.release()
Path(out).write_text(json.dumps({"indices": indices, "got": got, "released": released,
                                 "waited": waited}))
"""


@pytest.fixture
def children():
    """Processes a test starts; killed (by pid) if the test fails before they end."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def start(children, code: str, *args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env,
                               stderr=subprocess.PIPE, text=True)
    children.append(process)
    return process


def wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.01)


def held_slots(directory: Path, upto: int) -> list[int]:
    """Slots some process holds, found by trying to lock each one without blocking (a
    free one is held for an instant only). Never creates a slot file."""
    held = []
    for index in range(upto):
        try:
            fd = os.open(directory / f"slot-{index}.lock", os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(index)
        finally:
            os.close(fd)
    return held


# ---- real processes ----------------------------------------------------------------------

def test_builds_started_together_never_hold_more_than_the_pool(tmp_path, children):
    directory, go, pool = tmp_path / "governor", tmp_path / "go", 3
    outs = [tmp_path / f"build-{n}.json" for n in range(3)]
    for out in outs:
        start(children, BUILD, directory, pool, 2, out, go, 1.0)
    for out in outs:                          # all imported and waiting: start together
        wait_for(Path(str(out) + ".ready"))
    go.touch()
    most, beyond = 0, []
    while any(process.poll() is None for process in children):
        held = held_slots(directory, pool + 3)
        most = max(most, len(held))
        beyond += [index for index in held if index >= pool]
        time.sleep(0.01)
    for process in children:
        assert process.returncode == 0, process.stderr.read()

    builds = [json.loads(out.read_text()) for out in outs]
    assert beyond == []
    assert most == pool                       # the pool was full at some moment...
    for build in builds:                      # ...and nobody got more than it wanted
        assert 1 <= len(build["indices"]) <= 2
    # at the moment each build got its slots, the builds holding slots then held at most
    # the pool, and no slot twice (recorded times lie inside the real holding times)
    for build in builds:
        holding = [other for other in builds
                   if other["got"] <= build["got"] <= other["released"]]
        indices = [index for other in holding for index in other["indices"]]
        assert len(indices) <= pool
        assert len(set(indices)) == len(indices), builds
    # 3 builds wanting 2 of 3 slots: somebody had to wait, and was told why
    messages = [message for build in builds for message in build["waited"]]
    assert messages, builds
    assert all(m.startswith("waiting for a runner slot: all 3 slots of this host are in use "
                            "by other medusa builds") for m in messages), messages
    assert all(len(build["waited"]) <= 1 for build in builds)   # told once, not per poll


def test_a_killed_build_gives_its_slots_back_at_once(tmp_path, children):
    directory, go, out = tmp_path / "governor", tmp_path / "go", tmp_path / "build.json"
    go.touch()
    build = start(children, BUILD, directory, 2, 2, out, go, 60)
    wait_for(Path(str(out) + ".held"))
    governor = Governor(directory, 2)
    assert governor.try_acquire(2).count == 0
    assert held_slots(directory, 2) == [0, 1]

    build.send_signal(signal.SIGKILL)
    build.wait(timeout=10)
    with governor.try_acquire(2) as slots:    # no waiting, no cleanup, no stale state
        assert slots.indices == (0, 1)
    assert held_slots(directory, 2) == []


# The holder takes both slots one by one, gives one back after a moment, holds the other.
HOLDER = """
import os, sys, time
from pathlib import Path
from medusa.governor import Governor
directory, ready = sys.argv[1:3]
governor = Governor(Path(directory), 2)
first, second = governor.acquire(1), governor.acquire(1)
Path(ready).write_text(f"{first.indices[0]} {second.indices[0]}")
time.sleep(0.5)
first.release()
time.sleep(60)
"""


def test_a_waiting_build_gets_the_slot_another_process_releases(tmp_path, children):
    directory, ready = tmp_path / "governor", tmp_path / "ready"
    start(children, HOLDER, directory, ready)
    wait_for(ready)
    released_index = int(ready.read_text().split()[0])
    told: list[str] = []
    began = time.monotonic()
    with Governor(directory, 2).acquire(2, on_wait=told.append, poll_seconds=0.02,
                                        timeout=20) as slots:
        waited = time.monotonic() - began
        assert slots.indices == (released_index,)   # the one freed; the other is still held
    assert waited > 0.2
    assert told == ["waiting for a runner slot: all 2 slots of this host are in use by other "
                    f"medusa builds (slot files in {directory})"]


# A build whose forked runner outlives it: the runner keeps the slot.
FORKER = """
import os, sys, time
from pathlib import Path
from medusa.governor import Governor
directory, runner_pid = sys.argv[1:3]
slots = Governor(Path(directory), 1).acquire(1)
pid = os.fork()
if pid == 0:
    time.sleep(60)
    os._exit(0)
Path(runner_pid).write_text(str(pid))
slots.release()          # closes the worker's fd; the runner's copy still holds the lock
"""


def test_a_forked_runner_keeps_the_slot_until_it_ends(tmp_path, children):
    directory, runner_pid = tmp_path / "governor", tmp_path / "runner.pid"
    worker = start(children, FORKER, directory, runner_pid)
    assert worker.wait(timeout=20) == 0, worker.stderr.read()
    pid = int(runner_pid.read_text())
    try:
        assert held_slots(directory, 1) == [0]
    finally:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while held_slots(directory, 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held_slots(directory, 1) == []


# ---- in one process (flock conflicts between open files, so one process can play both) -

def test_timeout_raises_a_clear_error(tmp_path):
    governor = Governor(tmp_path, 2)
    with governor.acquire(5) as hogged:
        assert hogged.count == 2
        began = time.monotonic()
        with pytest.raises(GovernorTimeout, match="no runner slot became free within 0.2 s: "
                                                  "all 2 slots of this host are in use"):
            governor.acquire(1, poll_seconds=0.05, timeout=0.2)
        assert 0.2 <= time.monotonic() - began < 2.0
        assert governor.acquire(1, wait=False).count == 0


def test_takes_what_is_free_without_waiting(tmp_path):
    governor = Governor(tmp_path, 3)
    told: list[str] = []
    with governor.acquire(2, on_wait=told.append) as first:
        with governor.acquire(2, on_wait=told.append) as second:
            assert (first.indices, second.indices) == ((0, 1), (2,))
    assert told == []
    assert first.count == second.count == 0     # released
    assert held_slots(tmp_path, 3) == []


def test_shared_folder_and_slot_files_are_open_to_every_user(tmp_path):
    old = os.umask(0o077)
    try:
        directory = tmp_path / "governor"
        with Governor(directory, 2).acquire(1):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o1777
    assert stat.S_IMODE((directory / "slot-0.lock").stat().st_mode) == 0o666


def test_a_planted_symlink_is_not_followed(tmp_path):
    (tmp_path / "slot-0.lock").symlink_to(tmp_path / "victim")
    with pytest.raises(OSError):
        Governor(tmp_path, 1).acquire(1, wait=False)
    assert not (tmp_path / "victim").exists()


def test_bad_arguments():
    with pytest.raises(ValueError):
        Governor(Path("/nonexistent"), 0)
    with pytest.raises(ValueError):
        Governor(Path("/nonexistent"), 1).acquire(0)


def test_default_directory():
    assert default_directory({}) == DEFAULT_DIRECTORY == Path("/tmp/medusa-governor")
    assert default_directory({"MEDUSA_GOVERNOR_DIR": "/srv/gov"}) == Path("/srv/gov")


# ---- pool size and the policy -----------------------------------------------------------

def test_pool_size_from_flag_then_environment_then_capacity():
    env = {"MEDUSA_MAX_HOST_RUNNERS": "6"}
    assert pool_size_from(env, 3, capacity=2) == (3, True, "--max-host-runners 3")
    assert pool_size_from(env, None, capacity=2) == (6, True, "MEDUSA_MAX_HOST_RUNNERS=6")
    assert pool_size_from({}, None, capacity=4) == (4, False, "host capacity 4")
    assert pool_size_from({"MEDUSA_MAX_HOST_RUNNERS": " "}, None, 4) == (4, False,
                                                                          "host capacity 4")
    assert pool_size_from({}, None, capacity=0)[0] == 1


@pytest.mark.parametrize("value", ["0", "-2", "many", "2.5"])
def test_a_bad_environment_cap_is_named(value):
    with pytest.raises(ValueError, match=f"MEDUSA_MAX_HOST_RUNNERS must be .* got '{value}'"):
        pool_size_from({"MEDUSA_MAX_HOST_RUNNERS": value}, None, 4)


def test_a_bad_configured_cap_is_named():
    with pytest.raises(ValueError, match="--max-host-runners must be at least 1"):
        pool_size_from({}, 0, 4)


@pytest.mark.parametrize("requested, got, cap_set, runners", [
    (None, 3, False, 3),      # auto: what it got
    (None, 1, True, 1),
    (8, 2, False, 8),         # --local 8, no cap: the user said 8
    (8, 0, False, 8),
    (8, 2, True, 2),          # --local 8 under a host cap: the cap wins
    (2, 5, True, 2),          # never more than asked
])
def test_runners_to_start(requested, got, cap_set, runners):
    assert runners_to_start(requested, got, cap_set) == runners
