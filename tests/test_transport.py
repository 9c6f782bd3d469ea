"""medusa.transport on real sockets: only clients that hold the build's key get through,
nobody can stall the listener, and nothing is unpickled before the key was proven."""
from __future__ import annotations

import os
import pickle
import socket
import struct
import sys
import time
from multiprocessing.connection import AuthenticationError, Connection, wait
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medusa import messages, transport  # noqa: E402


@pytest.fixture
def key() -> bytes:
    return transport.new_authkey()


@pytest.fixture
def opened():
    """Closes whatever a test opened, servers and connections alike."""
    things = []
    yield things
    for thing in reversed(things):
        try:
            thing.close()
        except OSError:
            pass


def make_server(opened, key, handshake_seconds=transport.HANDSHAKE_SECONDS):
    server = transport.Server(key, handshake_seconds=handshake_seconds)
    opened.append(server)
    return server


def accept_one(server, timeout=5.0) -> Connection:
    """The next connection the server hands out (fails if none comes in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wait([server], timeout=deadline - time.monotonic()):
            conns = server.accepted()
            if conns:
                assert len(conns) == 1, conns
                return conns[0]
    raise AssertionError(f"no connection handed out within {timeout} s")


def assert_nothing_handed_out(server, within=0.5) -> None:
    if wait([server], timeout=within):
        assert server.accepted() == []


def wait_for_rejections(server, count, timeout=5.0) -> None:
    deadline = time.monotonic() + timeout
    while server.rejected < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.rejected == count, f"rejected {server.rejected}, expected {count}"


def raw_socket(opened, server) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=5)
    opened.append(sock)
    return sock


def read_frame(sock) -> bytes:
    """One multiprocessing.connection frame: a 4-byte big-endian length, then the bytes."""
    header = _read_exactly(sock, 4)
    (length,) = struct.unpack("!i", header)
    return _read_exactly(sock, length)


def _read_exactly(sock, n) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def closed_by_peer(sock, timeout=5.0) -> bool:
    """Drain what the server sends; True once it closes the connection."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except socket.timeout:
        return False
    except OSError:
        return True
    return True


def good_client(opened, server, key) -> Connection:
    conn = transport.connect(server.address, key)
    opened.append(conn)
    return conn


# --- the tests -----------------------------------------------------------------------------

def test_listens_on_loopback_only(opened, key):
    server = make_server(opened, key)
    assert server.address[0] == "127.0.0.1"
    assert server.address[1] > 0


def test_client_with_the_key_gets_through_and_messages_round_trip(opened, key):
    server = make_server(opened, key)
    client = good_client(opened, server, key)
    served = accept_one(server)
    opened.append(served)

    sent = messages.Result(worker="local", runner=1, file="tests/test_ü.py",
                           test="tests/test_ü.py::test_p[a b]", outcome="failed", when="call",
                           duration=0.25, message="assert 1 == 2", longrepr="x" * 100_000,
                           sections=(("Captured stdout call", "hello\n"),), path="tests/test_ü.py",
                           line=3)
    transport.send(client, sent)
    assert transport.recv(served) == sent

    transport.send(served, messages.RunFile(1, "tests/test_a.py"))
    assert transport.recv(client) == messages.RunFile(1, "tests/test_a.py")
    transport.send(served, messages.Shutdown("no more work"))
    assert transport.recv(client) == messages.Shutdown("no more work")
    assert server.rejected == 0


def test_several_clients_are_all_handed_out(opened, key):
    server = make_server(opened, key)
    clients = [good_client(opened, server, key) for _ in range(3)]
    served = []
    deadline = time.monotonic() + 5
    while len(served) < 3 and time.monotonic() < deadline:
        if wait([server], timeout=0.5):
            served.extend(server.accepted())
    opened.extend(served)
    assert len(served) == 3
    for n, client in enumerate(clients):
        transport.send(client, messages.RequestFile(n))
    received = sorted(transport.recv(conn).runner for conn in served)
    assert received == [0, 1, 2]


def test_wrong_key_is_rejected_and_never_handed_out(opened, key):
    server = make_server(opened, key)
    with pytest.raises(AuthenticationError):
        transport.connect(server.address, transport.new_authkey())
    wait_for_rejections(server, 1)
    assert_nothing_handed_out(server)
    # and the server still serves the right key afterwards
    good_client(opened, server, key)
    opened.append(accept_one(server))


def test_silent_client_does_not_block_a_good_one(opened, key):
    handshake = 2.0
    server = make_server(opened, key, handshake_seconds=handshake)
    silent = [raw_socket(opened, server) for _ in range(3)]   # connect, then say nothing
    started = time.monotonic()
    client = good_client(opened, server, key)
    served = accept_one(server, timeout=handshake / 2)
    opened.append(served)
    assert time.monotonic() - started < handshake / 2, "the good client waited for the silent ones"
    transport.send(client, messages.RequestFile(0))
    assert transport.recv(served) == messages.RequestFile(0)
    # the silent ones are dropped at the deadline, and never handed out
    for sock in silent:
        assert closed_by_peer(sock, timeout=handshake + 3), "silent client was never dropped"
    wait_for_rejections(server, 3)
    assert_nothing_handed_out(server)


def test_random_bytes_are_rejected(opened, key):
    server = make_server(opened, key, handshake_seconds=3.0)

    # 1. a well-framed answer to the challenge, but random
    framed = raw_socket(opened, server)
    challenge = read_frame(framed)
    assert challenge.startswith(b"#CHALLENGE#")
    answer = os.urandom(16)
    framed.sendall(struct.pack("!i", len(answer)) + answer)
    assert closed_by_peer(framed)

    # 2. garbage whose length prefix claims a huge message
    huge = raw_socket(opened, server)
    read_frame(huge)
    huge.sendall(b"\x7f\xff\xff\xff" + os.urandom(512))
    assert closed_by_peer(huge)

    # 3. garbage before even reading the challenge
    rude = raw_socket(opened, server)
    rude.sendall(os.urandom(300))
    assert closed_by_peer(rude)

    wait_for_rejections(server, 3)
    assert_nothing_handed_out(server)
    good_client(opened, server, key)
    opened.append(accept_one(server))


class _Evil:
    """Unpickling this creates a file: proof that someone unpickled it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_nothing_is_unpickled_before_the_key_is_proven(opened, key, tmp_path):
    server = make_server(opened, key, handshake_seconds=3.0)
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Evil(str(marker)))
    sock = raw_socket(opened, server)
    read_frame(sock)
    sock.sendall(struct.pack("!i", len(payload)) + payload)   # as the challenge's answer
    sock.sendall(struct.pack("!i", len(payload)) + payload)   # and again, as a message
    assert closed_by_peer(sock)
    wait_for_rejections(server, 1)
    assert_nothing_handed_out(server)
    assert not marker.exists()


def test_message_over_max_bytes_raises_oserror(opened, key):
    server = make_server(opened, key)
    client = good_client(opened, server, key)
    served = accept_one(server)
    opened.append(served)
    transport.send(client, messages.RunFile(0, "a" * 500))
    assert transport.recv(served, max_bytes=1000) == messages.RunFile(0, "a" * 500)
    transport.send(client, messages.RunFile(0, "a" * 5000))
    with pytest.raises(OSError):
        transport.recv(served, max_bytes=1000)


def test_closed_peer_gives_eoferror(opened, key):
    server = make_server(opened, key)
    client = transport.connect(server.address, key)
    served = accept_one(server)
    opened.append(served)
    client.close()
    with pytest.raises(EOFError):
        transport.recv(served)
