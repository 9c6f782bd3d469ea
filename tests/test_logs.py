"""Runner logs (medusa/logs.py): what each runner writes to stdout and stderr, its child
processes and a crash included, lands in <report folder>/logs/<worker>/<runner>.log on the
master, byte for byte, from local and ssh workers; every Result says which bytes of that
log its run wrote; output of tests run with -s still reaches the console."""
from __future__ import annotations

import json
from pathlib import Path

from helpers import run_medusa, write_project
from test_ssh import _run, _ssh_worker

# Each test writes bytes that say which test wrote them; test_big writes every byte
# value (not UTF-8) and more than one log chunk (logs.CHUNK_BYTES), in pieces.
BIG = "bytes(range(256)) * 6000"
EXPECTED = {
    "test_prints": lambda n: f"{n}-out\n{n}-fd2\n{n}-child\n".encode(),
    "test_big": lambda n: bytes(range(256)) * 6000,
    "test_quiet": lambda n: b"",
}
PROJECT = {
    **{f"tests/test_out{n}.py": f"""
        import os
        import subprocess
        import sys

        def test_prints():
            sys.stdout.write("{n}-out\\n")
            sys.stdout.flush()
            os.write(2, b"{n}-fd2\\n")
            subprocess.run([sys.executable, "-c", "print('{n}-child')"], check=True)

        def test_big():
            data = {BIG}
            for at in range(0, len(data), 100_000):
                sys.stdout.buffer.write(data[at:at + 100_000])

        def test_quiet():
            pass
    """ for n in range(4)},
}


def _check_logs(events: list[dict], folder: Path) -> int:
    """Every test's slice of its runner's log is what it wrote, and the logs hold nothing
    else; returns how many logs there were."""
    results = [e for e in events if e["event"] == "result"]
    assert len(results) == 12, results
    logs: dict[Path, list[tuple[int, int, bytes]]] = {}
    for result in results:
        file, name = result["test"].split("::")
        n = file.removeprefix("tests/test_out").removesuffix(".py")
        log = folder / "logs" / result["worker"] / f"{result['runner_index']}.log"
        start, end = result["log"]
        logs.setdefault(log, []).append((start, end, EXPECTED[name](n)))
    for log, spans in logs.items():
        data = log.read_bytes()
        spans.sort()
        for start, end, expected in spans:
            assert data[start:end] == expected, (log, start, end, data[start:start + 80])
        # nothing lost between the tests, nothing added
        assert b"".join(expected for _, _, expected in spans) == data, log
    return len(logs)


def test_runner_output_lands_whole_in_its_log_and_each_result_points_at_its_bytes(tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    run = run_medusa(project, "--no-history", runners=2, pytest_args=["-s", "-p", "no:randomly"])
    assert run.exit_code == 0, run
    assert _check_logs(run.events, project / "medusa-report") == 2
    # -s: the output still reaches the console, as it did before logs existed
    for n in range(4):
        assert f"{n}-out\n" in run.stdout and f"{n}-child\n" in run.stdout, run.stdout
    started = [e for e in run.events if e["event"] == "build_started"]
    assert started[0]["report_dir"] == "medusa-report"


def test_a_crash_is_in_the_log_and_the_replacement_writes_on_after_it(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_crash.py": """
        import os
        import sys

        def test_before():
            print("before the crash")

        def test_crash():
            sys.stderr.write("dying now\\n")
            sys.stderr.flush()
            os._exit(3)

        def test_after():
            print("after the crash")
    """})
    run = run_medusa(project, "--no-history", "--no-split", runners=1, pytest_args=["-s"])
    assert run.exit_code == 1, run
    log = (project / "medusa-report/logs/local/0.log").read_bytes()
    assert log == b"before the crash\ndying now\nafter the crash\n", log
    after = run.result("tests/test_crash.py::test_after")
    start, end = after["log"]
    assert log[start:end] == b"after the crash\n"


def test_logging_records_go_to_the_log_with_log_level_and_only_then(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_logging.py": """
        import logging

        def test_logs():
            logging.getLogger("app.db").info("connected to %s", "db-7")
            logging.getLogger("app.db").debug("not at INFO")
    """})
    run = run_medusa(project, "--no-history", runners=1)
    assert run.exit_code == 0, run
    assert not (project / "medusa-report/logs").exists()   # nothing was written anywhere
    run = run_medusa(project, "--no-history", "--log-level", "info", runners=1)
    assert run.exit_code == 0, run
    log = (project / "medusa-report/logs/local/0.log").read_text()
    assert "INFO app.db: connected to db-7" in log and "not at INFO" not in log, log
    result = run.result("tests/test_logging.py::test_logs")
    start, end = result["log"]
    assert "connected to db-7" in log.encode()[start:end].decode()


def test_a_new_build_starts_a_clean_report_folder_but_keeps_other_files(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_p.py": """
        def test_p():
            print("printed")
    """})
    folder = tmp_path / "elsewhere"
    (folder / "logs" / "old").mkdir(parents=True)
    (folder / "logs" / "old" / "0.log").write_text("from an earlier build")
    (folder / "logs" / ".made-by-medusa").write_text("")   # as that build left it
    (folder / "events.jsonl").write_text("kept")
    run = run_medusa(project, "--no-history", "--report-dir", str(folder), runners=1,
                     pytest_args=["-s"])
    assert run.exit_code == 0, run
    assert not (folder / "logs" / "old").exists()
    assert (folder / "events.jsonl").read_text() == "kept"
    assert (folder / "logs/local/0.log").read_text() == "printed\n"


def test_logs_of_an_ssh_worker_arrive_whole(tmp_path, sshd):
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {
        **PROJECT, "medusa/config.yml": "framework_args: -s\nhistory: false\nworkers:\n"
                                        + _ssh_worker(sshd, remote)})
    done, events = _run(project, sshd)
    assert done.returncode == 0, done
    assert {e["worker"] for e in events if e["event"] == "result"} == {"127.0.0.1"}
    assert _check_logs(events, project / "medusa-report") == 2
    assert "0-child" in done.stdout
    # the logs were made there, and are not copied back there by the next build's sync
    done, events = _run(project, sshd)
    assert done.returncode == 0, done
    assert not (remote / "medusa-report").exists()
    assert json.loads(json.dumps(events[-1]))["exit_code"] == 0


def test_a_report_folder_that_cannot_be_made_is_a_usage_error(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_p.py": "def test_p():\n    pass\n"})
    run = run_medusa(project, "--report-dir", "tests/test_p.py/logs", runners=1)
    assert run.exit_code == 4, run
    assert "--report-dir tests/test_p.py/logs:" in run.stderr and "is not a folder" in run.stderr


def test_report_folder_settings_are_checked_in_the_config_file(tmp_path):
    for text, expected in (
            ("probes:\n  db: {command: 'echo 1', evry: 5}\n", "line 1: probes: probe 'db': unknown key 'evry'"),
            ("artifact_limit: lots\n", "line 1: artifact_limit: expected a size in bytes"),
            ("log_level: LOUD\n", "line 1: log_level: expected a logging level"),
            ("coverage_report: [pdf]\n", "line 1: coverage_report: unknown coverage report 'pdf'")):
        project = write_project(tmp_path / f"p{len(text)}", {
            "tests/test_p.py": "def test_p():\n    pass\n", "medusa/config.yml": text})
        run = run_medusa(project, runners=1)
        assert run.exit_code == 4 and expected in run.stderr, (text, run)


def test_a_report_folder_holding_someone_elses_logs_is_refused_and_left_alone(tmp_path):
    """`--report-dir .` in a project that has a logs/ folder of its own: medusa empties
    only parts it made, so it refuses to start rather than delete the project's files."""
    project = write_project(tmp_path / "p", {"tests/test_a.py": "def test_a():\n    print('x')\n",
                                             "logs/keep.txt": "mine\n"})
    run = run_medusa(project, "--report-dir", ".", runners=1)
    assert run.exit_code == 4, run
    assert "logs exists and is not medusa's" in run.stderr, run
    assert (project / "logs/keep.txt").read_text() == "mine\n"
    # medusa's own parts are recognised and emptied from build to build
    for _ in range(2):
        run = run_medusa(project, "--report-dir", "report", runners=1, pytest_args=["-s"])
        assert run.exit_code == 0, run
    assert sorted(p.name for p in (project / "report/logs/local").iterdir()) == ["0.log"]
