"""Flask under medusa (issue 9): a real Flask + Flask-SQLAlchemy app with an app factory,
on SQLite files and on a real PostgreSQL server, with 4 runners and the hooks that
`medusa setup --flask` writes.

Every test file posts an item with a name every other file posts too, waits, and counts:
runners sharing one database collide (a unique violation, a count that is off, or a table
another runner's fixture just dropped). The last test shows that they do collide without
the hooks."""
from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from databases_support import (drop_postgres_databases, kill_build, postgres_databases,
                               postgres_or_skip, registry, wait_for_tests)
from helpers import (MEDUSA, _environment, assert_same_as_pytest, run_medusa, start_medusa,
                     write_project)

__all__ = ["registry"]   # the fixture

FILES = 8
RUNNERS = 4

APP = """
import os

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(50), unique=True, nullable=False)


def create_app(config=None):
    app = Flask(__name__, instance_path=os.environ.get("FLASK_INSTANCE_PATH") or None)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
        "DATABASE_URL", "sqlite:///" + os.path.join(app.instance_path, "shop.sqlite3"))
    app.config.update(config or {})
    db.init_app(app)

    @app.post("/items/<name>")
    def add(name):
        db.session.add(Item(name=name))
        db.session.commit()
        return jsonify(added=name), 201

    @app.get("/items")
    def count():
        return jsonify(items=Item.query.count())

    return app
"""

CONFTEST = """
import os

import pytest

from shop import create_app, db


@pytest.fixture
def app():
    app = create_app()
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def log():
    def write(text):
        if os.environ.get("SHOP_TEST_LOG"):
            with open(os.environ["SHOP_TEST_LOG"], "a") as out:
                out.write(f"{os.environ.get('MEDUSA_RUNNER')} {os.environ.get('DATABASE_URL')} "
                          f"{os.environ.get('FLASK_RUN_PORT')} {text}\\n")
    return write
"""

TEST_FILE = """
import time


def test_items_{n}(client, log):
    assert client.post("/items/shared").status_code == 201
    time.sleep(0.3)
    assert client.get("/items").get_json() == {{"items": 1}}
    log("{n}")
"""

# prepare(): the schema, made once in the template (logged, to count how often)
PREPARE = '''

def prepare(url):
    import os
    from shop import create_app, db
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    with open(os.environ["SHOP_PREPARE_LOG"], "a") as log:
        log.write(url + "\\n")
'''


def flask_project(root: Path, *, prepare: bool = False, hooks: bool = True) -> Path:
    project = write_project(root, {
        "pytest.ini": "[pytest]\npythonpath = .\naddopts = -p no:randomly -p no:cacheprovider\n",
        "shop/__init__.py": APP,
        "tests/conftest.py": CONFTEST,
        **{f"tests/test_items_{n}.py": TEST_FILE.format(n=n) for n in range(FILES)},
    })
    if not hooks:
        return project
    done = subprocess.run([sys.executable, str(MEDUSA), "setup", "--flask"], cwd=project,
                          capture_output=True, text=True, timeout=60, env=_environment(None))
    assert done.returncode == 0, done
    assert "flask" in done.stdout.lower(), done.stdout
    if prepare:
        environment = project / "medusa/environment.py"
        text = environment.read_text()
        assert "medusa_flask.setup_worker(ctx)" in text
        text = text.replace("medusa_flask.setup_worker(ctx)",
                            "medusa_flask.setup_worker(ctx, prepare=prepare)")
        text = text.replace("\ndef prepare(url):", "\ndef _unused(url):") + PREPARE
        environment.write_text(text)
    return project


def _log(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "tests.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _check_each_runner_had_its_own(tmp_path: Path) -> None:
    lines = [line for line in _log(tmp_path) if line[0] != "None"]   # medusa's, not serial's
    assert len(lines) == FILES, lines
    for runner, url, port, _n in lines:
        assert url.endswith(f"runner-{runner}/app.sqlite3") or url.endswith(f"_local_{runner}"), lines
        assert port == str(5000 + int(runner)), lines
    assert len({line[1] for line in lines}) >= 2, f"one runner ran everything: {lines}"


def test_sqlite_four_runners_like_serial_pytest(tmp_path, registry):
    project = flask_project(tmp_path / "p")
    run, _ = assert_same_as_pytest(project, runners=RUNNERS,
                                   env={"SHOP_TEST_LOG": str(tmp_path / "tests.log")})
    assert run.counts == {"passed": FILES}, run
    _check_each_runner_had_its_own(tmp_path)
    assert [p for p in registry.iterdir() if p.is_dir()] == [], "folders left behind"


def test_sqlite_template_is_prepared_once(tmp_path, registry):
    project = flask_project(tmp_path / "p", prepare=True)
    prepared = tmp_path / "prepare.log"
    run = run_medusa(project, runners=RUNNERS, env={"SHOP_TEST_LOG": str(tmp_path / "tests.log"),
                                                    "SHOP_PREPARE_LOG": str(prepared)})
    assert run.exit_code == 0 and run.counts == {"passed": FILES}, run
    assert len(prepared.read_text().splitlines()) == 1
    _check_each_runner_had_its_own(tmp_path)


def test_postgres_four_runners_like_serial_pytest(tmp_path, registry):
    postgres_or_skip()
    import psycopg
    name = f"flaskshop_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dbname="postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')   # the app's own, for serial pytest
    project = flask_project(tmp_path / "p", prepare=True)
    env = {"DATABASE_URL": f"postgresql+psycopg:///{name}",
           "SHOP_TEST_LOG": str(tmp_path / "tests.log"),
           "SHOP_PREPARE_LOG": str(tmp_path / "prepare.log")}
    try:
        run, _ = assert_same_as_pytest(project, runners=RUNNERS, env=env)
        assert run.counts == {"passed": FILES}, run
        _check_each_runner_had_its_own(tmp_path)
        prepared = (tmp_path / "prepare.log").read_text().splitlines()
        assert len(prepared) == 1 and f"{name}_medusa_" in prepared[0], prepared
        assert postgres_databases(f"{name}_") == [], "databases left behind"

        # killed hard mid-build: the next build drops what it left
        events = tmp_path / "events.jsonl"
        process = start_medusa(project, events, runners=RUNNERS, env=env)
        try:
            wait_for_tests(events, process, count=1)
        finally:
            kill_build(process)
        assert len(postgres_databases(f"{name}_medusa_")) >= 2
        run = run_medusa(project, runners=RUNNERS, env=env)
        assert run.exit_code == 0, run
        assert "left behind by a build that was killed" in run.stdout, run
        assert postgres_databases(f"{name}_") == []
    finally:
        drop_postgres_databases(name)


def test_without_the_hooks_the_runners_collide(tmp_path, registry):
    """The control: one database for all runners fails these very tests."""
    project = flask_project(tmp_path / "p", hooks=False)
    shared = tmp_path / "shared.sqlite3"
    run = run_medusa(project, runners=RUNNERS, env={"DATABASE_URL": f"sqlite:///{shared}"})
    assert run.exit_code == 1, run
    assert run.counts.get("failed", 0) + run.counts.get("error", 0) >= 1, run
