"""Authenticated, size-limited message connections (multiprocessing.connection underneath).

The master listens on 127.0.0.1 only. Every connection must pass the per-build authkey
challenge before a single byte of it is unpickled; the handshake runs in its own thread with
a deadline, so a client that connects and says nothing (or talks garbage) never stalls the
master's event loop. After the handshake a message larger than `max_bytes` drops the peer.
"""
from __future__ import annotations

import os
import pickle
import queue
import secrets
import socket
import threading
from multiprocessing.connection import (  # the challenge is the stdlib's, not ours
    Connection,
    answer_challenge,
    deliver_challenge,
)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
HANDSHAKE_SECONDS = 10.0


def new_authkey() -> bytes:
    return secrets.token_bytes(32)


def send(conn: Connection, message: object) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def recv(conn: Connection, max_bytes: int = MAX_MESSAGE_BYTES) -> object:
    """Next message; EOFError when the peer is gone, OSError when it sent too much."""
    return pickle.loads(conn.recv_bytes(max_bytes))


def connect(address: tuple[str, int], authkey: bytes) -> Connection:
    sock = socket.create_connection(address)
    _no_delay(sock)
    conn = Connection(sock.detach())
    answer_challenge(conn, authkey)
    deliver_challenge(conn, authkey)
    return conn


def _no_delay(sock: socket.socket) -> None:
    """Messages are small and answered at once: without this, Nagle's algorithm and the
    peer's delayed ACK hold many of them back for 40 ms."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Server:
    """Accepts connections and hands out only those that proved they hold the authkey.

    `fileno()` becomes readable when `accepted()` has something; both are for the owner's
    event loop (multiprocessing.connection.wait).
    """

    def __init__(self, authkey: bytes, host: str = "127.0.0.1",
                 handshake_seconds: float = HANDSHAKE_SECONDS) -> None:
        self._authkey = authkey
        self._handshake_seconds = handshake_seconds
        self._sock = socket.create_server((host, 0))
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._ready: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self.rejected = 0
        self._closed = False
        threading.Thread(target=self._accept_loop, name="medusa-accept", daemon=True).start()

    def fileno(self) -> int:
        return self._wake_r

    def accepted(self) -> list[Connection]:
        os.read(self._wake_r, 4096)
        conns = []
        while True:
            try:
                conns.append(self._ready.get_nowait())
            except queue.Empty:
                return conns

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.close()
        finally:
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(sock,), daemon=True).start()

    def _handshake(self, sock: socket.socket) -> None:
        # A silent client would block the challenge forever: shutting the socket down
        # at the deadline makes the blocked read return.
        deadline = threading.Timer(self._handshake_seconds, _shutdown_quietly, args=(sock,))
        deadline.start()
        _no_delay(sock)
        conn = Connection(os.dup(sock.fileno()))
        try:
            deliver_challenge(conn, self._authkey)
            answer_challenge(conn, self._authkey)
        except Exception:  # wrong key, garbage, EOF, oversized challenge reply
            self.rejected += 1
            conn.close()
            return
        finally:
            deadline.cancel()
            sock.close()
        if self._closed:
            conn.close()
            return
        self._ready.put(conn)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            conn.close()


def _shutdown_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
