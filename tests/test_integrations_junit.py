"""--format junit:PATH, read as Jenkins and Bamboo read it: parsed with junitparser and
validated against the schema the Jenkins xUnit plugin validates with (tests/junit-10.xsd,
a verbatim copy of the plugin's junit-10.xsd: a file that fails it is skipped whole)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_medusa, write_project
from integrations_support import KILLER, ODD_PARAMS, PROJECT, RETRIED, need
from medusa import events, messages
from medusa.integrations.junit.reporter import JUnitReporter
from medusa.integrations.names import junit_name

SCHEMA = Path(__file__).with_name("junit-10.xsd")


def _validate(path: Path) -> None:
    xmlschema = need("xmlschema")
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(path))   # raises with the reason


def _read(path: Path):
    """Each testcase by (classname, name), with its suite: parsed by junitparser's reader
    of the Jenkins flavour (it knows flakyFailure and rerunFailure)."""
    xunit2 = need("junitparser.xunit2")
    document = xunit2.JUnitXml.fromfile(str(path))
    cases = {}
    for suite in document:
        for case in suite:
            key = (case.classname or "", case.name)
            assert key not in cases, f"two testcases named {key}"
            cases[key] = (suite, case)
    return document, cases


def _kinds(case) -> list[str]:
    return sorted(type(r).__name__ for r in case.result)


R = messages.Result


def _build(reporter: JUnitReporter, results: list[messages.Result],
           not_run: tuple[events.NotRun, ...] = (), files=("tests/test_a.py",)) -> None:
    reporter.handle(events.BuildStarted("run1", 1_700_000_000.0, "/p", ("local",), ()))
    reporter.handle(messages.WorkerBegin("local", 2, "--local 2", "/p", "pytest 9",
                                         tuple(files), 0.1))
    for file in files:
        reporter.handle(events.FileStarted("local", 0, file))
    for result in results:
        reporter.handle(result)
    for file in files:
        reporter.handle(messages.FileComplete("local", 0, file, 1.25, 3))
    reporter.handle(events.BuildFinished(1, 2.5, (("failed", 1),), not_run))
    reporter.close()


def test_every_outcome_the_way_jenkins_reads_it(tmp_path):
    attempt = messages.Attempt("failed", "call", 0.5, "AssertionError: first try",
                               "def test...\nE  AssertionError: first try", "local", 1)
    error_attempt = messages.Attempt("error", "setup", 0.1, "RuntimeError: db down",
                                     "E  RuntimeError: db down", "local", 0)
    file = "tests/test_a.py"
    results = [
        R("local", 0, file, f"{file}::test_ok", "passed", "call", 0.25,
          sections=(("Captured stdout call", "hello\n"),)),
        R("local", 0, file, f"{file}::TestK::test_bad[1-x]", "failed", "call", 0.5,
          "AssertionError: boom", "def test_bad():\n>  assert 1 == 2\nE  AssertionError: boom",
          (("Captured stdout call", "out\n"), ("Captured stderr call", "err\n"),
           ("Captured log call", "INFO log line\n"))),
        R("local", 0, file, f"{file}::test_skip", "skipped", "setup", 0.0, "not today"),
        R("local", 0, file, f"{file}::test_xf", "xfailed", "call", 0.1, "known bug"),
        R("local", 0, file, f"{file}::test_xp", "xpassed", "call", 0.1),
        R("local", 0, file, f"{file}::test_setup", "error", "setup", 0.1,
          "RuntimeError: no db", "E  RuntimeError: no db"),
        R("local", 0, file, f"{file}::test_td", "passed", "call", 0.2),
        R("local", 0, file, f"{file}::test_td", "error", "teardown", 0.2,
          "RuntimeError: teardown", "E  RuntimeError: teardown"),
        R("local", 1, file, f"{file}::test_flaky", "flaky", "call", 0.3,
          attempts=(attempt, error_attempt)),
        R("local", 1, file, f"{file}::test_hopeless", "failed", "call", 0.3,
          "AssertionError: third try", "E  AssertionError: third try",
          attempts=(attempt, attempt)),
    ]
    path = tmp_path / "reports" / "junit.xml"
    _build(JUnitReporter(str(path)), results)
    _validate(path)
    document, cases = _read(path)

    [suite] = list(document)
    assert suite.name == file
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (9, 2, 2, 2)
    assert float(suite.time) == 1.25                       # what its runner spent on it
    assert suite._elem.get("file") == file
    props = [(p.name, p.value) for p in suite.properties()]
    assert ("run_id", "run1") in props and ("runner", "local/0") in props
    assert ("runner", "local/1") in props

    _, ok = cases[("tests.test_a", "test_ok")]
    assert ok.is_passed and ok.system_out == "----- Captured stdout call -----\nhello\n"
    assert float(ok.time) == 0.25

    _, bad = cases[("tests.test_a.TestK", "test_bad[1-x]")]
    [failure] = bad.result
    assert type(failure).__name__ == "Failure"
    assert failure.message == "AssertionError: boom" and failure.type == "AssertionError"
    assert ">  assert 1 == 2" in failure.text and "on runner local/0" in failure.text
    assert "out\n" in bad.system_out and "INFO log line" in bad.system_out
    assert "err\n" in bad.system_err and "out" not in bad.system_err

    assert _kinds(cases[("tests.test_a", "test_skip")][1]) == ["Skipped"]
    assert cases[("tests.test_a", "test_skip")][1].result[0].message == "not today"
    xfailed = cases[("tests.test_a", "test_xf")][1]
    assert _kinds(xfailed) == ["Skipped"] and "known bug" in xfailed.result[0].message
    assert cases[("tests.test_a", "test_xp")][1].is_passed

    setup = cases[("tests.test_a", "test_setup")][1]
    assert _kinds(setup) == ["Error"] and setup.result[0].type == "RuntimeError"
    # a teardown error is in the testcase of the test that passed, as pytest writes it
    teardown = cases[("tests.test_a", "test_td")][1]
    assert _kinds(teardown) == ["Error"] and "teardown" in teardown.result[0].message

    # Surefire's way: a pass on a retry is a passing testcase with a flaky element per
    # failed attempt; a test that failed every time has its failure and a rerun element
    # per earlier attempt
    flaky = cases[("tests.test_a", "test_flaky")][1]
    assert flaky.is_passed and flaky.is_flaky and not flaky.is_rerun
    assert [f.message for f in flaky.flaky_failures()] == ["AssertionError: first try"]
    assert [e.message for e in flaky.flaky_errors()] == ["RuntimeError: db down"]
    assert "first try" in flaky.flaky_failures()[0].stack_trace
    assert "local/1" in flaky.flaky_failures()[0].stack_trace
    hopeless = cases[("tests.test_a", "test_hopeless")][1]
    assert hopeless.is_failure and hopeless.is_rerun and not hopeless.is_flaky
    assert len(hopeless.rerun_failures()) == 2
    assert hopeless.result[0].message == "AssertionError: third try"


def test_files_not_run_are_errored_testcases_named_for_the_file(tmp_path):
    path = tmp_path / "junit.xml"
    reporter = JUnitReporter(str(path))
    files = ("tests/test_a.py", "tests/test_gone.py", "tests/test_broken.py")
    reporter.handle(events.NotRun("tests/test_gone.py", "its runner died while importing it"))
    results = [
        R("local", 0, "tests/test_a.py", "tests/test_a.py::test_ok", "passed", "call", 0.1),
        R("local", 0, "tests/test_broken.py", "tests/test_broken.py", "error", "collect", 0.0,
          "E   ImportError: nope", "ImportError while importing test module"),
    ]
    _build(reporter, results, files=files, not_run=(
        events.NotRun("tests/test_gone.py", "its runner died while importing it"),
        events.NotRun("tests/test_broken.py", "stopped after 1 failures (--maxfail=1) (part 2/2)"),
        events.NotRun("tests/test_never.py", "the worker was lost")))
    _validate(path)
    document, cases = _read(path)
    assert [s.name for s in document] == [*files, "tests/test_never.py"]
    gone = cases[("", "tests.test_gone")][1]   # as pytest names a file that fails to import
    assert _kinds(gone) == ["Error"]           # said as an event and again at the end: once
    assert gone.result[0].message == "not run: its runner died while importing it"
    # the file that failed to import and whose second part did not run: one testcase
    broken = cases[("", "tests.test_broken")][1]
    assert _kinds(broken) == ["Error", "Error"]
    assert {e.message for e in broken.result} == {
        "E   ImportError: nope", "not run: stopped after 1 failures (--maxfail=1) (part 2/2)"}
    assert cases[("", "tests.test_never")][1].result[0].message == "not run: the worker was lost"
    assert document.errors == 3 and document.tests == 4


def test_one_suite_for_the_whole_run(tmp_path):
    path = tmp_path / "junit.xml"
    results = [R("local", 0, "tests/test_a.py", "tests/test_a.py::test_one", "passed", "call", 0.1),
               R("local", 1, "tests/test_b.py", "tests/test_b.py::test_two", "failed", "call",
                 0.2, "AssertionError", "E AssertionError")]
    _build(JUnitReporter(str(path), suites="run"), results,
           files=("tests/test_a.py", "tests/test_b.py"),
           not_run=(events.NotRun("tests/test_c.py", "the worker was lost"),))
    _validate(path)
    document, cases = _read(path)
    [suite] = list(document)
    assert suite.name == "medusa" and suite.tests == 3 and suite.failures == 1
    assert float(suite.time) == 2.5                         # the build's wall time
    assert set(cases) == {("tests.test_a", "test_one"), ("tests.test_b", "test_two"),
                          ("", "tests.test_c")}
    with pytest.raises(ValueError):
        JUnitReporter(str(path), suites="folder")


def test_text_that_xml_cannot_hold_still_makes_a_valid_document(tmp_path):
    path = tmp_path / "junit.xml"
    colored = "\x1b[31mred\x1b[0m and a NUL \x00 and \ufffe"
    _build(JUnitReporter(str(path)), [
        R("local", 0, "tests/test_a.py", "tests/test_a.py::test_x[\x07]", "failed", "call", 0.1,
          f"AssertionError: {colored}", colored, (("Captured stdout call", colored),))])
    _validate(path)
    _, cases = _read(path)
    _, case = cases[("tests.test_a", "test_x[\\x07]")]
    assert "\\x1b[31mred" in case.result[0].message and "\\x00" in case.system_out


def test_the_report_is_written_whole_even_when_the_build_never_says_it_finished(tmp_path):
    path = tmp_path / "out" / "junit.xml"
    reporter = JUnitReporter(str(path))
    reporter.handle(events.FileStarted("local", 0, "tests/test_a.py"))
    reporter.handle(R("local", 0, "tests/test_a.py", "tests/test_a.py::test_1", "passed",
                      "call", 0.1))
    assert not path.exists()                  # nothing half-written while the build runs
    reporter.close()                          # as the master does after an internal error
    _validate(path)
    assert list(path.parent.iterdir()) == [path]   # no temporary file left beside it


def test_a_worker_that_could_not_start_is_said_in_the_report(tmp_path):
    path = tmp_path / "junit.xml"
    reporter = JUnitReporter(str(path))
    reporter.handle(messages.WorkerStartupFailure("local", "conftest.py failed to import",
                                                  "Traceback ...\nImportError: x", 4))
    reporter.handle(events.BuildFinished(4, 0.3, (), (), "the worker could not start"))
    _validate(path)
    _, cases = _read(path)
    case = cases[("medusa", "worker local could not start")][1]
    assert case.result[0].message == "conftest.py failed to import"
    assert "ImportError: x" in case.result[0].text


def _names(test: str) -> tuple[str, str]:
    name = junit_name(test)
    return name.classname, name.name


def test_names_are_those_of_pytests_own_junitxml():
    assert _names("tests/test_x.py::test_y") == ("tests.test_x", "test_y")
    assert _names("tests/sub/test_x.py::TestA::TestB::test_y[1-a.b]") == (
        "tests.sub.test_x.TestA.TestB", "test_y[1-a.b]")
    # parameters are kept whole, "::" and "/" in them included
    assert _names("test_x.py::test_y[a::b/c]") == ("test_x", "test_y[a::b/c]")
    assert _names("tests/test_x.py") == ("", "tests.test_x")


# --- a real build ---------------------------------------------------------------------------


def _pytest_junit_names(project: Path, tmp_path: Path, *paths: str) -> set[tuple[str, str]]:
    """What plain pytest's --junitxml calls each test: the names Jenkins has known."""
    report = tmp_path / "pytest-junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                    f"--junitxml={report}", *paths], cwd=project, capture_output=True,
                   timeout=120)
    _, cases = _read(report)
    return set(cases)


def test_a_real_build_as_jenkins_reads_it(tmp_path):
    project = write_project(tmp_path / "p", {**PROJECT, **RETRIED, **KILLER})
    report = tmp_path / "reports" / "junit.xml"
    run = run_medusa(project, "--retries", "1", "--format", f"junit:{report}")
    assert run.exit_code == 1, run
    _validate(report)
    document, cases = _read(report)

    # every result and every file not run is a testcase, with pytest's own names
    expected = {_names(r["test"]) for r in run.results}
    expected |= {_names(item["file"]) for item in run.finished["not_run"]}
    assert set(cases) == expected, run
    assert set(cases) >= _pytest_junit_names(project, tmp_path, "tests/test_outcomes.py",
                                             "tests/test_odd_names.py",
                                             "tests/test_broken_import.py")
    # the names as the user wrote them: quotes, brackets, pipes, line ends, any letter
    assert {("tests.test_odd_names", f"test_odd[{p}]") for p in ODD_PARAMS} <= set(cases)
    assert ("tests.test_odd_names", "test_ünïcode_name") in cases

    suite, failed = cases[("tests.test_outcomes", "test_fails")]
    assert suite.name == "tests/test_outcomes.py"
    assert failed.result[0].message.startswith("AssertionError: the numbers differ")
    assert "assert 1 == 2" in failed.result[0].text
    assert "captured before the failure" in failed.system_out
    assert "and to stderr" in failed.system_err
    assert _kinds(cases[("tests.test_outcomes", "test_teardown_error")][1]) == ["Error"]
    assert _kinds(cases[("", "tests.test_broken_import")][1]) == ["Error"]
    assert _kinds(cases[("tests.test_odd_names", "test_odd[a|b]")][1]) == ["Failure"]

    flaky = cases[("tests.test_retried", "test_flaky")][1]
    assert flaky.is_passed and [f.message for f in flaky.flaky_failures()] == [
        "AssertionError: first run fails"], flaky.tostring()
    always = cases[("tests.test_retried", "test_always_fails")][1]
    assert always.is_failure and len(always.rerun_failures()) == 1

    killed = cases[("", "tests.test_kills_runner")][1]
    assert killed.result[0].message.startswith("not run: "), killed.tostring()

    # the totals agree with medusa's own count
    counts = run.counts
    assert document.failures == counts.get("failed", 0)
    assert document.errors == counts.get("error", 0) + len(run.finished["not_run"])


def test_names_do_not_change_from_build_to_build(tmp_path):
    """History and trends in Jenkins need the same names, whatever ran where and when."""
    names = []
    for runners in (1, 2):
        project = write_project(tmp_path / f"p{runners}", PROJECT)
        report = tmp_path / f"junit-{runners}.xml"
        run = run_medusa(project, "--format", f"junit:{report}", runners=runners)
        assert run.exit_code == 1, run
        document, cases = _read(report)
        names.append((set(cases), {s.name for s in document}))
    assert names[0] == names[1]


def test_a_path_that_cannot_be_written_is_a_usage_error(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_a.py": "def test_a():\n    pass\n"})
    (project / "taken").write_text("a file, not a folder")
    run = run_medusa(project, "--format", "junit:taken/junit.xml", timeout=60)
    assert run.exit_code == 4, run
    assert "junit:taken/junit.xml" in run.stderr, run


def test_record_property_reaches_the_junit_suite_and_the_json(tmp_path):
    project = write_project(tmp_path / "p", {"tests/test_props.py": """
        def test_records(record_property):
            record_property("build", 42)
            record_property("owner", "team <a&b>")

        def test_records_and_fails(record_property):
            record_property("seed", "7")
            assert 0
    """})
    out = tmp_path / "junit.xml"
    run = run_medusa(project, "--format", f"junit:{out}")
    assert run.exit_code == 1, run
    _validate(out)
    document, _ = _read(out)
    suite = next(iter(document))
    properties = [(p.name, p.value) for p in suite.properties()]
    assert ("tests/test_props.py::test_records::build", "42") in properties, properties
    assert ("tests/test_props.py::test_records::owner", "team <a&b>") in properties
    assert ("tests/test_props.py::test_records_and_fails::seed", "7") in properties
    recorded = {r["test"]: r["properties"] for r in run.results}
    assert recorded["tests/test_props.py::test_records"] == [
        {"name": "build", "value": "42"}, {"name": "owner", "value": "team <a&b>"}], recorded



def test_record_testsuite_property_and_xml_attribute_reach_the_junit_suite(tmp_path):
    """Where pytest's junitxml would write them (under pytest-xdist they are lost). The
    session's property is every suite's, once, whichever runners recorded it."""
    project = write_project(tmp_path / "p", {
        "conftest.py": """
            import pytest

            @pytest.fixture(scope="session", autouse=True)
            def branch(record_testsuite_property):
                record_testsuite_property("branch", "main")
        """,
        **{f"tests/test_{n}.py": f"""
            import pytest

            @pytest.mark.filterwarnings("ignore::pytest.PytestExperimentalApiWarning")
            def test_renamed(record_xml_attribute):
                record_xml_attribute("classname", "custom.Suite{n}")
                record_xml_attribute("assertions", "REQ-7")

            def test_plain():
                pass
        """ for n in range(3)}})
    for suites in ("file", "run"):
        out = tmp_path / f"junit-{suites}.xml"
        run = run_medusa(project, "--no-history", "--format", f"junit:{out}",
                         "--junit-suites", suites, runners=2)
        assert run.exit_code == 0, run
        _validate(out)
        document, cases = _read(out)
        # as pytest's junitxml: the classname it set, in place of the one from the test id
        assert sorted(cases) == sorted([(f"tests.test_{n}", "test_plain") for n in range(3)]
                                       + [(f"custom.Suite{n}", "test_renamed") for n in range(3)])
        suites_read = list(document)
        assert len(suites_read) == (3 if suites == "file" else 1), suites_read
        for suite in suites_read:
            properties = [(p.name, p.value) for p in suite.properties()]
            assert properties.count(("branch", "main")) == 1, properties
        everything = [(p.name, p.value) for suite in suites_read for p in suite.properties()]
        for n in range(3):
            assert (f"tests/test_{n}.py::test_renamed::assertions", "REQ-7") in everything
    recorded = {r["test"]: r for r in run.results}
    assert recorded["tests/test_0.py::test_renamed"]["xml_attributes"] == [
        {"name": "classname", "value": "custom.Suite0"}, {"name": "assertions", "value": "REQ-7"}]
    assert [{"name": "branch", "value": "main"}] in [r["suite_properties"] for r in run.results]

def _cases_of(path: Path) -> dict[tuple[str, str], str]:
    import xml.etree.ElementTree as ET
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        cases[(case.get("classname"), case.get("name"))] = kinds[0] if kinds else "passed"
    return cases


def test_pytests_junitxml_option_is_one_document_of_every_test_as_pytest_n_2_writes_it(tmp_path):
    """`medusa -- --junitxml=PATH`: each runner wrote its own tests over the others';
    medusa's JUnit report now writes PATH for the whole build, with pytest's names."""
    files = {f"tests/test_{n}.py": f"""
        import pytest

        class TestThing:
            @pytest.mark.parametrize("x", [1, 2, "a b"])
            def test_param(self, x):
                assert x != {n}

        def test_skip():
            pytest.skip("no")

        def test_plain():
            pass
    """ for n in range(4)}
    project = write_project(tmp_path / "p", files)
    xdist = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
                            f"--junitxml={tmp_path / 'xdist.xml'}"], cwd=project,
                           capture_output=True, text=True, timeout=120)
    assert xdist.returncode == 1, xdist.stdout
    run = run_medusa(project, pytest_args=[f"--junitxml={tmp_path / 'medusa.xml'}"])
    assert run.exit_code == 1, run
    _validate(tmp_path / "medusa.xml")
    medusa, expected = _cases_of(tmp_path / "medusa.xml"), _cases_of(tmp_path / "xdist.xml")
    assert len(expected) == 20 and medusa == expected, (medusa, expected)
