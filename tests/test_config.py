"""medusa/config.yml: every key, every override, every mistake with its exact message.

The file is read by the real YAML parser from real files; the end-to-end tests run the
real `medusa` command in a project with a config file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import MEDUSA, _environment, read_events, run_medusa, write_project
from medusa import config
from medusa.config import ConfigError, WorkerSpec


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> dict:
    path = tmp_path / "medusa" / "config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    cwd = os.getcwd()
    os.chdir(tmp_path)   # messages name the file relative to the current folder
    try:
        return {k: v.value for k, v in config.load(path, environ or {}).items()}
    finally:
        os.chdir(cwd)


def _error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text, environ)
    return str(caught.value)


# --- every key ---------------------------------------------------------------------------

def test_every_key_is_read(tmp_path):
    values = _load(tmp_path, """
        paths: [tests/unit, tests/api]
        driver: pytest
        framework_args: -p no:randomly -k 'not slow'
        workers:
          - type: local
            runners: 4
        max_host_runners: 8
        timeout: 30
        worker_timeout: 90.5
        retries: 2
        maxfail: 5
        max_replacements: 1
        history: false
        failed_first: no
        split: true
        no_split: ["tests/test_db_*.py"]
        reporters:
          - json: out/events.jsonl
          - teamcity
        env:
          DATABASE_URL: sqlite:///x.db
          EMPTY:
        environment: ci/hooks.py
    """)
    assert values == {
        "paths": ("tests/unit", "tests/api"),
        "driver": "pytest",
        "framework_args": ("-p", "no:randomly", "-k", "not slow"),
        "workers": (WorkerSpec("local", 4, "local"),),
        "max_host_runners": 8,
        "timeout": 30.0,
        "worker_timeout": 90.5,
        "retries": 2,
        "maxfail": 5,
        "max_replacements": 1,
        "history": False,
        "failed_first": False,
        "split": True,
        "no_split": ("tests/test_db_*.py",),
        "reporters": ("json:out/events.jsonl", "teamcity"),
        "env": (("DATABASE_URL", "sqlite:///x.db"), ("EMPTY", "")),
        "environment": "ci/hooks.py",
    }


def test_ssh_workers(tmp_path):
    values = _load(tmp_path, """
        workers:
          - type: ssh
            connect: ci@build-7:2222
            directory: /srv/app
            runners: 8
            python: /srv/venv/bin/python
            sync: false
            exclude: ["*.log"]
            setup: ["pip install -e ."]
            identity: ~/.ssh/ci_key
            known_hosts: /etc/ci/known_hosts
            accept_new_host_key: true
          - {type: ssh, connect: build-7}
          - {type: ssh, connect: build-8, name: eight}
    """)
    first, second, third = values["workers"]
    assert first == WorkerSpec(
        "ssh", 8, "build-7", connect="ci@build-7:2222", directory="/srv/app",
        python="/srv/venv/bin/python", sync=False, exclude=("*.log",),
        setup=("pip install -e .",), identity=os.path.expanduser("~/.ssh/ci_key"),
        known_hosts="/etc/ci/known_hosts", accept_new_host_key=True)
    assert (second.name, second.runners, second.python, second.sync) == ("build-7-2", None,
                                                                         "python3", True)
    assert second.directory == f"medusa-work/{tmp_path.name}"
    assert third.name == "eight"


def test_several_local_workers_get_names_of_their_own(tmp_path):
    values = _load(tmp_path, """
        workers:
          - {type: local, runners: auto}
          - {runners: 2}
    """)
    assert values["workers"] == (WorkerSpec("local", None, "local"),
                                 WorkerSpec("local", 2, "local-2"))


def test_environment_variables_anchors_and_merge_keys(tmp_path):
    values = _load(tmp_path, """
        x-ci: &ci
          retries: 1
        x-args: &args ["-p", "no:cacheprovider"]
        workers:
          - type: local
            runners: ${RUNNERS:-auto}
        timeout: ${TIMEOUT-15}
        framework_args: *args
        env:
          <<: {FROM_MERGE: merged, OVERRIDDEN: merged}
          OVERRIDDEN: own
          HOME_COPY: ${HOME}
          PRICE: $$5
          MAYBE: ${EMPTY_ONE:-fallback}
          KEPT_EMPTY: ${EMPTY_ONE-fallback}
    """, environ={"RUNNERS": "3", "HOME": "/home/ci", "EMPTY_ONE": ""})
    assert values["workers"] == (WorkerSpec("local", 3, "local"),)
    assert values["timeout"] == 15.0
    assert values["framework_args"] == ("-p", "no:cacheprovider")
    assert dict(values["env"]) == {"FROM_MERGE": "merged", "OVERRIDDEN": "own",
                                   "HOME_COPY": "/home/ci", "PRICE": "$5",
                                   "MAYBE": "fallback", "KEPT_EMPTY": ""}


def test_an_empty_file_sets_nothing(tmp_path):
    assert _load(tmp_path, "# nothing yet\n") == {}


# --- every mistake, with its exact message -------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("retires: 2\n",
     "medusa/config.yml, line 1: unknown key 'retires' (did you mean 'retries'?)"),
    ("timeout: soon\n",
     "medusa/config.yml, line 1: timeout: expected a number of seconds, got 'soon'"),
    ("# comment\ntimeout: -3\n",
     "medusa/config.yml, line 2: timeout: expected a number of seconds above 0, got -3"),
    ("retries: -1\n",
     "medusa/config.yml, line 1: retries: expected a whole number of at least 0, got -1"),
    ("retries: 1.5\n",
     "medusa/config.yml, line 1: retries: expected a whole number, got 1.5"),
    ("history: maybe\n",
     "medusa/config.yml, line 1: history: expected true or false, got 'maybe'"),
    ("workers:\n  - type: ssh\n",
     "medusa/config.yml, line 2: workers[0]: an ssh worker needs connect: [user@]host[:port]"),
    ("workers:\n  - type: docker\n",
     "medusa/config.yml, line 2: workers[0].type: unknown type 'docker' (known: local, ssh)"),
    ("workers:\n  - {type: ssh, connect: h, dirctory: /x}\n",
     "medusa/config.yml, line 2: workers[0].dirctory: unknown key (did you mean 'directory'?)"),
    ("workers:\n  - runers: 2\n",
     "medusa/config.yml, line 2: workers[0].runers: unknown key (did you mean 'runners'?)"),
    ("workers:\n  - type: local\n    runners: 2\n  - {type: local, runners: -1}\n",
     "medusa/config.yml, line 4: workers[1].runners: expected a whole number of at least 1, "
     "got -1"),
    ("workers:\n  - runners: 0\n",
     "medusa/config.yml, line 2: workers[0].runners: expected a whole number of at least 1, got 0"),
    ("env:\n  1BAD: x\n",
     "medusa/config.yml, line 1: env: expected an environment variable name, got '1BAD'"),
    ("reporters: json\n",
     "medusa/config.yml, line 1: reporters: expected a list of reports (json: PATH, ...), "
     "got 'json'"),
    ("retries: 1\nretries: 2\n", "medusa/config.yml, line 2: key 'retries' appears twice"),
    ("- retries\n", "medusa/config.yml: expected a mapping of keys (driver:, workers:, ...) "
                    "at the top, got list"),
    ("timeout: ${NO_SUCH_VARIABLE}\n",
     "medusa/config.yml, line 1: timeout: ${NO_SUCH_VARIABLE} is not set (give a default: "
     "${NO_SUCH_VARIABLE:-value})"),
    ("zzz: 1\n", "medusa/config.yml, line 1: unknown key 'zzz' (known: "
                 + ", ".join(config.KEYS) + ")"),
])
def test_mistakes_name_the_file_line_key_and_what_was_expected(tmp_path, text, message):
    assert _error(tmp_path, text) == message


def test_bad_yaml_says_where(tmp_path):
    message = _error(tmp_path, "retries: 1\ntimeout: [1, 2\n")
    assert message.startswith("medusa/config.yml, line 3: not valid YAML: "), message


def test_finding_the_file(tmp_path, monkeypatch):
    project = write_project(tmp_path / "p", {"medusa/config.yml": "retries: 1\n",
                                             "tests/deep/x.txt": ""})
    monkeypatch.delenv("MEDUSA_CONFIG", raising=False)
    # from a folder below the project, the project's file is found
    assert config.find_config(None, project / "tests/deep") == project / "medusa/config.yml"
    assert config.project_folder(project / "medusa/config.yml") == project.resolve()
    assert config.find_config(None, tmp_path) is None
    other = tmp_path / "other.yml"
    other.write_text("retries: 2\n")
    monkeypatch.setenv("MEDUSA_CONFIG", str(other))
    assert config.find_config(None, project) == other
    # --config beats MEDUSA_CONFIG; a file that is not there is an error naming its origin
    with pytest.raises(ConfigError, match=r"config file not found: nope.yml \(from --config\)"):
        config.find_config("nope.yml", project)
    monkeypatch.setenv("MEDUSA_CONFIG", "gone.yml")
    with pytest.raises(ConfigError, match=r"config file not found: gone.yml \(from MEDUSA_CONFIG\)"):
        config.find_config(None, project)


# --- end to end: the real command ------------------------------------------------------------

PROJECT = {
    "tests/test_env.py": """
        import os

        def test_sees_the_config_env():
            assert os.environ["FROM_CONFIG"] == "yes"

        def test_slow():
            pass
    """,
    "tests/test_other.py": "def test_other():\n    pass\n",
}


def _medusa(project: Path, *args: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MEDUSA), *args], cwd=cwd or project,
                          capture_output=True, text=True, timeout=120, env=_environment(env))


def test_a_config_file_drives_the_build(tmp_path):
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml": """
        workers:
          - type: local
            runners: 3
        framework_args: ["-k", "not slow"]
        reporters:
          - json: reports/events.jsonl
        env:
          FROM_CONFIG: "yes"
    """})
    # run from a folder below the project: the file is found, its paths are the project's
    done = _medusa(project, cwd=project / "tests")
    assert done.returncode == 0, done
    events = read_events(project / "reports/events.jsonl")
    begin = next(e for e in events if e["event"] == "worker_begin")
    assert begin["runners"] == 3 and begin["runners_reason"] == "3 asked for", begin
    finished = events[-1]
    assert finished["counts"] == {"passed": 2, "deselected": 1}, finished


def test_the_command_line_overrides_the_file(tmp_path):
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml": """
        workers: [{type: local, runners: 3}]
        env: {FROM_CONFIG: "yes"}
        framework_args: ["-k", "not slow"]
    """})
    run = run_medusa(project, runners=1,
                     pytest_args=["--deselect", "tests/test_other.py::test_other"])
    assert run.exit_code == 0, run
    begin = next(e for e in run.events if e["event"] == "worker_begin")
    assert begin["runners"] == 1, begin
    # framework arguments add up: the file's, then the command line's
    assert [t for t, _ in run.outcomes] == ["tests/test_env.py::test_sees_the_config_env"]


def test_medusa_config_shows_values_and_where_they_came_from(tmp_path):
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml": """
        retries: 2
        timeout: ${T:-9}
    """})
    done = _medusa(project, "config", "--retries", "3", "--no-history", env={"T": "7"})
    assert done.returncode == 0, done
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert lines["config"] == f"config file: {project / 'medusa/config.yml'}"
    assert "3" in lines["retries"] and lines["retries"].endswith("# command line")
    assert "7.0" in lines["timeout"] and lines["timeout"].endswith("# medusa/config.yml, line 2")
    assert "False" in lines["history"] and lines["history"].endswith("# command line")
    assert lines["split"].endswith("# default")
    assert set(config.KEYS) <= set(lines), lines


@pytest.mark.parametrize("how", ["--config", "MEDUSA_CONFIG"])
def test_another_config_file(tmp_path, how):
    project = write_project(tmp_path / "p", {**PROJECT, "ci.yml": """
        env: {FROM_CONFIG: "yes"}
        reporters: [{json: ci-events.jsonl}]
    """})
    args, env = (["--config", "ci.yml"], None) if how == "--config" else ([], {"MEDUSA_CONFIG": "ci.yml"})
    done = _medusa(project, "--local", "1", *args, env=env)
    assert done.returncode == 0, done
    events = read_events(project / "ci-events.jsonl")
    assert events[-1]["counts"] == {"passed": 3}, events[-1]


def test_a_mistake_in_the_file_is_one_line_and_exit_4(tmp_path):
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml": "workers: 3\n"})
    done = _medusa(project)
    assert done.returncode == 4, done
    assert done.stderr == ("medusa: error: medusa/config.yml, line 1: workers: expected a list "
                           "of workers, e.g. [{type: local, runners: auto}]\n"), done.stderr
    assert done.stdout == ""


def test_a_bad_report_in_the_file_names_the_file(tmp_path):
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml":
                                             "reporters: [nosuchformat]\n"})
    done = _medusa(project)
    assert done.returncode == 4, done
    assert done.stderr.startswith("medusa: error: medusa/config.yml, line 1: reporters: unknown "
                                  "format 'nosuchformat'"), done.stderr


def test_maxfail_and_max_replacements_from_the_file(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_a.py": "import os\n\ndef test_crash():\n    os._exit(3)\n\n"
                           "def test_after():\n    pass\n",
        "medusa/config.yml": "max_replacements: 0\n",
    })
    run = run_medusa(project, runners=1, timeout=60)
    assert run.exit_code == 1, run
    died = [e for e in run.events if e["event"] == "runner_died"]
    assert len(died) == 1 and "not replaced" in died[0]["reason"], died
    not_run = run.finished["not_run"]
    assert [n["file"] for n in not_run] == ["tests/test_a.py"], not_run

    project = write_project(tmp_path / "q", {
        **{f"tests/test_{n}.py": "def test_fail():\n    assert 0\n" for n in range(5)},
        "medusa/config.yml": "maxfail: 2\n",
    })
    run = run_medusa(project, "--no-history", runners=1, timeout=60)
    assert run.exit_code == 1, run
    assert run.counts == {"failed": 2}, run.counts
    assert "stopped after 2 failures (--maxfail=2)" in run.stdout, run


def test_no_config_at_all_still_runs_a_pytest_project(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_a.py": "def test_a():\n    pass\n"})
    run = run_medusa(project, runners=1)
    assert run.exit_code == 0 and run.counts == {"passed": 1}, run
    assert json.dumps(run.counts)


def test_command_driver_ci_and_junit_keys(tmp_path):
    values = _load(tmp_path, """
        command_driver:
          command: go test -json {unit}
          units: ["./pkg/*"]
          units_command: go list ./...
          junit_xml: out/{name}.xml
        ci: teamcity
        junit_suites: run
    """)
    assert values["command_driver"] == (("command", "go test -json {unit}"),
                                        ("units_command", "go list ./..."),
                                        ("junit_xml", "out/{name}.xml"), ("units", "./pkg/*"))
    assert values["ci"] == "teamcity" and values["junit_suites"] == "run"
    assert _error(tmp_path, "ci: travis\n") == (
        "medusa/config.yml, line 1: ci: expected one of auto, none, jenkins, bamboo, teamcity, "
        "github, buildbot, got 'travis'")
    assert _error(tmp_path, "command_driver: {comand: x}\n") == (
        "medusa/config.yml, line 1: command_driver: unknown key 'comand' (did you mean "
        "'command'?)")


def test_command_driver_settings_belong_to_the_command_driver(tmp_path):
    project = write_project(tmp_path / "p", {**PROJECT, "medusa/config.yml":
                                             "driver: pytest\ncommand_driver: {command: 'true'}\n"})
    done = _medusa(project)
    assert done.returncode == 4, done
    assert done.stderr == ("medusa: error: medusa/config.yml, line 2: command_driver: these are "
                           "settings of driver: command, not of driver: pytest\n"), done.stderr


def test_the_command_driver_from_the_config_file(tmp_path):
    project = write_project(tmp_path / "p", {
        "checks/ok.sh": "exit 0\n",
        "checks/bad.sh": "echo broken; exit 1\n",
        "medusa/config.yml": "command_driver:\n  command: sh {unit}\n  units: ['checks/*.sh']\n",
    })
    run = run_medusa(project, runners=2)
    assert run.exit_code == 1, run
    assert run.outcomes == [("checks/bad.sh", "failed"), ("checks/ok.sh", "passed")], run


def test_an_empty_worker_timeout_is_a_mistake_not_never(tmp_path):
    assert _error(tmp_path, "worker_timeout:\n") == \
        "medusa/config.yml, line 1: worker_timeout: expected a value, got nothing"
    assert _load(tmp_path, "timeout:\n") == {"timeout": None}   # no per-test limit
