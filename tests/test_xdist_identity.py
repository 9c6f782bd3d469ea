"""To pytest plugins and fixtures, a runner is a pytest-xdist worker: `config.workerinput`,
the PYTEST_XDIST_* variables, and (with pytest-xdist installed) the `worker_id` and
`testrun_uid` fixtures, as under `pytest -n 2`, so that a database, a port or a file made
per worker does not collide.
"""
from __future__ import annotations

import json
import subprocess
import sys

from helpers import _environment, run_medusa, write_project

PROJECT = {
    "conftest.py": """
        import json, os, sqlite3
        import pytest

        @pytest.fixture(scope="session")
        def per_worker_db(request, tmp_path_factory, worker_id):
            # made once per worker, by name: two runners with one id would collide here
            path = tmp_path_factory.getbasetemp().parent / f"db-{worker_id}.sqlite"
            open(path, "x").close()
            yield sqlite3.connect(path)

        @pytest.fixture(autouse=True)
        def note(request, per_worker_db, worker_id, testrun_uid):
            line = {"test": request.node.nodeid, "worker_id": worker_id, "uid": testrun_uid,
                    "env": os.environ.get("PYTEST_XDIST_WORKER"),
                    "count": os.environ.get("PYTEST_XDIST_WORKER_COUNT"),
                    "env_uid": os.environ.get("PYTEST_XDIST_TESTRUNUID"),
                    "input": request.config.workerinput["workerid"],
                    "pid": os.getpid()}
            with open(os.environ["IDENTITY_LOG"], "a") as out:
                out.write(json.dumps(line) + "\\n")
    """,
    **{f"tests/test_{n}.py": "import time\n\ndef test_one():\n    time.sleep(0.05)\n\n"
                             "def test_two():\n    time.sleep(0.05)\n" for n in range(6)},
}


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check(lines: list[dict], workers: int) -> None:
    assert len(lines) == 12, lines
    by_pid: dict[int, set[str]] = {}
    for line in lines:
        assert line["worker_id"] == line["env"] == line["input"], line
        assert line["count"] == str(workers), line
        assert line["uid"] == line["env_uid"], line
        by_pid.setdefault(line["pid"], set()).add(line["worker_id"])
    # one id per process, a different one for each, all of gw0..gw<n-1>
    assert all(len(ids) == 1 for ids in by_pid.values()), by_pid
    ids = [next(iter(ids)) for ids in by_pid.values()]
    assert len(set(ids)) == len(ids), by_pid
    assert set(ids) <= {f"gw{n}" for n in range(workers)}, ids
    assert len({line["uid"] for line in lines}) == 1, "one testrun_uid for the whole build"


def test_runners_are_xdist_workers_to_plugins(tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    xdist_log = tmp_path / "xdist.log"
    xdist = subprocess.run([sys.executable, "-P", "-m", "pytest", "-p", "no:cacheprovider",
                            "-n", "2"], cwd=project, capture_output=True, text=True,
                           env={**_environment(None), "IDENTITY_LOG": str(xdist_log)}, timeout=120)
    assert xdist.returncode == 0, xdist.stdout + xdist.stderr
    _check(_lines(xdist_log), 2)

    medusa_log = tmp_path / "medusa.log"
    run = run_medusa(project, runners=3, env={"IDENTITY_LOG": str(medusa_log)})
    assert run.exit_code == 0, run
    _check(_lines(medusa_log), 3)
    assert len({line["pid"] for line in _lines(medusa_log)}) >= 2, "the tests ran on one runner"
