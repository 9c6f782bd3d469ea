"""`medusa setup` as a new user meets it: in a fresh project, write the two files, then
`medusa` runs the suite."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import MEDUSA, _environment, read_events, write_project
from medusa import config, hooks


def _medusa(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MEDUSA), *args], cwd=project,
                          capture_output=True, text=True, timeout=120, env=_environment(None))


def _set_up_and_run(project: Path, *setup_args: str) -> tuple[dict, list[dict]]:
    done = _medusa(project, "setup", *setup_args)
    assert done.returncode == 0, done
    assert "wrote medusa/config.yml" in done.stdout and "wrote medusa/environment.py" in done.stdout
    assert "next: " in done.stdout
    cwd = os.getcwd()
    os.chdir(project)
    try:
        values = {k: v.value for k, v in config.load(project / config.CONFIG_FILE).items()}
    finally:
        os.chdir(cwd)
    hooks.Hooks(str(project / config.ENVIRONMENT_FILE))   # loads: it is valid Python
    events = project / "events.jsonl"
    build = _medusa(project, "--local", "2", "--format", f"json:{events}")
    assert build.returncode == 0, build
    return values, read_events(events)


def test_a_pytest_project(tmp_path):
    project = write_project(tmp_path / "p", {
        "pytest.ini": "[pytest]\naddopts = -p no:randomly\n",
        "tests/test_a.py": "def test_a():\n    pass\n",
        "tests/test_b.py": "import pytest\n\n@pytest.mark.parametrize('n', [1, 2])\n"
                           "def test_b(n):\n    pass\n",
    })
    values, events = _set_up_and_run(project)
    assert values["driver"] == "pytest" and values["paths"] == ("tests",), values
    assert events[-1]["counts"] == {"passed": 3}, events[-1]
    written = (project / config.CONFIG_FILE).read_text()
    for key in config.KEYS.values():   # every key is there, explained
        assert f"# {key.help}\n" in written and f"{key.name}:" in written, key.name


def test_a_unittest_project(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/__init__.py": "",
        "tests/test_calc.py": """
            import unittest

            class TestCalc(unittest.TestCase):
                def test_add(self):
                    self.assertEqual(1 + 1, 2)

                @unittest.skip("not today")
                def test_skipped(self):
                    pass
        """,
    })
    values, events = _set_up_and_run(project)
    assert values["driver"] == "unittest", values
    assert events[-1]["counts"] == {"passed": 1, "skipped": 1}, events[-1]


def test_a_behave_project(tmp_path):
    project = write_project(tmp_path / "p", {
        "features/calc.feature": """
            Feature: adding
              Scenario: one and one
                Given the number 1
                When I add 1
                Then I get 2
        """,
        "features/steps/calc.py": """
            from behave import given, when, then

            @given("the number {n:d}")
            def step_number(context, n):
                context.n = n

            @when("I add {m:d}")
            def step_add(context, m):
                context.n += m

            @then("I get {r:d}")
            def step_result(context, r):
                assert context.n == r
        """,
    })
    values, events = _set_up_and_run(project)
    assert values["driver"] == "behave" and values["paths"] == ("features",), values
    assert events[-1]["counts"] == {"passed": 1}, events[-1]


def test_it_does_not_overwrite_without_force(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_a.py": "def test_a():\n    pass\n",
                                             "medusa/config.yml": "retries: 1\n"})
    done = _medusa(project, "setup")
    assert done.returncode == 4, done
    assert done.stderr == ("medusa: error: medusa/config.yml already exists (medusa setup "
                           "--force overwrites)\n"), done.stderr
    assert (project / "medusa/config.yml").read_text() == "retries: 1\n"
    assert not (project / "medusa/environment.py").exists()
    done = _medusa(project, "setup", "--force")
    assert done.returncode == 0, done
    assert "driver: pytest" in (project / "medusa/config.yml").read_text()


def test_a_django_project_gets_its_settings_and_hooks(tmp_path):
    project = write_project(tmp_path / "p", {
        "manage.py": 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", '
                     '"mysite.settings")\nfrom django.core.management import execute_from_command_line\n',
        "tests/test_a.py": "def test_a():\n    pass\n",
    })
    done = _medusa(project, "setup")
    assert done.returncode == 0, done
    assert "Django" in done.stdout, done.stdout
    written = (project / "medusa/config.yml").read_text()
    assert "DJANGO_SETTINGS_MODULE: ${DJANGO_SETTINGS_MODULE:-mysite.settings}" in written
    assert "MEDUSA_RUNNER" in (project / "medusa/environment.py").read_text()


def test_flask_hooks_give_each_runner_its_own_database_and_port(tmp_path, monkeypatch):
    alive = tmp_path / "alive"   # where medusa.web.flask keeps the runners' folders
    monkeypatch.setenv("MEDUSA_DATABASES_DIR", str(alive))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    project = write_project(tmp_path / "p", {
        "tests/test_env.py": """
            import os

            def test_own_instance():
                runner = os.environ["MEDUSA_RUNNER"]
                instance = os.environ["FLASK_INSTANCE_PATH"]
                assert instance.endswith(f"runner-{runner}") and os.path.isdir(instance)
                assert os.environ["DATABASE_URL"] == f"sqlite:///{instance}/app.sqlite3"
                assert os.environ["FLASK_RUN_PORT"] == str(5000 + int(runner))
        """,
        **{f"tests/test_more{n}.py": "from test_env import test_own_instance as test_it\n"
           for n in range(3)},
    })
    values, events = _set_up_and_run(project, "--flask")
    assert events[-1]["counts"] == {"passed": 4}, events[-1]
    assert [p for p in alive.iterdir() if p.is_dir()] == []   # the teardowns cleaned up


def test_every_example_in_the_written_config_is_valid(tmp_path):
    """The file `medusa setup` writes shows every key, commented out where not set: each
    example, uncommented, must be a value medusa accepts."""
    from medusa import scaffold
    text = scaffold.config_text(scaffold.Project("pytest", ("tests",), "", ()))
    lines = []
    for line in text.splitlines():
        body = line[2:]
        if line.startswith("# ") and body.split(":")[0] in config.KEYS:
            lines.append(body)            # "# retries: 0" -> "retries: 0"
        elif line.startswith("#   "):
            lines.append(body)            # the indented rest of an example
        elif not line.startswith("#"):
            lines.append(line)
    path = tmp_path / "medusa" / "config.yml"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert set(config.load(path)) == set(config.KEYS)
    finally:
        os.chdir(cwd)
