"""Flask: each runner gets its own instance folder, database and port, through the
environment its app factory reads.

    setup_worker     drops what killed builds left behind; with prepare=, builds the
                     schema once in a template database (PostgreSQL) or file (SQLite)
    setup_runner     makes the runner's instance folder and database (a copy of the
                     template, or empty) and sets, for the app factory and the tests:
                         DATABASE_URL                   the runner's database
                         FLASK_SQLALCHEMY_DATABASE_URI  the same (app.config.from_prefixed_env())
                         FLASK_INSTANCE_PATH            the runner's instance folder
                         FLASK_RUN_PORT                 port_base + MEDUSA_RUNNER
    teardown_runner  drops the runner's database and folder (also after a crash)
    teardown_worker  drops the template and the build's folder

The database: `url` (default $DATABASE_URL). A PostgreSQL URL gets a database per runner on
that server (`<name>_medusa_<run>_<worker>_<runner>`, created and dropped here); anything
else, or nothing, an SQLite file in the runner's instance folder.

The app must be made in the runner (a pytest fixture calling the factory), not at import
time in the worker, so that it reads the runner's variables.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from medusa import databases
from medusa.databases import Build

PLAN_VARIABLE = "MEDUSA_FLASK_DATABASES"
SQLITE_FILE = "app.sqlite3"


@dataclass(frozen=True)
class Plan:
    run_id: str
    worker: str
    kind: str           # "postgresql" or "sqlite"
    url: str            # the app's own URL (PostgreSQL): runners' URLs are made from it
    base: str           # PostgreSQL: the database's name, what the runners' names start with
    template: str       # the prepared template (a database name or a file), "" for none
    folder: str         # this worker's folder: runner-N/ instance folders, the template file
    port_base: int

    @property
    def build(self) -> Build:
        return Build(self.run_id, self.worker)

    def instance(self, runner: int) -> Path:
        return Path(self.folder) / f"runner-{runner}"

    def database(self, runner: int) -> str:
        """The runner's database: a name on the server, or a file."""
        if self.kind == "postgresql":
            return self.build.name(self.base, runner)
        return str(self.instance(runner) / SQLITE_FILE)

    def runner_url(self, runner: int) -> str:
        if self.kind == "postgresql":
            return with_database(self.url, self.database(runner))
        return "sqlite:///" + self.database(runner)

    def server(self) -> databases.Postgres:
        return databases.Postgres.from_url(self.url)[0]


# --- the hooks ---------------------------------------------------------------------------------

def setup_worker(ctx: Any, *, url: str | None = None,
                 prepare: Callable[[str], None] | None = None, port_base: int = 5000) -> None:
    """In the worker, before the tests load.

    url: the app's database (default $DATABASE_URL). prepare(url): builds the schema (and
    any data every test needs) in the template at `url`, once per build; it must close
    its connections (SQLAlchemy: db.engine.dispose()). port_base: FLASK_RUN_PORT of
    runner 0."""
    build = Build(ctx.run_id, ctx.worker)
    databases.hold(build)
    url = os.environ.get("DATABASE_URL", "") if url is None else url
    kind = "postgresql" if urllib.parse.urlsplit(url).scheme.split("+")[0] in (
        "postgres", "postgresql") else "sqlite"
    base = databases.Postgres.from_url(url)[1] if kind == "postgresql" else ""
    folder = databases.registry() / build.tag
    plan = Plan(ctx.run_id, ctx.worker, kind, url, base, "", str(folder), port_base)
    for dropped in _drop_stale(plan):
        print(f"dropped {dropped}, left behind by a build that was killed")
    databases.forget_dead_runs()
    folder.mkdir(parents=True, exist_ok=True)
    if prepare is not None:
        plan = _prepare(plan, prepare)
    os.environ[PLAN_VARIABLE] = json.dumps(asdict(plan))
    where = f"PostgreSQL, {plan.base}_medusa_..." if kind == "postgresql" else "SQLite files"
    print(f"a database per runner ({where}); "
          + (f"template {plan.template} prepared" if plan.template else "no template"))


def setup_runner(ctx: Any) -> None:
    """In the runner, right after the fork: its folder, database, port and variables."""
    plan = _plan()
    instance = plan.instance(ctx.runner)
    shutil.rmtree(instance, ignore_errors=True)   # what a crashed predecessor left
    instance.mkdir(parents=True)
    database = plan.database(ctx.runner)
    if plan.kind == "postgresql":
        plan.server().create(database, template=plan.template, comment=plan.build.comment())
    elif plan.template:
        databases.sqlite_copy(Path(plan.template), Path(database))
    url = plan.runner_url(ctx.runner)
    os.environ.update({
        "DATABASE_URL": url,
        "FLASK_SQLALCHEMY_DATABASE_URI": url,
        "FLASK_INSTANCE_PATH": str(instance),
        "FLASK_RUN_PORT": str(databases.port(plan.port_base, ctx.runner)),
    })


def teardown_runner(ctx: Any) -> None:
    """In the worker, after the runner ended, however it ended."""
    plan = _plan()
    if plan.kind == "postgresql":
        plan.server().drop(plan.database(ctx.runner))
    shutil.rmtree(plan.instance(ctx.runner), ignore_errors=True)


def teardown_worker(ctx: Any) -> None:
    """In the worker, at the end (Ctrl-C and SIGTERM included)."""
    plan = _plan()
    if plan.kind == "postgresql":
        plan.server().drop_build(plan.base, plan.build)
    shutil.rmtree(plan.folder, ignore_errors=True)
    os.environ.pop(PLAN_VARIABLE, None)


# --- parts -------------------------------------------------------------------------------------

def _prepare(plan: Plan, prepare: Callable[[str], None]) -> Plan:
    """The template, made once: an empty database (or file) that prepare() fills."""
    if plan.kind == "postgresql":
        template = plan.build.name(plan.base)
        server = plan.server()
        server.create(template, comment=plan.build.comment())
        url = with_database(plan.url, template)
    else:
        template = str(Path(plan.folder) / f"template-{SQLITE_FILE}")
        url = "sqlite:///" + template
    plan = Plan(**{**asdict(plan), "template": template})
    try:
        with _importable_here():
            prepare(url)
        if plan.kind == "postgresql":
            # a copy needs the template unused: a connection prepare() left open is ended
            server.disconnect(template)
    except BaseException:
        if plan.kind == "postgresql":
            server.drop(template)
        shutil.rmtree(plan.folder, ignore_errors=True)
        raise
    return plan


class _importable_here:
    """The project's folder on sys.path while prepare() imports the app, as the `flask`
    command has it; taken off again, so the tests import what pytest lets them."""

    def __enter__(self) -> None:
        self.added = os.getcwd() not in sys.path
        if self.added:
            sys.path.insert(0, os.getcwd())

    def __exit__(self, *exc_info: object) -> None:
        if self.added and os.getcwd() in sys.path:
            sys.path.remove(os.getcwd())


def _drop_stale(plan: Plan) -> list[str]:
    dropped = databases.drop_stale_folders(databases.registry(), plan.build)
    if plan.kind == "postgresql":
        dropped += plan.server().drop_stale(plan.base, plan.build)
    return dropped


def with_database(url: str, name: str) -> str:
    """`url` with another database name (its path)."""
    parts = urllib.parse.urlsplit(url)
    # by hand: urlunsplit drops the "//" of a URL without a host (postgresql:///app)
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}/{urllib.parse.quote(name)}{query}"


def _plan() -> Plan:
    text = os.environ.get(PLAN_VARIABLE)
    if not text:
        raise RuntimeError("medusa.web.flask: setup_worker did not run (call it from "
                           "setup_worker in medusa/environment.py)")
    return Plan(**json.loads(text))
