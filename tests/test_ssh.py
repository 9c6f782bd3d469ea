"""Workers on other machines, over ssh, against a real OpenSSH server on 127.0.0.1 (tests/
sshd.py): the remote tree is a folder of its own that medusa fills by sync, the remote
worker is a real `medusa worker` started by sshd, its link to the master a real reverse
port forward. No mocks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from helpers import MEDUSA, _environment, read_events, serial_outcomes, stop_medusa, \
    wait_for, write_project

PROJECT = {
    "tests/test_where.py": """
        import os

        def test_where():
            print("ran in", os.getcwd())
    """,
    **{f"tests/test_n{n}.py": f"""
        import time
        import pytest

        def test_pass():
            time.sleep(0.3)

        @pytest.mark.parametrize("x", [1, 2])
        def test_param(x):
            assert x != {n % 3}, "fails on purpose"

        @pytest.mark.skip("no")
        def test_skip():
            pass
    """ for n in range(6)},
}


def _ssh_worker(server, remote: Path, **extra) -> str:
    fields = {"type": "ssh", "connect": server.connect, "directory": str(remote),
              "runners": 2, "python": sys.executable, "identity": str(server.identity),
              "known_hosts": str(server.known_hosts), **extra}
    return "  - " + json.dumps(fields) + "\n"


def _run(project: Path, server, *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, list]:
    events = project.parent / "events.jsonl"
    env = _environment({"HOME": str(server.home)})
    env.pop("SSH_AUTH_SOCK", None)   # the test's keys only, not the agent of whoever runs it
    done = subprocess.run([sys.executable, str(MEDUSA), *args, "--format", f"json:{events}"],
                          cwd=project, capture_output=True, text=True, timeout=timeout, env=env)
    return done, read_events(events)


def _outcomes(events: list[dict]) -> list[tuple[str, str]]:
    return sorted((e["test"], e["outcome"]) for e in events if e["event"] == "result")


def test_a_build_over_a_local_and_an_ssh_worker_equals_serial_pytest(tmp_path, sshd):
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml":
                                             "workers:\n  - {type: local, runners: 1}\n"
                                             + _ssh_worker(sshd, remote)})
    serial = serial_outcomes(project)
    done, events = _run(project, sshd)
    assert done.returncode == serial.exit_code == 1, done
    assert _outcomes(events) == serial.outcomes, done
    # the remote worker ran tests, in the synced copy
    remote_results = [e for e in events if e["event"] == "result" and e["worker"] == "127.0.0.1"]
    assert remote_results, done
    assert (remote / "tests/test_n0.py").read_text() == (project / "tests/test_n0.py").read_text()
    begins = {e["worker"]: e for e in events if e["event"] == "worker_begin"}
    assert begins["127.0.0.1"]["rootdir"] == str(remote) and begins["127.0.0.1"]["runners"] == 2
    assert "synced: " in done.stdout
    # the history is written here, for the local tree, with the remote worker's files too
    history = json.loads((project / ".medusa/history.json").read_text())
    assert set(history["files"]) == {f for f in PROJECT}, history["files"].keys()


def test_only_ssh_workers_and_a_second_sync_sends_only_changes(tmp_path, sshd):
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml":
                                             "workers:\n" + _ssh_worker(sshd, remote),
                                             "notes/big.txt": "x" * 10000})
    done, events = _run(project, sshd)
    assert done.returncode == 1, done
    assert {e["worker"] for e in events if e["event"] == "result"} == {"127.0.0.1"}
    assert "synced: 9 files sent" in done.stdout, done.stdout
    # change one file, delete one: the next sync sends one and removes one
    (project / "tests/test_n5.py").write_text("def test_changed():\n    pass\n")
    (project / "notes/big.txt").unlink()
    done, events = _run(project, sshd)
    assert "synced: 1 file sent" in done.stdout and "1 removed, 7 unchanged" in done.stdout, done.stdout
    assert ("tests/test_n5.py::test_changed", "passed") in _outcomes(events)
    assert not (remote / "notes/big.txt").exists()


def test_environment_hooks_run_on_the_ssh_worker_too(tmp_path, sshd):
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {
        "tests/test_hooked.py": """
            import os

            def test_hooked():
                assert os.environ["SET_BY_HOOK"] == "runner-" + os.environ["MEDUSA_RUNNER"]
                print("ran in", os.getcwd())
        """,
        "medusa/environment.py": """
            import os

            def setup_runner(ctx):
                os.environ["SET_BY_HOOK"] = f"runner-{ctx.runner}"
                print("hooked", ctx.worker, ctx.runner, os.getcwd())
        """,
        "medusa/config.yml": "workers:\n" + _ssh_worker(sshd, remote),
    })
    done, events = _run(project, sshd)
    assert done.returncode == 0, done
    assert _outcomes(events) == [("tests/test_hooked.py::test_hooked", "passed")]
    outputs = [e["text"] for e in events if e["event"] == "initializer_output"]
    # the hooks file of the synced tree, loaded there
    assert any(f"hooked 127.0.0.1 0 {remote}" in text for text in outputs), events


def test_symbolic_links_are_made_again_there(tmp_path, sshd):
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {
        "shared/common.py": "VALUE = 42\n",
        "tests/test_link.py": """
            import os, sys
            sys.path.insert(0, os.path.dirname(__file__))
            from common import VALUE

            def test_link():
                assert VALUE == 42
        """,
        "medusa/config.yml": "workers:\n" + _ssh_worker(sshd, remote),
    })
    os.symlink("../shared/common.py", project / "tests" / "common.py")
    done, events = _run(project, sshd)
    assert done.returncode == 0, done
    assert os.readlink(remote / "tests" / "common.py") == "../shared/common.py"
    assert _outcomes(events) == [("tests/test_link.py::test_link", "passed")]


def test_setup_commands_run_there_and_their_output_is_reported(tmp_path, sshd):
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml": "workers:\n"
                                             + _ssh_worker(sshd, remote, setup=[
                                                 "echo preparing in $(pwd)", "touch made-by-setup"])})
    done, events = _run(project, sshd)
    assert done.returncode == 1, done
    assert (remote / "made-by-setup").exists()
    output = [e for e in events if e["event"] == "initializer_output"]
    assert any(f"preparing in {remote}" in e["text"] for e in output), events
    results = [(e["hook"], e["ok"]) for e in events if e["event"] == "initializer_result"]
    assert results == [("setup: echo preparing in $(pwd)", True), ("setup: touch made-by-setup", True)]


def _failing_build(tmp_path, sshd, **worker) -> tuple[subprocess.CompletedProcess, list]:
    """A local worker and a broken ssh worker: the build goes on, on the local one."""
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml":
                                             "workers:\n  - {type: local, runners: 2}\n"
                                             + _ssh_worker(sshd, remote, **worker)})
    done, events = _run(project, sshd)
    assert done.returncode == 1, done     # the failing tests of the suite
    assert len([e for e in events if e["event"] == "result"]) == 25, done   # all ran, locally
    assert {e["worker"] for e in events if e["event"] == "result"} == {"local"}
    lost = [e for e in events if e["event"] == "worker_lost"]
    assert [e["worker"] for e in lost] == ["127.0.0.1"], events
    return done, lost[0]


def test_an_unknown_host_key_is_refused(tmp_path, sshd):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    done, lost = _failing_build(tmp_path, sshd, known_hosts=str(empty))
    assert "the host key of" in lost["reason"] and "is unknown" in lost["reason"], lost
    assert f"ERROR: worker 127.0.0.1 was lost: 127.0.0.1: the host key of {sshd.connect} is unknown" \
        in done.stdout


def test_a_changed_host_key_is_refused_even_when_new_keys_are_accepted(tmp_path, sshd):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} " + " ".join(
        other.with_suffix(".pub").read_text().split()[:2]) + "\n")
    done, lost = _failing_build(tmp_path, sshd, known_hosts=str(wrong), accept_new_host_key=True)
    assert "has CHANGED" in lost["reason"], lost


def test_a_new_host_key_is_remembered_when_asked(tmp_path, sshd):
    known = tmp_path / "fresh" / "known_hosts"
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml": "workers:\n"
                                             + _ssh_worker(sshd, remote, known_hosts=str(known),
                                                           accept_new_host_key=True)})
    done, events = _run(project, sshd)
    assert done.returncode == 1 and _outcomes(events), done
    assert sshd.host_public_key.split()[1] in known.read_text()


def test_a_refused_key_is_an_authentication_failure(tmp_path, sshd):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    done, lost = _failing_build(tmp_path, sshd, identity=str(stranger))
    assert "authentication refused by" in lost["reason"], lost


def test_an_unreachable_host(tmp_path, sshd):
    import socket
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done, lost = _failing_build(tmp_path, sshd, connect=f"{sshd.user}@127.0.0.1:{port}")
    assert f"cannot reach {sshd.user}@127.0.0.1:{port}" in lost["reason"], lost


def test_a_failing_setup_command_names_the_host_and_shows_its_output(tmp_path, sshd):
    done, lost = _failing_build(tmp_path, sshd, setup=["echo no such package >&2; exit 3"])
    assert "setup command `echo no such package >&2; exit 3` failed with exit code 3" \
        in lost["reason"], lost
    assert "no such package" in lost["reason"]


def test_a_python_that_is_not_there(tmp_path, sshd):
    done, lost = _failing_build(tmp_path, sshd, python="/no/such/python")
    assert "could not start /no/such/python" in lost["reason"], lost
    assert "No such file or directory" in lost["output"], lost


def test_a_python_without_medusa(tmp_path, sshd):
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True,
                   timeout=120)
    done, lost = _failing_build(tmp_path, sshd, python=str(bare / "bin" / "python"))
    assert f"medusa is not installed for {bare / 'bin' / 'python'}" in lost["reason"], lost


def _drop_the_connection_when(project: Path, sshd, moment) -> tuple[int, str, list[dict]]:
    """Run a build and, once `moment(events)` holds, make the remote host "go away": every
    sshd session process of this test dies. Returns the exit code, output and events."""
    events_path = project.parent / "events.jsonl"
    env = _environment({"HOME": str(sshd.home)})
    env.pop("SSH_AUTH_SOCK", None)
    process = subprocess.Popen([sys.executable, str(MEDUSA), "--no-history", "--format",
                                f"json:{events_path}"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(events_path, moment, process, timeout=60, what="the moment to drop it")
        for session in psutil.Process(sshd.pid).children():
            session.kill()
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            stop_medusa(process)
    return process.returncode, stdout + stderr, read_events(events_path)


def _slow_files(count: int, seconds: float) -> dict[str, str]:
    return {f"tests/test_slow{n}.py": f"import time\n\ndef test_slow():\n    time.sleep({seconds})\n"
            for n in range(count)}


def test_the_connection_dropping_mid_build_requeues_the_remote_work(tmp_path, sshd):
    slow = _slow_files(8, 1.5)
    project = write_project(tmp_path / "p", {**slow, "medusa/config.yml":
                                             "workers:\n  - {type: local, runners: 1}\n"
                                             + _ssh_worker(sshd, tmp_path / "remote")})
    code, output, events = _drop_the_connection_when(project, sshd, lambda events: any(
        e["event"] == "file_started" and e["worker"] == "127.0.0.1" for e in events))
    assert code == 0, output
    assert sorted(e["test"] for e in events if e["event"] == "result") == \
        sorted(f"{file}::test_slow" for file in slow), output
    lost = [e for e in events if e["event"] == "worker_lost"]
    assert [e["worker"] for e in lost] == ["127.0.0.1"], output
    assert events[-1]["not_run"] == []


def test_losing_the_only_worker_ends_the_build_with_the_files_not_run(tmp_path, sshd):
    slow = _slow_files(6, 1.0)
    project = write_project(tmp_path / "p", {**slow, "medusa/config.yml": "workers:\n"
                                             + _ssh_worker(sshd, tmp_path / "remote", runners=1)})
    code, output, events = _drop_the_connection_when(
        project, sshd, lambda events: any(e["event"] == "result" for e in events))
    assert code == 1, output
    finished = events[-1]
    ran = {e["file"] for e in events if e["event"] == "file_complete"}
    not_run = {n["file"]: n["reason"] for n in finished["not_run"]}
    assert ran | set(not_run) == set(slow) and not ran & set(not_run), (ran, not_run)
    assert any("worker 127.0.0.1 was lost" in r for r in not_run.values()), not_run
    assert "files not run" in output.strip().splitlines()[-1], output


def test_ad_hoc_ssh_workers_from_the_command_line_and_ssh_config(tmp_path, sshd):
    # a Host alias in the client's ~/.ssh/config: where, who, which key
    (sshd.home / ".ssh" / "config").write_text(
        f"Host buildbox\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.identity}\n")
    project = write_project(tmp_path / f"adhoc-{os.getpid()}-{time.time_ns()}", PROJECT)
    try:
        done, events = _run(project, sshd, "--local", "1", "--ssh", "buildbox:2")
        assert done.returncode == 1, done
        workers = {e["worker"] for e in events if e["event"] == "result"}
        assert "buildbox" in {e["worker"] for e in events if e["event"] == "worker_begin"}, done
        assert len(_outcomes(events)) == 25 and workers <= {"local", "buildbox"}
    finally:
        # the default remote folder is below the login folder of the ssh user (real HOME)
        import shutil
        shutil.rmtree(Path.home() / "medusa-work" / project.name, ignore_errors=True)
