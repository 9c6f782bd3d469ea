"""--format teamcity, read by a strict parser of the documented service message grammar
(integrations_support.py, which shares no code with medusa's writer): every message
parses, every test starts and finishes in its runner's flow inside a suite, and names
with quotes, brackets, bars, line ends and any letter come back as they were."""
from __future__ import annotations

import io

import pytest

from helpers import run_medusa, write_project
from integrations_support import (KILLER, ODD_PARAMS, PROJECT, RETRIED, ServiceMessageError,
                                  parse_teamcity_line, teamcity_messages, teamcity_runs)
from medusa import events, messages
from medusa.integrations.names import teamcity_name
from medusa.integrations.teamcity.reporter import TeamCityReporter
from medusa.integrations.teamcity.service_messages import escape, message

R = messages.Result
NASTY = ["it's", "a|b", "[x]", "]x[", "two\nlines", "cr\rhere", "ünï ☃", "😀 beyond the BMP",
         "tab\tand \x1b[31mansi\x1b[0m", "||''[[]]", "|0x0041 looks like an escape", ""]


@pytest.mark.parametrize("text", NASTY)
def test_any_text_survives_the_escaping(text):
    line = message("testStarted", name=text, flowId="local/0")
    assert line.isascii() and "\n" not in line and "\r" not in line
    parsed = parse_teamcity_line(line)
    assert parsed.name == "testStarted"
    assert parsed.attributes == {"name": text, "flowId": "local/0"}


def test_the_parser_is_strict():
    """It must be able to say no, or the tests above prove nothing."""
    for bad in ["##teamcity[testStarted name='it's']",          # a bare apostrophe
                "##teamcity[testStarted name='[x]']",            # a bare bracket
                "##teamcity[testStarted name='a|x']",            # an unknown escape
                "##teamcity[testStarted name='a|0x12']",         # a short code
                "##teamcity[testStarted name='ü']",              # not ASCII
                "##teamcity[testStarted name='a' name='b']",     # twice
                "##teamcity[testStarted name='a'"]:              # not closed
        with pytest.raises(ServiceMessageError):
            parse_teamcity_line(bad)
    assert escape("é") == "|0x00e9"
    assert escape("😀") == "|0xd83d|0xde00"     # two UTF-16 units, as Java reads them


def test_names_are_those_of_teamcitys_pytest_plugin():
    assert teamcity_name("tests/test_x.py::test_y") == "tests.test_x.test_y"
    assert teamcity_name("tests/test_x.py::TestA::test_y[1.5-a]") == "tests.test_x.TestA.test_y(1_5-a)"
    assert teamcity_name("tests/my.pkg/test_x.py::test_y") == "tests.my_pkg.test_x.test_y"
    assert teamcity_name("tests/test_x.py") == "tests.test_x.top_level"


def _stream(events_in: list[object], retries_in_argv: bool = False) -> str:
    out = io.StringIO()
    reporter = TeamCityReporter(out)
    argv = ("--retries", "2") if retries_in_argv else ()
    reporter.handle(events.BuildStarted("r", 0.0, "/p", ("local",), argv))
    for event in events_in:
        reporter.handle(event)
    reporter.close()
    return out.getvalue()


def test_runners_are_flows_and_every_outcome_is_a_test():
    a, b = "tests/test_a.py", "tests/test_b.py"
    attempt = messages.Attempt("failed", "call", 0.25, "AssertionError: first", "E first", "local", 0)
    output = _stream([
        events.FileStarted("local", 0, a), events.FileStarted("local", 1, b),
        R("local", 0, a, f"{a}::test_ok", "passed", "call", 0.0123,
          sections=(("Captured stdout call", "hello\n"), ("Captured stderr call", "oops\n"))),
        R("local", 1, b, f"{b}::test_bad", "failed", "call", 1.5, "AssertionError: no", "E   no"),
        R("local", 0, a, f"{a}::test_skip", "skipped", "setup", 0.0, "not today"),
        R("local", 1, b, f"{b}::test_xf", "xfailed", "call", 0.0, "known"),
        R("local", 0, a, f"{a}::test_td", "passed", "call", 0.1),
        R("local", 0, a, f"{a}::test_td", "error", "teardown", 0.1, "RuntimeError: td", "E td"),
        messages.FileComplete("local", 1, b, 2.0, 2),
        R("local", 0, a, f"{a}::test_flaky", "flaky", "call", 0.5, attempts=(attempt, attempt)),
        messages.FileComplete("local", 0, a, 2.0, 4),
        messages.WorkerStartupFailure("remote", "could not import conftest", "", 4),
        events.NotRun("tests/test_gone.py", "its runner died while importing it"),
        events.BuildFinished(1, 3.25, (("passed", 2), ("failed", 1), ("flaky", 1)),
                             (events.NotRun("tests/test_gone.py",
                                            "its runner died while importing it"),)),
    ])
    found = teamcity_messages(output)
    runs = teamcity_runs(found)
    by_name: dict[str, list] = {}
    for run in runs:
        by_name.setdefault(run.name, []).append(run)

    [ok] = by_name["tests.test_a.test_ok"]
    assert (ok.flow, ok.suite, ok.duration) == ("local/0", a, 12)
    assert ok.stdout == ["----- Captured stdout call -----\nhello\n"]
    assert ok.stderr == ["----- Captured stderr call -----\noops\n"]
    [bad] = by_name["tests.test_b.test_bad"]
    assert bad.flow == "local/1" and bad.duration == 1500
    assert bad.failed[0]["message"] == "AssertionError: no" and "E   no" in bad.failed[0]["details"]
    assert by_name["tests.test_a.test_skip"][0].ignored[0]["message"] == "not today"
    assert "known" in by_name["tests.test_b.test_xf"][0].ignored[0]["message"]
    # a failing teardown is a test of its own; the test itself passed
    assert not by_name["tests.test_a.test_td"][0].failed
    assert by_name["tests.test_a.test_td_teardown"][0].failed[0]["message"] == "RuntimeError: td"
    # retried: two failed runs, then the passing one, under one name; retry support first
    flaky = by_name["tests.test_a.test_flaky"]
    assert [bool(run.failed) for run in flaky] == [True, True, False]
    assert [run.duration for run in flaky] == [250, 250, 500]
    names = [m.name for m in found]
    first_flaky = next(i for i, m in enumerate(found)
                       if m.attributes.get("name") == "tests.test_a.test_flaky")
    assert names.index("testRetrySupport") < first_flaky
    assert found[names.index("testRetrySupport")].attributes == {"enabled": "true"}
    # a file not run is a failed test named for the file, once
    [gone] = by_name["tests.test_gone.top_level"]
    assert gone.failed[0]["message"] == "not run: its runner died while importing it"
    problems = [m.attributes["description"] for m in found if m.name == "buildProblem"]
    assert problems == ["medusa: worker remote could not start: could not import conftest"]
    statistics = {m.attributes["key"]: m.attributes["value"] for m in found
                  if m.name == "buildStatisticValue"}
    assert statistics == {"medusa.tests.passed": "2", "medusa.tests.failed": "1",
                          "medusa.tests.flaky": "1", "medusa.files.notRun": "1",
                          "medusa.duration": "3.250"}


def test_retry_support_is_announced_before_any_test_when_retries_are_asked_for():
    output = _stream([events.FileStarted("local", 0, "t.py"),
                      R("local", 0, "t.py", "t.py::test_a", "passed", "call", 0.1),
                      messages.FileComplete("local", 0, "t.py", 0.1, 1)], retries_in_argv=True)
    assert [m.name for m in teamcity_messages(output)][0] == "testRetrySupport"
    assert "testRetrySupport" not in _stream([])


def test_results_that_come_outside_a_file_are_still_in_a_suite():
    """A retried test whose retry never ran gets its verdict late, after its file ended."""
    output = _stream([
        events.FileStarted("local", 0, "t.py"),
        messages.FileComplete("local", 0, "t.py", 0.1, 1),
        R("local", 0, "t.py", "t.py::test_late", "failed", "call", 0.1, "AssertionError"),
        messages.RunnerDied("local", 1, "u.py", "killed by signal 9 (SIGKILL)", "u.py::test_x"),
        events.BuildFinished(1, 1.0, (("failed", 1),), ()),
    ])
    [late] = teamcity_runs(teamcity_messages(output))
    assert late.suite == "t.py" and late.failed


# --- a real build ---------------------------------------------------------------------------


def test_a_real_build_as_teamcity_reads_it(tmp_path):
    project = write_project(tmp_path / "p", {**PROJECT, **RETRIED, **KILLER})
    run = run_medusa(project, "--format", "teamcity", "--retries", "1")
    assert run.exit_code == 1, run
    found = teamcity_messages(run.stdout)
    runs = teamcity_runs(found)
    # every result is a test in the flow of the runner that reported it
    seen = {(r.name, r.flow) for r in runs}
    for result in run.results:
        name = teamcity_name(result["test"])
        if result["when"] == "teardown" and result["outcome"] in ("failed", "error"):
            name += "_teardown"
        assert (name, result["runner"]) in seen, (name, result["runner"], sorted(seen))
    # and nothing else: a run per result and per earlier attempt, one per file not run
    assert len(runs) == sum(1 + len(r["attempts"]) for r in run.results) + len(
        run.finished["not_run"])
    names = {r.name for r in runs}
    # odd names come back as they were written (no dots in them: TeamCity's split)
    for param in ODD_PARAMS:
        assert f"tests.test_odd_names.test_odd({param})" in names, sorted(names)
    assert "tests.test_odd_names.test_ünïcode_name" in names
    failing = [r for r in runs if r.name == "tests.test_odd_names.test_odd(a|b)"]
    assert failing[0].failed[0]["message"].startswith("AssertionError: the pipe one fails")
    # the flaky test: its failed first run, then the pass, with retry support announced
    flaky = [r for r in runs if r.name == "tests.test_retried.test_flaky"]
    assert [bool(r.failed) for r in flaky] == [True, False]
    assert any(m.name == "testRetrySupport" for m in found)
    always = [r for r in runs if r.name == "tests.test_retried.test_always_fails"]
    assert [bool(r.failed) for r in always] == [True, True]
    # the file that killed its runner while importing: not run, and said so
    killed = [r for r in runs if r.name == "tests.test_kills_runner.top_level"]
    assert killed and killed[0].failed[0]["message"].startswith("not run: ")
    captured = [r for r in runs if r.name == "tests.test_outcomes.test_fails"][-1]
    assert "captured before the failure" in "".join(captured.stdout)
    assert "and to stderr" in "".join(captured.stderr)
    # the console report is still there, plain, for people reading the build log
    assert "passed" in run.stdout.splitlines()[-1] and "\r" not in run.stdout
