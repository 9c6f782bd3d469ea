"""The console report on a real terminal (a pseudo-terminal) and in a CI log."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from helpers import MEDUSA, write_project

PROJECT = {
    "tests/test_slow.py": """
        import time

        def test_one():
            time.sleep(0.6)

        def test_two():
            time.sleep(0.6)
    """,
    "tests/test_bad.py": """
        def test_fails():
            assert 1 == 2, "the numbers differ"
    """,
}


def _run_on_a_terminal(project, env, timeout=60.0) -> tuple[int, str]:
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, str(MEDUSA), "--local", "2"], cwd=project,
                               stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                               env=env)
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:   # the terminal's other side is closed: medusa ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        return process.wait(timeout=10), b"".join(chunks).decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)


def test_a_terminal_gets_a_status_line_and_failures_as_they_happen(tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TERM")}
    env["TERM"] = "xterm"
    code, output = _run_on_a_terminal(project, env)
    assert code == 1, output
    # the status line redraws itself in place and names what a runner is running
    assert "\r" in output and "\x1b[K" in output, output
    redraws = [part.split("\x1b[K")[0] for part in output.split("\r")[1:]]
    assert any("test_slow.py" in line for line in redraws), output
    # a failure is shown while the build runs, and again in the summary
    assert output.count("tests/test_bad.py::test_fails - AssertionError: the numbers differ") >= 2, output
    assert "1 failed, 2 passed in" in output, output


def test_a_ci_log_gets_one_plain_line_per_file(tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    env = {**os.environ, "CI": "true"}
    run = subprocess.run([sys.executable, str(MEDUSA), "--local", "2"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "\r" not in run.stdout and "\x1b[" not in run.stdout
    lines = run.stdout.splitlines()
    assert any(line.startswith("tests/test_slow.py ..") and line.endswith("%]") for line in lines)
    assert any(line.startswith("tests/test_bad.py F") for line in lines)
    assert lines[-1].startswith("=") and "1 failed, 2 passed in" in lines[-1]
