"""medusa on the pytest versions its users have: 7.4 to 9.x.

The suite itself runs on the newest pytest (setup.cfg's test extra); these tests run
medusa and serial pytest with an interpreter of a virtual environment that has an older
pytest (and this machine's other packages), and compare per-test outcomes as the
fidelity tests do. .ci/run makes the environments (PYTEST_VENVS); where one is missing
the test makes it with pip, which needs the package registry.
"""
from __future__ import annotations

import subprocess

import pytest

from helpers import assert_same_as_pytest, run_medusa, write_project
from venvs import PYTEST_VERSIONS, venv_python
from integrations_support import PROJECT
from test_fidelity import INI_PROJECT
from test_session import REGISTRY_PROJECT

VERSIONS = PYTEST_VERSIONS


def pytest_python(version: str) -> str:
    """The interpreter of a venv with pytest==version, made once and kept."""
    python = venv_python(f"pytest-{version}")
    found = subprocess.run([python, "-c", "import pytest; print(pytest.__version__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == version, f"{python} has pytest {found}"
    return python


@pytest.fixture(params=VERSIONS, ids=lambda version: f"pytest-{version}")
def python(request) -> str:
    return pytest_python(request.param)


# pytest-benchmark (a test dependency of this suite) needs pytest 8.1: not in the old ones
NO_BENCHMARK = ("-p", "no:benchmark")


def test_outcomes_of_every_kind(tmp_path, python):
    project = write_project(tmp_path / "p", PROJECT)
    assert_same_as_pytest(project, python=python, pytest_args=NO_BENCHMARK)


def test_selection_by_marker_and_the_ini_file(tmp_path, python):
    project = write_project(tmp_path / "p", INI_PROJECT)
    run, serial = assert_same_as_pytest(project, python=python,
                                        pytest_args=(*NO_BENCHMARK, "-m", "slow and not db"))
    assert serial.deselected > 0


def test_the_whole_session_is_collected_before_the_runners(tmp_path, python):
    project = write_project(tmp_path / "p", REGISTRY_PROJECT)
    run, serial = assert_same_as_pytest(project, python=python, runners=3,
                                        pytest_args=NO_BENCHMARK)
    assert run.counts == {"passed": 3}, run


def test_a_conftest_that_fails_to_import_is_a_usage_error(tmp_path, python):
    project = write_project(tmp_path / "p", {
        "conftest.py": "import a_module_nobody_has\n",
        "test_x.py": "def test_x():\n    pass\n",
    })
    run = run_medusa(project, python=python, pytest_args=NO_BENCHMARK)
    assert run.exit_code == 4, run
    assert "ImportError while loading conftest" in run.stdout, run
    assert "a_module_nobody_has" in run.stdout + run.stderr, run
