"""CI detection: on Jenkins, Bamboo, TeamCity, GitHub Actions and Buildbot a bare `medusa`
writes what that CI server reads, and a plain console; `--ci`/$MEDUSA_CI say otherwise."""
from __future__ import annotations

import io
import os

import pytest

from helpers import run_medusa, run_on_a_terminal, write_project
from integrations_support import need, teamcity_messages, teamcity_runs, workflow_commands
from medusa.integrations import ci

SIMPLE = {
    "tests/test_a.py": """
        import time

        def test_passes():
            time.sleep(0.3)

        def test_fails():
            time.sleep(0.3)
            assert 1 == 2
    """,
    "tests/test_b.py": """
        import time

        def test_b():
            time.sleep(0.3)
    """,
}
# Each test names its CI server alone: the variables of the others (this suite may run on
# one of them) are blanked, and MEDUSA_CI back to auto (helpers.py sets it to none).
BLANK = {**{p.variable: "" for p in ci.PLATFORMS if p.variable}, "MEDUSA_CI": "auto"}


def _on(**variables: str) -> dict[str, str]:
    return {**BLANK, **variables}


@pytest.mark.parametrize("variables, expected", [
    ({"JENKINS_URL": "http://jenkins:8080/"}, "jenkins"),
    ({"bamboo_buildKey": "PROJ-PLAN-JOB1"}, "bamboo"),
    ({"TEAMCITY_VERSION": "2024.03 (build 123)"}, "teamcity"),
    ({"GITHUB_ACTIONS": "true"}, "github"),
    ({"GITHUB_ACTIONS": "false"}, None),
    ({}, None),
    # a TeamCity agent started from a Jenkins job: TeamCity started medusa more directly
    ({"JENKINS_URL": "http://j/", "TEAMCITY_VERSION": "2024.03"}, "teamcity"),
])
def test_each_ci_server_is_known_by_its_variable(variables, expected):
    found = ci.detect("auto", _on(**variables))
    assert (found.platform.name if found.platform else None) == expected


def test_the_user_has_the_last_word():
    environ = _on(TEAMCITY_VERSION="2024.03")
    assert ci.detect("none", environ).platform is None
    assert ci.detect("buildbot", environ).platform.name == "buildbot"   # sets no variable
    assert ci.choice_from_environment({"MEDUSA_CI": "Jenkins"}) == "jenkins"
    assert ci.choice_from_environment({}) == "auto"
    with pytest.raises(ValueError, match="MEDUSA_CI"):
        ci.choice_from_environment({"MEDUSA_CI": "travis"})
    # a format the user names himself wins over the default of the same name
    jenkins = ci.by_name("jenkins")
    assert ci.choose_formats(jenkins, [("junit", "out/mine.xml")]) == [("junit", "out/mine.xml")]
    assert ci.choose_formats(jenkins, [("json", "e.jsonl")]) == [
        ("json", "e.jsonl"), ("junit", ci.DEFAULT_JUNIT_PATH)]
    assert ci.choose_formats(None, [("json", "e.jsonl")]) == [("json", "e.jsonl")]


def test_the_console_sees_no_terminal_on_ci():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    plain = ci.PlainStream(terminal)
    assert terminal.isatty() and not plain.isatty()
    plain.write("a line\n")
    plain.flush()
    assert terminal.getvalue() == "a line\n"


# --- real builds ----------------------------------------------------------------------------


def test_on_jenkins_and_bamboo_a_bare_medusa_writes_junit_xml(tmp_path):
    xmlschema = need("xmlschema")
    schema = xmlschema.XMLSchema(os.path.join(os.path.dirname(__file__), "junit-10.xsd"))
    for variables in ({"JENKINS_URL": "http://jenkins:8080/"}, {"bamboo_buildKey": "P-T-J1"}):
        project = write_project(tmp_path / next(iter(variables)), SIMPLE)
        run = run_medusa(project, env=_on(**variables))
        assert run.exit_code == 1, run
        report = project / "test-reports" / "medusa.xml"
        schema.validate(str(report))
        assert report.read_text(encoding="utf-8").count("<testcase") == 3
        assert run.stdout.startswith("medusa: on "), run
        assert f"{next(iter(variables))} is set" in run.stdout.splitlines()[0]
        assert f"--format junit:{ci.DEFAULT_JUNIT_PATH}" in run.stdout.splitlines()[0]
    # a path of the user's own replaces the default one
    project = write_project(tmp_path / "own", SIMPLE)
    run = run_medusa(project, "--format", "junit:results/mine.xml",
                     env=_on(JENKINS_URL="http://j/"))
    assert (project / "results" / "mine.xml").exists()
    assert not (project / "test-reports").exists(), run


def test_on_teamcity_a_bare_medusa_speaks_service_messages(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    run = run_medusa(project, env=_on(TEAMCITY_VERSION="2024.03 (build 1)"))
    assert run.exit_code == 1, run
    runs = teamcity_runs(teamcity_messages(run.stdout))
    assert len(runs) == 3 and sum(bool(r.failed) for r in runs) == 1
    # --ci none: nothing of it
    quiet = run_medusa(project, "--ci", "none", env=_on(TEAMCITY_VERSION="2024.03"))
    assert "##teamcity[" not in quiet.stdout and not quiet.stdout.startswith("medusa: on")


def test_on_github_actions_a_bare_medusa_annotates(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    summary = tmp_path / "summary.md"
    run = run_medusa(project, env=_on(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary),
                                      GITHUB_WORKSPACE=str(project)))
    assert run.exit_code == 1, run
    errors = [c for c in workflow_commands(run.stdout) if c.name == "error"]
    assert [c.properties["title"] for c in errors] == ["FAILED tests/test_a.py::test_fails"]
    assert "1 failed, 2 passed" in summary.read_text(encoding="utf-8")


def test_buildbot_is_named_on_the_command_line(tmp_path):
    """Buildbot sets no variable of its own: its MedusaTest step runs `medusa --ci buildbot`."""
    project = write_project(tmp_path / "p", SIMPLE)
    run = run_medusa(project, "--ci", "buildbot", env=_on())
    lines = [line for line in run.stdout.splitlines() if line.startswith("medusa-buildbot ")]
    assert len(lines) == 4 and '"event": "summary"' in lines[-1], run
    assert run.stdout.startswith("medusa: on Buildbot (--ci buildbot)"), run


def test_an_unknown_ci_name_is_a_usage_error(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    run = run_medusa(project, env=_on(MEDUSA_CI="travis"), timeout=60)
    assert run.exit_code == 4 and "MEDUSA_CI='travis'" in run.stderr, run
    run = run_medusa(project, "--ci", "travis", env=_on(), timeout=60)
    assert run.exit_code == 4 and "travis" in run.stderr, run


def test_on_ci_the_console_is_plain_even_on_a_terminal(tmp_path):
    project = write_project(tmp_path / "p", SIMPLE)
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "TERM")}
    environ.update(BLANK, TERM="xterm", MEDUSA_CI="auto")
    # on a terminal, without CI, the status line is redrawn in place...
    assert "\x1b[K" in run_on_a_terminal(project, environ, "--local", "2", "--no-history")[1]
    # ...on Jenkins it is not: one plain line per file
    output = run_on_a_terminal(project, {**environ, "JENKINS_URL": "http://jenkins:8080/"},
                               "--local", "2", "--no-history")[1]
    assert "\x1b[K" not in output and "tests/test_a.py .F" in output, output
