"""Shared by the end-to-end tests: every test marks the processes it starts, and fails if
any of them (a medusa master, worker or runner, or a serial pytest) outlives it."""
from __future__ import annotations

import os
import time
import uuid

import psutil
import pytest

MARK_VARIABLE = "MEDUSA_TEST_MARK"
LINGER_SECONDS = 5.0


def marked_processes(mark: str) -> list[psutil.Process]:
    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for process in psutil.process_iter():
        if process.pid in mine:
            continue
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                # Dead, waiting for its parent to reap it: a leak only if the parent is
                # itself one of ours, which the environ check of the parent finds.
                continue
            if process.environ().get(MARK_VARIABLE) == mark:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def _describe(process: psutil.Process) -> str:
    try:
        return f"pid {process.pid}: {' '.join(process.cmdline())[:200]}"
    except psutil.Error:
        return f"pid {process.pid}"


@pytest.fixture(autouse=True)
def no_leftover_processes(monkeypatch: pytest.MonkeyPatch):
    """Every process a test starts inherits MEDUSA_TEST_MARK=<uuid>; after the test none
    of them may still be alive (medusa must end its workers and runners itself)."""
    mark = uuid.uuid4().hex
    monkeypatch.setenv(MARK_VARIABLE, mark)
    yield mark
    deadline = time.monotonic() + LINGER_SECONDS
    left = marked_processes(mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = marked_processes(mark)
    if left:
        described = [_describe(p) for p in left]
        for process in left:           # clean up what we found, by pid, then complain
            try:
                process.kill()
            except psutil.Error:
                pass
        pytest.fail("processes left running after the test:\n" + "\n".join(described))


@pytest.fixture(autouse=True)
def own_runner_pool(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Each test's builds share a runner-slot pool of their own: builds of other tests
    (or of the medusa that may be running this suite) must not make them wait."""
    monkeypatch.setenv("MEDUSA_GOVERNOR_DIR", str(tmp_path_factory.mktemp("governor")))
    monkeypatch.delenv("MEDUSA_MAX_HOST_RUNNERS", raising=False)


@pytest.fixture
def sshd(tmp_path, no_leftover_processes):
    """A real OpenSSH server on 127.0.0.1 for this test (sshd.py)."""
    from sshd import start_sshd, stop_sshd
    server, process = start_sshd(tmp_path / "sshd", no_leftover_processes)
    yield server
    stop_sshd(process)
