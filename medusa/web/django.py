"""Django: the test database is created and migrated once per worker, and each runner
tests against a copy of its own.

    setup_worker     starts Django, drops what killed builds left behind, creates and
                     migrates the template test database (Django's own setup_databases),
                     and has pytest-django use the runners' copies instead of making its own
    setup_runner     copies the template for this runner (PostgreSQL: CREATE DATABASE ...
                     TEMPLATE; SQLite: the file) and points Django's connection at the copy
    teardown_runner  drops that copy (in the worker: also after the runner crashed)
    teardown_worker  drops the template, unless it is kept (keepdb)

The plan (which aliases, which names) travels in one environment variable from the worker
to its runners and its later hooks: no state is kept anywhere else.

Databases: PostgreSQL and SQLite. An SQLite test database in memory (Django's default when
TEST NAME is not set) is copied by the fork itself, as Django's own parallel runner does,
and leaves nothing behind; a file (TEST NAME set) is copied per runner. Other backends are
refused with a message that says what to do instead.

keepdb (or MEDUSA_KEEPDB=1): the template is named `<test name>_medusa_keep`, kept after
the build and migrated (only what is new) by the next one; the runners' copies are never
kept.
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from medusa import databases
from medusa.databases import Build

PLAN_VARIABLE = "MEDUSA_DJANGO_DATABASES"
KEEPDB_VARIABLE = "MEDUSA_KEEPDB"
PLUGIN = "medusa.web.django_plugin"
VENDORS = ("postgresql", "sqlite")


@dataclass(frozen=True)
class Database:
    """One test database of the project (several aliases may share it)."""
    aliases: tuple[str, ...]
    vendor: str               # "postgresql" or "sqlite"
    base: str                 # what names start with: the test database's name (a file's stem)
    template: str             # its name, or its file's path
    folder: str = ""          # SQLite file: where the files live
    suffix: str = ""          # SQLite file: the extension (".sqlite3")
    memory: bool = False      # SQLite in memory: the fork copies it

    def copy_for(self, runner: int, build: Build) -> str:
        name = build.name(self.base, runner)
        return str(Path(self.folder) / f"{name}{self.suffix}") if self.vendor == "sqlite" else name


@dataclass(frozen=True)
class Plan:
    run_id: str
    worker: str
    keep: bool
    databases: tuple[Database, ...]
    pytest_plugins: str | None    # PYTEST_PLUGINS as it was before setup_worker

    @property
    def build(self) -> Build:
        return Build(self.run_id, self.worker)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        data = json.loads(text)
        data["databases"] = tuple(Database(**{**d, "aliases": tuple(d["aliases"])})
                                  for d in data["databases"])
        return cls(**data)


# --- the hooks ---------------------------------------------------------------------------------

def setup_worker(ctx: Any, *, settings: str = "", keepdb: bool | None = None,
                 aliases: Iterable[str] | None = None, serialize: bool = True) -> None:
    """In the worker, before the test framework loads.

    settings: the settings module (default: $DJANGO_SETTINGS_MODULE, else what manage.py
    names). keepdb: keep the template between builds (default: $MEDUSA_KEEPDB). aliases:
    the databases to prepare (default: every alias that is not a test mirror). serialize:
    keep the template's contents for tests with serialized_rollback."""
    _start_django(settings)
    build = Build(ctx.run_id, ctx.worker)
    databases.hold(build)
    keep = _flag(os.environ.get(KEEPDB_VARIABLE, "")) if keepdb is None else keepdb
    plan = Plan(ctx.run_id, ctx.worker, keep, tuple(_databases(build, keep, aliases)),
                os.environ.get("PYTEST_PLUGINS"))
    for database in plan.databases:
        for dropped in _drop_stale(database, build):
            print(f"dropped {dropped}, left behind by a build that was killed")
    databases.forget_dead_runs()
    _create_templates(plan, serialize)
    os.environ[PLAN_VARIABLE] = plan.to_json()
    # pytest-django, if the tests use it, loads this plugin: the runners' session fixture
    # django_db_setup then uses the copies instead of creating test databases itself
    os.environ["PYTEST_PLUGINS"] = ",".join(p for p in (plan.pytest_plugins, PLUGIN) if p)
    for database in plan.databases:
        how = ("the fork copies it" if database.memory
               else "kept between builds" if keep else "dropped at the end")
        print(f"test database {'/'.join(database.aliases)}: {database.template} "
              f"({database.vendor}; a copy per runner; {how})")


def setup_runner(ctx: Any) -> None:
    """In the runner, right after the fork: its own copy of every test database."""
    plan = _plan()
    for database in plan.databases:
        if database.memory:
            continue
        copy = database.copy_for(ctx.runner, plan.build)
        _copy(database, copy, plan)
        _point(database.aliases, copy)
    _restore_environment(plan)
    if "pytest_django.plugin" not in sys.modules:
        # the unittest driver: what Django's test runner (or pytest-django) would do
        from django.test.utils import setup_test_environment
        setup_test_environment()


def teardown_runner(ctx: Any) -> None:
    """In the worker, after the runner ended, however it ended: drop its copies."""
    plan = _plan()
    for database in plan.databases:
        if not database.memory:
            _drop(database, database.copy_for(ctx.runner, plan.build))


def teardown_worker(ctx: Any) -> None:
    """In the worker, at the end (Ctrl-C and SIGTERM included): drop the template unless
    it is kept, and any copy still there."""
    plan = _plan()
    from django.db import connections
    connections.close_all()
    for database in plan.databases:
        if database.memory:
            continue
        if database.vendor == "postgresql":
            _postgres(database).drop_build(database.base, plan.build)
        else:
            template = Path(database.folder) / f"{plan.build.name(database.base)}{database.suffix}"
            for path in databases.sqlite_files(template, plan.build):
                path.unlink(missing_ok=True)
        if not plan.keep:
            _drop(database, database.template)
    _restore_environment(plan)
    os.environ.pop(PLAN_VARIABLE, None)


# --- Django ------------------------------------------------------------------------------------

def _start_django(settings: str) -> None:
    """django.setup() here, before pytest loads (pytest-django then finds it ready)."""
    if settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings
    elif not os.environ.get("DJANGO_SETTINGS_MODULE"):
        found = re.search(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)""",
                          _read(Path("manage.py")))
        if not found:
            raise RuntimeError("medusa.web.django: which settings? Set DJANGO_SETTINGS_MODULE "
                               "(env: in medusa/config.yml) or pass settings=")
        os.environ["DJANGO_SETTINGS_MODULE"] = found.group(1)
    # the folder of manage.py is importable, as pytest-django (django_find_project) and
    # manage.py itself make it; nothing else is added
    if Path("manage.py").is_file() and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    import django
    django.setup()


def _databases(build: Build, keep: bool, aliases: Iterable[str] | None) -> Iterable[Database]:
    """What will be made, one entry per distinct test database; TEST NAME of each alias
    is set to its template here."""
    from django.db import connections
    from django.test.utils import get_unique_databases_and_mirrors
    wanted = set(aliases) if aliases is not None else {
        alias for alias in connections
        if not connections[alias].settings_dict.get("TEST", {}).get("MIRROR")}
    unique, _mirrors = get_unique_databases_and_mirrors(wanted)
    for _name, group in unique.values():
        group = tuple(sorted(group))
        connection = connections[group[0]]
        if connection.vendor not in VENDORS:
            raise RuntimeError(
                f"medusa.web.django copies PostgreSQL and SQLite test databases; alias "
                f"{group[0]!r} is {connection.vendor}. Give each runner its own test database "
                f"in settings.py instead: DATABASES[{group[0]!r}]['TEST'] = "
                "{'NAME': f\"test_app_{os.environ.get('MEDUSA_RUNNER', '0')}\"}")
        database = _database(group, connection, build, keep)
        for alias in group:
            test = connections[alias].settings_dict.setdefault("TEST", {})
            test["NAME"] = None if database.memory else database.template
        yield database


def _database(group: tuple[str, ...], connection: Any, build: Build, keep: bool) -> Database:
    settings = connection.settings_dict
    test_name = settings.get("TEST", {}).get("NAME") or ""
    if connection.vendor == "sqlite":
        if not test_name or connection.creation.is_in_memory_db(test_name):
            return Database(group, "sqlite", "", ":memory:", memory=True)
        path = Path(test_name).absolute()
        base = path.stem
        name = f"{databases.prefix(base)}keep" if keep else build.name(base)
        return Database(group, "sqlite", base, str(path.with_name(f"{name}{path.suffix}")),
                        str(path.parent), path.suffix)
    base = test_name or f"test_{settings['NAME']}"
    return Database(group, "postgresql", base,
                    f"{databases.prefix(base)}keep" if keep else build.name(base))


def _create_templates(plan: Plan, serialize: bool) -> None:
    """Django's setup_databases, on the template names: create, migrate, serialize."""
    from django.db import connections
    from django.test.utils import setup_databases
    aliases = {alias for database in plan.databases for alias in database.aliases}
    try:
        with _template_locks_for(plan.databases, plan.keep, exclusive=True):
            setup_databases(verbosity=0, interactive=False, keepdb=plan.keep, aliases=aliases,
                            serialized_aliases=aliases if serialize else set())
        for database in plan.databases:
            if database.vendor == "postgresql":
                server = _postgres(database)
                if not plan.keep:   # a kept template belongs to no build
                    server.comment(database.template, plan.build.comment())
    except BaseException as exc:
        connections.close_all()
        if not plan.keep:
            for database in plan.databases:
                if not database.memory:
                    _drop(database, database.template)
        if isinstance(exc, SystemExit):   # Django's way out when it cannot create one
            raise RuntimeError("creating the test databases failed (Django said why, above)") from None
        raise
    # Nobody may stay connected to a template: PostgreSQL copies only an unused one, and
    # the runners must not share the worker's connections. (SQLite keeps one in memory.)
    connections.close_all()


def _point(aliases: tuple[str, ...], name: str) -> None:
    """Django's connection (and settings) use `name` from now on, as Django's parallel
    runner points each of its workers at its clone; a test database that something still
    creates (TEST NAME) would be this one too, never a shared one."""
    from django.conf import settings
    from django.db import connections
    for alias in aliases:
        connection = connections[alias]
        connection.close()
        for settings_dict in (connection.settings_dict, settings.DATABASES[alias]):
            settings_dict["NAME"] = name
            settings_dict.setdefault("TEST", {})["NAME"] = name


# --- copies ------------------------------------------------------------------------------------

def _copy(database: Database, copy: str, plan: Plan) -> None:
    with _template_locks_for((database,), plan.keep, exclusive=False):
        if database.vendor == "postgresql":
            _postgres(database).create(copy, template=database.template,
                                       comment=plan.build.comment())
        else:
            databases.sqlite_copy(Path(database.template), Path(copy))


def _drop(database: Database, name: str) -> None:
    if database.vendor == "postgresql":
        _postgres(database).drop(name)
    else:
        databases.sqlite_remove(Path(name))


def _drop_stale(database: Database, build: Build) -> list[str]:
    if database.memory:
        return []
    if database.vendor == "postgresql":
        return _postgres(database).drop_stale(database.base, build)
    return databases.sqlite_drop_stale(Path(database.folder), database.base, database.suffix,
                                       build)


def _postgres(database: Database) -> databases.Postgres:
    """The server of the alias, reached with Django's own connection parameters (not
    through Django's connection: pytest-django blocks that outside tests)."""
    from django.db import connections
    connection = connections[database.aliases[0]]
    params = connection.get_connection_params()
    for django_only in ("dbname", "cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    driver = connection.Database.__name__.split(".")[0]
    return databases.Postgres(tuple(sorted(params.items())), driver)


class _template_locks_for:
    """Only a kept template is shared between builds, so only it needs a lock."""

    def __init__(self, entries: tuple[Database, ...], keep: bool, exclusive: bool) -> None:
        self.locks = [databases.template_lock(f"{d.vendor}:{d.template}", exclusive)
                      for d in entries if keep and not d.memory]

    def __enter__(self) -> None:
        for lock in self.locks:
            lock.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        for lock in reversed(self.locks):
            lock.__exit__(*exc_info)


# --- the plan ----------------------------------------------------------------------------------

def _plan() -> Plan:
    text = os.environ.get(PLAN_VARIABLE)
    if not text:
        raise RuntimeError("medusa.web.django: setup_worker did not run (call it from "
                           "setup_worker in medusa/environment.py)")
    return Plan.from_json(text)


def _restore_environment(plan: Plan) -> None:
    """What the tests (and what they start) see: PYTEST_PLUGINS as the user had it."""
    if plan.pytest_plugins is None:
        os.environ.pop("PYTEST_PLUGINS", None)
    else:
        os.environ["PYTEST_PLUGINS"] = plan.pytest_plugins


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
