"""The JUnit XML document: testsuites of testcases, built with the junit-xml package.

The document must pass the schema that Jenkins' xUnit plugin validates with (junit-10.xsd;
tests/junit-10.xsd is a copy). So, over what junit-xml writes:

- no `disabled` attribute (junit-xml counts disabled tests; the schema has no such thing),
  and times as plain decimals (the schema's pattern takes no exponent: not "1e-05");
- a test retried with --retries gets Surefire's elements, which Jenkins reads: inside a
  passing testcase a <flakyFailure>/<flakyError> per failed attempt, inside a failing one
  a <rerunFailure>/<rerunError> per earlier attempt (junit-xml knows none of them);
- no `file`/`line` on a testcase: the schema rejects them (the xUnit plugin then skips
  the whole file). The file is the testsuite's `file`; the line is in the traceback;
- who ran what goes in the testsuite's <properties> (a testcase may not have any), and at
  the end of a failure's text; so do what tests recorded with record_property, and with
  record_xml_attribute where it is not a testcase's own `name` or `classname`.
"""
from __future__ import annotations

import datetime
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Sequence

import junit_xml

from medusa.integrations.names import junit_name
from medusa.messages import Attempt, Result

# outcome -> how the testcase says it (the rest, "passed", "xpassed" and outcomes of
# plugins medusa does not know, are passing testcases)
FAILED, ERROR, SKIPPED = ("failed",), ("error",), ("skipped", "xfailed")
# what record_xml_attribute may set on a testcase itself, in the schema
OWN_ATTRIBUTES = ("name", "classname")


@dataclass(frozen=True)
class Case:
    test: str                          # the pytest node id
    results: tuple[Result, ...]        # in the order they came (a teardown error is second)
    not_run: tuple[str, ...] = ()      # why the file (a test id naming a file) did not run


@dataclass(frozen=True)
class Suite:
    name: str
    file: str                          # "" for the one suite of a whole build
    cases: tuple[Case, ...]
    duration: float                    # seconds its runners spent on it
    started_at: float | None           # time.time() it started, if it did
    properties: tuple[tuple[str, str], ...] = ()


def render(suites: Sequence[Suite], name: str, duration: float) -> bytes:
    root = ET.Element("testsuites", {"name": name})
    totals = dict.fromkeys(("tests", "failures", "errors"), 0)
    for suite in suites:
        element = _suite_element(suite)
        for key in totals:
            totals[key] += int(element.get(key, "0"))
        root.append(element)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _seconds(duration))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _suite_element(suite: Suite) -> ET.Element:
    cases = [_case(case) for case in suite.cases]
    started = (datetime.datetime.fromtimestamp(suite.started_at).astimezone()
               .isoformat(timespec="seconds") if suite.started_at else None)
    element = junit_xml.TestSuite(
        clean(suite.name), [c for c, _ in cases], timestamp=started,
        file=clean(suite.file) or None,
        properties={clean(k): clean(v) for k, v in suite.properties} or None,
    ).build_xml_doc()
    # properties as a list: a file run by several runners names each (junit-xml takes a dict)
    props = element.find("properties")
    if props is not None:
        for child in list(props):
            props.remove(child)
        for key, value in suite.properties:
            ET.SubElement(props, "property", {"name": clean(key), "value": clean(value)})
    element.attrib.pop("disabled", None)
    element.set("time", _seconds(suite.duration))
    for case_element, (case, extra) in zip(element.iter("testcase"), cases):
        case_element.set("time", _seconds(case.elapsed_sec or 0.0))
        if extra:
            # Surefire's order: the final outcome, then the earlier runs, then the output
            at = len([c for c in case_element if c.tag in ("failure", "error", "skipped")])
            for offset, rerun in enumerate(extra):
                case_element.insert(at + offset, rerun)
    return element


def foreign_attributes(result: Result) -> tuple[tuple[str, str], ...]:
    """The record_xml_attribute pairs that a testcase cannot hold."""
    return tuple((n, v) for n, v in result.xml_attributes if n not in OWN_ATTRIBUTES)


def _case(case: Case) -> tuple[junit_xml.TestCase, list[ET.Element]]:
    name = junit_name(case.test)
    results = case.results
    out, err = _output(results)
    # as pytest's junitxml, record_xml_attribute("classname", ...) renames the testcase
    own = {n: v for r in results for n, v in r.xml_attributes if n in OWN_ATTRIBUTES}
    test_case = junit_xml.TestCase(
        clean(own.get("name", name.name)), clean(own.get("classname", name.classname)) or None,
        elapsed_sec=max((r.duration for r in results), default=0.0),
        stdout=out or None, stderr=err or None, allow_multiple_subelements=True)
    reruns: list[ET.Element] = []
    for result in results:
        text = clean(_with_runner(result.longrepr or result.message, result))
        message = clean(result.message) or result.outcome
        if result.outcome in FAILED:
            test_case.add_failure_info(message, text, _exception_type(result.message, "failure"))
        elif result.outcome in ERROR:
            test_case.add_error_info(message, text, _exception_type(result.message, "error"))
        elif result.outcome in SKIPPED:
            prefix = "expected failure: " if result.outcome == "xfailed" else ""
            test_case.add_skipped_info(clean(prefix + result.message) or result.outcome)
        passed = result.outcome not in (*FAILED, *ERROR)
        reruns += [_attempt(attempt, number, flaky=passed)
                   for number, attempt in enumerate(result.attempts, 1)]
    for reason in case.not_run:
        test_case.add_error_info(clean(f"not run: {reason}"),
                                 clean(f"{case.test} was not run: {reason}"), "medusa.NotRun")
    return test_case, reruns


def _attempt(attempt: Attempt, number: int, flaky: bool) -> ET.Element:
    kind = "Failure" if attempt.outcome == "failed" else "Error"
    element = ET.Element(("flaky" if flaky else "rerun") + kind, {
        "message": clean(attempt.message) or attempt.outcome,
        "type": _exception_type(attempt.message, kind.lower())})
    trace = ET.SubElement(element, "stackTrace")
    trace.text = clean(f"{attempt.longrepr or attempt.message}\n(attempt {number}, "
                       f"{attempt.when}, {attempt.duration:.3f}s on runner "
                       f"{attempt.worker}/{attempt.runner})")
    return element


def _output(results: Sequence[Result]) -> tuple[str, str]:
    """Captured output, as pytest titles it: stderr sections to system-err, the rest
    (stdout, logging) to system-out. A title heads each section, as in pytest's report."""
    out: list[str] = []
    err: list[str] = []
    seen: set[tuple[str, str]] = set()
    for result in results:
        for title, text in result.sections:
            if not text or (title, text) in seen:
                continue
            seen.add((title, text))
            (err if "stderr" in title else out).append(f"----- {title} -----\n{text}")
    # artifacts (report_folder.py), as the Jenkins JUnit Attachments plugin reads them:
    # each [[ATTACHMENT|/absolute/path]] on a line of its own
    attachments = [f"[[ATTACHMENT|{os.path.abspath(path)}]]\n"
                   for result in results for path in result.artifacts]
    if attachments:
        out.append(("\n" if out and not out[-1].endswith("\n") else "") + "".join(attachments))
    return clean("".join(out)), clean("".join(err))


def _with_runner(text: str, result: Result) -> str:
    return f"{text.rstrip()}\n(on runner {result.worker}/{result.runner})"


_EXCEPTION = re.compile(r"(?:E\s+)?([A-Za-z_][\w.]*):(?:\s|$)")


def _exception_type(message: str, default: str) -> str:
    """"AssertionError: boom" -> "AssertionError"; "E   ImportError: x" -> "ImportError"."""
    match = _EXCEPTION.match(message.strip())
    return match.group(1) if match else default


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.3f}"


# Characters XML 1.0 cannot hold at all, even escaped (ANSI escapes from colored output,
# NUL, lone surrogates): shown as \x1b and the like, so that the document stays readable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)
