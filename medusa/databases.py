"""A database and a port per runner: the parts medusa.web.django and medusa.web.flask share.

Names. Everything a build makes carries the build's run id and the worker's name:
`<base>_medusa_<run>_<worker>` for a template, `<base>_medusa_<run>_<worker>_<runner>` for
a runner's copy. Two builds of one project at once, or two workers of one build, never
share a name.

Who is alive. A worker holds a lock on `<dir>/<run>.lock` (in $MEDUSA_DATABASES_DIR,
default `<tmp>/medusa-databases`) for as long as it or one of its runners lives; the kernel
lets go of it however the process ends, SIGKILL included. A database or folder of a run
whose lock nobody holds is stale: the next build of the project drops it (`stale_run`).
A PostgreSQL database also carries its build and host in its comment, so that a server
shared by several machines only ever loses databases of dead builds of the machine that
cleans up.

Ports. `port(base)` is `base + MEDUSA_RUNNER`: a live server per runner that the tests can
find without asking anyone.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from medusa.locks import lock_free

DIR_VARIABLE = "MEDUSA_DATABASES_DIR"
MARK = "medusa"
# PostgreSQL's limit on a name (NAMEDATALEN - 1); the parts below are kept short enough
MAX_NAME = 63
MAX_BASE = 30
MAX_WORKER = 8
# CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template: a clone
# waits this long for such a connection to end.
CLONE_PATIENCE_SECONDS = 20.0
COMMENT = re.compile(r"^medusa build (?P<run>\w+) on (?P<host>\S+)$")
# SQLSTATEs: duplicate_database, object_in_use, invalid_catalog_name
DUPLICATE_DATABASE, OBJECT_IN_USE, NO_SUCH_DATABASE = "42P04", "55006", "3D000"


# --- names -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Build:
    """One worker's share of one build: what its names are made of."""
    run_id: str
    worker: str

    @property
    def run(self) -> str:
        return _slug(self.run_id, 16)

    @property
    def tag(self) -> str:
        """`<run>_<worker>`: in every name this worker makes."""
        return f"{self.run}_{_slug(self.worker, MAX_WORKER)}"

    def name(self, base: str, runner: int | None = None) -> str:
        """The template's name for `base` (runner None), or a runner's copy's."""
        name = f"{prefix(base)}{self.tag}"
        return name if runner is None else f"{name}_{runner}"

    def comment(self) -> str:
        return f"medusa build {self.run} on {socket.gethostname()}"


def prefix(base: str) -> str:
    """What every name made from `base` starts with: `<base>_medusa_`."""
    return f"{short(base)}_{MARK}_"


def short(base: str) -> str:
    """`base` itself when it is short, else its head and a hash of the whole of it."""
    if len(base) <= MAX_BASE:
        return base
    return f"{base[:MAX_BASE - 7]}_{hashlib.sha1(base.encode()).hexdigest()[:6]}"


def _slug(text: str, limit: int) -> str:
    slug = re.sub(r"[^0-9a-zA-Z]", "", text).lower() or "x"
    if len(slug) <= limit:
        return slug
    return slug[:limit - 4] + hashlib.sha1(text.encode()).hexdigest()[:4]


def run_of(name: str, base: str) -> str:
    """The run id in a name made from `base` (a database or a file stem); "" if none."""
    found = re.match(re.escape(prefix(base)) + r"([0-9a-z]+)_", name)
    return found.group(1) if found else ""


def port(base: int, runner: int | None = None) -> int:
    """A port of this runner's own: `base + MEDUSA_RUNNER` (or `base + runner`).

    For a live server the tests start (Flask's `FLASK_RUN_PORT`, Django's
    DJANGO_LIVE_TEST_SERVER_ADDRESS, a Selenium grid's callback): runner 3 of a build
    with port(8000) serves on 8000 + 3. Two builds on one machine at once need
    different bases (or port 0, which lets the kernel pick)."""
    if runner is None:
        runner = int(os.environ.get("MEDUSA_RUNNER", "0"))
    return base + runner


# --- who is alive ----------------------------------------------------------------------------

def registry() -> Path:
    path = Path(os.environ.get(DIR_VARIABLE) or Path(tempfile.gettempdir()) / "medusa-databases")
    path.mkdir(parents=True, exist_ok=True)
    return path


def hold(build: Build) -> None:
    """Mark this build alive until this process and its runners have ended.

    The descriptor is never closed on purpose: the kernel releases the lock when the last
    process holding it ends, which is the moment the build's databases become stale.
    Shared, so the several workers of one build on one machine hold it together."""
    path = registry() / f"{build.run}.lock"
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        # another build's forget_dead_runs() may have removed the file between our open
        # and our lock: a lock on a removed file protects nothing
        try:
            if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                return
        except FileNotFoundError:
            pass
        os.close(descriptor)


def alive(run: str) -> bool:
    return lock_free(registry() / f"{run}.lock", remove=False) is False


def stale_run(run: str, current: Build) -> bool:
    """A run whose databases may be dropped: not this one, and nobody holds its lock."""
    return bool(run) and run != current.run and not alive(run)


def forget_dead_runs() -> None:
    """Remove the lock files of runs that ended (their databases are gone by now)."""
    for path in registry().glob("*.lock"):
        if not path.name.startswith("template-"):
            lock_free(path, remove=True)


class template_lock:
    """A kept template (keepdb) is built by one build at a time and never copied while
    another migrates it: exclusive while building it, shared while copying it."""

    def __init__(self, key: str, exclusive: bool) -> None:
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        self.path = registry() / f"template-{digest}.lock"
        self.mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH

    def __enter__(self) -> None:
        self.descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.descriptor, self.mode)

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.descriptor)


# --- PostgreSQL --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL server, reached with libpq parameters (host, port, user, ...) through
    psycopg 3 or psycopg2. Only used for what surrounds the tests: create, copy, drop and
    list databases, from the maintenance database."""
    params: tuple[tuple[str, Any], ...]
    driver: str = ""      # "psycopg" or "psycopg2"; "" picks the one installed

    @classmethod
    def from_url(cls, url: str) -> tuple["Postgres", str]:
        """`postgresql://user:secret@host:5432/app?sslmode=...` (SQLAlchemy's
        `postgresql+psycopg://` too) -> the server and the database name."""
        parts = urllib.parse.urlsplit(url)
        params: dict[str, Any] = dict(urllib.parse.parse_qsl(parts.query))
        for key, value in (("host", parts.hostname), ("port", parts.port),
                           ("user", parts.username), ("password", parts.password)):
            if value:
                params[key] = urllib.parse.unquote(str(value))
        return cls(tuple(sorted(params.items()))), urllib.parse.unquote(parts.path.lstrip("/"))

    def connect(self, database: str = "") -> Any:
        module = _psycopg(self.driver)
        errors: list[Exception] = []
        # as Django does: the maintenance database, else template1
        for name in ([database] if database else ["postgres", "template1"]):
            try:
                connection = module.connect(dbname=name, **dict(self.params))
            except module.OperationalError as exc:
                errors.append(exc)
                continue
            connection.autocommit = True
            return connection
        raise errors[-1]

    def create(self, name: str, template: str = "", comment: str = "") -> None:
        """CREATE DATABASE name [TEMPLATE template]; a leftover of the same name is
        dropped first. A copy waits (CLONE_PATIENCE_SECONDS) for the template to be free."""
        statement = f"CREATE DATABASE {quote(name)}" + (f" TEMPLATE {quote(template)}" if template else "")
        deadline = time.monotonic() + CLONE_PATIENCE_SECONDS
        with _closing(self.connect()) as connection:
            while True:
                try:
                    connection.cursor().execute(statement)
                    break
                except Exception as exc:
                    state = _sqlstate(exc)
                    if state == DUPLICATE_DATABASE:
                        self._drop(connection, name)
                    elif state == OBJECT_IN_USE and time.monotonic() < deadline:
                        time.sleep(0.1)
                    else:
                        raise
            if comment:
                self._comment(connection, name, comment)

    def comment(self, name: str, text: str) -> None:
        with _closing(self.connect()) as connection:
            self._comment(connection, name, text)

    def _comment(self, connection: Any, name: str, text: str) -> None:
        connection.cursor().execute(f"COMMENT ON DATABASE {quote(name)} IS {literal(text)}")

    def drop(self, name: str) -> None:
        with _closing(self.connect()) as connection:
            self._drop(connection, name)

    def _drop(self, connection: Any, name: str) -> None:
        # WITH (FORCE) (PostgreSQL 13+) ends the sessions of a runner that was killed,
        # which the server may not have noticed yet
        force = " WITH (FORCE)" if _server_version(connection) >= 130000 else ""
        connection.cursor().execute(f"DROP DATABASE IF EXISTS {quote(name)}{force}")

    def disconnect(self, name: str) -> None:
        """End every other session on `name` (a template must have none to be copied)."""
        with _closing(self.connect()) as connection:
            connection.cursor().execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))

    def databases(self, starting: str) -> list[tuple[str, str]]:
        """(name, comment) of every database whose name starts with `starting`."""
        pattern = re.sub(r"([\\_%])", r"\\\1", starting) + "%"
        with _closing(self.connect()) as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') "
                           "FROM pg_database WHERE datname LIKE %s", (pattern,))
            return [(str(name), str(comment)) for name, comment in cursor.fetchall()]

    def drop_stale(self, base: str, current: Build) -> list[str]:
        """Drop the databases made from `base` by dead builds of this machine."""
        dropped = []
        host = socket.gethostname()
        for name, comment in self.databases(prefix(base)):
            made = COMMENT.match(comment)
            if made and made["host"] == host and stale_run(made["run"], current):
                self.drop(name)
                dropped.append(name)
        return dropped

    def drop_build(self, base: str, build: Build) -> None:
        """Drop whatever this worker made from `base`: its template and its runners'
        copies (not those of another worker of the build: `..._local` is a prefix of
        `..._local2_0`)."""
        made = re.compile(re.escape(build.name(base)) + r"(_\d+)?")
        for name, comment in self.databases(build.name(base)):
            if made.fullmatch(name) and comment == build.comment():
                self.drop(name)


def _psycopg(driver: str) -> Any:
    names = [driver] if driver else ["psycopg", "psycopg2"]
    for name in names:
        try:
            return __import__(name)
        except ImportError:
            continue
    raise RuntimeError("PostgreSQL needs psycopg (pip install 'psycopg[binary]') or psycopg2")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sqlstate(exc: BaseException) -> str:
    for error in (exc, exc.__cause__):
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if state:
            return str(state)
    return ""


def _server_version(connection: Any) -> int:
    info = getattr(connection, "info", None)
    return int(getattr(info, "server_version", 0) or getattr(connection, "server_version", 0))


class _closing:
    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def __enter__(self) -> Any:
        return self.connection

    def __exit__(self, *exc_info: object) -> None:
        self.connection.close()


# --- SQLite files ------------------------------------------------------------------------------

SQLITE_COMPANIONS = ("", "-journal", "-wal", "-shm")


def sqlite_copy(template: Path, target: Path) -> None:
    """A runner's copy of a template file (closed, so whole on disk)."""
    sqlite_remove(target)
    tmp = target.with_name(target.name + ".copying")
    shutil.copyfile(template, tmp)
    os.replace(tmp, target)


def sqlite_remove(path: Path) -> None:
    for companion in SQLITE_COMPANIONS:
        Path(f"{path}{companion}").unlink(missing_ok=True)


def sqlite_files(template: Path, build: Build) -> Iterator[Path]:
    """This worker's template file and its runners' copies."""
    stem, suffix = template.stem, template.suffix
    pattern = re.compile(re.escape(stem) + r"(_\d+)?" + re.escape(suffix) + r"(-journal|-wal|-shm|\.copying)?$")
    for path in template.parent.glob(f"{glob_escape(stem)}*"):
        if pattern.match(path.name):
            yield path


def sqlite_drop_stale(directory: Path, base: str, suffix: str, current: Build) -> list[str]:
    """Delete the files made from `base` in `directory` by dead builds."""
    dropped = []
    for path in directory.glob(f"{glob_escape(prefix(base))}*"):
        if path.is_file() and suffix in path.name and stale_run(run_of(path.name, base), current):
            path.unlink(missing_ok=True)
            dropped.append(str(path))
    return dropped


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def drop_stale_folders(directory: Path, current: Build) -> list[str]:
    """Delete the per-build folders (`<run>_<worker>`) of dead builds in `directory`."""
    dropped = []
    for path in directory.iterdir() if directory.is_dir() else ():
        run = path.name.split("_", 1)[0]
        if path.is_dir() and "_" in path.name and stale_run(run, current):
            shutil.rmtree(path, ignore_errors=True)
            dropped.append(str(path))
    return dropped
