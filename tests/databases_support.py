"""Shared by the Django and Flask database tests: a real PostgreSQL server (or a skip, or
in CI a failure), what is on it, and the folder where medusa keeps who is alive."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import read_events


def postgres_or_skip() -> None:
    """The local PostgreSQL server (its socket, as root), or skip; CI must have one."""
    try:
        import psycopg
        psycopg.connect(dbname="postgres", connect_timeout=3).close()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a PostgreSQL server that root can reach (.ci/run starts "
                        f"it): {exc!r}")
        pytest.skip(f"no PostgreSQL server: {exc!r}")


def postgres_databases(starting: str) -> list[str]:
    import psycopg
    with psycopg.connect(dbname="postgres", autocommit=True) as connection:
        rows = connection.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                  (starting.replace("_", r"\_") + "%",)).fetchall()
    return sorted(row[0] for row in rows)


def drop_postgres_databases(starting: str) -> None:
    import psycopg
    with psycopg.connect(dbname="postgres", autocommit=True) as connection:
        for name in postgres_databases(starting):
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for_tests(events: Path, process: subprocess.Popen, count: int = 1,
                   timeout: float = 60) -> None:
    """Until `count` test results are in the build's event log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([e for e in read_events(events) if e["event"] == "result"]) >= count:
            return
        if process.poll() is not None:
            raise AssertionError(f"the build ended early: {process.communicate()}")
        time.sleep(0.1)
    raise AssertionError("no test results in time")


def kill_build(process: subprocess.Popen) -> None:
    """SIGKILL the master, its worker (in a session of its own) and the runners at once,
    as a CI job cancelled hard or a machine going down: nobody gets to clean up."""
    import psutil
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.communicate(timeout=30)
    psutil.wait_procs(family, timeout=10)


def kill_master(process: subprocess.Popen) -> None:
    """SIGKILL the master only: its worker hears the connection close and ends itself."""
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    """This test's own record of live builds (MEDUSA_DATABASES_DIR)."""
    path = tmp_path / "alive"
    monkeypatch.setenv("MEDUSA_DATABASES_DIR", str(path))
    return path
