"""Django under medusa (issue 9): a real Django project, with models, migrations and
tests that write, on SQLite and on a real PostgreSQL server, with 4 runners.

Every test file writes a row with a unique name that every other file writes too, waits,
and counts the rows: runners sharing one database would collide (an IntegrityError, or a
count that is off). Each test also logs which database it used and in which runner, and
the data migration logs every time it runs, so the tests below can see that the template
was migrated once and each runner used a copy of its own. Results must equal serial
pytest's (pytest-django creating its own test database), and no database may be left
behind: after the build, after SIGTERM, and (cleaned by the next build) after SIGKILL.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from databases_support import (drop_postgres_databases, kill_build, kill_master,
                               postgres_databases, postgres_or_skip, registry, wait_for_tests)
from helpers import (MEDUSA, _environment, assert_same_as_pytest, run_medusa, start_medusa,
                     stop_medusa, write_project)

__all__ = ["registry"]   # the fixture

FILES = 6          # test_items_N.py: two tests each, both logged
MARKED = 2         # test_marked_N.py (pytest-django's marks): two tests each
RUNNERS = 4
TESTS = 2 * FILES + 2 * MARKED

SETTINGS = """
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "not secret"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "mysite.urls"
MIDDLEWARE = []

if os.environ["SHOP_DB"] == "postgresql":
    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql",
                             "NAME": os.environ["SHOP_DB_NAME"]}}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                             "NAME": BASE_DIR / "db.sqlite3"}}
    if os.environ["SHOP_DB"] == "sqlite-file":
        DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test_shop.sqlite3")}
"""

URLS = """
from django.http import JsonResponse
from django.urls import path

from shop.models import Item

urlpatterns = [path("items", lambda request: JsonResponse(
    {"items": Item.objects.filter(name__startswith="mine").count()}))]
"""

MODELS = """
from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=50, unique=True)
"""

INITIAL = """
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Item",
            fields=[("id", models.BigAutoField(auto_created=True, primary_key=True,
                                               serialize=False, verbose_name="ID")),
                    ("name", models.CharField(max_length=50, unique=True))],
        ),
    ]
"""

# A data migration: its row must be in every runner's copy, and it logs each run.
SEED = """
import os

from django.db import migrations


def seed(apps, schema_editor):
    apps.get_model("shop", "Item").objects.create(name="seed")
    if os.environ.get("SHOP_MIGRATION_LOG"):
        with open(os.environ["SHOP_MIGRATION_LOG"], "a") as log:
            log.write(f"{os.getpid()} {schema_editor.connection.settings_dict['NAME']}\\n")


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
"""

# A TransactionTestCase commits for real (and flushes after): shared databases collide.
# serialized_rollback brings the seed row back at its start. A TestCase (in a transaction)
# and the test client run in every file too; they look at their own rows only, since a
# TransactionTestCase of an earlier file on the same runner may have flushed the seed row
# (serial runs put every TransactionTestCase last; medusa runs files in its own order).
TEST_FILE = """
import os
import time

from django.db import connection
from django.test import TestCase, TransactionTestCase

from shop.models import Item


def _log(test):
    if os.environ.get("SHOP_TEST_LOG"):
        with open(os.environ["SHOP_TEST_LOG"], "a") as log:
            log.write(f"{{os.environ.get('MEDUSA_RUNNER')}} {{connection.settings_dict['NAME']}} {{test}}\\n")


class TestCommitted(TransactionTestCase):
    serialized_rollback = True

    def test_unique_row_{n}(self):
        Item.objects.create(name="shared")
        time.sleep(0.3)
        self.assertEqual(sorted(Item.objects.values_list("name", flat=True)), ["seed", "shared"])
        _log("committed-{n}")


class TestInTransaction(TestCase):
    def test_client_{n}(self):
        Item.objects.create(name="mine-{n}")
        self.assertEqual(self.client.get("/items").json(), {{"items": 1}})
        _log("transaction-{n}")
"""

# pytest-django's own way: the django_db mark and the db fixture.
PYTEST_FILE = """
import time

import pytest

from shop.models import Item


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_marked_{n}():
    Item.objects.create(name="shared")
    time.sleep(0.3)
    assert Item.objects.count() == 2


def test_db_fixture_{n}(db):
    Item.objects.create(name="other")
    assert Item.objects.filter(name="other").count() == 1
"""


def django_project(root: Path, db: str, *, unittest: bool = False) -> Path:
    files = {
        "manage.py": """
            import os
            import sys

            if __name__ == "__main__":
                os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
                from django.core.management import execute_from_command_line
                execute_from_command_line(sys.argv)
        """,
        "mysite/__init__.py": "",
        "mysite/settings.py": SETTINGS,
        "mysite/urls.py": URLS,
        "shop/__init__.py": "",
        "shop/models.py": MODELS,
        "shop/migrations/__init__.py": "",
        "shop/migrations/0001_initial.py": INITIAL,
        "shop/migrations/0002_seed.py": SEED,
        "tests/__init__.py": "",
        **{f"tests/test_items_{n}.py": TEST_FILE.format(n=n) for n in range(FILES)},
    }
    if not unittest:
        files["pytest.ini"] = "[pytest]\nDJANGO_SETTINGS_MODULE = mysite.settings\n" \
                              "addopts = -p no:randomly -p no:cacheprovider\n"
        files.update({f"tests/test_marked_{n}.py": PYTEST_FILE.format(n=n) for n in range(MARKED)})
    project = write_project(root, files)
    done = subprocess.run([sys.executable, str(MEDUSA), "setup", "--django"], cwd=project,
                          capture_output=True, text=True, timeout=60, env=_environment(None))
    assert done.returncode == 0, done
    return project


def _env(tmp_path: Path, db: str, name: str = "") -> dict[str, str]:
    return {"SHOP_DB": db, "SHOP_DB_NAME": name or f"shop_{uuid.uuid4().hex[:8]}",
            "SHOP_MIGRATION_LOG": str(tmp_path / "migrations.log"),
            "SHOP_TEST_LOG": str(tmp_path / "tests.log")}


def _medusa_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _check_each_runner_had_its_own(tmp_path: Path, tests: int) -> set[str]:
    """Every test of the build ran on the copy named for its runner; returns the names."""
    lines = [line for line in _medusa_lines(tmp_path / "tests.log") if line[0] != "None"]
    assert len(lines) == tests, lines
    names = set()
    for runner, name, _test in lines:
        assert re.search(rf"_medusa_[0-9a-f]{{12}}_local_{runner}(\.sqlite3)?$", name), lines
        names.add(name)
    assert len(names) >= 2, f"the tests ran on one runner only: {lines}"
    return names


def _migrated_in_medusa(tmp_path: Path) -> list[list[str]]:
    """Runs of the data migration on a medusa database (not serial pytest's)."""
    return [line for line in _medusa_lines(tmp_path / "migrations.log") if "_medusa_" in line[1]]


def _sqlite_leftovers(project: Path) -> list[str]:
    return sorted(p.name for p in project.glob("*_medusa_*"))


@pytest.mark.parametrize("db", ["sqlite-file", "sqlite-memory"])
def test_sqlite_four_runners_like_serial_pytest(tmp_path, registry, db):
    project = django_project(tmp_path / "p", db)
    env = _env(tmp_path, db)
    run, serial = assert_same_as_pytest(project, runners=RUNNERS, env=env)
    assert run.counts == {"passed": TESTS}, run
    migrated = _migrated_in_medusa(tmp_path)
    if db == "sqlite-file":
        names = _check_each_runner_had_its_own(tmp_path, 2 * FILES)
        assert all(Path(name).parent == project for name in names)
        assert len(migrated) == 1, migrated   # once, in the worker: the runners copied it
        assert _sqlite_leftovers(project) == [], "files left behind"
    else:
        # the fork copies the worker's in-memory database: the migration ran once, in the
        # worker, and every runner's test database is its own memory
        log = (tmp_path / "migrations.log").read_text().splitlines()
        assert len(log) == 2, log   # serial pytest's, and medusa's worker's
    assert "test database default:" in run.stdout, run


def test_postgres_four_runners_like_serial_pytest(tmp_path, registry):
    postgres_or_skip()
    project = django_project(tmp_path / "p", "postgresql")
    env = _env(tmp_path, "postgresql")
    prefix = f"test_{env['SHOP_DB_NAME']}"
    try:
        run, _ = assert_same_as_pytest(project, runners=RUNNERS, env=env)
        assert run.counts == {"passed": TESTS}, run
        names = _check_each_runner_had_its_own(tmp_path, 2 * FILES)
        assert all(name.startswith(f"{prefix}_medusa_") for name in names), names
        assert len(_migrated_in_medusa(tmp_path)) == 1
        assert postgres_databases(prefix) == [], "databases left behind"
    finally:
        drop_postgres_databases(prefix)


def test_the_unittest_driver_gets_the_same_databases(tmp_path, registry):
    """django.test.TestCase without pytest: setup_runner also sets up Django's test
    environment (the test client needs it), as Django's own runner would."""
    postgres_or_skip()
    project = django_project(tmp_path / "p", "postgresql", unittest=True)
    env = _env(tmp_path, "postgresql")
    prefix = f"test_{env['SHOP_DB_NAME']}"
    try:
        run = run_medusa(project, "--driver", "unittest", runners=RUNNERS, env=env)
        assert run.exit_code == 0, run
        assert run.counts == {"passed": 2 * FILES}, run
        _check_each_runner_had_its_own(tmp_path, 2 * FILES)
        assert postgres_databases(prefix) == []
    finally:
        drop_postgres_databases(prefix)


def test_keepdb_migrates_once_and_keeps_only_the_template(tmp_path, registry):
    project = django_project(tmp_path / "p", "sqlite-file")
    env = {**_env(tmp_path, "sqlite-file"), "MEDUSA_KEEPDB": "1"}
    for build in range(2):
        run = run_medusa(project, runners=RUNNERS, env=env)
        assert run.exit_code == 0, run
        assert run.counts == {"passed": TESTS}, run
        assert len(_migrated_in_medusa(tmp_path)) == 1, f"build {build} migrated again"
        assert _sqlite_leftovers(project) == ["test_shop_medusa_keep.sqlite3"]
    # a new migration reaches the kept template in the next build
    (project / "shop/migrations/0003_more.py").write_text(
        SEED.replace('("shop", "0001_initial")', '("shop", "0002_seed")')
            .replace('name="seed"', 'name="more"'))
    run = run_medusa(project, runners=RUNNERS, env=env)
    assert run.exit_code == 1 and run.counts.get("failed"), run   # the tests see 3 rows now
    assert len(_migrated_in_medusa(tmp_path)) == 2


def test_postgres_keepdb(tmp_path, registry):
    postgres_or_skip()
    project = django_project(tmp_path / "p", "postgresql")
    env = {**_env(tmp_path, "postgresql"), "MEDUSA_KEEPDB": "1"}
    prefix = f"test_{env['SHOP_DB_NAME']}"
    try:
        for _ in range(2):
            run = run_medusa(project, runners=RUNNERS, env=env)
            assert run.exit_code == 0, run
            assert postgres_databases(prefix) == [f"{prefix}_medusa_keep"]
        assert len(_migrated_in_medusa(tmp_path)) == 1
    finally:
        drop_postgres_databases(prefix)


def _killed_then_cleaned(tmp_path: Path, db: str, leftovers) -> None:
    project = django_project(tmp_path / "p", db)
    env = _env(tmp_path, db)
    events = tmp_path / "events.jsonl"
    process = start_medusa(project, events, runners=RUNNERS, env=env)
    try:
        wait_for_tests(events, process, count=2)
    finally:
        kill_build(process)
    left = leftovers(env, project)
    # the template and at least one runner's copy: nobody cleaned up
    assert len(left) >= 2, left
    run = run_medusa(project, runners=RUNNERS, env=env)
    assert run.exit_code == 0, run
    assert "left behind by a build that was killed" in run.stdout, run
    assert leftovers(env, project) == []


def test_a_killed_build_is_cleaned_up_by_the_next_sqlite(tmp_path, registry):
    _killed_then_cleaned(tmp_path, "sqlite-file", lambda env, project: _sqlite_leftovers(project))


def test_a_killed_build_is_cleaned_up_by_the_next_postgres(tmp_path, registry):
    postgres_or_skip()
    prefix = []
    try:
        _killed_then_cleaned(tmp_path, "postgresql", lambda env, project: (
            prefix.append(f"test_{env['SHOP_DB_NAME']}")
            or postgres_databases(f"test_{env['SHOP_DB_NAME']}")))
    finally:
        for name in set(prefix):
            drop_postgres_databases(name)


def test_a_worker_whose_master_was_killed_cleans_up_itself(tmp_path, registry):
    project = django_project(tmp_path / "p", "sqlite-file")
    events = tmp_path / "events.jsonl"
    process = start_medusa(project, events, runners=RUNNERS, env=_env(tmp_path, "sqlite-file"))
    try:
        wait_for_tests(events, process, count=2)
        assert len(_sqlite_leftovers(project)) >= 2
    finally:
        kill_master(process)
    deadline = time.monotonic() + 20
    while _sqlite_leftovers(project) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sqlite_leftovers(project) == []


def test_sigterm_cleans_up_at_once(tmp_path, registry):
    """Ctrl-C / SIGTERM: the worker's teardown hooks drop everything on the way out."""
    postgres_or_skip()
    project = django_project(tmp_path / "p", "postgresql")
    env = _env(tmp_path, "postgresql")
    prefix = f"test_{env['SHOP_DB_NAME']}"
    events = tmp_path / "events.jsonl"
    process = start_medusa(project, events, runners=RUNNERS, env=env)
    try:
        wait_for_tests(events, process, count=2)
        assert len(postgres_databases(prefix)) >= 2
        stop_medusa(process)
        assert process.returncode == 2, process.returncode
        assert postgres_databases(prefix) == []
    finally:
        if process.poll() is None:
            kill_build(process)
        drop_postgres_databases(prefix)


CRASH = """
import os

from django.test import TransactionTestCase

from shop.models import Item


class TestCrash(TransactionTestCase):
    def test_crash(self):
        Item.objects.create(name="left-by-a-crash")   # committed, then the runner dies
        os._exit(3)
"""


def test_a_crashed_runner_is_replaced_with_a_fresh_copy(tmp_path, registry):
    """teardown_runner drops the dead runner's copy; its replacement gets a new one from
    the template (the row the crashed test committed would fail the tests that count the
    rows: without history, test_crash.py goes first, so the replacement runs them)."""
    project = django_project(tmp_path / "p", "sqlite-file")
    (project / "tests/test_crash.py").write_text(CRASH)
    run = run_medusa(project, "--no-history", runners=2, env=_env(tmp_path, "sqlite-file"))
    assert run.exit_code == 1, run
    assert run.counts == {"passed": TESTS, "error": 1}, run
    assert [e["event"] for e in run.events].count("runner_died") == 1
    assert _sqlite_leftovers(project) == []


def test_a_build_beside_a_live_one_leaves_its_databases_alone(tmp_path, registry):
    """Two builds of one checkout at once: the second one's clean-up must not take the
    first one's databases for a killed build's."""
    project = django_project(tmp_path / "p", "sqlite-file")
    env = _env(tmp_path, "sqlite-file")
    events = tmp_path / "events.jsonl"
    first = start_medusa(project, events, runners=2, env=env)
    try:
        wait_for_tests(events, first, count=1)
        second = run_medusa(project, runners=2, env=env)
        assert second.exit_code == 0, second
        assert "left behind" not in second.stdout, second
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, out + err
    finally:
        if first.poll() is None:
            kill_build(first)
    assert _sqlite_leftovers(project) == []
