"""`medusa setup`: look at the project, write medusa/config.yml and medusa/environment.py.

Both files explain themselves: the config lists every key with what it means (from
config.KEYS), the detected values set and the rest commented out; the environment file has
each hook with what it is for. Nothing is overwritten without --force.
"""
from __future__ import annotations

import argparse
import configparser
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from medusa import config

# How each key looks in the written file when it is not set (commented out).
EXAMPLES = {
    "paths": "[tests]",
    "driver": "pytest",
    "collect": "session",
    "framework_args": '["-p", "no:randomly"]',
    "workers": "\n  - type: local\n    runners: auto",
    "max_host_runners": "8",
    "timeout": "300",
    "worker_timeout": "60",
    "retries": "0",
    "maxfail": "0",
    "max_replacements": "3",
    "history": "true",
    "failed_first": "true",
    "split": "true",
    "no_split": '["tests/test_db_*.py"]',
    "shard": '"1/1"',
    "reporters": "\n  - json: medusa-report/events.jsonl\n  - junit: medusa-report/junit.xml",
    "env": "\n  DJANGO_SETTINGS_MODULE: app.settings",
    "environment": "medusa/environment.py",
    "report_dir": "medusa-report",
    "log_level": "INFO",
    "sample_every": "2",
    "artifact_limit": "100MiB",
    "probes": "\n  db_connections:\n    command: psql -tAc 'select count(*) from pg_stat_activity'"
              "\n    every: 5",
    "coverage": "[mypackage]",
    "coverage_branch": "true",
    "coverage_report": "[term, xml:coverage.xml]",
    "command_driver": "\n  command: go test -json {unit}\n  units_command: go list ./...",
    "ci": "auto",
    "junit_suites": "file",
}


@dataclass(frozen=True)
class Project:
    driver: str                   # pytest, unittest, behave
    paths: tuple[str, ...]        # () : the framework's own default
    web: str                      # "", "django" or "flask"
    seen: tuple[str, ...]         # why: what was found, for the user
    django_settings: str = ""     # the settings module manage.py names


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medusa setup",
                                     description="Write medusa/config.yml and "
                                                 "medusa/environment.py for this project.")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    web = parser.add_mutually_exclusive_group()
    web.add_argument("--django", action="store_true",
                     help="environment hooks for a Django project")
    web.add_argument("--flask", action="store_true", help="environment hooks for a Flask project")
    try:
        options = parser.parse_args(argv)
    except SystemExit as exit:
        return 0 if exit.code == 0 else 4
    root = Path.cwd()
    project = detect(root)
    if options.django or options.flask:
        project = Project(project.driver, project.paths, "django" if options.django else "flask",
                          project.seen + ("--django" if options.django else "--flask",),
                          project.django_settings)
    targets = {root / config.CONFIG_FILE: config_text(project),
               root / config.ENVIRONMENT_FILE: environment_text(project.web)}
    existing = [str(path.relative_to(root)) for path in targets if path.exists()]
    if existing and not options.force:
        print(f"medusa: error: {' and '.join(existing)} already exist"
              f"{'s' if len(existing) == 1 else ''} (medusa setup --force overwrites)",
              file=sys.stderr)
        return 4
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(root)}")
    print(f"detected: {project.driver}"
          + (f", {project.web}" if project.web else "")
          + (f" ({'; '.join(project.seen)})" if project.seen else ""))
    print("next: read medusa/config.yml and medusa/environment.py (every key and hook is "
          "explained there), then run `medusa`; `medusa config` shows what is in effect")
    return 0


# --- what the project is ---------------------------------------------------------------------

def detect(root: Path) -> Project:
    seen: list[str] = []
    driver = _framework(root, seen)
    paths: tuple[str, ...] = ()
    if driver == "behave":
        paths = ("features",)
    else:
        paths = tuple(name for name in ("tests", "test") if (root / name).is_dir())[:1]
    settings = re.search(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)""",
                         _read(root / "manage.py"))
    return Project(driver, paths, _web(root, seen), tuple(seen),
                   settings.group(1) if settings else "")


def _framework(root: Path, seen: list[str]) -> str:
    pytest_config = _pytest_config(root)
    if pytest_config:
        seen.append(f"pytest settings in {pytest_config}")
        return "pytest"
    conftests = [p for p in (root / "conftest.py", root / "tests/conftest.py",
                             root / "test/conftest.py") if p.is_file()]
    if conftests:
        seen.append(f"{conftests[0].relative_to(root)}")
        return "pytest"
    tests = _test_files(root)
    texts = [_read(p) for p in tests]
    if any(re.search(r"^\s*(import pytest|from pytest )", t, re.M) for t in texts):
        seen.append("tests that import pytest")
        return "pytest"
    if any(re.search(r"^def test", t, re.M) for t in texts):
        seen.append("test functions, which only pytest runs")
        return "pytest"
    if list((root / "features").glob("**/*.feature")) if (root / "features").is_dir() else []:
        seen.append("features/*.feature")
        return "behave"
    if tests:
        seen.append(f"{len(tests)} unittest files, no pytest")
        return "unittest"
    seen.append("no tests found yet; pytest is the default")
    return "pytest"


def _pytest_config(root: Path) -> str:
    if (root / "pytest.ini").is_file():
        return "pytest.ini"
    if "[tool.pytest.ini_options]" in _read(root / "pyproject.toml"):
        return "pyproject.toml"
    for name, section in (("setup.cfg", "tool:pytest"), ("tox.ini", "pytest")):
        parser = configparser.ConfigParser()
        try:
            parser.read(root / name)
        except configparser.Error:
            continue
        if parser.has_section(section):
            return name
    return ""


def _test_files(root: Path) -> list[Path]:
    skip = {".venv", "venv", "site-packages", "node_modules", ".git", ".tox"}
    return sorted(p for p in root.glob("**/test*.py") if not skip & set(p.parts))


def _web(root: Path, seen: list[str]) -> str:
    if "django" in _read(root / "manage.py"):
        seen.append("manage.py (Django)")
        return "django"
    for path in [*root.glob("*.py"), *root.glob("*/__init__.py"), *root.glob("*/app.py")]:
        if re.search(r"^\s*from flask import|^\s*import flask", _read(path), re.M):
            seen.append(f"{path.relative_to(root)} (Flask)")
            return "flask"
    return ""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


# --- the files ---------------------------------------------------------------------------------

def config_text(project: Project) -> str:
    chosen = {"driver": project.driver,
              "workers": "\n  - type: local\n    runners: auto"}
    if project.paths:
        chosen["paths"] = "[" + ", ".join(project.paths) + "]"
    if project.web == "django":
        settings = project.django_settings or "settings"
        chosen["env"] = f"\n  DJANGO_SETTINGS_MODULE: ${{DJANGO_SETTINGS_MODULE:-{settings}}}"
    lines = [
        "# medusa/config.yml: how medusa runs this project's tests (written by `medusa setup`).",
        "# Every key is optional; the command line overrides the file. `medusa config` shows",
        "# each value in effect and where it came from.",
        "# Values may use environment variables: ${VAR}, ${VAR:-default}. Top-level keys",
        "# starting with x- are ignored: a place for YAML anchors.",
        "",
    ]
    for key in config.KEYS.values():
        lines.append(f"# {key.help}")
        if key.name in chosen:
            lines.append(f"{key.name}:{'' if chosen[key.name].startswith(chr(10)) else ' '}"
                         f"{chosen[key.name]}")
        else:
            # a key added to config.py without an example is still listed, unset
            example = EXAMPLES.get(key.name, "")
            space = "" if example.startswith("\n") or not example else " "
            lines.append(f"# {key.name}:{space}" + example.replace("\n", "\n# "))
        lines.append("")
    return "\n".join(lines)


def environment_text(web: str) -> str:
    return ENVIRONMENT_HEAD + {"django": DJANGO_HOOKS, "flask": FLASK_HOOKS}.get(web, PLAIN_HOOKS)


ENVIRONMENT_HEAD = '''"""medusa/environment.py: how to prepare for the tests (written by `medusa setup`).

medusa calls these hooks, if they are defined, at fixed points of a build:

    setup_worker(ctx)     in the worker, once per machine, before the test framework loads
    setup_runner(ctx)     in each runner, right after it is forked
    teardown_runner(ctx)  in the worker, after a runner ended (also after a crash)
    teardown_worker(ctx)  in the worker, after all its runners ended

`ctx` has: worker (its name), run_id (the build's id), runners (how many on this worker)
and runner (the runner's index, from 0, for the runner hooks). Runners also see the
environment variables MEDUSA_WORKER, MEDUSA_RUNNER, MEDUSA_RUNNERS and MEDUSA_RUN_ID.
What a hook prints shows in medusa's report; a setup hook that raises stops that worker.
"""
import os

'''

PLAIN_HOOKS = '''

def setup_worker(ctx):
    """Once per machine: start a service, build assets, create a template database."""


def setup_runner(ctx):
    """Per runner: give it what must not be shared, e.g. its own port or database.

    os.environ["APP_PORT"] = str(8000 + ctx.runner)
    """


def teardown_runner(ctx):
    """Per runner, after it ended: drop what setup_runner made."""


def teardown_worker(ctx):
    """Once per machine, at the end."""
'''

DJANGO_HOOKS = '''from medusa.web import django as medusa_django

# Each runner tests against a test database of its own, a copy of one template that is
# created and migrated once per build (PostgreSQL: CREATE DATABASE ... TEMPLATE; SQLite:
# a copy of the file; SQLite in memory: the fork copies it). pytest-django and
# django.test.TestCase both use the copies. Everything is dropped at the end, also after a
# crash or Ctrl-C; what a killed build left behind is dropped by the next build.
# MEDUSA_KEEPDB=1 keeps the template between builds (only new migrations run then).
# README: "Django and Flask".


def setup_worker(ctx):
    """Once per machine, before the tests load: start Django, create and migrate the
    template. Options: settings="app.settings" (default: DJANGO_SETTINGS_MODULE),
    keepdb=True, aliases=["default"] (default: every database in settings.DATABASES)."""
    medusa_django.setup_worker(ctx)


def setup_runner(ctx):
    """In each runner, right after it is forked: copy the template, point Django at the
    copy. A live server of this runner's own: medusa.databases.port(8000), i.e.
    8000 + MEDUSA_RUNNER, for example:

        from medusa.databases import port
        os.environ["DJANGO_LIVE_TEST_SERVER_ADDRESS"] = f"localhost:{port(8081)}"
    """
    medusa_django.setup_runner(ctx)


def teardown_runner(ctx):
    """In the worker, after the runner ended (also after a crash): drop its copy."""
    medusa_django.teardown_runner(ctx)


def teardown_worker(ctx):
    """At the end (also on Ctrl-C): drop the template, unless it is kept."""
    medusa_django.teardown_worker(ctx)
'''

FLASK_HOOKS = '''from medusa.web import flask as medusa_flask

# Each runner gets its own instance folder, database and port, in the environment its app
# factory reads: DATABASE_URL (and FLASK_SQLALCHEMY_DATABASE_URI, for
# app.config.from_prefixed_env()), FLASK_INSTANCE_PATH and FLASK_RUN_PORT (5000 +
# MEDUSA_RUNNER). With DATABASE_URL=postgresql://... each runner gets a database of its
# own on that server; otherwise an SQLite file in its instance folder. Make the app in a
# fixture (create_app()), so that it reads them in the runner. Everything is dropped at the
# end, also after a crash or Ctrl-C; what a killed build left behind, by the next build.
# README: "Django and Flask".


def prepare(url):
    """Build the schema once per build, in a template the runners' databases are copied
    from (pass prepare=prepare below to use it). For example, with Flask-SQLAlchemy:

        from app import create_app, db
        app = create_app({"SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
            db.create_all()
            db.engine.dispose()    # the template must be left unused
    """


def setup_worker(ctx):
    """Once per machine, before the tests load. Options: url= (default: DATABASE_URL),
    prepare=prepare, port_base=5000."""
    medusa_flask.setup_worker(ctx)


def setup_runner(ctx):
    """In each runner, right after it is forked: its folder, database and port."""
    medusa_flask.setup_runner(ctx)


def teardown_runner(ctx):
    """In the worker, after the runner ended (also after a crash): drop its database."""
    medusa_flask.teardown_runner(ctx)


def teardown_worker(ctx):
    """At the end (also on Ctrl-C): drop the template and the build's folders."""
    medusa_flask.teardown_worker(ctx)
'''
