"""A running build that strangers connect to: they are dropped, the build is unchanged."""
from __future__ import annotations

import os
import random
import socket
import time
from multiprocessing.connection import AuthenticationError, Client

import psutil

from helpers import medusa_outcomes, read_events, start_medusa, stop_medusa, write_project

FILES = {f"tests/test_{n}.py": f"""
    import time

    def test_slow():
        time.sleep(0.5)

    def test_fails():
        assert {n} % 3 != 0
""" for n in range(8)}


def _listening_port(pid: int) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ports = [c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN]
        if ports:
            return ports[0]
        time.sleep(0.05)
    raise AssertionError("the master never listened")


def _attack(port: int, rounds: int, rng: random.Random) -> list[socket.socket]:
    """A bounded loop of bad clients: silent ones (kept open), garbage, oversized
    frames, a wrong key."""
    silent = []
    for round_ in range(rounds):
        kind = round_ % 4
        if kind == 0:
            silent.append(socket.create_connection(("127.0.0.1", port)))
        elif kind == 1:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(os.urandom(rng.randint(1, 4096)))
        elif kind == 2:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall((2**31 - 1).to_bytes(4, "big") + b"x" * 1024)
        else:
            try:
                Client(("127.0.0.1", port), authkey=os.urandom(32)).close()
                raise AssertionError("a wrong key was accepted")
            except (AuthenticationError, OSError, EOFError):
                pass
    return silent


def test_strangers_are_dropped_and_the_build_result_is_unchanged(tmp_path):
    quiet = write_project(tmp_path / "quiet", FILES)
    attacked = write_project(tmp_path / "attacked", FILES)
    baseline = start_medusa(quiet, tmp_path / "quiet.jsonl")
    baseline.communicate(timeout=120)
    process = start_medusa(attacked, tmp_path / "attacked.jsonl")
    silent: list[socket.socket] = []
    try:
        port = _listening_port(process.pid)
        silent = _attack(port, rounds=120, rng=random.Random(7))
        stdout, stderr = process.communicate(timeout=120)
    except BaseException:
        stop_medusa(process)
        raise
    finally:
        for s in silent:
            s.close()
    assert process.returncode == baseline.returncode == 1, stdout + stderr
    expected = medusa_outcomes(read_events(tmp_path / "quiet.jsonl"))
    assert medusa_outcomes(read_events(tmp_path / "attacked.jsonl")) == expected
