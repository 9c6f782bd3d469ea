"""Hostile tests, bad bytes, local attackers and user mistakes: each is reproduced for real
(a real listener under a real descriptor limit, real runners whose tests write junk into
their pipes), and each must end with one clear message, the right exit code and nothing
lost."""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from helpers import MEDUSA, run_medusa, write_project

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medusa import messages, sync, transport  # noqa: E402

# --- a local user floods the master's port ------------------------------------------------

# A listener in a process of its own, under a descriptor limit of 256: it prints its port,
# waits for "go", then hands out one good client and echoes one message back to it.
LISTENER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
from multiprocessing.connection import wait
from medusa import transport
server = transport.Server(bytes.fromhex(sys.argv[1]), handshake_seconds=120)
print(server.address[1], flush=True)
sys.stdin.readline()
while True:
    if wait([server], timeout=60):
        conns = server.accepted()
        if conns:
            break
    else:
        sys.exit("nothing accepted")
conn = conns[0]
transport.send(conn, transport.recv(conn))
print("echoed", server.rejected, flush=True)
"""


def test_a_flood_of_silent_connections_does_not_stop_the_listener(tmp_path):
    """600 connections that never answer the challenge, against a process that may hold
    256 descriptors: the listener keeps accepting (the oldest unproven ones are dropped)
    and a client with the key still gets through, without a traceback."""
    key = transport.new_authkey()
    listener = subprocess.Popen([sys.executable, "-c", LISTENER, key.hex()], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    flood: list[socket.socket] = []
    try:
        port = int(listener.stdout.readline())
        for _ in range(600):
            try:
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break   # the backlog is full: the flood is as big as it can be
        listener.stdin.write("go\n")
        listener.stdin.flush()
        echoed: list[object] = []

        def good_client() -> None:
            conn = transport.connect(("127.0.0.1", port), key)
            transport.send(conn, messages.Heartbeat("me"))
            echoed.append(transport.recv(conn))
            conn.close()

        client = threading.Thread(target=good_client, daemon=True)
        client.start()
        client.join(timeout=60)
        assert echoed == [messages.Heartbeat("me")], "the good client never got through"
        out, err = listener.communicate(timeout=60)
    finally:
        for sock in flood:
            sock.close()
        if listener.poll() is None:
            listener.kill()
            listener.communicate()
    assert listener.returncode == 0, err
    assert out.startswith("echoed"), out
    assert "Traceback" not in err and "Too many open files" not in err, err


# --- a test writes junk into the pipes its runner inherited -------------------------------

JUNK_WRITER = """
    import os, stat

    def test_before():
        pass

    def test_writes_junk():
        for fd in range(3, 256):
            try:
                mode = os.fstat(fd).st_mode
            except OSError:
                continue
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                try:
                    os.write(fd, b"\\0\\0\\0\\4junk")
                except OSError:
                    pass

    def test_after():
        pass
"""


@pytest.mark.parametrize("junk", ["a frame", "a line of text"])
def test_junk_in_a_runners_pipes_ends_that_runner_only(tmp_path, junk):
    writer = JUNK_WRITER if junk == "a frame" else JUNK_WRITER.replace(
        'b"\\0\\0\\0\\4junk"', 'b"a line a test logged to the wrong file\\n"')
    assert writer != JUNK_WRITER or junk == "a frame"
    project = write_project(tmp_path / "p", {
        "tests/test_junk.py": writer,
        **{f"tests/test_ok{n}.py": "def test_ok():\n    pass\n" for n in range(4)},
    })
    run = run_medusa(project, timeout=120)
    assert run.exit_code == 1, run
    outcomes = dict(run.outcomes)
    assert outcomes["tests/test_junk.py::test_writes_junk"] == "error", run
    assert outcomes["tests/test_junk.py::test_before"] == "passed", run
    assert outcomes["tests/test_junk.py::test_after"] == "passed", run
    for n in range(4):
        assert outcomes[f"tests/test_ok{n}.py::test_ok"] == "passed", run
    assert len(run.outcomes) == 7, run
    error = next(r for r in run.results if r["test"] == "tests/test_junk.py::test_writes_junk")
    assert "not a medusa message" in error["message"], error
    assert run.finished["not_run"] == [], run


def test_random_frames_from_a_runner_never_end_the_worker(tmp_path):
    """A fuzz, bounded: tests that write random frames (a real length, random bytes)
    to every pipe and socket they inherited. Each such test is an error; every other
    test passes."""
    rng = random.Random(20261203)
    files = {}
    for n in range(6):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        frame = len(payload).to_bytes(4, "big") + payload
        files[f"tests/test_fuzz{n}.py"] = textwrap.dedent(JUNK_WRITER).replace(
            'b"\\0\\0\\0\\4junk"', repr(frame))
    project = write_project(tmp_path / "p", files)
    run = run_medusa(project, timeout=180)
    outcomes = dict(run.outcomes)
    assert len(run.outcomes) == 18, run
    for n in range(6):
        assert outcomes[f"tests/test_fuzz{n}.py::test_before"] == "passed", run
        assert outcomes[f"tests/test_fuzz{n}.py::test_after"] == "passed", run
        assert outcomes[f"tests/test_fuzz{n}.py::test_writes_junk"] in ("error", "passed"), run
    assert run.exit_code in (0, 1), run
    assert "internal error" not in run.stdout + run.stderr, run


# --- text that is not valid UTF-8 ----------------------------------------------------------

def test_text_that_is_not_utf8_is_escaped_wherever_it_leaves_medusa(tmp_path):
    """A message with a lone surrogate, an artifact and a test file whose names are not
    UTF-8: every report is written (with backslash escapes, as pytest prints them), the
    history keeps the file under its real name, and the build's code is the tests'."""
    project = write_project(tmp_path / "p", {"test_bad.py": """
        import os

        def test_surrogate():
            raise ValueError("\\udcff bad")

        def test_artifact():
            folder = os.fsencode(os.environ["MEDUSA_ARTIFACTS_DIR"])
            with open(os.path.join(folder, b"shot\\xff.png"), "wb") as out:
                out.write(b"x")
            print("printed \\udcfe")
            assert 0
    """})
    with open(os.path.join(os.fsencode(project), b"test_\xff.py"), "w") as out:
        out.write("def test_ok():\n    pass\n")
    summary = tmp_path / "summary.md"
    reports = tmp_path / "reports"
    args = ("--format", f"junit:{reports}/junit.xml", "--format", f"html:{reports}/r.html",
            "--format", "github", "--format", "teamcity")
    for build in (1, 2):
        run = run_medusa(project, *args, env={"GITHUB_STEP_SUMMARY": str(summary)})
        assert run.exit_code == 1, run
        assert "internal error" not in run.stdout + run.stderr, run
        assert sorted(run.outcomes) == [("test_bad.py::test_artifact", "failed"),
                                        ("test_bad.py::test_surrogate", "failed"),
                                        ("test_\udcff.py::test_ok", "passed")], run
        assert "ValueError: \\udcff bad" in run.stdout, run
        junit = ET.parse(reports / "junit.xml")
        assert len(list(junit.iter("testcase"))) == 3
        page = (reports / "r.html").read_text(encoding="utf-8")
        assert "shot%FF.png" in page   # the link has the name's own bytes
        assert "\\udcff bad" in summary.read_text(encoding="utf-8")
        history = json.loads((project / ".medusa" / "history.json").read_text(encoding="utf-8"))
        assert "test_\udcff.py" in history["files"], history


# --- a host name that would reach a shell through ~/.ssh/config ---------------------------

def _medusa(project: Path, *args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MEDUSA), *args], cwd=project, text=True,
                          capture_output=True, timeout=60,
                          env={**os.environ, "HOME": str(home), "MEDUSA_CI": "none",
                               "SSH_AUTH_SOCK": ""})


def test_a_host_name_with_shell_characters_is_refused_before_the_ssh_config(tmp_path):
    home, marker = tmp_path / "home", tmp_path / "PWNED"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(f'Match exec "test %h = build-7"\n  User nobody\n'
                                          f'Match exec "touch {marker}"\n  User nobody\n')
    project = write_project(tmp_path / "p", {
        "test_a.py": "def test_a():\n    pass\n",
        "bad.yml": """
            workers:
              - type: ssh
                connect: "ci@x$(touch PWNED)"
                runners: 1
        """,
    })
    from_option = _medusa(project, "--ssh", f"x;touch {marker}:1", home=home)
    from_config = _medusa(project, "--config", "bad.yml", home=home)
    for refused, host in ((from_option, f"x;touch {marker}"), (from_config, "x$(touch PWNED)")):
        assert refused.returncode == 4, refused
        assert f"host {host!r} may only have letters" in refused.stderr, refused
        assert "Traceback" not in refused.stderr, refused
    assert not marker.exists() and not (project / "PWNED").exists()
    # plain names, an IPv6 address and a port still pass
    fine = _medusa(project, "--ssh", "ci@[::1]:22:1", "--ssh", "ci@build-7.example.com:2222:2",
                   "--show-config", home=home)
    assert fine.returncode == 0, fine


# --- more runners than the host can hold ---------------------------------------------------

def test_a_runner_count_past_what_the_host_holds_is_refused(tmp_path):
    project = write_project(tmp_path / "p", {"test_a.py": "def test_a():\n    pass\n"})
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # the host cap keeps a medusa without the check from forking 100,000 runners: it
    # would start 2, and the test fail
    run = run_medusa(project, runners=100_000, timeout=60,
                     env={"TMPDIR": str(scratch), "MEDUSA_MAX_HOST_RUNNERS": "2"})
    assert run.exit_code == 4, run
    assert "100000 runners asked for; this host holds at most" in run.stdout, run
    assert list(scratch.iterdir()) == [], "the worker left its scratch folder"


# --- ssh sync writes and deletes inside the remote folder only ------------------------------

@pytest.fixture
def sftp(sshd):
    import paramiko
    client = paramiko.SSHClient()
    client.load_host_keys(str(sshd.known_hosts))
    client.connect("127.0.0.1", port=sshd.port, username=sshd.user,
                   key_filename=str(sshd.identity), allow_agent=False, look_for_keys=False)
    channel = client.open_sftp()
    yield channel
    channel.close()
    client.close()


def test_sync_never_writes_through_a_stale_remote_link(tmp_path, sftp):
    local, remote, victim = tmp_path / "local", tmp_path / "remote", tmp_path / "victim"
    victim.mkdir()
    local.mkdir()
    (local / "data").symlink_to(victim)          # a folder that is a link, for now
    sync.sync(sftp, local, str(remote))
    assert (remote / "data").is_symlink()
    (local / "data").unlink()                    # ... later made a real folder
    write_project(local, {"data/new.txt": "mine\n"})
    sync.sync(sftp, local, str(remote))
    assert list(victim.iterdir()) == [], "written through the stale link"
    assert not (remote / "data").is_symlink()
    assert (remote / "data" / "new.txt").read_text() == "mine\n"


def test_sync_replaces_a_remote_folder_by_a_link(tmp_path, sftp):
    local, remote = tmp_path / "local", tmp_path / "remote"
    write_project(local, {"sub/a.txt": "a\n", "sub/deeper/b.txt": "b\n", "other/c.txt": "c\n"})
    sync.sync(sftp, local, str(remote))
    for path in sorted((local / "sub").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (local / "sub").rmdir()
    (local / "sub").symlink_to("other")          # a real folder later made a link
    result = sync.sync(sftp, local, str(remote))
    assert (remote / "sub").is_symlink() and os.readlink(remote / "sub") == "other"
    assert (remote / "other" / "c.txt").read_text() == "c\n"
    assert result.removed == 0   # the folder went with its link's arrival


def test_sync_ignores_remote_manifest_entries_outside_the_folder(tmp_path, sftp):
    local, remote, victim = tmp_path / "local", tmp_path / "remote", tmp_path / "victim"
    write_project(victim, {"keep.txt": "precious\n"})
    write_project(local, {"a.txt": "a\n"})
    sync.sync(sftp, local, str(remote))
    (remote / "lnk").symlink_to(victim)
    (remote / sync.MANIFEST).write_text(json.dumps({
        "a.txt": [1, 2, 3], "../victim/keep.txt": [1, 2, 3],
        str(victim / "keep.txt"): [1, 2, 3], "lnk/keep.txt": [1, 2, 3]}))
    sync.sync(sftp, local, str(remote))
    assert (victim / "keep.txt").read_text() == "precious\n"
    assert (remote / "a.txt").read_text() == "a\n"


# --- user mistakes are the user's: what happened, where, and exit 4 (1 for a failed hook) --

EXITS = [
    ("medusa/environment.py", "import os\nos._exit(3)\n", 4,
     "medusa/environment.py could not be loaded"),
    ("medusa/environment.py", "import os\n\ndef setup_worker(ctx):\n    os._exit(5)\n", 1,
     "setup_worker raised ProcessExit(\"os._exit(5)"),
    ("medusa/environment.py", "import os\n\ndef teardown_worker(ctx):\n    os._exit(0)\n", 1,
     "teardown_worker raised ProcessExit(\"os._exit(0)"),
    ("conftest.py", "import sys\nsys.exit(3)\n", 4,
     "sys.exit(3) at conftest.py:2 while the test framework started"),
    ("conftest.py", "import os\nos._exit(4)\n", 4, "os._exit(4)"),
]


@pytest.mark.parametrize("file, content, code, says", EXITS,
                         ids=["import", "setup_worker", "teardown_worker", "conftest-sys",
                              "conftest-os"])
def test_an_exit_in_user_code_run_by_the_worker_is_reported_as_the_users(
        tmp_path, file, content, code, says):
    project = write_project(tmp_path / "p", {"test_a.py": "def test_a():\n    pass\n",
                                             file: content})
    run = run_medusa(project, runners=1, timeout=60)
    assert run.exit_code == code, run
    assert says in run.stdout, run
    assert "was lost" not in run.stdout and "internal error" not in run.stdout, run


def _ssh_config(server, remote: Path, **extra) -> str:
    fields = {"type": "ssh", "connect": server.connect, "directory": str(remote),
              "runners": 1, "python": sys.executable, "identity": str(server.identity),
              "known_hosts": str(server.known_hosts), **extra}
    return "workers:\n  - " + json.dumps(fields) + "\n"


@pytest.mark.parametrize("mistake", ["python", "host key"])
def test_the_only_ssh_worker_failing_to_start_says_why_and_exits_4(tmp_path, sshd, mistake):
    extra = {"python": str(tmp_path / "no-such-python")} if mistake == "python" else \
        {"known_hosts": str(write_project(tmp_path / "kh", {"known_hosts": (
            f"[127.0.0.1]:{sshd.port} ssh-ed25519 "
            "AAAAC3NzaC1lZDI1NTE5AAAAIGuXl3TGIfdvuTQKG3Mbv8j/9TRxaD3RIj6NLwwp9Vxo\n")})
                           / "known_hosts")}
    project = write_project(tmp_path / "p", {
        "test_a.py": "def test_a():\n    pass\n",
        "medusa/config.yml": _ssh_config(sshd, tmp_path / "remote", **extra)})
    run = _medusa(project, home=sshd.home)
    assert run.returncode == 4, run
    # the hint names the host as known_hosts does: [host]:port off port 22
    says = "no-such-python" if mistake == "python" else f"-R '[127.0.0.1]:{sshd.port}'"
    assert says in run.stdout, run
    assert "connection closed" not in run.stdout, run


# --- scratch folders of workers that were SIGKILLed ----------------------------------------

def test_a_build_removes_the_scratch_folders_of_dead_workers_only(tmp_path):
    import fcntl
    scratch = tmp_path / "tmp"
    dead, alive = scratch / "medusa-worker-dead", scratch / "medusa-worker-alive"
    for folder in (dead, alive):
        write_project(folder, {"runner-0.log": "left\n", ".alive": ""})
    held = os.open(alive / ".alive", os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)   # as a live worker holds it
        project = write_project(tmp_path / "p", {"test_a.py": "def test_a():\n    pass\n"})
        run = run_medusa(project, runners=1, env={"TMPDIR": str(scratch)})
        assert run.exit_code == 0, run
        assert not dead.exists(), "a dead worker's scratch folder was left"
        assert (alive / "runner-0.log").exists(), "a live worker's folder was removed"
        # and the build's own folder went with it
        assert [p.name for p in scratch.glob("medusa-worker-*")] == ["medusa-worker-alive"]
    finally:
        os.close(held)


@pytest.mark.parametrize("args, config, says", [
    (("--timeout", "nan"), "", "--timeout: expected a number of seconds, got 'nan'"),
    ((), "timeout: .nan\n", "line 1: timeout: expected a number of seconds, got nan"),
    ((), "x-a: &a [*a]\n", "an alias (*name) that contains itself"),
], ids=["timeout-nan-option", "timeout-nan-config", "recursive-alias"])
def test_bad_values_are_one_line_and_exit_4(tmp_path, args, config, says):
    files = {"test_a.py": "def test_a():\n    pass\n"}
    if config:
        files["medusa/config.yml"] = config
    project = write_project(tmp_path / "p", files)
    done = _medusa(project, "--local", "1", *args, home=tmp_path)
    assert done.returncode == 4, done
    assert says in done.stderr and "Traceback" not in done.stderr, done


def test_an_80_mb_exception_message_is_cut_not_a_dead_runner(tmp_path):
    project = write_project(tmp_path / "p", {"test_big.py": """
        def test_big():
            raise ValueError("x" * 80_000_000)

        def test_after():
            pass
    """})
    run = run_medusa(project, runners=1, timeout=180)
    assert run.exit_code == 1, run
    assert dict(run.outcomes) == {"test_big.py::test_big": "failed",
                                  "test_big.py::test_after": "passed"}, run
    big = next(r for r in run.results if r["test"] == "test_big.py::test_big")
    assert big["message"].startswith("ValueError: xxx") and "characters cut" in big["message"]
    assert len(big["message"]) < 20_000 and len(big["longrepr"]) < 2_000_000
    assert not [e for e in run.events if e["event"] == "runner_died"], run


@pytest.mark.parametrize("ci", ["teamcity", "github"])
def test_ci_commands_in_a_tests_output_do_not_reach_the_ci_raw(tmp_path, ci):
    project = write_project(tmp_path / "p", {"test_forge.py": """
        def test_forges():
            print("##teamcity[testFailed name='forged']")
            print("::error::forged")
            print("  ::add-mask::secret")
            assert 0, "##teamcity[buildStatus text='forged']"
    """})
    run = run_medusa(project, "--ci", ci, runners=1,
                     env={"GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")})
    assert run.exit_code == 1, run
    for line in run.stdout.splitlines():
        if ci == "teamcity":   # TeamCity takes a service message anywhere in a line
            assert "##teamcity[testFailed name='forged']" not in line, line
            assert "##teamcity[buildStatus text='forged']" not in line, line
        else:                  # GitHub takes a workflow command at the start of one
            assert not line.lstrip().startswith(("::error::forged", "::add-mask::")), line
    assert "forged" in run.stdout   # it is shown, only defused


def test_a_tests_fork_that_runs_on_is_an_error_of_that_test_not_twice_the_results(tmp_path):
    project = write_project(tmp_path / "p", {"test_fork.py": """
        import os

        def test_forks():
            os.fork()   # the child returns into pytest, as the parent does

        def test_after():
            pass
    """})
    run = run_medusa(project, runners=1, timeout=60)
    assert run.exit_code == 1, run
    assert sorted(run.outcomes) == [("test_fork.py::test_after", "passed"),
                                    ("test_fork.py::test_forks", "error"),
                                    ("test_fork.py::test_forks", "passed")], run
    error = next(r for r in run.results if r["outcome"] == "error")
    assert "the test forked, and its child" in error["message"], error


def test_a_daemon_a_test_started_is_ended_and_named(tmp_path):
    """A double fork with setsid leaves the worker's process group, so the master's
    signal to the group does not reach it; the build's marks in its environment do."""
    project = write_project(tmp_path / "p", {"test_daemon.py": """
        import os

        def test_starts_a_daemon(tmp_path):
            pid_file = os.path.join(os.path.dirname(__file__), "daemon.pid")
            child = os.fork()
            if child == 0:
                os.setsid()
                if os.fork() == 0:
                    with open(pid_file, "w") as out:
                        out.write(str(os.getpid()))
                    os.execvp("sleep", ["sleep", "300"])
                os._exit(0)
            os.waitpid(child, 0)
            while not os.path.exists(pid_file) or not open(pid_file).read():
                pass
    """})
    run = run_medusa(project, runners=1, timeout=60)
    assert run.exit_code == 0, run
    pid = int((project / "daemon.pid").read_text())
    assert f"medusa: ended process {pid} (sleep 300)" in run.stdout, run
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the daemon outlived the build"
        time.sleep(0.05)


def test_an_ipv6_ssh_host_passes_the_name_check(tmp_path, monkeypatch):
    from medusa import ssh_target
    monkeypatch.setenv("HOME", str(tmp_path))   # no ~/.ssh/config: nothing else is read
    assert ssh_target._ssh_config("::1") == {}
    with pytest.raises(ValueError):
        ssh_target._ssh_config("x;id")


def test_os_exit_in_a_test_module_at_import_is_that_files_collection_error(tmp_path):
    project = write_project(tmp_path / "p", {
        "test_exits.py": "import os\nos._exit(3)\n\ndef test_never():\n    pass\n",
        "test_fine.py": "def test_fine():\n    pass\n"})
    run = run_medusa(project, runners=2, timeout=60)
    assert run.exit_code == 1, run
    assert dict(run.outcomes) == {"test_exits.py": "error",
                                  "test_fine.py::test_fine": "passed"}, run
    error = next(r for r in run.results if r["test"] == "test_exits.py")
    assert error["when"] == "collect" and "os._exit(3)" in error["longrepr"], error
