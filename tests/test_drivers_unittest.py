"""The unittest driver: medusa counts every test of a plain unittest suite as unittest's own
runner does.

Each test writes a real suite, runs unittest's own runner on it serially (`unittest.main`,
which is what `python -m unittest` runs, with a result class that records each outcome),
and the real `medusa` command in parallel, and compares per test. One build runs in a
Python without pytest, to show that nothing on the unittest path needs it.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from helpers import MedusaRun, check_consistent, framework_environment, run_medusa, write_project

REPO = Path(__file__).resolve().parent.parent

# unittest's runner with a result that writes, per outcome it is told of, the test's id in
# medusa's form and the outcome in medusa's words. It imports nothing of medusa: the names
# are worked out here, from unittest's own ids.
RECORDER = r'''
import json
import os
import re
import sys
import unittest

ROOT = os.getcwd()
TOP = os.path.abspath(os.environ.get("RECORD_TOP", ROOT))


def file_of(module_name):
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if path is None:   # a module that failed to import: where discovery found it
        base = os.path.join(TOP, *module_name.split("."))
        path = base + ".py" if os.path.exists(base + ".py") else os.path.join(base, "__init__.py")
    return os.path.relpath(path, ROOT).replace(os.sep, "/")


def split_dotted(dotted):
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in sys.modules:
            return ".".join(parts[:end]), ".".join(parts[end:])
    return dotted, ""


def name(test):
    inner = getattr(test, "test_case", None)
    if inner is not None:      # a subtest: "<its test's id> <description>"
        return name(inner) + test.id()[len(inner.id()):]
    if type(test).__name__ in ("_FailedTest", "ModuleSkipped"):
        return file_of(test._testMethodName)   # unittest names the stand-in after the module
    description = getattr(test, "description", None)
    if description is not None:    # a class or module fixture: "setUpClass (mod.Cls)"
        fixture, dotted = re.match(r"^(\w+) \((.*)\)$", description).groups()
        module, inside = split_dotted(dotted)
        return "::".join(p for p in (file_of(module), inside, fixture) if p)
    cls = type(test)
    return f"{file_of(cls.__module__)}::{cls.__qualname__}::{test._testMethodName}"


class Recorder(unittest.TextTestResult):
    records = []

    def note(self, test, outcome):
        Recorder.records.append((name(test), outcome))

    def addSuccess(self, test):
        super().addSuccess(test)
        self.note(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.note(test, "failed")

    def addError(self, test, err):
        super().addError(test, err)
        self.note(test, "error")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.note(test, "skipped")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.note(test, "xfailed")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.note(test, "failed")   # unittest's run fails on it

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.note(subtest, "failed" if issubclass(err[0], test.failureException) else "error")


program = unittest.main(module=None, argv=["python -m unittest", *sys.argv[1:]], exit=False,
                        testRunner=unittest.TextTestRunner(resultclass=Recorder))
with open(os.environ["RECORD_OUT"], "w") as out:
    json.dump({"outcomes": Recorder.records, "run": program.result.testsRun,
               "successful": program.result.wasSuccessful()}, out)
'''


@dataclass
class UnittestRun:
    outcomes: list[tuple[str, str]]
    tests_run: int
    exit_code: int
    output: str


def unittest_serial(project: Path, args: tuple[str, ...] = (), top: str | None = None,
                    timeout: float = 120) -> UnittestRun:
    """unittest's own runner, serially, as `python -m unittest ARGS` runs it."""
    scratch = Path(tempfile.mkdtemp(prefix="medusa-unittest-recorder-"))
    try:
        (scratch / "record_unittest.py").write_text(RECORDER, encoding="utf-8")
        env = {**framework_environment(), "RECORD_OUT": str(scratch / "out.json"),
               "RECORD_TOP": str(project / (top or "."))}
        # `python -m unittest` has the current folder first on sys.path: so does the script
        env["PYTHONPATH"] = str(project)
        done = subprocess.run([sys.executable, str(scratch / "record_unittest.py"), *args],
                              cwd=project, capture_output=True, text=True, env=env,
                              timeout=timeout)
        data = json.loads((scratch / "out.json").read_text(encoding="utf-8"))
        return UnittestRun(sorted(map(tuple, data["outcomes"])), data["run"],
                           0 if data["successful"] else 1, done.stdout + done.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def plain_unittest_summary(project: Path, args: tuple[str, ...] = ()) -> str:
    """The last line of `python -m unittest ARGS`: "FAILED (failures=2, errors=1, ...)"."""
    done = subprocess.run([sys.executable, "-m", "unittest", *args], cwd=project,
                          capture_output=True, text=True, env=framework_environment(), timeout=120)
    return [line for line in done.stderr.splitlines() if line.strip()][-1]


def counts_as_unittest_says(run: MedusaRun) -> str:
    """medusa's counts in the words of unittest's summary line (an unexpected success is
    among medusa's failures; the line below says how many)."""
    counts = run.counts
    parts = [(name, counts.get(key, 0)) for name, key in
             (("failures", "failed"), ("errors", "error"), ("skipped", "skipped"),
              ("expected failures", "xfailed"))]
    shown = ", ".join(f"{name}={n}" for name, n in parts if n)
    failed = counts.get("failed", 0) or counts.get("error", 0)
    return f"FAILED ({shown})" if failed else (f"OK ({shown})" if shown else "OK")


def unittest_words(summary: str) -> str:
    """unittest's summary with unexpected successes counted among the failures."""
    match = re.search(r"unexpected successes=(\d+)", summary)
    if not match:
        return summary
    extra = int(match.group(1))
    summary = re.sub(r",? ?unexpected successes=\d+", "", summary)
    if "(failures=" in summary:
        return re.sub(r"\(failures=(\d+)", lambda m: f"(failures={int(m.group(1)) + extra}",
                      summary)
    return summary.replace("FAILED (", f"FAILED (failures={extra}, ").replace(", )", ")")


def assert_same_as_unittest(project: Path, *paths: str, args: tuple[str, ...] = (),
                            runners: int = 2, top: str | None = None,
                            medusa_args: tuple[str, ...] = ()) -> tuple[MedusaRun, UnittestRun]:
    serial = unittest_serial(project, ("discover", *args), top=top)
    run = run_medusa(project, "--driver", "unittest", "--no-history", *medusa_args, *paths,
                     runners=runners, pytest_args=args)
    only_medusa = sorted((Counter(run.outcomes) - Counter(serial.outcomes)).elements())
    only_serial = sorted((Counter(serial.outcomes) - Counter(run.outcomes)).elements())
    assert run.outcomes == serial.outcomes, (
        f"medusa and unittest disagree\nonly medusa: {only_medusa}\nonly unittest: "
        f"{only_serial}\n{run}\n--- unittest ---\n{serial.output}")
    assert run.exit_code == serial.exit_code, f"{run}\n{serial.output}"
    check_consistent(run)
    return run, serial


# --- the suites ----------------------------------------------------------------------------

LOGBOOK = """
    import os

    def log(text):
        who = os.environ.get("MEDUSA_RUNNER", "serial")
        with open(os.environ["FIXTURE_LOG"], "a") as out:
            out.write(f"{who} {os.getpid()} {text}\\n")
"""

EVERYTHING = {
    "tests/__init__.py": "",
    "tests/logbook.py": LOGBOOK,
    "tests/test_outcomes.py": """
        import unittest

        class TestOutcomes(unittest.TestCase):
            def test_passes(self):
                self.assertEqual(1 + 1, 2)

            def test_fails(self):
                self.assertEqual(1 + 1, 3)

            def test_errors(self):
                raise ValueError("boom")

            @unittest.skip("not today")
            def test_skipped_by_decorator(self):
                pass

            def test_skips_itself(self):
                self.skipTest("decided at run time")

            @unittest.expectedFailure
            def test_expected_failure(self):
                self.assertTrue(False)

            @unittest.expectedFailure
            def test_unexpected_success(self):
                pass

            def test_fails_in_teardown(self):
                self.cleanup_should_fail = True

            def tearDown(self):
                if getattr(self, "cleanup_should_fail", False):
                    raise RuntimeError("tearDown broke")

            def test_with_cleanup_that_fails(self):
                self.addCleanup(lambda: 1 / 0)

        @unittest.skip("the whole class")
        class TestSkippedClass(unittest.TestCase):
            def test_a(self):
                pass

            def test_b(self):
                pass
    """,
    "tests/test_subtests.py": """
        import unittest

        class TestSubtests(unittest.TestCase):
            def test_all_pass(self):
                for i in range(3):
                    with self.subTest(i=i):
                        self.assertLess(i, 3)

            def test_some_fail(self):
                for i in range(5):
                    with self.subTest("checking", i=i):
                        self.assertNotEqual(i % 2, 1)

            def test_one_errors_one_skips(self):
                with self.subTest(kind="error"):
                    raise KeyError("missing")
                with self.subTest(kind="skip"):
                    self.skipTest("not this one")
                with self.subTest(kind="pass"):
                    pass
    """,
    "tests/test_fixtures.py": """
        import unittest
        from tests.logbook import log

        def setUpModule():
            log("setUpModule fixtures")

        def tearDownModule():
            log("tearDownModule fixtures")

        class TestClassSetupFails(unittest.TestCase):
            @classmethod
            def setUpClass(cls):
                raise RuntimeError("class setup broke")

            def test_never_runs(self):
                pass

        class TestClassSetupSkips(unittest.TestCase):
            @classmethod
            def setUpClass(cls):
                raise unittest.SkipTest("no database")

            def test_never_runs(self):
                pass

        class TestClassTeardownFails(unittest.TestCase):
            @classmethod
            def tearDownClass(cls):
                raise RuntimeError("class teardown broke")

            def test_runs(self):
                pass

        class TestShared(unittest.TestCase):
            @classmethod
            def setUpClass(cls):
                log("setUpClass TestShared")
                cls.shared = []

            @classmethod
            def tearDownClass(cls):
                log("tearDownClass TestShared")

            def test_1(self):
                self.shared.append(1)

            def test_2(self):
                self.assertEqual(self.shared, [1])
    """,
    "tests/test_module_setup_fails.py": """
        import unittest

        def setUpModule():
            raise RuntimeError("module setup broke")

        class TestNeverRuns(unittest.TestCase):
            def test_a(self):
                pass
    """,
    "tests/test_import_error.py": """
        import unittest
        import a_module_that_does_not_exist

        class TestX(unittest.TestCase):
            def test_x(self):
                pass
    """,
    "tests/test_module_skip.py": """
        import unittest
        raise unittest.SkipTest("this platform has no such thing")
    """,
    "tests/test_load_tests.py": """
        import unittest

        class TestA(unittest.TestCase):
            def test_one(self):
                pass

            def test_two(self):
                pass

        def load_tests(loader, tests, pattern):
            suite = unittest.TestSuite()
            suite.addTest(TestA("test_two"))   # only this one, twice
            suite.addTest(TestA("test_two"))
            return suite
    """,
    "tests/helpers_not_a_test.py": """
        raise AssertionError("never imported: the pattern does not match")
    """,
    "tests/deep/__init__.py": "",
    "tests/deep/test_deep.py": """
        import unittest
        from helper_at_root import VALUE   # from the current folder, as python -m unittest

        class TestDeep(unittest.TestCase):
            def test_value(self):
                self.assertEqual(VALUE, 42)
    """,
    "tests/no_package/test_not_found.py": """
        raise AssertionError("never imported: its folder is not a package")
    """,
    "tests/loading/__init__.py": """
        import os
        import unittest

        def load_tests(loader, standard_tests, pattern):
            here = os.path.dirname(__file__)
            standard_tests.addTests(loader.discover(start_dir=here, pattern="check_*.py"))
            return standard_tests
    """,
    "tests/loading/check_loaded.py": """
        import unittest

        class TestLoadedByThePackage(unittest.TestCase):
            def test_found_by_load_tests(self):
                pass

            def test_fails_there(self):
                self.fail("in a package with load_tests")
    """,
    "tests/loading/test_ignored.py": """
        raise AssertionError("never imported: the package's load_tests decides")
    """,
    "helper_at_root.py": "VALUE = 42\n",
}


def read_log(log: Path, serial: bool) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith("serial ") == serial]


def test_every_kind_of_outcome_as_unittest_counts_it(tmp_path, monkeypatch):
    project = write_project(tmp_path / "p", EVERYTHING)
    log = tmp_path / "fixtures.log"
    monkeypatch.setenv("FIXTURE_LOG", str(log))   # for every process the test starts
    run, serial = assert_same_as_unittest(project, runners=3)
    serial_log, medusa_log = read_log(log, serial=True), read_log(log, serial=False)
    run4, _ = assert_same_as_unittest(project, runners=4)
    outcomes = dict(run.outcomes)
    # the tricky ones, named as documented
    assert outcomes["tests/test_fixtures.py::TestClassSetupFails::setUpClass"] == "error"
    assert outcomes["tests/test_fixtures.py::TestClassSetupSkips::setUpClass"] == "skipped"
    assert outcomes["tests/test_fixtures.py::TestClassTeardownFails::tearDownClass"] == "error"
    assert outcomes["tests/test_module_setup_fails.py::setUpModule"] == "error"
    assert outcomes["tests/test_import_error.py"] == "error"
    assert outcomes["tests/test_module_skip.py"] == "skipped"
    assert outcomes["tests/test_outcomes.py::TestOutcomes::test_unexpected_success"] == "failed"
    assert outcomes["tests/test_subtests.py::TestSubtests::test_some_fail "
                    "[checking] (i=1)"] == "failed"
    assert outcomes["tests/test_subtests.py::TestSubtests::test_one_errors_one_skips "
                    "(kind='error')"] == "error"
    assert outcomes["tests/loading/check_loaded.py::TestLoadedByThePackage"
                    "::test_fails_there"] == "failed"
    assert not any("not_found" in test or "ignored" in test for test in outcomes)
    assert run.outcomes.count(("tests/test_load_tests.py::TestA::test_two", "passed")) == 2
    assert run.result("tests/test_import_error.py")["when"] == "collect"
    assert run.result("tests/test_fixtures.py::TestClassSetupFails::setUpClass")["when"] == "setup"
    # the summary line of plain `python -m unittest discover`, in medusa's counts
    assert counts_as_unittest_says(run) == unittest_words(plain_unittest_summary(project,
                                                                                 ("discover",)))
    # messages and places
    fails = run.result("tests/test_outcomes.py::TestOutcomes::test_fails")
    assert fails["message"] == "AssertionError: 2 != 3"
    assert "self.assertEqual(1 + 1, 3)" in fails["longrepr"]
    assert (fails["path"], fails["line"]) == ("tests/test_outcomes.py", 7)
    assert run.result("tests/test_outcomes.py::TestOutcomes::test_skips_itself")["message"] \
        == "decided at run time"

    # module and class fixtures: in serial, each once; under medusa, each class once and
    # each module once per runner that ran it, every set-up followed by its tear-down in
    # the same process
    def fixtures(lines):
        return Counter(line.split(" ", 2)[2] for line in lines)
    assert fixtures(serial_log) == Counter({"setUpModule fixtures": 1,
                                            "tearDownModule fixtures": 1,
                                            "setUpClass TestShared": 1,
                                            "tearDownClass TestShared": 1})
    assert fixtures(medusa_log) == fixtures(serial_log), medusa_log
    by_process = {}
    for line in medusa_log:
        runner, pid, what = line.split(" ", 2)
        by_process.setdefault(pid, []).append(what)
    for pid, whats in by_process.items():
        assert whats == ["setUpModule fixtures", "setUpClass TestShared",
                         "tearDownClass TestShared", "tearDownModule fixtures"], by_process
    assert run4.outcomes == run.outcomes


def test_discovery_options_as_unittest_takes_them(tmp_path):
    """-s, -p, -t and -k after --, as `python -m unittest discover` takes them."""
    project = write_project(tmp_path / "p", {
        "src/__init__.py": "",
        "src/pkg/__init__.py": "",
        "src/pkg/check_math.py": """
            import unittest

            class TestMath(unittest.TestCase):
                def test_add(self):
                    self.assertEqual(1 + 1, 2)

                def test_sub(self):
                    self.assertEqual(1 - 1, 1)

                def test_add_negative(self):
                    self.assertEqual(-1 + -1, -2)
        """,
        "src/pkg/check_other.py": """
            import unittest

            class TestOther(unittest.TestCase):
                def test_add_strings(self):
                    self.assertEqual("a" + "b", "ab")
        """,
        "src/pkg/test_default_pattern.py": """
            raise AssertionError("not matched by -p check_*.py")
        """,
    })
    args = ("-s", "src/pkg", "-t", ".", "-p", "check_*.py")
    run, serial = assert_same_as_unittest(project, args=args)
    assert len(run.outcomes) == 4
    assert run.outcomes[0][0] == "src/pkg/check_math.py::TestMath::test_add"
    selected, _ = assert_same_as_unittest(project, args=(*args, "-k", "add"))
    assert [t for t, _ in selected.outcomes] == [
        "src/pkg/check_math.py::TestMath::test_add",
        "src/pkg/check_math.py::TestMath::test_add_negative",
        "src/pkg/check_other.py::TestOther::test_add_strings"]
    # a start folder below the top-level one that is not a package: unittest refuses it
    (project / "src" / "pkg" / "__init__.py").unlink()
    refused = run_medusa(project, "--driver", "unittest", pytest_args=args)
    assert refused.exit_code == 4, refused
    assert "start directory is not importable" in refused.output


def test_paths_choose_files_and_tests(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_a.py": """
            import unittest

            class TestA(unittest.TestCase):
                def test_1(self):
                    pass

                def test_2(self):
                    self.fail("two")

            class TestB(unittest.TestCase):
                def test_3(self):
                    pass
        """,
        "tests/test_b.py": """
            import unittest

            class TestC(unittest.TestCase):
                def test_4(self):
                    pass
        """,
    })
    one_file = run_medusa(project, "--driver", "unittest", "tests/test_b.py")
    assert one_file.outcomes == [("tests/test_b.py::TestC::test_4", "passed")], one_file
    one_class = run_medusa(project, "--driver", "unittest", "tests/test_a.py::TestA")
    assert one_class.outcomes == [("tests/test_a.py::TestA::test_1", "passed"),
                                  ("tests/test_a.py::TestA::test_2", "failed")], one_class
    one_test = run_medusa(project, "--driver", "unittest", "tests/test_a.py::TestB::test_3")
    assert one_test.outcomes == [("tests/test_a.py::TestB::test_3", "passed")], one_test
    assert one_test.exit_code == 0 and one_class.exit_code == 1
    bad = run_medusa(project, "--driver", "unittest", pytest_args=("--no-such-option",))
    assert bad.exit_code == 4, bad
    assert "unittest: unrecognized arguments: --no-such-option" in bad.output


def test_a_long_file_is_split_between_runners_and_counted_once(tmp_path, monkeypatch):
    """With a timing history, a file longer than a runner's share is run in parts, whole
    classes each (RunFile.tests / exclude name them in medusa's ids)."""
    classes = "\n".join(textwrap.dedent(f"""
        class TestSlow{n}(unittest.TestCase):
            @classmethod
            def setUpClass(cls):
                log("setUpClass TestSlow{n}")

            def test_a(self):
                time.sleep(0.25)

            def test_b(self):
                time.sleep(0.25)
                self.assertNotEqual({n}, 2)
    """) for n in range(4))
    project = write_project(tmp_path / "p", {
        "tests/__init__.py": "",
        "tests/logbook.py": LOGBOOK,
        "tests/test_long.py": "import time\nimport unittest\nfrom tests.logbook import log\n"
                              "\n\ndef setUpModule():\n    log('setUpModule')\n" + classes,
        **{f"tests/test_short_{n}.py": "import unittest\n\nclass T(unittest.TestCase):\n"
                                       "    def test_x(self):\n        pass\n"
           for n in range(3)},
    })
    log = tmp_path / "fixtures.log"
    monkeypatch.setenv("FIXTURE_LOG", str(log))
    first = run_medusa(project, "--driver", "unittest", runners=2)
    assert first.exit_code == 1, first
    log.unlink()
    second = run_medusa(project, "--driver", "unittest", runners=2)
    serial = unittest_serial(project, ("discover",))
    assert second.outcomes == serial.outcomes == first.outcomes
    parts = [e for e in second.events if e["event"] == "file_started"
             and e["file"] == "tests/test_long.py"]
    assert len(parts) >= 2 and all(e["parts"] == len(parts) for e in parts), parts
    setups = Counter(line.split(" ", 2)[2] for line in read_log(log, serial=False))
    # every class once (never cut), the module once per part
    assert setups == Counter({"setUpModule": len(parts),
                              **{f"setUpClass TestSlow{n}": 1 for n in range(4)}}), setups


def test_a_runner_that_dies_mid_file_hands_on_the_rest(tmp_path):
    """The test that killed its runner is an error; the file's other tests run once each,
    and a test whose subtests had reported is not run again."""
    project = write_project(tmp_path / "p", {
        "tests/__init__.py": "",   # unittest's discovery enters packages only
        "tests/test_crash.py": """
            import os
            import unittest

            class TestCrash(unittest.TestCase):
                def test_1_subtests(self):
                    for i in range(2):
                        with self.subTest(i=i):
                            self.assertEqual(i, 0)

                def test_2_passes(self):
                    pass

                def test_3_kills_its_runner(self):
                    os._exit(7)

                def test_4_after(self):
                    pass

                def test_5_after(self):
                    self.fail("still counted")
        """,
    })
    run = run_medusa(project, "--driver", "unittest", "--no-history", runners=2)
    assert run.exit_code == 1, run
    assert run.outcomes == [
        ("tests/test_crash.py::TestCrash::test_1_subtests (i=1)", "failed"),
        ("tests/test_crash.py::TestCrash::test_2_passes", "passed"),
        ("tests/test_crash.py::TestCrash::test_3_kills_its_runner", "error"),
        ("tests/test_crash.py::TestCrash::test_4_after", "passed"),
        ("tests/test_crash.py::TestCrash::test_5_after", "failed"),
    ], run
    assert "exit code 7" in run.result(
        "tests/test_crash.py::TestCrash::test_3_kills_its_runner")["message"]


# --- no pytest ----------------------------------------------------------------------------

def test_a_project_runs_where_pytest_is_not_installed(tmp_path):
    """A Python with no pytest (a venv without system packages): `medusa`, with no option,
    finds the unittest tests, runs them with the unittest driver, and no process of the
    build ever imports pytest."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import pytest"], capture_output=True,
                          timeout=60).returncode != 0, "the venv must not have pytest"
    project = write_project(tmp_path / "p", {
        "tests/__init__.py": "",
        "tests/test_no_pytest.py": """
            import importlib.util
            import os
            import sys
            import unittest

            class TestWithoutPytest(unittest.TestCase):
                def test_pytest_is_not_importable(self):
                    self.assertIsNone(importlib.util.find_spec("pytest"))

                def test_pytest_was_never_imported(self):
                    self.assertNotIn("pytest", sys.modules)
                    self.assertNotIn("_pytest", sys.modules)

                def test_this_is_a_medusa_runner(self):
                    self.assertIn("MEDUSA_RUNNER", os.environ)

                def test_fails(self):
                    self.assertEqual("medusa", "pytest")
        """,
        "tests/test_more.py": """
            import unittest

            class TestMore(unittest.TestCase):
                def test_more(self):
                    pass
        """,
    })
    events = tmp_path / "events.jsonl"
    env = {**framework_environment(), "PYTHONNOUSERSITE": "1"}
    done = subprocess.run([str(python), str(REPO / "bin" / "medusa"), "--local", "2",
                           "--format", f"json:{events}"], cwd=project, capture_output=True,
                          text=True, env=env, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    results = [json.loads(line) for line in events.read_text().splitlines()]
    outcomes = sorted((e["test"], e["outcome"]) for e in results if e["event"] == "result")
    assert outcomes == [
        ("tests/test_more.py::TestMore::test_more", "passed"),
        ("tests/test_no_pytest.py::TestWithoutPytest::test_fails", "failed"),
        ("tests/test_no_pytest.py::TestWithoutPytest::test_pytest_is_not_importable", "passed"),
        ("tests/test_no_pytest.py::TestWithoutPytest::test_pytest_was_never_imported", "passed"),
        ("tests/test_no_pytest.py::TestWithoutPytest::test_this_is_a_medusa_runner", "passed"),
    ], output
    assert "unittest (Python" in output and "auto: Python tests, pytest not installed" in output
    # asking for a framework that is not there is a clear usage error
    for framework in ("pytest", "behave"):
        refused = subprocess.run([str(python), str(REPO / "bin" / "medusa"), "--driver",
                                  framework], cwd=project, capture_output=True, text=True,
                                 env=env, timeout=120)
        assert refused.returncode == 4, refused.stdout + refused.stderr
        assert f"the {framework} driver needs {framework}, which {python}" in \
            refused.stdout + refused.stderr


def test_an_unknown_driver_is_a_usage_error(tmp_path):
    project = write_project(tmp_path / "p", {"test_x.py": "def test_x():\n    pass\n"})
    run = run_medusa(project, "--driver", "nose")
    assert run.exit_code == 4, run
    assert "unknown driver" in run.output and "unittest" in run.output


def test_failfast_stops_the_tests_that_run(tmp_path):
    """-f: after the first failure the master stops the build's tests; a runner ends the
    test it is in and starts no other (unittest's own result.stop()), and what did not
    run is listed."""
    project = write_project(tmp_path / "p", {
        "tests/__init__.py": "",
        "tests/test_a_fails.py": """
            import time
            import unittest

            class TestA(unittest.TestCase):
                def test_fails(self):
                    time.sleep(0.5)   # the other runner is in its slow test by now
                    self.fail("the first failure")
        """,
        "tests/test_b_long.py": """
            import time
            import unittest

            class TestB(unittest.TestCase):
                def test_1(self):
                    pass

                def test_2_slow(self):
                    time.sleep(1.5)

                def test_3(self):
                    pass

                def test_4(self):
                    pass
        """,
        **{f"tests/test_c{n}.py": "import unittest\n\nclass T(unittest.TestCase):\n"
                                  "    def test_x(self):\n        pass\n" for n in range(4)},
    })
    run = run_medusa(project, "--driver", "unittest", "--no-history", runners=2,
                     pytest_args=("-f",), timeout=60)
    assert run.exit_code == 1, run
    assert run.outcomes == [("tests/test_a_fails.py::TestA::test_fails", "failed"),
                            ("tests/test_b_long.py::TestB::test_1", "passed"),
                            ("tests/test_b_long.py::TestB::test_2_slow", "passed")], run
    not_run = {item["file"]: item["reason"] for item in run.finished["not_run"]}
    assert "2 of its 4 tests did not run" in not_run["tests/test_b_long.py"], not_run
    assert all(f"tests/test_c{n}.py" in not_run for n in range(4)), not_run
    assert not [e for e in run.events if e["event"] == "runner_died"], run
