"""A real OpenSSH server on 127.0.0.1, for the ssh worker tests: its own host key, a
client key in authorized_keys, a known_hosts file and a HOME with ~/.ssh for the client.

sshd gives every session the test's process mark (SetEnv), so the no-leftover check of
conftest.py also sees the remote workers and runners it starts. Without sshd installed the
tests skip, except in CI (CI=true), where that is a failure of the install step.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshServer:
    port: int
    user: str
    home: Path                # the client's HOME: .ssh/config, known_hosts, keys
    identity: Path            # a key sshd accepts
    known_hosts: Path         # with sshd's host key
    host_public_key: str
    pid: int = 0              # of the listening sshd

    @property
    def connect(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, timeout=30)
    return path.with_suffix(".pub").read_text().strip()


def start_sshd(base: Path, mark: str):
    """Start sshd; returns (server, process)."""
    if not os.path.exists(SSHD):
        if os.environ.get("CI"):
            pytest.fail("sshd is not installed (.ci/run must apt-get install openssh-server)")
        pytest.skip("sshd is not installed")
    base.mkdir(parents=True, exist_ok=True)
    host_public = _keygen(base / "host_key")
    home = base / "home"
    (home / ".ssh").mkdir(parents=True)
    client_public = _keygen(home / ".ssh" / "medusa_test_key")
    (base / "authorized_keys").write_text(client_public + "\n")
    port = _free_port()
    known_hosts = home / ".ssh" / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {' '.join(host_public.split()[:2])}\n")
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True,
                                                   text=True).stdout.strip()
    path = os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"])
    (base / "sshd_config").write_text(f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {base / 'host_key'}
PidFile {base / 'sshd.pid'}
AuthorizedKeysFile {base / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
UsePAM no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
SetEnv MEDUSA_TEST_MARK={mark} PATH={path}
LogLevel ERROR
""")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)   # its privilege separation folder
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(base / "sshd_config")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.communicate()[0].decode(errors="replace")
                pytest.fail(f"sshd did not start: {output}")
            time.sleep(0.05)
    server = SshServer(port, user, home, home / ".ssh" / "medusa_test_key", known_hosts,
                       host_public, process.pid)
    return server, process


def stop_sshd(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
