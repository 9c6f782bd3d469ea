"""Authenticated, size-limited message connections (multiprocessing.connection underneath).

The master listens on 127.0.0.1 only. Every connection must pass the per-build authkey
challenge before a single byte of it is unpickled; the handshake runs in its own thread with
a deadline, so a client that connects and says nothing (or talks garbage) never stalls the
master's event loop. After the handshake a message larger than `max_bytes` drops the peer.
"""
from __future__ import annotations

import errno
import os
import pickle
import queue
import secrets
import socket
import threading
import time
from multiprocessing.connection import (  # the challenge is the stdlib's, not ours
    Connection,
    answer_challenge,
    deliver_challenge,
)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
HANDSHAKE_SECONDS = 10.0
# Connections in their handshake at once. Each costs two threads and two descriptors, so
# a local user who opens hundreds and says nothing would exhaust the process: past this,
# the oldest unproven one is dropped (a real peer proves itself in milliseconds).
MAX_UNPROVEN = 32
# accept() errors that mean "out of resources for now", not "the listener is gone"
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


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
        self._unproven: list[socket.socket] = []   # oldest first
        self._lock = threading.Lock()
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
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED and not self._closed:
                    continue   # that client gave up before it was accepted
                if self._closed or exc.errno not in _RESOURCE_ERRORS:
                    return
                # out of descriptors: free the oldest unproven connection; the others
                # wait in the kernel's backlog meanwhile
                self._drop_oldest()
                time.sleep(0.05)
                continue
            self._start_handshake(sock)

    def _start_handshake(self, sock: socket.socket) -> None:
        with self._lock:
            self._unproven.append(sock)
            excess = len(self._unproven) - MAX_UNPROVEN
        for _ in range(max(0, excess)):
            self._drop_oldest()
        try:
            threading.Thread(target=self._handshake, args=(sock,), daemon=True).start()
        except RuntimeError:   # no thread to be had: this one waits no more
            self._forget(sock)
            sock.close()

    def _drop_oldest(self) -> None:
        with self._lock:
            oldest = self._unproven.pop(0) if self._unproven else None
        if oldest is not None:
            _shutdown_quietly(oldest)   # its handshake fails at once and closes it

    def _forget(self, sock: socket.socket) -> bool:
        """Whether `sock` was still unproven (not dropped meanwhile)."""
        with self._lock:
            if sock in self._unproven:
                self._unproven.remove(sock)
                return True
            return False

    def _handshake(self, sock: socket.socket) -> None:
        try:
            conn = self._prove(sock)
        except Exception:   # out of descriptors or threads mid-way: as if rejected
            conn = None
            self.rejected += 1
        finally:
            kept = self._forget(sock)
            sock.close()
        if conn is None:
            return
        if not kept:   # dropped as the oldest just as it proved itself: it was shut down
            conn.close()
            return
        if self._closed:
            conn.close()
            return
        self._ready.put(conn)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            conn.close()

    def _prove(self, sock: socket.socket) -> Connection | None:
        """The connection, once its peer proved it holds the key; None if it did not."""
        # A silent client would block the challenge forever: shutting the socket down
        # at the deadline makes the blocked read return.
        deadline = threading.Timer(self._handshake_seconds, _shutdown_quietly, args=(sock,))
        deadline.start()
        try:
            _no_delay(sock)
            conn = Connection(os.dup(sock.fileno()))
            try:
                deliver_challenge(conn, self._authkey)
                answer_challenge(conn, self._authkey)
            except Exception:  # wrong key, garbage, EOF, oversized challenge reply
                self.rejected += 1
                conn.close()
                return None
            return conn
        finally:
            deadline.cancel()


def _shutdown_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
