"""pytest's session semantics under medusa: the worker collects the whole session once,
before it forks, so session fixtures and collection hooks see the whole suite, as under
`pytest` (issue: a Django project lost a tenth of its tests when each runner collected
only its own files).

Every test compares with the real pytest run serially on the same project.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import (
    MEDUSA,
    _environment,
    assert_same_as_pytest,
    run_medusa,
    serial_outcomes,
    summary_line,
    write_project,
)
from venvs import venv_python

# The smallest reproducer: serial pytest passes all three; with each runner
# collecting its own files, a session fixture saw only that runner's first file.
REGISTRY_PROJECT = {
    "conftest.py": """
        import pytest
        REGISTRY = []

        @pytest.fixture(scope="session")
        def registry_snapshot(request):
            return {"registered": list(REGISTRY), "items": len(request.session.items)}
    """,
    "test_a.py": """
        from conftest import REGISTRY
        REGISTRY.append("a")

        def test_a(registry_snapshot):
            assert registry_snapshot["registered"] == ["a", "b"]
    """,
    "test_b.py": """
        from conftest import REGISTRY
        REGISTRY.append("b")

        def test_b_registered(registry_snapshot):
            assert "b" in registry_snapshot["registered"]

        def test_b_session_items(registry_snapshot):
            assert registry_snapshot["items"] == 3
    """,
}


@pytest.mark.parametrize("runners", [1, 3])
def test_a_session_fixture_sees_every_module_and_item(tmp_path, runners):
    project = write_project(tmp_path / "p", REGISTRY_PROJECT)
    run, serial = assert_same_as_pytest(project, runners=runners)
    assert serial.counts == {"passed": 3}, serial
    assert run.counts == {"passed": 3}, run


def test_per_file_collection_is_the_opt_in_that_gives_this_up(tmp_path):
    """`--collect file`, the old way: each runner imports only the files it runs, so the
    same suite fails there. It stays for suites whose serial collection dominates."""
    project = write_project(tmp_path / "p", REGISTRY_PROJECT)
    run = run_medusa(project, "--collect", "file", runners=1)
    assert run.exit_code == 1, run
    assert dict(run.outcomes)["test_a.py::test_a"] == "failed", run
    begin = next(e for e in run.events if e["event"] == "worker_begin")
    assert begin["tests"] is None, begin


def test_per_file_collection_keeps_a_subfolders_conftest_fixtures(tmp_path):
    """`--collect file` with a folder argument: the runners reach each file through the
    folder nodes the worker made as it found the files. pytest 9 binds a conftest's
    fixtures to its folder's node, so a runner's own copy of the folder saw none of them
    (jinja2's suite: `fixture 'env' not found` on half its tests)."""
    files = {"tests/conftest.py": """
        import pytest

        @pytest.fixture
        def env():
            return {"ready": True}
    """}
    for number in range(6):
        files[f"tests/test_{number}.py"] = f"""
            def test_uses_env(env):
                assert env["ready"]

            def test_plain():
                assert {number} >= 0
        """
    project = write_project(tmp_path / "p", files)
    run, serial = assert_same_as_pytest(project, "tests", medusa_args=("--collect", "file"))
    assert serial.counts == {"passed": 12}, serial
    assert run.counts == {"passed": 12}, run


# A conftest that writes down what pytest's collection hooks saw, one line per call, in
# a log beside the project (the runners' process ids show who called them).
HOOKS_CONFTEST = """
    import json, os

    LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hooks-" + os.environ.get("WHO", "x") + ".log")

    def _log(**what):
        with open(LOG, "a") as out:
            out.write(json.dumps(what) + "\\n")

    def pytest_collection_modifyitems(session, config, items):
        _log(hook="modifyitems", items=len(items))

    def pytest_collection_finish(session):
        _log(hook="finish", items=len(session.items), collected=session.testscollected)

    def pytest_sessionfinish(session, exitstatus):
        _log(hook="sessionfinish", exitstatus=int(exitstatus),
             attribute=int(session.exitstatus), failed=session.testsfailed,
             collected=session.testscollected, runner=os.environ.get("MEDUSA_RUNNER"))
"""


def _hook_log(project: Path, who: str) -> list[dict]:
    path = project / f"hooks-{who}.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_collection_hooks_run_once_over_the_whole_suite(tmp_path):
    files = {"conftest.py": HOOKS_CONFTEST}
    for n in range(5):
        files[f"tests/test_{n}.py"] = f"def test_one():\n    pass\n\ndef test_two():\n    assert {n} != 2\n"
    project = write_project(tmp_path / "p", files)
    run = run_medusa(project, runners=3, env={"WHO": "medusa"})
    serial_run = serial_outcomes(project, env={"WHO": "serial"})
    assert run.outcomes == serial_run.outcomes, (run, serial_run)
    serial = _hook_log(project, "serial")
    medusa = _hook_log(project, "medusa")
    collection = [line for line in medusa if line["hook"] != "sessionfinish"]
    assert collection == [line for line in serial if line["hook"] != "sessionfinish"], medusa
    assert collection == [{"hook": "modifyitems", "items": 10},
                          {"hook": "finish", "items": 10, "collected": 0}], medusa
    # Session state as pytest sets it, in every runner, before pytest_sessionfinish: the
    # session's exit status (syrupy reads it), the whole suite collected, the runner's
    # own failures (pytest-xdist's workers do the same)
    finishes = [line for line in medusa if line["hook"] == "sessionfinish"]
    # the master's controller session ends too, as pytest-xdist's controller does: with
    # the build's status, failures and suite
    controller = [line for line in finishes if line["runner"] is None]
    assert controller == [{"hook": "sessionfinish", "exitstatus": 1, "attribute": 1,
                           "failed": 1, "collected": 10, "runner": None}], finishes
    finishes = [line for line in finishes if line["runner"] is not None]
    assert sorted(line["runner"] for line in finishes) == ["0", "1", "2"], finishes
    assert sum(line["failed"] for line in finishes) == 1, finishes
    for line in finishes:
        assert line["collected"] == 10, line
        assert line["exitstatus"] == line["attribute"] == (1 if line["failed"] else 0), line


def test_selection_and_modifyitems_apply_once_before_the_runners(tmp_path):
    """-k, -m, --deselect and a conftest's deselection, counted as pytest counts them."""
    project = write_project(tmp_path / "p", {
        "conftest.py": """
            def pytest_collection_modifyitems(config, items):
                dropped = [item for item in items if "drop" in item.name]
                if dropped:
                    config.hook.pytest_deselected(items=dropped)
                    items[:] = [item for item in items if item not in dropped]
        """,
        "tests/test_x.py": """
            import pytest

            def test_keep(): pass
            def test_drop_me(): pass

            @pytest.mark.slow
            def test_slow(): pass

            def test_other(): pass
        """,
        "tests/test_y.py": "def test_keep_y(): pass\n\ndef test_drop_y(): pass\n",
        "pytest.ini": "[pytest]\nmarkers =\n    slow: slow\n",
    })
    run, serial = assert_same_as_pytest(
        project, runners=2, pytest_args=("-m", "not slow", "-k", "not other",
                                         "--deselect", "tests/test_y.py::test_keep_y"))
    assert run.counts.get("deselected") == 5, run


def test_splitting_and_history_on_collected_units(tmp_path):
    """Second build: the long file is split between runners by its history; every part
    runs with the whole session behind it, and the outcomes stay pytest's."""
    files = dict(REGISTRY_PROJECT)
    files["test_long.py"] = """
        import time
        import pytest
        from conftest import REGISTRY

        @pytest.mark.parametrize("n", range(3))
        def test_slow_param(n, registry_snapshot):
            time.sleep(0.3)
            assert registry_snapshot["items"] == 11

        class TestGroup:
            def test_in_class(self, registry_snapshot):
                time.sleep(0.3)
                assert registry_snapshot["registered"] == ["a", "b"]

        def test_alone_1():
            time.sleep(0.3)

        def test_alone_2():
            time.sleep(0.3)

        def test_alone_3():
            time.sleep(0.3)

        def test_fails():
            time.sleep(0.3)
            assert not REGISTRY
    """
    project = write_project(tmp_path / "p", files)
    first, serial = assert_same_as_pytest(project, runners=3)
    second, _ = assert_same_as_pytest(project, runners=3)
    parts = {e.get("parts", 1) for e in second.events
             if e["event"] == "file_started" and e["file"] == "test_long.py"}
    assert max(parts) > 1, "the long file was not split on the second build"
    # failed first: the file that failed last time starts first
    started = [e["file"] for e in second.events if e["event"] == "file_started"]
    assert started[0] == "test_long.py", started


def test_a_collected_test_that_gets_no_result_is_listed_as_not_run(tmp_path):
    """Nothing is lost: a plugin that swallows a test (no report at all) cannot make it
    vanish from medusa's build; serial pytest just counts one test less."""
    project = write_project(tmp_path / "p", {
        "conftest.py": """
            def pytest_runtest_protocol(item, nextitem):
                if item.name == "test_ghost":
                    return True   # "handled": no setup, no call, no report
        """,
        "test_g.py": "def test_ghost():\n    pass\n\ndef test_real():\n    pass\n",
    })
    run = run_medusa(project, runners=1)
    assert run.exit_code == 1, run
    assert run.counts == {"passed": 1}, run
    not_run = run.finished["not_run"]
    assert len(not_run) == 1 and not_run[0]["file"] == "test_g.py", not_run
    assert "test_g.py::test_ghost" in not_run[0]["reason"], not_run


def test_a_worker_that_collects_another_suite_is_not_used(tmp_path):
    """Two workers must run the suite the plan was made from: a worker whose collection
    differs (here environment.py makes the second one see one more test) gets no work,
    and the build says why."""
    project = write_project(tmp_path / "p", {
        "medusa/config.yml": "workers:\n  - {type: local, runners: 1}\n"
                             "  - {type: local, runners: 1}\n",
        "medusa/environment.py": """
            import os

            def setup_worker(ctx):
                if ctx.worker == "local-2":
                    os.environ["EXTRA_TEST"] = "1"
        """,
        "test_e.py": """
            import os

            def test_everywhere():
                pass

            if os.environ.get("EXTRA_TEST"):
                def test_only_on_the_second():
                    pass
        """,
    })
    run = run_medusa(project, runners=1)
    # the plan is made from the first worker to begin; the other one is refused
    lost = [e for e in run.events if e["event"] == "worker_lost"]
    assert len(lost) == 1 and "collected a different suite" in lost[0]["reason"], run
    assert "test_only_on_the_second" in lost[0]["reason"], lost
    used = ({"local", "local-2"} - {lost[0]["worker"]}).pop()
    assert {e["worker"] for e in run.results} == {used}, run
    assert run.counts == {"passed": 1 if used == "local" else 2}, run
    assert run.exit_code == 0, run


# --- a real Django project: models defined in test modules, a second database ----------------

_MODEL_MODULE = """
    import pytest
    from django.db import models
    from shop.models import Product

    class {model}(models.Model):
        label = models.CharField(max_length=20)

        class Meta:
            app_label = "shop"

    @pytest.mark.django_db
    def {test}():
        {model}.objects.create(label="top")
        assert {model}.objects.count() == 1
"""

DJANGO_PROJECT = {
    "pytest.ini": "[pytest]\nDJANGO_SETTINGS_MODULE = proj.settings\npythonpath = .\n",
    "proj/__init__.py": "",
    "proj/settings.py": """
        SECRET_KEY = "test"
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
        DATABASES = {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "reports": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        }
        USE_TZ = True
        DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
    """,
    "shop/__init__.py": "",
    "shop/models.py": """
        from django.db import models

        class Product(models.Model):
            name = models.CharField(max_length=20)
    """,
    # Models defined inside test modules: their tables exist only if every module was
    # imported before pytest-django's django_db_setup made the test databases.
    "tests/test_inventory.py": _MODEL_MODULE.format(model="Shelf", test="test_shelves"),
    "tests/test_audit.py": _MODEL_MODULE.format(model="Entry", test="test_entries") + """
    @pytest.mark.django_db
    def test_products():
        Product.objects.create(name="x")
        assert Product.objects.count() == 1
""",
    # the second alias is set up only if some collected test asks for it: pytest-django
    # reads that from session.items
    "tests/test_reports.py": """
        import pytest
        from shop.models import Product

        @pytest.mark.django_db(databases=["default", "reports"])
        def test_second_database():
            Product.objects.using("reports").create(name="r")
            assert Product.objects.using("reports").count() == 1

        @pytest.mark.django_db
        def test_auth_tables():
            from django.contrib.auth.models import Permission
            assert Permission.objects.exists()
    """,
}


@pytest.mark.parametrize("runners", [1, 3])
def test_django_models_in_test_modules_and_a_second_database(tmp_path, runners):
    project = write_project(tmp_path / "p", DJANGO_PROJECT)
    run, serial = assert_same_as_pytest(project, runners=runners)
    assert serial.counts == {"passed": 5}, serial
    assert_same_as_pytest(project, runners=runners)   # the second build, by its history
    if runners == 1:   # what each runner collecting its own files did to this project
        per_file = run_medusa(project, "--collect", "file", runners=1)
        assert per_file.exit_code == 1 and per_file.counts.get("failed"), per_file


# --- options that do not run tests ----------------------------------------------------------

INFO_PROJECT = {
    "conftest.py": """
        import pytest

        @pytest.fixture
        def shared_thing():
            '''A thing every test may want.'''
            return 1
    """,
    "pytest.ini": "[pytest]\nmarkers =\n    slow: takes its time\n",
    "tests/test_i.py": """
        import pytest

        def test_one(shared_thing):
            raise AssertionError("a test ran")

        @pytest.mark.parametrize("n", [1, 2])
        def test_two(n):
            raise AssertionError("a test ran")
    """,
}


@pytest.mark.parametrize("args", [
    ("--co", "-q"), ("--collect-only",), ("--fixtures",), ("--fixtures-per-test",),
    ("--markers",), ("--setup-plan",),
])
def test_options_that_do_not_run_tests_print_what_pytest_prints(tmp_path, args):
    project = write_project(tmp_path / "p", INFO_PROJECT)
    env = _environment(None)
    serial = subprocess.run([sys.executable, "-P", "-m", "pytest", "-p", "no:cacheprovider", *args],
                            cwd=project, capture_output=True, text=True, env=env, timeout=120)
    medusa = subprocess.run([sys.executable, str(MEDUSA), "--local", "2", "--",
                             "-p", "no:cacheprovider", *args],
                            cwd=project, capture_output=True, text=True, env=env, timeout=120)
    assert medusa.returncode == serial.returncode, (medusa, serial)
    assert "a test ran" not in medusa.stdout, medusa.stdout
    assert _without_times(medusa.stdout) == _without_times(serial.stdout), (
        f"--- medusa ---\n{medusa.stdout}\n--- pytest ---\n{serial.stdout}")


def _without_times(text: str) -> str:
    import re
    return re.sub(r"in [0-9.]+s", "in Ns", text)


STEPWISE_PROJECT = {"test_steps.py": """
    def test_a():
        pass

    def test_b():
        assert open("state.txt").read() == "fixed"

    def test_c():
        pass
""", "state.txt": "broken"}


@pytest.mark.parametrize("args", [("--sw",), ("--pdb",)])
def test_one_process_options_are_run_by_pytest_itself(tmp_path, args):
    """--sw (stop at the first failure, start from it next time) and --pdb (the debugger
    needs the terminal and the test's process): pytest runs the build in one process, so
    that both do what they do under pytest, build after build."""
    serial_project = write_project(tmp_path / "serial", STEPWISE_PROJECT)
    medusa_project = write_project(tmp_path / "medusa", STEPWISE_PROJECT)
    env = _environment(None)
    for round_ in range(2):
        serial = subprocess.run([sys.executable, "-P", "-m", "pytest", *args],
                                cwd=serial_project, capture_output=True, text=True, env=env,
                                timeout=120, stdin=subprocess.DEVNULL)
        medusa = subprocess.run([sys.executable, str(MEDUSA), "--local", "2", "--", *args],
                                cwd=medusa_project, capture_output=True, text=True, env=env,
                                timeout=120, stdin=subprocess.DEVNULL)
        assert medusa.returncode == serial.returncode, (medusa, serial)
        assert summary_line(medusa.stdout) == summary_line(serial.stdout), (medusa, serial)
        assert f"medusa: {args[0]}: " in medusa.stderr, medusa.stderr
        for project in (serial_project, medusa_project):
            (project / "state.txt").write_text("fixed")
    assert summary_line(serial.stdout).startswith("2 passed" if args == ("--sw",) else "3 passed")


def test_benchmark_records_are_written_by_pytest_in_one_process(tmp_path):
    """--benchmark-json: one process's timings, written whole (each runner would have
    written its own file over the others'). pytest-benchmark 5.2 does not work on pytest
    9.2 (it reads a private name pytest dropped): pytest 8.4's venv runs it."""
    python = venv_python("pytest-8.4.2")
    project = write_project(tmp_path / "p", {
        **{f"test_{n}.py": f"def test_bench(benchmark):\n    benchmark(sum, range({n + 1}))\n"
           for n in range(3)}})
    medusa = subprocess.run([python, str(MEDUSA), "--local", "2", "--",
                             "--benchmark-json=out.json"], cwd=project, capture_output=True,
                            text=True, env=_environment(None), timeout=120)
    assert medusa.returncode == 0, medusa
    assert "medusa: --benchmark-json: " in medusa.stderr, medusa.stderr
    names = sorted(b["fullname"] for b in json.loads((project / "out.json").read_text())["benchmarks"])
    assert names == [f"test_{n}.py::test_bench" for n in range(3)], names


def test_pyargs_collects_a_package_by_its_name(tmp_path):
    project = write_project(tmp_path / "p", {
        "src/mypkg/__init__.py": "",
        "src/mypkg/test_inside.py": "def test_in_package():\n    pass\n\n"
                                    "def test_fails():\n    assert False\n",
    })
    env = {"PYTHONPATH": str(project / "src")}
    run, serial = assert_same_as_pytest(project, pytest_args=("--pyargs", "mypkg"), env=env)
    assert serial.counts == {"passed": 1, "failed": 1}, serial


def test_python_m_medusa_puts_the_current_folder_on_sys_path(tmp_path):
    """As `python -m pytest` does (and the `pytest` command does not)."""
    project = write_project(tmp_path / "p", {
        "examples/__init__.py": "",
        "examples/helper.py": "VALUE = 42\n",
        "tests/test_uses_examples.py": "from examples.helper import VALUE\n\n"
                                       "def test_value():\n    assert VALUE == 42\n",
    })
    env = _environment(None)
    serial = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
                            cwd=project, capture_output=True, text=True, env=env, timeout=120)
    assert serial.returncode == 0, serial
    events = tmp_path / "events.jsonl"
    medusa = subprocess.run([sys.executable, "-m", "medusa", "--local", "2", "--format",
                             f"json:{events}"], cwd=project, capture_output=True, text=True,
                            env={**env, "PYTHONPATH": str(MEDUSA.parent.parent)}, timeout=120)
    assert medusa.returncode == 0, medusa
    results = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["test"], e["outcome"]) for e in results if e["event"] == "result"] == [
        ("tests/test_uses_examples.py::test_value", "passed")]
    # and the `medusa` command, like the `pytest` command, does not
    plain = run_medusa(project)
    assert plain.exit_code == 1, plain


def test_last_failed_under_per_file_collection_runs_the_failed_files_only(tmp_path):
    """--lf with `--collect file` and more runners than failed files: a runner whose
    first file had no known failure ran that file whole (pytest skips such files only
    once its collection met a failure, and each runner collects on its own)."""
    files = {f"tests/test_{g}{n}.py": f"""
        def test_check():
            assert {n} != 0

        def test_other():
            pass
    """ for g in "ab" for n in range(3)}
    project = write_project(tmp_path / "p", files)
    first = serial_outcomes(project, cache=True)
    assert first.exit_code == 1, first
    serial = serial_outcomes(project, pytest_args=("--lf",), cache=True)
    run = run_medusa(project, "--collect", "file", runners=3, pytest_args=("--lf",))
    assert sorted(run.outcomes) == sorted(serial.outcomes) == [
        ("tests/test_a0.py::test_check", "failed"), ("tests/test_b0.py::test_check", "failed")], run
