"""medusa counts every test exactly as plain pytest does.

Each test writes a small project, runs the real pytest on it serially and the real `medusa`
command in parallel, and compares the multisets of (test id, outcome) and the exit codes.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from helpers import (
    assert_same_as_pytest,
    check_consistent,
    outcome_counts,
    run_medusa,
    serial_outcomes,
    summary_line,
    write_project,
)

# tests/logbook.py: lines that a project's tests append to a log in the project root; "medusa" or "serial"
# in the file name keeps the two runs apart.
LOGGING_CONFTEST = """
    import os

    def log_line(name, text):
        who = "medusa" if "MEDUSA_RUN_ID" in os.environ else "serial"
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(root, f"{name}-{who}.log")
        runner = os.environ.get("MEDUSA_RUNNER", "serial")
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{runner} {os.getpid()} {text}\\n")
"""


def read_log(project: Path, name: str, who: str) -> list[list[str]]:
    path = project / f"{name}-{who}.log"
    if not path.exists():
        return []
    return [line.split(" ", 2) for line in path.read_text(encoding="utf-8").splitlines()]


# --- fixtures ---------------------------------------------------------------------------

def test_fixtures_of_every_scope(tmp_path):
    files = {
        "tests/logbook.py": LOGGING_CONFTEST,
        "tests/conftest.py": """
            import collections
            import pytest
            from logbook import log_line

            @pytest.fixture(scope="session")
            def session_thing():
                log_line("session", "setup")
                yield {"uses": 0}
                log_line("session", "teardown")

            CALLS = collections.Counter()

            @pytest.fixture(scope="module")
            def module_thing(request):
                CALLS[request.module.__name__] += 1
                return CALLS[request.module.__name__]
        """,
    }
    for n in range(6):
        files[f"tests/test_scopes_{n}.py"] = f"""
            import pytest

            @pytest.fixture
            def function_thing():
                return object()

            @pytest.fixture(scope="class")
            def class_thing():
                return []

            class TestScopes:
                def test_class_shared_a(self, class_thing):
                    class_thing.append("a")
                    assert class_thing == ["a"]

                def test_class_shared_b(self, class_thing):
                    class_thing.append("b")
                    assert class_thing == ["a", "b"]

            def test_module_once(module_thing):
                assert module_thing == 1

            def test_module_once_again(module_thing):
                assert module_thing == 1

            def test_session(session_thing):
                session_thing["uses"] += 1

            def test_function_fresh(function_thing, request):
                assert request.node.name == "test_function_fresh"

            def test_fails_on_purpose_{n}(function_thing):
                assert {n} % 2 == 0
        """
    project = write_project(tmp_path / "p", files)
    run, serial = assert_same_as_pytest(project, runners=3)
    assert serial.exit_code == 1

    serial_log = read_log(project, "session", "serial")
    assert [what for _, _, what in serial_log] == ["setup", "teardown"]

    medusa_log = read_log(project, "session", "medusa")
    setups = Counter((runner, pid) for runner, pid, what in medusa_log if what == "setup")
    teardowns = Counter((runner, pid) for runner, pid, what in medusa_log if what == "teardown")
    assert setups, "the session fixture was never set up"
    per_runner = Counter(runner for runner, _ in setups.elements())
    assert all(n == 1 for n in per_runner.values()), f"set up more than once in a runner: {medusa_log}"
    assert set(per_runner) <= {"0", "1", "2"}
    # every runner that set it up also tore it down, once, when it ended
    assert teardowns == setups, medusa_log


def test_conftest_fixtures_override_at_every_level(tmp_path):
    project = write_project(tmp_path / "p", {
        "conftest.py": """
            import pytest

            @pytest.fixture
            def flavour():
                return "root"

            @pytest.fixture
            def base():
                return "root-base"
        """,
        "tests/conftest.py": """
            import pytest

            @pytest.fixture
            def flavour(flavour):
                return flavour + ">tests"
        """,
        "tests/sub/conftest.py": """
            import pytest

            @pytest.fixture
            def flavour(flavour):
                return flavour + ">sub"

            @pytest.fixture
            def base():
                return "sub-base"
        """,
        "tests/test_top.py": """
            def test_flavour(flavour, base):
                assert flavour == "root>tests"
                assert base == "root-base"
        """,
        "tests/sub/test_deep.py": """
            def test_flavour(flavour, base):
                assert flavour == "root>tests>sub"
                assert base == "sub-base"
        """,
        "tests/sub/test_module_override.py": """
            import pytest

            @pytest.fixture
            def flavour(flavour):
                return flavour + ">module"

            def test_flavour(flavour):
                assert flavour == "root>tests>sub>module"

            def test_wrong_expectation(flavour):
                assert flavour == "root"
        """,
        "tests/pkg/__init__.py": "",
        "tests/pkg/helper.py": "VALUE = 42\n",
        "tests/pkg/test_relative.py": """
            from .helper import VALUE

            def test_relative_import(flavour):
                assert VALUE == 42 and flavour == "root>tests"
        """,
        "tests/other/test_top.py": """
            def test_same_basename_elsewhere_is_fine_with_a_package():
                pass
        """,
        "tests/other/__init__.py": "",
    })
    run, serial = assert_same_as_pytest(project)
    assert ("tests/sub/test_module_override.py::test_wrong_expectation", "failed") in run.outcomes
    assert Counter(o for _, o in run.outcomes) == {"passed": 5, "failed": 1}


def test_conftest_of_a_folder_the_runner_enters_later(tmp_path):
    """A runner runs many files in one session: the fixtures of tests/b/conftest.py must
    still apply when tests/b is reached after files of other folders (pytest 9.2 binds
    conftest fixtures to their folder's node when that folder is first collected)."""
    project = write_project(tmp_path / "p", {
        "tests/a/test_first.py": "def test_first():\n    pass\n",
        "tests/b/conftest.py": """
            import pytest

            @pytest.fixture
            def b_only():
                return "b"

            @pytest.fixture(autouse=True)
            def b_autouse(request):
                request.node.b_autouse_ran = True
        """,
        "tests/b/test_b.py": """
            def test_uses_b_fixture(b_only):
                assert b_only == "b"

            def test_b_autouse(request):
                assert getattr(request.node, "b_autouse_ran", False)
        """,
    })
    run, _ = assert_same_as_pytest(project, runners=1)
    assert run.counts == {"passed": 3}


# --- parametrize, classes, unittest -----------------------------------------------------

def test_parametrize_with_odd_ids(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_params.py": """
            import pytest

            @pytest.mark.parametrize("value", [
                "with space", "[brackets]", "a::b", "x/y", "ünïcödé", "日本", "tab\\there",
                "", None, 1.5, b"bytes", "dup", "dup",
            ])
            def test_value(value):
                assert value != "x/y"

            @pytest.mark.parametrize("a,b", [(1, 2), (3, 4)], ids=["one two", "[3-4]"])
            @pytest.mark.parametrize("c", [0, 1])
            def test_stacked(a, b, c):
                assert a < b

            @pytest.mark.parametrize("n", [
                pytest.param(1, id="ok"),
                pytest.param(2, marks=pytest.mark.xfail(reason="known"), id="x fail"),
                pytest.param(3, marks=pytest.mark.skip(reason="later"), id="s[kip]"),
            ])
            def test_marked_params(n):
                assert n == 1

            def pytest_generate_tests(metafunc):
                if "generated" in metafunc.fixturenames:
                    metafunc.parametrize("generated", ["é one", "two]["], indirect=False)

            def test_generated(generated):
                assert generated
        """,
        "tests/test_params_class.py": """
            import pytest

            @pytest.mark.parametrize("k", ["α", "β"])
            class TestParam:
                def test_k(self, k):
                    assert k in "αβ"

                @pytest.mark.parametrize("j", [0, 1])
                def test_kj(self, k, j):
                    assert j == 0
        """,
    })
    run, serial = assert_same_as_pytest(project)
    ids = {test for test, _ in run.outcomes}
    assert "tests/test_params.py::test_value[with space]" in ids
    assert "tests/test_params.py::test_value[[brackets]]" in ids
    assert "tests/test_params.py::test_value[x/y]" in ids
    assert ("tests/test_params.py::test_value[x/y]", "failed") in run.outcomes


def test_classes_and_unittest(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_plain_classes.py": """
            class TestOuter:
                def test_a(self):
                    pass

                class TestInner:
                    def test_b(self):
                        assert False, "inner fails"
        """,
        "tests/test_unit.py": """
            import os
            import unittest

            LOG = os.path.join(os.path.dirname(__file__), "..", "unit.log")

            class WithClassFixtures(unittest.TestCase):
                @classmethod
                def setUpClass(cls):
                    cls.resource = ["ready"]

                @classmethod
                def tearDownClass(cls):
                    with open(LOG, "a") as out:
                        out.write("tearDownClass\\n")

                def test_uses_resource(self):
                    self.assertEqual(self.resource, ["ready"])

                def test_fails(self):
                    self.assertEqual(1, 2)

                @unittest.skip("not today")
                def test_skipped(self):
                    pass

                @unittest.expectedFailure
                def test_expected_failure(self):
                    self.assertEqual(1, 2)

                @unittest.expectedFailure
                def test_unexpected_success(self):
                    pass

            class SetUpFails(unittest.TestCase):
                def setUp(self):
                    raise ValueError("setUp broke")

                def test_one(self):
                    pass

                def test_two(self):
                    pass

            class SetUpClassFails(unittest.TestCase):
                @classmethod
                def setUpClass(cls):
                    raise RuntimeError("setUpClass broke")

                def test_one(self):
                    pass

                def test_two(self):
                    pass

            class TearDownFails(unittest.TestCase):
                def tearDown(self):
                    raise OSError("tearDown broke")

                def test_one(self):
                    pass
        """,
    })
    run, serial = assert_same_as_pytest(project)
    assert (project / "unit.log").read_text().count("tearDownClass") == 2  # serial + medusa


def test_subtests_counted_like_pytest(tmp_path):
    """pytest 9 reports every failed subtest (unittest's subTest, the `subtests` fixture)
    as a result of its own: its summary line counts them, so medusa's must too."""
    project = write_project(tmp_path / "p", {
        "tests/test_sub.py": """
            import unittest

            class Subtests(unittest.TestCase):
                def test_with_subtests(self):
                    for i in range(4):
                        with self.subTest(i=i):
                            self.assertLess(i, 2)

            def test_subtests_fixture(subtests):
                for i in range(3):
                    with subtests.test(i=i):
                        assert i == 0
        """,
    })
    serial = serial_outcomes(project)
    assert serial.counts == {"failed": 5, "passed": 1}, serial   # 4 SUBFAILED, 1 FAILED
    run = run_medusa(project)
    assert run.exit_code == serial.exit_code == 1
    assert outcome_counts(run) == serial.counts, run.counts


# --- skip and xfail ------------------------------------------------------------------------

def test_skip_and_xfail_in_all_forms(tmp_path):
    project = write_project(tmp_path / "p", {
        "pytest.ini": """
            [pytest]
            xfail_strict = false
        """,
        "tests/test_skips.py": """
            import sys
            import pytest

            @pytest.mark.skip(reason="always")
            def test_skip_mark():
                pass

            @pytest.mark.skipif(sys.platform != "nonexistent", reason="condition true")
            def test_skipif_true():
                pass

            @pytest.mark.skipif(False, reason="condition false")
            def test_skipif_false():
                pass

            def test_skip_inside():
                pytest.skip("decided at run time")

            @pytest.fixture
            def skipping_fixture():
                pytest.skip("fixture says no")

            def test_skipped_by_fixture(skipping_fixture):
                pass

            @pytest.mark.xfail(reason="known bug")
            def test_xfail_fails():
                assert False

            @pytest.mark.xfail(reason="fixed already")
            def test_xpass_non_strict():
                pass

            @pytest.mark.xfail(strict=True, reason="must fail")
            def test_xpass_strict_is_failed():
                pass

            @pytest.mark.xfail(raises=KeyError)
            def test_xfail_wrong_exception():
                raise ValueError("not the expected one")

            @pytest.mark.xfail(run=False, reason="do not even run")
            def test_xfail_not_run():
                raise SystemExit(1)

            def test_xfail_imperative():
                pytest.xfail("imperative")

            @pytest.fixture
            def xfail_in_setup():
                pytest.xfail("in setup")

            def test_xfail_in_fixture(xfail_in_setup):
                pass
        """,
        "tests/test_module_skip.py": """
            import pytest
            pytest.skip("whole module skipped", allow_module_level=True)

            def test_never():
                pass
        """,
        "tests/test_importorskip.py": """
            import pytest
            pytest.importorskip("a_module_that_is_not_installed_anywhere")

            def test_never():
                pass
        """,
        "tests/test_module_mark.py": """
            import pytest
            pytestmark = pytest.mark.skip(reason="module mark")

            def test_a():
                pass

            def test_b():
                pass
        """,
    })
    run, serial = assert_same_as_pytest(project)
    outcomes = dict(run.outcomes)
    assert outcomes["tests/test_skips.py::test_xpass_strict_is_failed"] == "failed"
    assert outcomes["tests/test_skips.py::test_xpass_non_strict"] == "xpassed"
    assert outcomes["tests/test_skips.py::test_xfail_fails"] == "xfailed"
    assert outcomes["tests/test_module_skip.py"] == "skipped"
    skip = next(r for r in run.results if r["test"] == "tests/test_module_skip.py")
    assert skip["when"] == "collect"
    assert "whole module skipped" in skip["message"]
    xfail = run.result("tests/test_skips.py::test_xfail_fails")
    assert "known bug" in xfail["message"]


def test_xfail_strict_from_ini(tmp_path):
    project = write_project(tmp_path / "p", {
        "pytest.ini": """
            [pytest]
            xfail_strict = true
        """,
        "test_strict.py": """
            import pytest

            @pytest.mark.xfail
            def test_passes_so_fails():
                pass

            @pytest.mark.xfail
            def test_fails_so_xfailed():
                assert 0
        """,
    })
    run, _ = assert_same_as_pytest(project)
    assert dict(run.outcomes) == {"test_strict.py::test_passes_so_fails": "failed",
                                  "test_strict.py::test_fails_so_xfailed": "xfailed"}


# --- setup and teardown failures ---------------------------------------------------------

def test_failing_setup_and_teardown(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_phases.py": """
            import pytest

            @pytest.fixture
            def broken_setup():
                raise RuntimeError("setup broke")

            @pytest.fixture
            def broken_teardown():
                yield
                raise RuntimeError("teardown broke")

            @pytest.fixture(scope="module")
            def module_teardown_breaks():
                yield
                raise RuntimeError("module teardown broke")

            def test_setup_error(broken_setup):
                pass

            def test_passes_then_teardown_error(broken_teardown):
                pass

            def test_fails_then_teardown_error(broken_teardown):
                assert 1 == 2

            def test_skipped_then_teardown_error(broken_teardown):
                pytest.skip("skip, but teardown still runs")

            def test_missing_fixture(no_such_fixture):
                pass

            def test_uses_module_fixture(module_teardown_breaks):
                pass

            def test_last_in_module():
                pass
        """,
        "tests/test_class_phases.py": """
            import pytest

            class TestSetupMethod:
                def setup_method(self, method):
                    if method.__name__ == "test_b":
                        raise ValueError("setup_method broke")

                def teardown_method(self, method):
                    if method.__name__ == "test_c":
                        raise ValueError("teardown_method broke")

                def test_a(self):
                    pass

                def test_b(self):
                    pass

                def test_c(self):
                    pass

            def setup_module(module):
                pass

            def teardown_module(module):
                raise OSError("teardown_module broke")

            def test_plain():
                pass
        """,
    })
    run, serial = assert_same_as_pytest(project)
    assert run.exit_code == 1
    outcomes = Counter(run.outcomes)
    # a passing test whose teardown fails: "1 passed, 1 error", as pytest counts it
    assert outcomes[("tests/test_phases.py::test_passes_then_teardown_error", "passed")] == 1
    assert outcomes[("tests/test_phases.py::test_passes_then_teardown_error", "error")] == 1
    teardown = [r for r in run.results
                if r["test"] == "tests/test_phases.py::test_passes_then_teardown_error"]
    assert [r["when"] for r in teardown] == ["call", "teardown"]
    assert "teardown broke" in teardown[1]["longrepr"]
    setup = run.result("tests/test_phases.py::test_setup_error")
    assert setup["when"] == "setup" and setup["outcome"] == "error"
    assert "setup broke" in setup["message"]
    missing = run.result("tests/test_phases.py::test_missing_fixture")
    assert "no_such_fixture" in missing["longrepr"]


# --- captured output ---------------------------------------------------------------------

def test_captured_output_is_in_the_result_sections(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_output.py": """
            import logging
            import sys
            import pytest

            @pytest.fixture
            def noisy():
                print("from setup")
                yield
                print("from teardown")

            def test_prints():
                print("hello stdout")
                print("hello stderr", file=sys.stderr)

            def test_prints_and_fails(noisy):
                print("before failing")
                logging.getLogger("proj").warning("logged warning")
                assert 2 + 2 == 5

            def test_capsys(capsys):
                print("read back")
                assert capsys.readouterr().out == "read back\\n"
                print("after readouterr")
        """,
    })
    run, _ = assert_same_as_pytest(project)

    def sections(test):
        return {s["title"]: s["text"] for s in run.result(test)["sections"]}

    prints = sections("tests/test_output.py::test_prints")
    assert "hello stdout" in prints["Captured stdout call"]
    assert "hello stderr" in prints["Captured stderr call"]
    failing = sections("tests/test_output.py::test_prints_and_fails")
    assert "from setup" in failing["Captured stdout setup"]
    assert "before failing" in failing["Captured stdout call"]
    assert "logged warning" in failing["Captured log call"]
    capsys = sections("tests/test_output.py::test_capsys")
    assert "read back" not in capsys.get("Captured stdout call", "")
    assert "after readouterr" in capsys["Captured stdout call"]

    result = run.result("tests/test_output.py::test_prints_and_fails")
    assert result["outcome"] == "failed" and result["when"] == "call"
    assert "assert (2 + 2) == 5" in result["longrepr"]
    assert result["file"] == "tests/test_output.py" and result["path"] == "tests/test_output.py"
    source = (project / "tests/test_output.py").read_text().splitlines()
    assert source[result["line"] - 1].startswith("def test_prints_and_fails")
    # the failure and its captured output reach the console report too
    assert "before failing" in run.stdout
    assert "FAILED tests/test_output.py::test_prints_and_fails" in run.stdout


def test_output_of_tests_run_with_s_reaches_the_user(tmp_path):
    """`-s` turns capturing off so that a test's prints go straight to the terminal:
    pytest shows them; medusa must not drop them."""
    project = write_project(tmp_path / "p", {
        "test_loud.py": """
            import sys

            def test_loud():
                print("VISIBLE-ON-STDOUT")
                print("VISIBLE-ON-STDERR", file=sys.stderr)
        """,
    })
    run, serial = assert_same_as_pytest(project, pytest_args=("-s",))
    assert "VISIBLE-ON-STDOUT" in serial.stdout
    assert "VISIBLE-ON-STDOUT" in run.output, run
    assert "VISIBLE-ON-STDERR" in run.output, run


def test_json_events_follow_the_contract(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_a.py": """
            import pytest

            def test_pass():
                print("out")

            def test_fail():
                assert 0

            @pytest.mark.skip(reason="no")
            def test_skip():
                pass
        """,
        "tests/test_bad.py": "import nope_not_here\n",
    })
    run, _ = assert_same_as_pytest(project)
    kinds = [e["event"] for e in run.events]
    assert kinds[0] == "build_started" and kinds[-1] == "build_finished"
    assert kinds.count("worker_begin") == 1
    types = {"worker": str, "runner": str, "runner_index": int, "file": str, "test": str,
             "outcome": str, "when": str, "duration": (int, float), "message": str,
             "longrepr": str, "sections": list, "path": str, "line": int}
    for result in run.results:
        for key, kind in types.items():
            assert isinstance(result.get(key), kind), (key, result)
        assert result["runner"] == f"{result['worker']}/{result['runner_index']}"
        assert result["duration"] >= 0
        for section in result["sections"]:
            assert set(section) == {"title", "text"}
        assert result["test"].startswith(result["file"])
    begin = next(e for e in run.events if e["event"] == "worker_begin")
    assert begin["files"] == ["tests/test_a.py", "tests/test_bad.py"]
    for complete in (e for e in run.events if e["event"] == "file_complete"):
        for key in ("file", "tests", "deselected", "warnings"):
            assert key in complete, complete
    assert dict(run.outcomes)["tests/test_a.py::test_fail"] == "failed"
    failed = run.result("tests/test_a.py::test_fail")
    assert failed["message"] == "assert 0" and "tests/test_a.py:" in failed["longrepr"]
    finished = run.finished
    assert set(finished) >= {"exit_code", "counts", "not_run", "message"}
    assert finished["counts"] == {"failed": 1, "passed": 1, "skipped": 1, "error": 1}


# --- collection errors ---------------------------------------------------------------------

def test_collection_errors_do_not_stop_the_other_files(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_good_1.py": "def test_ok():\n    pass\n",
        "tests/test_syntax.py": """
            def test_broken(:
                pass
        """,
        "tests/test_import_error.py": """
            import a_module_that_does_not_exist_at_all

            def test_never():
                pass
        """,
        "tests/test_raises_at_import.py": """
            raise RuntimeError("module refuses to import")
        """,
        "tests/test_good_2.py": "def test_ok():\n    pass\n\ndef test_ok_too():\n    pass\n",
    })
    run, serial = assert_same_as_pytest(project)
    assert run.exit_code == 1
    outcomes = dict(run.outcomes)
    for broken in ("tests/test_syntax.py", "tests/test_import_error.py",
                   "tests/test_raises_at_import.py"):
        assert outcomes[broken] == "error"
        result = next(r for r in run.results if r["test"] == broken)
        assert result["when"] == "collect"
    assert "SyntaxError" in run.result("tests/test_syntax.py")["longrepr"]
    assert "a_module_that_does_not_exist_at_all" in run.result(
        "tests/test_import_error.py")["longrepr"]
    assert "module refuses to import" in run.result("tests/test_raises_at_import.py")["longrepr"]
    assert run.counts == {"passed": 3, "error": 3}


def test_collection_error_shows_only_what_the_module_printed(tmp_path):
    """The "Captured stdout" of a collection error holds what the module printed while
    importing, as pytest shows it, and nothing of pytest's own terminal output."""
    project = write_project(tmp_path / "p", {
        "test_noisy_import.py": """
            print("printed while importing")
            raise ImportError("cannot go on")
        """,
    })
    run, _ = assert_same_as_pytest(project, runners=1)
    result = run.result("test_noisy_import.py")
    captured = "".join(s["text"] for s in result["sections"] if "stdout" in s["title"])
    assert "printed while importing" in captured
    assert "test session starts" not in captured, (
        "pytest's session header leaked into the test's captured output:\n" + captured)


def test_failing_conftest_in_a_subfolder_is_a_collection_error(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_fine.py": "def test_fine():\n    pass\n",
        "tests/broken/conftest.py": "raise RuntimeError('sub conftest broke')\n",
        "tests/broken/test_in_broken.py": "def test_never():\n    pass\n",
        "tests/ok/test_ok.py": "def test_ok():\n    pass\n",
    })
    run, serial = assert_same_as_pytest(project)
    assert run.exit_code == 1


# --- configuration and selection -----------------------------------------------------------

INI_PROJECT = {
    "pytest.ini": """
        [pytest]
        python_files = check_*.py
        python_functions = check_*
        python_classes = Check
        testpaths = checks
        markers =
            slow: takes long
            db: needs a database
    """,
    "checks/check_alpha.py": """
        import pytest

        def check_one():
            pass

        @pytest.mark.slow
        def check_slow():
            pass

        @pytest.mark.db
        @pytest.mark.slow
        def check_slow_db():
            assert False

        def test_not_collected_by_name():
            raise AssertionError("python_functions should exclude this")

        class CheckGroup:
            def check_in_class(self):
                pass

            @pytest.mark.db
            def check_db_in_class(self):
                pass
    """,
    "checks/sub/check_beta.py": """
        import pytest

        @pytest.mark.parametrize("n", [1, 2, 3])
        def check_numbers(n):
            assert n != 3

        @pytest.mark.slow
        def check_slow_beta():
            pass
    """,
    "checks/test_ignored_by_python_files.py": "def check_x():\n    raise AssertionError\n",
    "elsewhere/check_outside_testpaths.py": "def check_x():\n    raise AssertionError\n",
}


def test_pytest_ini_python_files_and_testpaths(tmp_path):
    project = write_project(tmp_path / "p", INI_PROJECT)
    run, serial = assert_same_as_pytest(project)
    files = {test.split("::")[0] for test, _ in run.outcomes}
    assert files == {"checks/check_alpha.py", "checks/sub/check_beta.py"}
    assert len(run.outcomes) == 9


def test_marker_selection_counts_deselected_like_pytest(tmp_path):
    project = write_project(tmp_path / "p", INI_PROJECT)
    run, serial = assert_same_as_pytest(project, pytest_args=("-m", "slow and not db"))
    assert serial.deselected > 0
    assert run.counts.get("deselected", 0) == serial.deselected
    # deselected once, by the worker's collection of the whole session
    begin = next(e for e in run.events if e["event"] == "worker_begin")
    assert begin["deselected"] == serial.deselected, begin
    assert {test for test, _ in run.outcomes} == {
        "checks/check_alpha.py::check_slow", "checks/sub/check_beta.py::check_slow_beta"}


def test_keyword_selection_counts_deselected_like_pytest(tmp_path):
    project = write_project(tmp_path / "p", INI_PROJECT)
    run, serial = assert_same_as_pytest(project, pytest_args=("-k", "numbers or Group"))
    assert serial.deselected > 0
    assert run.counts.get("deselected", 0) == serial.deselected
    assert len(run.outcomes) == 5


def test_deselect_option_and_strict_markers(tmp_path):
    project = write_project(tmp_path / "p", INI_PROJECT)
    run, serial = assert_same_as_pytest(project, pytest_args=(
        "--strict-markers", "--deselect", "checks/sub/check_beta.py::check_numbers[3]"))
    assert run.exit_code == 1     # check_slow_db still fails
    assert run.counts.get("deselected", 0) == serial.deselected == 1


def test_conftest_hook_deselecting_items(tmp_path):
    project = write_project(tmp_path / "p", {
        "conftest.py": """
            def pytest_collection_modifyitems(config, items):
                keep = [i for i in items if "drop" not in i.name]
                dropped = [i for i in items if "drop" in i.name]
                if dropped:
                    config.hook.pytest_deselected(items=dropped)
                items[:] = keep
        """,
        "test_a.py": "def test_keep():\n    pass\n\ndef test_drop_me():\n    pass\n",
        "test_b.py": "def test_drop_too():\n    pass\n",
    })
    run, serial = assert_same_as_pytest(project)
    assert run.counts.get("deselected", 0) == serial.deselected == 2


def test_path_argument_selects_a_subfolder(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_top.py": "def test_top():\n    raise AssertionError('not selected')\n",
        "tests/unit/test_u1.py": "def test_u1():\n    pass\n",
        "tests/unit/deeper/test_u2.py": "def test_u2():\n    pass\n\ndef test_u3():\n    pass\n",
        "tests/unit/conftest.py": """
            import pytest

            @pytest.fixture(autouse=True)
            def unit_only():
                yield
        """,
        "tests/integration/test_i.py": "def test_i():\n    raise AssertionError('not selected')\n",
    })
    run, serial = assert_same_as_pytest(project, "tests/unit")
    assert run.exit_code == 0
    assert {test for test, _ in run.outcomes} == {
        "tests/unit/test_u1.py::test_u1", "tests/unit/deeper/test_u2.py::test_u2",
        "tests/unit/deeper/test_u2.py::test_u3"}


def test_several_path_arguments_and_a_single_file(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/a/test_a.py": "def test_a():\n    pass\n",
        "tests/b/test_b.py": "def test_b():\n    pass\n",
        "tests/c/test_c.py": "def test_c():\n    raise AssertionError\n",
    })
    run, serial = assert_same_as_pytest(project, "tests/a", "tests/b/test_b.py")
    assert len(run.outcomes) == 2


NODE_PROJECT = {
    "tests/test_x.py": """
        import pytest

        def test_y():
            pass

        def test_z():
            raise AssertionError("not selected")

        class TestK:
            def test_m(self):
                pass

            def test_n(self):
                raise AssertionError("not selected")

        @pytest.mark.parametrize("v", [1, 2])
        def test_p(v):
            assert v == 2
    """,
    "tests/test_other.py": "def test_other():\n    raise AssertionError('not selected')\n",
}


def test_node_id_selects_a_single_test(tmp_path):
    project = write_project(tmp_path / "p", NODE_PROJECT)
    run, serial = assert_same_as_pytest(project, "tests/test_x.py::test_y")
    assert run.outcomes == [("tests/test_x.py::test_y", "passed")]
    assert run.exit_code == 0


def test_node_ids_of_a_class_method_and_a_parameter(tmp_path):
    project = write_project(tmp_path / "p", NODE_PROJECT)
    run, serial = assert_same_as_pytest(
        project, "tests/test_x.py::TestK::test_m", "tests/test_x.py::test_p[2]")
    assert run.outcomes == [("tests/test_x.py::TestK::test_m", "passed"),
                            ("tests/test_x.py::test_p[2]", "passed")]


# --- many files, several runners ----------------------------------------------------------

def test_many_files_spread_over_four_runners(tmp_path):
    files = {"tests/logbook.py": LOGGING_CONFTEST}
    for n in range(30):
        files[f"tests/test_many_{n:02d}.py"] = f"""
            import os
            import time
            import pytest
            from logbook import log_line

            @pytest.mark.parametrize("i", range(3))
            def test_work(i, request):
                time.sleep(0.02)
                log_line("runners", request.node.nodeid + " " + " ".join(
                    os.environ.get(name, "-") for name in
                    ("MEDUSA_WORKER", "MEDUSA_RUNNERS", "MEDUSA_RUN_ID")))
                assert not ({n} == 7 and i == 1)
        """
    project = write_project(tmp_path / "p", files)
    run, serial = assert_same_as_pytest(project, runners=4)
    assert len(run.outcomes) == 90
    assert run.counts == {"failed": 1, "passed": 89}

    run_id = next(e["run_id"] for e in run.events if e["event"] == "build_started")
    log = read_log(project, "runners", "medusa")
    assert len(log) == 90
    by_test = {}
    for runner, _pid, rest in log:
        nodeid, worker, runners, logged_run_id = rest.split(" ")
        assert (worker, runners, logged_run_id) == ("local", "4", run_id)
        by_test[nodeid] = int(runner)
    assert len(set(by_test.values())) > 1, "only one runner did any work"
    assert set(by_test.values()) <= {0, 1, 2, 3}
    # each result names the runner the test really ran in
    for result in run.results:
        assert result["runner_index"] == by_test[result["test"]], result
        assert result["runner"] == f"local/{result['runner_index']}"
        assert result["worker"] == "local"
    # each file ran in exactly one runner
    per_file = {}
    for result in run.results:
        per_file.setdefault(result["file"], set()).add(result["runner_index"])
    assert all(len(r) == 1 for r in per_file.values())
    assert len(per_file) == 30


def test_module_and_class_fixtures_end_with_their_file(tmp_path):
    files = {
        "tests/logbook.py": LOGGING_CONFTEST,
        "tests/conftest.py": """
            import pytest
            from logbook import log_line

            @pytest.fixture(scope="module", autouse=True)
            def module_guard(request):
                name = request.module.__name__
                log_line("order", f"setup {name}")
                yield
                log_line("order", f"teardown {name}")
        """,
    }
    for n in range(8):
        files[f"tests/test_order_{n}.py"] = f"""
            import pytest
            from logbook import log_line

            class TestInClass:
                @pytest.fixture(scope="class", autouse=True)
                def class_guard(self):
                    log_line("order", "class-setup " + __name__)
                    yield
                    log_line("order", "class-teardown " + __name__)

                def test_in_class(self):
                    log_line("order", "test " + __name__)

            def test_first():
                log_line("order", "test " + __name__)

            def test_second():
                log_line("order", "test " + __name__)
                assert {n} != 3
        """
    project = write_project(tmp_path / "p", files)
    run, serial = assert_same_as_pytest(project)

    for who in ("serial", "medusa"):
        log = read_log(project, "order", who)
        setups = Counter(rest.split()[1] for _, _, rest in log if rest.startswith("setup "))
        assert setups == {f"test_order_{n}": 1 for n in range(8)}, (who, log)
        by_pid = {}
        for _, pid, rest in log:
            by_pid.setdefault(pid, []).append(rest.split())
        for pid, lines in by_pid.items():
            current = None
            in_class = False
            for what, module in lines:
                if what == "setup":
                    assert current is None, f"{who}: {module} set up before {current} ended"
                    current = module
                elif what == "teardown":
                    assert current == module and not in_class, (who, lines)
                    current = None
                else:
                    assert current == module, f"{who}: {what} of {module} outside its module"
                    if what == "class-setup":
                        in_class = True
                    elif what == "class-teardown":
                        in_class = False
            assert current is None, f"{who}: module {current} never torn down: {lines}"
    assert len({pid for _, pid, _ in read_log(project, "order", "medusa")}) >= 1


# --- temporary directories -------------------------------------------------------------

TMP_FILE = """
    import time
    from logbook import log_line

    CREATED = []

    def test_make_a(tmp_path):
        (tmp_path / "a.txt").write_text("a")
        CREATED.append(tmp_path / "a.txt")
        log_line("tmp", str(tmp_path))
        time.sleep(0.15)

    def test_make_b(tmp_path, tmp_path_factory):
        (tmp_path / "b.txt").write_text("b")
        CREATED.append(tmp_path / "b.txt")
        log_line("tmp", str(tmp_path))
        shared = tmp_path_factory.mktemp("shared")
        (shared / "s.txt").write_text("s")
        CREATED.append(shared / "s.txt")
        time.sleep(0.15)

    def test_nothing_was_clobbered():
        missing = [str(p) for p in CREATED if not p.exists()]
        assert not missing, f"deleted under our feet: {missing}"
"""


def _tmp_project(root: Path) -> Path:
    files = {"tests/logbook.py": LOGGING_CONFTEST}
    for n in range(6):
        files[f"tests/test_tmp_{n}.py"] = TMP_FILE
    return write_project(root, files)


def test_tmp_path_is_private_to_each_test(tmp_path):
    project = _tmp_project(tmp_path / "p")
    run, serial = assert_same_as_pytest(project)
    assert run.exit_code == 0
    paths = [rest for _, _, rest in read_log(project, "tmp", "medusa")]
    assert len(paths) == 12 and len(set(paths)) == 12


def test_basetemp_is_not_clobbered_by_other_runners(tmp_path):
    project = _tmp_project(tmp_path / "p")
    basetemp = tmp_path / "basetemp"
    basetemp.mkdir()
    serial = serial_outcomes(project, pytest_args=(f"--basetemp={basetemp}",))
    assert serial.exit_code == 0, serial
    run = run_medusa(project, runners=3, pytest_args=(f"--basetemp={basetemp}",))
    assert run.outcomes == serial.outcomes, run
    assert run.exit_code == 0, run
    check_consistent(run)
    paths = [Path(rest) for _, _, rest in read_log(project, "tmp", "medusa")]
    assert len(set(paths)) == 12
    for path in paths:
        assert basetemp.resolve() in path.resolve().parents, path


def test_basetemp_that_does_not_exist_yet(tmp_path):
    """pytest creates --basetemp (and its parents' last level) when it is missing."""
    project = _tmp_project(tmp_path / "p")
    serial = serial_outcomes(project, pytest_args=(f"--basetemp={tmp_path / 'bt-serial'}",))
    assert serial.exit_code == 0, serial
    run = run_medusa(project, pytest_args=(f"--basetemp={tmp_path / 'bt-medusa'}",))
    assert run.outcomes == serial.outcomes, run
    assert run.exit_code == 0, run


# --- other collectors ----------------------------------------------------------------------

def test_doctest_modules_and_custom_collectors(tmp_path):
    project = write_project(tmp_path / "p", {
        "conftest.py": """
            import pytest

            def pytest_collect_file(parent, file_path):
                if file_path.suffix == ".check" and file_path.name.startswith("test_"):
                    return CheckFile.from_parent(parent, path=file_path)

            class CheckFile(pytest.File):
                def collect(self):
                    for n, line in enumerate(self.path.read_text().splitlines()):
                        yield CheckItem.from_parent(self, name=f"line{n}", expected=line)

            class CheckItem(pytest.Item):
                def __init__(self, *, expected, **kwargs):
                    super().__init__(**kwargs)
                    self.expected = expected

                def runtest(self):
                    if self.expected != "ok":
                        raise AssertionError(f"line says {self.expected!r}")

                def reportinfo(self):
                    return self.path, 0, self.name
        """,
        "src/mylib.py": '''
            def double(x):
                """
                >>> double(2)
                4
                >>> double(3)
                7
                """
                return 2 * x

            def half(x):
                """
                >>> half(4)
                2.0
                """
                return x / 2
        ''',
        "src/test_lib.py": "def test_plain():\n    pass\n",
        "data/test_lines.check": "ok\nok\nnot ok\n",
    })
    run, serial = assert_same_as_pytest(project, pytest_args=("--doctest-modules",))
    tests = {test for test, _ in run.outcomes}
    assert "src/mylib.py::mylib.double" in tests
    assert "data/test_lines.check::line2" in tests


def test_warnings_counted_like_pytest(tmp_path):
    project = write_project(tmp_path / "p", {
        "test_warns.py": """
            import warnings

            def test_one_warning():
                warnings.warn("first", UserWarning)

            def test_two_warnings():
                warnings.warn("second", DeprecationWarning)
                warnings.warn("third", UserWarning)
        """,
        "test_quiet.py": "def test_quiet():\n    pass\n",
    })
    run, serial = assert_same_as_pytest(project)
    summary = serial.stdout.strip().splitlines()[-1]
    assert "3 warnings" in summary, summary
    assert serial.warnings == 3
    assert run.counts.get("warnings") == 3, run.counts
    assert "3 warnings" in run.stdout.strip().splitlines()[-1]


def test_collection_warnings_counted_like_pytest(tmp_path):
    """Warnings raised while a file is collected (a test class pytest cannot collect, a
    deprecation at import) are in pytest's summary line: "1 passed, 2 warnings"."""
    project = write_project(tmp_path / "p", {
        "test_collect_warns.py": """
            import warnings

            warnings.warn("deprecated at import", DeprecationWarning)

            class TestWithInit:
                def __init__(self):   # pytest warns and does not collect it
                    pass

                def test_never(self):
                    pass

            def test_ok():
                pass
        """,
    })
    serial = serial_outcomes(project)
    assert serial.warnings == 2, serial
    run = run_medusa(project)
    assert run.outcomes == serial.outcomes
    assert run.counts.get("warnings", 0) == serial.warnings, run.counts
    assert summary_line(run.stdout) == summary_line(serial.stdout)


def test_the_suite_of_a_project_without_configuration(tmp_path):
    """With no arguments at all medusa runs what `pytest` would in that folder."""
    project = write_project(tmp_path / "p", {
        "test_root.py": "def test_root():\n    pass\n",
        "pkg/test_pkg.py": "def test_pkg():\n    pass\n",
        "node_modules/test_hidden.py": "def test_hidden():\n    raise AssertionError\n",
        ".hidden/test_dot.py": "def test_dot():\n    raise AssertionError\n",
        "venv/pyvenv.cfg": "home = /usr/bin\n",
        "venv/test_in_venv.py": "def test_venv():\n    raise AssertionError\n",
        "notes.txt": "not a test",
    })
    run, serial = assert_same_as_pytest(project)
    assert run.exit_code == 0
    assert len(run.outcomes) == 2


def test_failing_session_fixture_teardown_is_reported(tmp_path):
    """Each runner ends its own session, so the failure is reported once per runner that
    set the fixture up (pytest, with one session, reports it once), at that runner's last
    test; the build fails as pytest's does."""
    files = {
        "tests/logbook.py": LOGGING_CONFTEST,
        "tests/conftest.py": """
            import pytest
            from logbook import log_line

            @pytest.fixture(scope="session")
            def fragile():
                log_line("fragile", "setup")
                yield
                raise RuntimeError("session teardown broke")
        """,
    }
    for n in range(4):
        files[f"tests/test_s{n}.py"] = "def test_uses(fragile):\n    pass\n"
    project = write_project(tmp_path / "p", files)
    serial = serial_outcomes(project)
    assert serial.exit_code == 1
    assert Counter(o for _, o in serial.outcomes) == {"passed": 4, "error": 1}
    run = run_medusa(project)
    assert run.exit_code == 1, run
    check_consistent(run)
    setups = len(read_log(project, "fragile", "medusa"))
    errors = [r for r in run.results if r["outcome"] == "error"]
    assert len(errors) == setups >= 1, run
    for error in errors:
        assert error["when"] == "teardown"
        assert "session teardown broke" in error["longrepr"] + error["message"]
        assert error["test"].startswith("tests/test_s")
    assert run.counts["passed"] == 4


# --- more of what users do -----------------------------------------------------------------

def test_unicode_and_spaces_in_paths(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/with space/test_ünïcode.py": """
            import pytest

            def test_ok():
                pass

            @pytest.mark.parametrize("v", ["a b"])
            def test_fail(v):
                assert v == "ab"
        """,
        "tests/日本/test_kanji.py": "def test_k():\n    pass\n",
    })
    run, _ = assert_same_as_pytest(project)
    assert len(run.outcomes) == 3
    run, _ = assert_same_as_pytest(project, "tests/with space")
    assert len(run.outcomes) == 2


def test_run_from_a_subfolder_of_the_rootdir(tmp_path):
    """Started below the rootdir, ids stay relative to the rootdir and paths to the cwd."""
    project = write_project(tmp_path / "p", {
        "pytest.ini": "[pytest]\n",
        "tests/test_top.py": "def test_top():\n    pass\n",
        "tests/unit/test_u.py": "def test_u():\n    pass\n\ndef test_v():\n    assert 0\n",
        "other/test_other.py": "def test_other():\n    pass\n",
    })
    run, _ = assert_same_as_pytest(project / "tests")
    assert {test for test, _ in run.outcomes} == {
        "tests/test_top.py::test_top", "tests/unit/test_u.py::test_u", "tests/unit/test_u.py::test_v"}
    run, _ = assert_same_as_pytest(project / "tests", "unit/test_u.py::test_v")
    assert run.outcomes == [("tests/unit/test_u.py::test_v", "failed")]


def test_ignore_options_and_collect_ignore(tmp_path):
    project = write_project(tmp_path / "p", {
        "conftest.py": """
            collect_ignore = ["tests/test_listed.py"]
            collect_ignore_glob = ["tests/*_generated.py"]
        """,
        "tests/test_kept.py": "def test_kept():\n    pass\n",
        "tests/test_listed.py": "def test_listed():\n    raise AssertionError\n",
        "tests/test_x_generated.py": "def test_gen():\n    raise AssertionError\n",
        "tests/skipme/test_s.py": "def test_s():\n    raise AssertionError\n",
        "tests/globbed/test_g.py": "def test_g():\n    raise AssertionError\n",
    })
    run, _ = assert_same_as_pytest(project, pytest_args=(
        "--ignore=tests/skipme", "--ignore-glob=*/globbed/*"))
    assert run.outcomes == [("tests/test_kept.py::test_kept", "passed")]


def test_importlib_mode_with_same_basenames(tmp_path):
    files = {}
    for folder in ("api", "db", "web"):
        files[f"tests/{folder}/test_models.py"] = f"""
            def test_where():
                assert __file__.endswith("{folder}/test_models.py")

            def test_fails_in_db():
                assert "{folder}" != "db"
        """
    project = write_project(tmp_path / "p", files)
    run, _ = assert_same_as_pytest(project, pytest_args=("--import-mode=importlib",))
    assert Counter(o for _, o in run.outcomes) == {"passed": 5, "failed": 1}


def test_same_basenames_without_packages_in_one_runner(tmp_path):
    """pytest's default import mode refuses a second test module of the same name
    ("import file mismatch"); with one runner medusa sees the same."""
    project = write_project(tmp_path / "p", {
        "tests/a/test_same.py": "def test_a():\n    pass\n",
        "tests/b/test_same.py": "def test_b():\n    pass\n",
    })
    run, serial = assert_same_as_pytest(project, runners=1)
    assert ("tests/b/test_same.py", "error") in run.outcomes


def test_ini_filterwarnings_error_and_usefixtures(tmp_path):
    project = write_project(tmp_path / "p", {
        "pytest.ini": """
            [pytest]
            filterwarnings =
                error
                ignore:tolerated:UserWarning
            usefixtures = marker_fixture
        """,
        "conftest.py": """
            import pytest

            @pytest.fixture
            def marker_fixture(request):
                request.node.was_marked = True
        """,
        "test_w.py": """
            import warnings

            def test_warning_is_an_error():
                warnings.warn("this one fails", UserWarning)

            def test_tolerated():
                warnings.warn("tolerated here", UserWarning)

            def test_usefixtures_applied(request):
                assert request.node.was_marked
        """,
    })
    run, _ = assert_same_as_pytest(project)
    assert dict(run.outcomes)["test_w.py::test_warning_is_an_error"] == "failed"


def test_local_plugin_and_hooks_in_conftest(tmp_path):
    project = write_project(tmp_path / "p", {
        "conftest.py": """
            pytest_plugins = ["myplugin"]

            def pytest_collection_modifyitems(items):
                for item in items:
                    if "flaky" in item.name:
                        import pytest
                        item.add_marker(pytest.mark.xfail(reason="marked by conftest"))
        """,
        "myplugin.py": """
            import pytest

            @pytest.fixture
            def from_plugin():
                return "plugin"

            def pytest_runtest_setup(item):
                if "forbidden" in item.name:
                    pytest.skip("the plugin forbids it")
        """,
        "tests/test_p.py": """
            def test_uses_plugin_fixture(from_plugin):
                assert from_plugin == "plugin"

            def test_forbidden():
                raise AssertionError

            def test_flaky_one():
                assert False
        """,
    })
    run, _ = assert_same_as_pytest(project)
    assert dict(run.outcomes) == {"tests/test_p.py::test_uses_plugin_fixture": "passed",
                                  "tests/test_p.py::test_forbidden": "skipped",
                                  "tests/test_p.py::test_flaky_one": "xfailed"}


def test_last_failed_after_a_parallel_run(tmp_path):
    """`--lf` after a build reruns what failed in it, wherever it ran: the runners must
    not overwrite each other's record of failures in .pytest_cache."""
    files = {"tests/test_ok.py": "def test_ok():\n    pass\n"}
    for n in range(4):
        files[f"tests/test_{n}.py"] = f"""
            import time

            def test_fail_{n}():
                time.sleep(0.2)
                assert 0

            def test_pass_{n}():
                pass
        """
    serial_project = write_project(tmp_path / "serial", files)
    medusa_project = write_project(tmp_path / "medusa", files)
    first = serial_outcomes(serial_project, cache=True)
    assert first.exit_code == 1
    serial = serial_outcomes(serial_project, pytest_args=("--lf",), cache=True)
    assert serial.outcomes == [(f"tests/test_{n}.py::test_fail_{n}", "failed") for n in range(4)]

    first_run = run_medusa(medusa_project)
    assert first_run.outcomes == first.outcomes
    run = run_medusa(medusa_project, pytest_args=("--lf",))
    assert run.outcomes == serial.outcomes, run
