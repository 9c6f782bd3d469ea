"""medusa/environment.py: hooks called at fixed points, on real workers and forked runners.

Each hook below appends a line to a log file: its name, the runner index it was given,
the pid it ran in. The tests append their own pid and runner, so the log shows which
process ran what, in which order."""
from __future__ import annotations

from helpers import run_medusa, write_project

HOOKS = """
import os

def _log(*words):
    with open(os.environ["HOOK_LOG"], "a") as log:
        log.write(" ".join(str(w) for w in words) + "\\n")

def setup_worker(ctx):
    print("preparing", ctx.worker)
    _log("setup_worker", ctx.worker, ctx.runner, os.getpid(), ctx.runners)

def setup_runner(ctx):
    _log("setup_runner", ctx.worker, ctx.runner, os.getpid(), ctx.runners)

def teardown_runner(ctx):
    _log("teardown_runner", ctx.worker, ctx.runner, os.getpid(), ctx.runners)

def teardown_worker(ctx):
    _log("teardown_worker", ctx.worker, ctx.runner, os.getpid(), ctx.runners)
"""

TEST = """
import os, time

def test_{n}():
    time.sleep(0.1)
    with open(os.environ["HOOK_LOG"], "a") as log:
        log.write(f"test {{os.environ['MEDUSA_WORKER']}} {{os.environ['MEDUSA_RUNNER']}} {{os.getpid()}}\\n")
"""


def _project(tmp_path, config: str = "", hooks: str = HOOKS, files: int = 6):
    log = tmp_path / "hooks.log"
    project = write_project(tmp_path / "p", {
        "medusa/environment.py": hooks,
        "medusa/config.yml": f"env:\n  HOOK_LOG: {log}\n" + config,
        **{f"tests/test_{n}.py": TEST.format(n=n) for n in range(files)},
    })
    return project, log


def _lines(log) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()]


def test_hooks_run_in_order_in_the_right_processes(tmp_path):
    project, log = _project(tmp_path)
    run = run_medusa(project, runners=3)
    assert run.exit_code == 0, run
    lines = _lines(log)
    worker_pid = lines[0][3]
    assert lines[0] == ["setup_worker", "local", "None", worker_pid, "3"], lines
    assert lines[-1] == ["teardown_worker", "local", "None", worker_pid, "3"], lines
    setups = {line[2]: line[3] for line in lines if line[0] == "setup_runner"}
    assert sorted(setups) == ["0", "1", "2"], lines
    assert worker_pid not in setups.values()   # in the forked runners themselves
    for line in lines:
        if line[0] == "test":   # the runner that ran a test is the one set up as its index
            assert setups[line[2]] == line[3], lines
    teardowns = [line for line in lines if line[0] == "teardown_runner"]
    assert sorted(t[2] for t in teardowns) == ["0", "1", "2"], lines
    assert all(t[3] == worker_pid for t in teardowns)   # in the worker, after the runner
    for index in "012":
        setup_at = next(i for i, l in enumerate(lines) if l[:3] == ["setup_runner", "local", index])
        down_at = next(i for i, l in enumerate(lines) if l[:3] == ["teardown_runner", "local", index])
        assert setup_at < down_at
    # their output and outcome reach the report
    starts = [(e["hook"], e["runner"]) for e in run.events if e["event"] == "initializer_start"]
    assert ("setup_worker", None) in starts and ("teardown_worker", None) in starts
    assert sorted(r for h, r in starts if h == "setup_runner") == ["local/0", "local/1", "local/2"]
    results = [e for e in run.events if e["event"] == "initializer_result"]
    assert len(results) == 8 and all(e["ok"] for e in results), results
    assert "worker local setup_worker:\n    preparing local" in run.stdout, run


def test_a_failing_setup_worker_fails_the_build_with_its_traceback(tmp_path):
    hooks = HOOKS.replace('print("preparing", ctx.worker)', 'raise RuntimeError("no database")')
    project, log = _project(tmp_path, hooks=hooks)
    run = run_medusa(project, runners=2)
    assert run.exit_code == 1, run
    assert "ERROR: worker local setup_worker failed: setup_worker raised " \
           "RuntimeError('no database')" in run.stdout, run
    assert "Traceback" in run.stdout and "environment.py" in run.stdout
    assert run.results == []
    assert not log.exists() or "teardown_worker" not in log.read_text()   # it never set up


def test_a_worker_whose_setup_fails_leaves_the_build_to_the_others(tmp_path):
    hooks = HOOKS.replace('print("preparing", ctx.worker)',
                          'assert ctx.worker != "local-2", "this machine is broken"')
    project, log = _project(tmp_path, hooks=hooks,
                            config="workers:\n  - {runners: 2}\n  - {runners: 1}\n")
    run = run_medusa(project, timeout=60)   # no --local: the file's two workers
    assert run.exit_code == 1, run          # a failed hook is a failed build
    assert run.counts == {"passed": 6}, run.counts   # yet every test ran, on "local"
    assert {r["worker"] for r in run.results} == {"local"}
    failures = [e for e in run.events if e["event"] == "worker_startup_failure"]
    assert [f["worker"] for f in failures] == ["local-2"], failures


def test_a_runner_whose_setup_fails_fails_its_worker_only(tmp_path):
    hooks = HOOKS.replace(
        'def setup_runner(ctx):\n',
        'def setup_runner(ctx):\n    if ctx.worker == "local-2" and ctx.runner == 1:\n'
        '        raise OSError("port taken")\n')
    project, log = _project(tmp_path, hooks=hooks, files=10,
                            config="workers:\n  - {runners: 1}\n  - {runners: 2}\n")
    run = run_medusa(project, timeout=60)
    assert run.exit_code == 1, run
    assert run.counts == {"passed": 10}, run   # what local-2 held ran on local
    assert run.finished["not_run"] == []
    failure = next(e for e in run.events if e["event"] == "worker_startup_failure")
    assert failure["worker"] == "local-2"
    assert failure["message"] == "setup_runner failed on runner 1: setup_runner raised " \
                                 "OSError('port taken')", failure
    lines = _lines(log)
    # local-2 still tore down its runners and itself
    assert sorted(l[2] for l in lines if l[:2] == ["teardown_runner", "local-2"]) == ["0", "1"]
    assert ["teardown_worker", "local-2"] in [l[:2] for l in lines]


def test_teardown_runner_runs_after_a_crash_too(tmp_path):
    project, log = _project(tmp_path, files=2)
    (project / "tests/test_crash.py").write_text("import os\n\ndef test_crash():\n    os._exit(5)\n")
    run = run_medusa(project, runners=1, timeout=60)
    assert run.exit_code == 1, run
    lines = _lines(log)
    # the crashed runner and its replacement: two set-ups, two teardowns of runner 0
    assert [l[0] for l in lines if l[0].endswith("_runner")].count("teardown_runner") == 2, lines
    assert [l[0] for l in lines if l[0].endswith("_runner")].count("setup_runner") == 2, lines


def test_a_broken_environment_file_is_a_usage_error(tmp_path):
    project, _ = _project(tmp_path, hooks="def setup_worker(ctx)\n    pass\n")
    run = run_medusa(project, runners=1)
    assert run.exit_code == 4, run
    assert "environment.py could not be loaded: SyntaxError" in run.stdout, run


def test_a_misspelt_hook_is_named(tmp_path):
    project, _ = _project(tmp_path, hooks="def setup_runners(ctx):\n    pass\n")
    run = run_medusa(project, runners=1)
    assert run.exit_code == 4, run
    assert "defines setup_runners(), which medusa never calls (did you mean setup_runner?)" \
        in run.stdout, run
