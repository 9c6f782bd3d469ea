"""The worker's helpers rewrite test modules' asserts ahead of its collection
(medusa/drivers/pytest_rewrite.py): pytest uses what they wrote, the asserts say what
pytest's say, and nothing is left beside the sources that pytest would not leave there.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import run_medusa, serial_outcomes, write_project

FILES = 30

# The first test module waits (at import, in the worker's collection) until a helper has
# written the last module's rewritten code, so that the worker surely finds one done.
FIRST_MODULE = """
    import glob, os, time

    def _wait_for_a_helper():
        pattern = os.environ.get("WAIT_FOR_REWRITTEN")
        deadline = time.monotonic() + 60
        while pattern and not glob.glob(pattern, recursive=True):
            assert time.monotonic() < deadline, "no helper wrote " + pattern
            time.sleep(0.05)

    _wait_for_a_helper()
"""

MODULE = """
    def test_passes():
        assert {number} >= 0

    def test_fails():
        value = {number}
        assert value == -1
"""


def _project(root: Path) -> Path:
    files = {f"tests/test_{number:02}.py": MODULE.format(number=number)
             for number in range(FILES)}
    files["tests/test_00.py"] = FIRST_MODULE + MODULE.format(number=0)
    return write_project(root, files)


@pytest.mark.parametrize("bytecode", ["written", "not written"])
def test_helpers_rewrite_what_the_worker_then_imports(tmp_path, bytecode):
    project = _project(tmp_path / "p")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    last = f"test_{FILES - 1:02}.*pytest*.pyc"
    if bytecode == "written":
        env = {"PYTHONDONTWRITEBYTECODE": "", "TMPDIR": str(scratch)}
        wait_for = str(project / "tests" / "__pycache__" / last)
    else:
        env = {"PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(scratch)}
        wait_for = str(scratch / "medusa-rewritten-*" / "**" / last)
    debug_log = tmp_path / "pytestdebug.log"

    run = run_medusa(project, "tests", runners=2, pytest_args=(f"--debug={debug_log}",),
                     env={**env, "WAIT_FOR_REWRITTEN": wait_for})
    serial = serial_outcomes(project, pytest_args=("tests",), env=env)

    assert run.outcomes == serial.outcomes, f"{run}\n{serial}"
    assert serial.counts == {"passed": FILES, "failed": FILES}, serial
    # pytest used the helper's code, and it is pytest's rewritten code
    assert f"found cached rewritten pyc for {project / 'tests' / f'test_{FILES - 1:02}.py'}" \
        in debug_log.read_text(encoding="utf-8")
    failure = next(e for e in run.events if e["event"] == "result"
                   and e["test"] == f"tests/test_{FILES - 1:02}.py::test_fails")
    assert f"assert {FILES - 1} == -1" in failure["longrepr"], failure
    left = sorted(path.name for path in scratch.iterdir())
    assert not [name for name in left if name.startswith("medusa-rewritten-")], left
    caches = list(project.rglob("__pycache__"))
    if bytecode == "written":   # as pytest leaves it: every test module's rewritten code
        cached = {path.name.split(".")[0] for path in (project / "tests" / "__pycache__").iterdir()}
        assert cached == {f"test_{number:02}" for number in range(FILES)}, cached
    else:
        assert caches == [], caches
