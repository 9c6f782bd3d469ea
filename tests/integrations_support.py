"""Shared by tests/test_integrations_*.py: independent readers of the CI formats, and a
small real pytest project that has every kind of outcome.

The readers are written from the formats' documentation, not from medusa's code: they
import nothing of medusa's formatters, so that a mistake there is not repeated here.
"""
from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field

import pytest

# --- packages the tests need: on CI a missing one is an error, never a skip ------------------


def need(module: str):
    """Import a test dependency (setup.cfg's `test` extra). Where CI is set, a missing one
    fails the test: a suite that skips what it cannot import proves nothing there."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


# --- TeamCity service messages, by the documented grammar ----------------------------------
#
#   ##teamcity[messageName 'value']
#   ##teamcity[messageName WSP propertyName OWSP=OWSP 'value' (WSP propertyName ...)* OWSP]
#
# messageName and propertyName are Java identifiers; a value is between apostrophes, and in
# it | escapes ' | [ ] n r and 0xNNNN (a UTF-16 code unit); an apostrophe, a bar or a bracket
# that is not escaped is an error, as is a line end (a message is one line).

TEAMCITY_PREFIX = "##teamcity["
_IDENT = r"[A-Za-z_][A-Za-z0-9_.-]*"
_VALUE = r"'(?:[^'|\[\]\n\r]|\|['|nr\[\]]|\|0x[0-9a-fA-F]{4})*'"
_SINGLE = re.compile(rf"##teamcity\[({_IDENT}) ({_VALUE})\]")
_MULTI = re.compile(rf"##teamcity\[({_IDENT})((?:[ \t]+{_IDENT}[ \t]*=[ \t]*{_VALUE})*)[ \t]*\]")
_PROPERTY = re.compile(rf"({_IDENT})[ \t]*=[ \t]*({_VALUE})")
_ESCAPES = {"'": "'", "|": "|", "n": "\n", "r": "\r", "[": "[", "]": "]"}


class ServiceMessageError(ValueError):
    pass


@dataclass(frozen=True)
class ServiceMessage:
    name: str
    attributes: dict[str, str] = field(default_factory=dict)
    value: str | None = None          # of a single-value message


def unescape_teamcity(quoted: str) -> str:
    body = quoted[1:-1]
    out: list[str] = []
    units: list[int] = []             # UTF-16 code units of |0xNNNN escapes, in a row
    index = 0
    while index < len(body):
        char = body[index]
        if char == "|" and body[index + 1:index + 3] == "0x":
            units.append(int(body[index + 3:index + 7], 16))
            index += 7
            continue
        if units:
            out.append(_utf16(units))
            units = []
        if char == "|":
            out.append(_ESCAPES[body[index + 1]])
            index += 2
        else:
            out.append(char)
            index += 1
    if units:
        out.append(_utf16(units))
    return "".join(out)


def _utf16(units: list[int]) -> str:
    return b"".join(unit.to_bytes(2, "big") for unit in units).decode("utf-16-be")


def parse_teamcity_line(line: str) -> ServiceMessage:
    """One line that holds a service message and nothing else; strict."""
    if not line.isascii():
        raise ServiceMessageError(f"not ASCII: {line!r}")
    single = _SINGLE.fullmatch(line)
    if single:
        return ServiceMessage(single.group(1), value=unescape_teamcity(single.group(2)))
    multi = _MULTI.fullmatch(line)
    if not multi:
        raise ServiceMessageError(f"not a service message by the grammar: {line!r}")
    attributes: dict[str, str] = {}
    for name, value in _PROPERTY.findall(multi.group(2)):
        if name in attributes:
            raise ServiceMessageError(f"{name} twice in {line!r}")
        attributes[name] = unescape_teamcity(value)
    return ServiceMessage(multi.group(1), attributes)


def teamcity_messages(output: str) -> list[ServiceMessage]:
    """Every service message in the output. A line that has the prefix anywhere but is
    not one whole message is an error (TeamCity would lose it)."""
    found = []
    for line in output.splitlines():
        if TEAMCITY_PREFIX in line:
            if not line.startswith(TEAMCITY_PREFIX):
                raise ServiceMessageError(f"a service message not at the start of a line: {line!r}")
            found.append(parse_teamcity_line(line))
    return found


@dataclass
class TeamCityTest:
    name: str
    flow: str
    suite: str
    failed: list[dict[str, str]] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    duration: int | None = None


def teamcity_runs(found: list[ServiceMessage]) -> list[TeamCityTest]:
    """Every test run, checked as TeamCity would take it: in each flow, suites open and
    close in order, a test starts and finishes inside a suite of its flow, nothing about a
    test comes outside its start and finish, no test starts while another runs there."""
    suites: dict[str, list[str]] = {}
    running: dict[str, TeamCityTest] = {}
    runs: list[TeamCityTest] = []
    for message in found:
        attrs = message.attributes
        flow = attrs.get("flowId", "")
        kind = message.name
        if kind == "testSuiteStarted":
            suites.setdefault(flow, []).append(attrs["name"])
        elif kind == "testSuiteFinished":
            assert flow not in running, f"suite finished while {running[flow].name} runs"
            stack = suites.get(flow, [])
            assert stack and stack[-1] == attrs["name"], (
                f"testSuiteFinished {attrs['name']!r} in flow {flow!r}, open: {stack}")
            stack.pop()
        elif kind == "testStarted":
            assert flow not in running, (
                f"{attrs['name']!r} started in flow {flow!r} while {running[flow].name!r} runs")
            assert suites.get(flow), f"{attrs['name']!r} started outside a suite in {flow!r}"
            running[flow] = TeamCityTest(attrs["name"], flow, suites[flow][-1])
        elif kind in ("testFailed", "testIgnored", "testStdOut", "testStdErr", "testFinished"):
            test = running.get(flow)
            assert test is not None and test.name == attrs["name"], (
                f"{kind} for {attrs['name']!r} in flow {flow!r}, running: {test}")
            if kind == "testFailed":
                test.failed.append(attrs)
            elif kind == "testIgnored":
                test.ignored.append(attrs)
            elif kind == "testStdOut":
                test.stdout.append(attrs["out"])
            elif kind == "testStdErr":
                test.stderr.append(attrs["out"])
            else:
                test.duration = int(attrs["duration"])
                runs.append(running.pop(flow))
    assert not running, f"tests never finished: {running}"
    assert not any(suites.values()), f"suites never finished: {suites}"
    return runs


# --- GitHub Actions workflow commands ---------------------------------------------------------
#
#   ::name key=value,key=value::message     (properties optional)
# In the message %25 %0D %0A stand for % CR LF; in a value also %3A %2C for : and ,.

_COMMAND = re.compile(r"::([a-z-]+)(?: ([^:]*))?::(.*)")


@dataclass(frozen=True)
class WorkflowCommand:
    name: str
    properties: dict[str, str]
    message: str


def _unpercent(text: str, extra: bool) -> str:
    codes = {"%0D": "\r", "%0A": "\n"}
    if extra:
        codes.update({"%3A": ":", "%2C": ","})
    text = re.sub("|".join(codes), lambda m: codes[m.group()], text)
    return text.replace("%25", "%")


def workflow_commands(output: str) -> list[WorkflowCommand]:
    found = []
    for line in output.splitlines():
        if not line.startswith("::"):
            continue
        match = _COMMAND.fullmatch(line)
        assert match, f"not a workflow command: {line!r}"
        properties = {}
        for pair in (match.group(2) or "").split(","):
            if pair:
                key, sep, value = pair.partition("=")
                assert sep and ":" not in value, f"bad property {pair!r} in {line!r}"
                properties[key] = _unpercent(value, extra=True)
        assert "\n" not in match.group(3) and "\r" not in match.group(3)
        found.append(WorkflowCommand(match.group(1), properties,
                                     _unpercent(match.group(3), extra=False)))
    return found


# --- a project with every kind of outcome -----------------------------------------------------

ODD_PARAMS = ["it's", 'say "hi"', "[x]", "a|b", "two\nlines", "ünï ☃ 😀", "tab\there"]

PROJECT = {
    # raw ids: names as the user wrote them, line ends and letters included
    "pytest.ini": """
        [pytest]
        disable_test_id_escaping_and_forfeit_all_rights_to_community_support = true
    """,
    "tests/test_outcomes.py": """
        import sys

        import pytest


        def test_passes():
            print("to stdout")


        def test_fails():
            print("captured before the failure")
            sys.stderr.write("and to stderr\\n")
            assert 1 == 2, "the numbers differ"


        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass


        @pytest.mark.xfail(reason="known bug")
        def test_xfails():
            assert False


        class TestGroup:
            def test_method(self):
                pass


        @pytest.fixture
        def breaks_on_teardown():
            yield
            raise RuntimeError("teardown broke")


        def test_teardown_error(breaks_on_teardown):
            pass
    """,
    "tests/test_odd_names.py": f"""
        import pytest


        @pytest.mark.parametrize("value", {ODD_PARAMS!r})
        def test_odd(value):
            assert value != "a|b", "the pipe one fails"


        def test_ünïcode_name():
            pass
    """,
    "tests/test_broken_import.py": """
        import a_module_that_does_not_exist
    """,
}

# A test that fails its first run and passes the next (--retries 1), and one that always
# fails: the marker file is in the project, so each build starts afresh with a new project.
RETRIED = {
    "tests/test_retried.py": """
        import os

        MARKER = os.path.join(os.path.dirname(__file__), "..", "ran-once")


        def test_flaky():
            if not os.path.exists(MARKER):
                open(MARKER, "w").close()
                assert False, "first run fails"


        def test_always_fails():
            assert False, "fails every time"
    """,
}

# A file whose import kills its runner: medusa lists it as not run.
# A runner that dies between two tests of a file (a hook ends its process after the
# first one): what is left of the file is not run, and says why.
KILLER = {
    "tests/conftest.py": """
        import os

        def pytest_runtest_logfinish(nodeid):
            if nodeid.startswith("tests/test_kills_runner.py") and os.environ.get("MEDUSA_RUNNER"):
                os._exit(3)
    """,
    "tests/test_kills_runner.py": """
        def test_before_the_end():
            pass

        def test_never_reached():
            pass
    """,
}
