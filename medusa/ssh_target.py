"""The ssh target: a worker on another machine, reached with paramiko.

In a thread of the master, for each ssh worker: connect (the user's agent, keys and
~/.ssh/config; the host key checked against known_hosts), copy the working tree (sync.py),
run the setup commands there, open a reverse port forward (the remote 127.0.0.1:P leads to
the master's listener), and start `medusa worker` there with the authkey on its stdin.
From then on the worker is like a local one; what it prints comes back through `output`.

Any failure ends the thread with a reason that names the host and carries the host's own
output; the master then treats the worker as lost, and the build goes on elsewhere.
"""
from __future__ import annotations

import os
import queue
import select
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import IO, Any

from medusa import messages, sync
from medusa.config import WorkerSpec, check_host, split_connect

CONNECT_TIMEOUT_SECONDS = 15.0
# The remote worker, as the local one: the current folder must not be on sys.path (a
# project's medusa/ config folder would shadow the medusa package).
REMOTE_BOOT = ("import sys; sys.path[:] = [p for p in sys.path if p != '']; import medusa.worker; "
               "sys.exit(medusa.worker.main(sys.argv[1:]))")


class SshFailure(Exception):
    """Why an ssh worker could not start or went away, in words for the user."""


class SshWorker:
    def __init__(self, spec: WorkerSpec, project: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.project = Path(project)
        self.failure = ""
        self.exit_status: int | None = None
        self.launched: float | None = None    # when `medusa worker` was started there
        self.home = ""                        # the login folder there
        self._tail = b""                      # the end of what the worker printed
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._read_end, self._write_end = os.pipe()
        self._output = os.fdopen(self._read_end, "rb", buffering=0)
        self._done = threading.Event()
        self._stopping = threading.Event()
        self._client: Any = None
        self._channel: Any = None
        self._thread: threading.Thread | None = None

    # --- the target interface (as targets.LocalWorker) ----------------------------------

    def start(self, address: tuple[str, int], authkey: bytes, cwd: str) -> None:
        self._thread = threading.Thread(target=self._run, args=(address, authkey),
                                        name=f"ssh {self.name}", daemon=True)
        self._thread.start()

    @property
    def output(self) -> IO[bytes]:
        return self._output

    def exited(self) -> bool:
        return self._done.is_set()

    def exit_reason(self) -> str:
        if self.failure:
            return self.failure
        if self.exit_status is not None:
            return f"`medusa worker` on {self.spec.connect} ended with exit code {self.exit_status}"
        return f"the connection to {self.spec.connect} ended"

    def events(self) -> list[object]:
        """Initializer messages of the setup commands, made in the thread."""
        found = []
        while True:
            try:
                found.append(self._events.get_nowait())
            except queue.Empty:
                return found

    def local_path(self, remote: str) -> str | None:
        """A path of the remote tree as the same path of the local one."""
        directory = self.spec.directory if self.spec.directory.startswith("/") \
            else f"{self.home}/{self.spec.directory}"
        relative = os.path.relpath(remote, directory)
        return None if relative.startswith("..") else str(self.project / relative)

    def stop(self, finishing: bool = False, grace: float = 5.0) -> None:
        """A worker that said Died is given a moment to exit; then the connection is
        closed, which ends the worker there (its link to the master goes with it)."""
        deadline = time.monotonic() + grace
        while finishing and not self._done.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stopping.set()
        client = self._client
        if client is not None:
            client.close()
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))

    # --- the thread ------------------------------------------------------------------------

    def _run(self, address: tuple[str, int], authkey: bytes) -> None:
        try:
            self._client = _connect(self.spec)
            transport = self._client.get_transport()
            transport.set_keepalive(15)
            self.home = self._command_output("pwd").strip()
            if self.spec.sync:
                self._sync()
            for command in self.spec.setup:
                self._setup(command)
            port = transport.request_port_forward("127.0.0.1", 0, _forwarder(address))
            self._start_worker(port, authkey)
        except SshFailure as exc:
            self.failure = f"{self.name}: {exc}"
        except Exception as exc:   # paramiko's and the network's
            if not self._stopping.is_set():
                self.failure = f"{self.name}: {_describe(exc, self.spec)}"
        finally:
            os.close(self._write_end)
            self._done.set()

    def _sync(self) -> None:
        sftp = self._client.open_sftp()
        try:
            result = sync.sync(sftp, self.project, self.spec.directory, self.spec.exclude)
        finally:
            sftp.close()
        self._say(f"{self.name}: {result.describe()} to {self.spec.directory}\n")

    def _setup(self, command: str) -> None:
        """A pre-initializer: its output streams to the report as it comes."""
        hook = f"setup: {command}"
        self._events.put(messages.InitializerStart(self.name, None, hook))
        started = time.monotonic()
        channel = self._exec(command)
        output = []
        while data := channel.recv(1 << 16):
            text = data.decode("utf-8", errors="replace")
            output.append(text)
            self._events.put(messages.InitializerOutput(self.name, None, hook, text))
        status = channel.recv_exit_status()
        ok = status == 0
        message = "" if ok else f"`{command}` failed with exit code {status}"
        self._events.put(messages.InitializerResult(self.name, None, hook, ok,
                                                    time.monotonic() - started, message,
                                                    "".join(output)[-4000:]))
        if not ok:
            raise SshFailure(f"setup command {message} on {self.spec.connect}:\n"
                             + "".join(output)[-4000:])

    def _start_worker(self, port: int, authkey: bytes) -> None:
        command = " ".join([shlex.quote(self.spec.python), "-c", shlex.quote(REMOTE_BOOT),
                            "--connect", f"127.0.0.1:{port}", "--name", shlex.quote(self.name)])
        channel = self._exec(command)
        self._channel = channel
        self.launched = time.monotonic()
        channel.sendall(authkey.hex().encode() + b"\n")
        channel.shutdown_write()
        while data := channel.recv(1 << 16):
            os.write(self._write_end, data)
            self._tail = (self._tail + data)[-4096:]
        self.exit_status = channel.recv_exit_status()
        if self.exit_status in (126, 127):   # the shell could not run the python
            self.failure = (f"{self.name}: could not start {self.spec.python} on "
                            f"{self.spec.connect} (exit code {self.exit_status}); set "
                            "python: in the worker's config")
        elif b"No module named 'medusa'" in self._tail or b"No module named medusa" in self._tail:
            self.failure = (f"{self.name}: medusa is not installed for {self.spec.python} "
                            f"on {self.spec.connect} (install it there, e.g. with a setup "
                            "command, or set python:)")

    def _exec(self, command: str) -> Any:
        """Run `command` in the worker's directory, stderr with stdout."""
        channel = self._client.get_transport().open_session()
        channel.set_combine_stderr(True)
        channel.exec_command(f"cd {shlex.quote(self.spec.directory)} && {command}")
        return channel

    def _command_output(self, command: str) -> str:
        channel = self._client.get_transport().open_session()
        channel.set_combine_stderr(True)
        channel.exec_command(command)
        out = b"".join(iter(lambda: channel.recv(1 << 16), b""))
        if channel.recv_exit_status() != 0:
            raise SshFailure(f"`{command}` failed on {self.spec.connect}: "
                             f"{out.decode(errors='replace').strip()}")
        return out.decode("utf-8", errors="replace")

    def _say(self, text: str) -> None:
        os.write(self._write_end, text.encode())


# --- connecting ------------------------------------------------------------------------------

def _connect(spec: WorkerSpec) -> Any:
    import paramiko
    user, host, port = _parse_connect(spec.connect)
    options = _ssh_config(host)
    hostname = options.get("hostname", host)
    port = port or int(options.get("port", 22))
    user = user or options.get("user") or None
    identities = [spec.identity] if spec.identity else list(options.get("identityfile", []))
    identities = [os.path.expanduser(p) for p in identities if os.path.exists(os.path.expanduser(p))]
    known_hosts = spec.known_hosts or os.path.expanduser("~/.ssh/known_hosts")

    client = paramiko.SSHClient()
    if os.path.exists(known_hosts):
        client.load_host_keys(known_hosts)
    if spec.accept_new_host_key:
        client.set_missing_host_key_policy(_RememberNewKey(known_hosts))
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(hostname, port=port, username=user, key_filename=identities or None,
                       timeout=CONNECT_TIMEOUT_SECONDS, banner_timeout=CONNECT_TIMEOUT_SECONDS,
                       auth_timeout=CONNECT_TIMEOUT_SECONDS, allow_agent=True,
                       look_for_keys=not identities)
    except BaseException:
        client.close()
        raise
    return client


class _RememberNewKey:
    """accept_new_host_key: a host never seen is trusted and written to known_hosts
    (as OpenSSH's StrictHostKeyChecking=accept-new); a changed key is still refused,
    by paramiko itself, before a policy is asked."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        os.makedirs(os.path.dirname(self.known_hosts) or ".", exist_ok=True)
        with open(self.known_hosts, "a") as known:
            known.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def _parse_connect(connect: str) -> tuple[str, str, int | None]:
    user, host, port = split_connect(connect)
    return user, host, int(port) if port else None


def _ssh_config(host: str) -> dict[str, Any]:
    import paramiko
    check_host(host)   # config and command line refuse such a name already
    path = os.path.expanduser("~/.ssh/config")
    if not os.path.exists(path):
        return {}
    return dict(paramiko.SSHConfig.from_path(path).lookup(host))


def _describe(exc: BaseException, spec: WorkerSpec) -> str:
    import paramiko
    where = spec.connect
    if isinstance(exc, paramiko.BadHostKeyException):
        _, host, port = _parse_connect(spec.connect)
        # known_hosts names a host on another port than 22 as [host]:port
        name = f"[{exc.hostname}]:{port}" if port and port != 22 else exc.hostname
        known_hosts = f" -f {shlex.quote(spec.known_hosts)}" if spec.known_hosts else ""
        return (f"the host key of {where} has CHANGED (it is not the one in known_hosts): "
                "refusing to connect; if the change is expected, remove the old key "
                f"(ssh-keygen{known_hosts} -R {shlex.quote(name)})")
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication refused by {where}: {exc}"
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        return (f"the host key of {where} is unknown (not in known_hosts): refusing to "
                "connect; add it (ssh-keyscan) or set accept_new_host_key: true")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"cannot reach {where}: timed out"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {exc.strerror or exc}"
    return f"ssh to {where} failed: {exc!r}"


# --- the reverse port forward ----------------------------------------------------------------

def _forwarder(address: tuple[str, int]) -> Any:
    """paramiko calls this (in its own thread) for each connection to the remote port:
    each gets a connection to the master's listener, bridged in a thread of its own."""
    def handler(channel: Any, origin: Any, server: Any) -> None:
        threading.Thread(target=_bridge, args=(channel, address), daemon=True).start()
    return handler


def _bridge(channel: Any, address: tuple[str, int]) -> None:
    try:
        sock = socket.create_connection(address)
    except OSError:
        channel.close()
        return
    try:
        while True:
            readable, _, _ = select.select([sock, channel], [], [], 1.0)
            if channel.closed:
                return
            for source, sink in ((sock, channel), (channel, sock)):
                if source in readable:
                    data = source.recv(1 << 16)
                    if not data:
                        return
                    sink.sendall(data)
    except OSError:
        return
    finally:
        sock.close()
        channel.close()
