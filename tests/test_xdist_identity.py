"""To pytest plugins and fixtures, a runner is a pytest-xdist worker: `config.workerinput`,
the PYTEST_XDIST_* variables, and (with pytest-xdist installed) the `worker_id` and
`testrun_uid` fixtures, as under `pytest -n 2`, so that a database, a port or a file made
per worker does not collide.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import _environment, assert_same_as_pytest, run_medusa, serial_outcomes, write_project

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


# pytest-django with a file test database and no `medusa setup`: under xdist pytest-django
# suffixes TEST["NAME"] with the worker id by itself; every runner must get its own file.
DJANGO_FILE_DB_PROJECT = {
    "pytest.ini": "[pytest]\nDJANGO_SETTINGS_MODULE = proj.settings\npythonpath = .\n",
    "proj/__init__.py": "",
    "proj/settings.py": """
        from pathlib import Path
        BASE = Path(__file__).resolve().parent.parent
        SECRET_KEY = "test"
        INSTALLED_APPS = ["django.contrib.contenttypes", "shop"]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                                 "NAME": str(BASE / "shop.sqlite3"),
                                 "TEST": {"NAME": str(BASE / "test_shop.sqlite3")}}}
        DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
    """,
    "shop/__init__.py": "",
    "shop/models.py": """
        from django.db import models

        class Product(models.Model):
            name = models.CharField(max_length=20)
    """,
    "conftest.py": """
        import json, os
        import pytest

        @pytest.fixture(autouse=True)
        def note(request):
            from django.db import connection
            yield
            line = {"pid": os.getpid(), "db": connection.settings_dict["NAME"]}
            with open(os.environ["IDENTITY_LOG"], "a") as out:
                out.write(json.dumps(line) + "\\n")
    """,
    **{f"tests/test_{n}.py": """
        import time
        import pytest
        from shop.models import Product

        @pytest.mark.django_db(transaction=True)
        def test_rows_are_this_workers_own():
            Product.objects.create(name="x")
            time.sleep(0.1)   # a runner sharing the file would see the other's row
            assert Product.objects.count() == 1

        @pytest.mark.django_db
        def test_in_a_transaction():
            assert not Product.objects.exists()
    """ for n in range(6)},
}


def test_pytest_django_gives_each_runner_its_file_database_without_medusa_setup(tmp_path):
    project = write_project(tmp_path / "p", DJANGO_FILE_DB_PROJECT)
    log = tmp_path / "serial.log"
    run, serial = assert_same_as_pytest(project, runners=3, env={"IDENTITY_LOG": str(log)})
    assert serial.counts == {"passed": 12}, serial
    log.unlink()
    xdist = serial_outcomes(project, pytest_args=("-n", "2"), env={"IDENTITY_LOG": str(log)})
    assert xdist.outcomes == serial.outcomes, xdist
    xdist_names = {Path(line["db"]).name for line in _lines(log)}
    assert xdist_names == {"test_shop.sqlite3_gw0", "test_shop.sqlite3_gw1"}, xdist_names

    log.unlink()
    run = run_medusa(project, "--no-history", runners=3, env={"IDENTITY_LOG": str(log)})
    assert run.exit_code == 0 and run.counts == {"passed": 12}, run
    by_pid: dict[int, set[str]] = {}
    for line in _lines(log):
        by_pid.setdefault(line["pid"], set()).add(Path(line["db"]).name)
    assert len(by_pid) >= 2, "the tests ran on one runner"
    names = [next(iter(names)) for names in by_pid.values()]
    assert all(len(n) == 1 for n in by_pid.values()) and len(set(names)) == len(names), by_pid
    assert set(names) <= {f"test_shop.sqlite3_gw{n}" for n in range(3)}, by_pid
    assert not list(project.glob("test_shop.sqlite3*")), "a test database was left behind"
