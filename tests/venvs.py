"""The venvs some tests run medusa from: other pytest versions, and plugins that would be in
every other test's pytest if they were installed in the suite's own environment.

Each venv sees the base interpreter's packages and has its requirements over them, and this
checkout of medusa (editable, with its dependencies: under tox the base interpreter may have
neither). .ci/run makes them all before the tests (`python tests/venvs.py`); a test that finds
one missing or made from other requirements makes it itself.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENVS = Path(os.environ.get("PYTEST_VENVS", Path.home() / ".cache" / "medusa-pytest-venvs"))

# the oldest supported pytest, the last without pytest's conftest error printer (8.0 to
# 8.4.1 lack print_conftest_import_error), and the newest 8.x; 9.x is the suite's own.
# MEDUSA_PYTEST_VERSIONS (comma separated) picks others: tox.ini's envs do.
PYTEST_VERSIONS = tuple(os.environ.get("MEDUSA_PYTEST_VERSIONS", "7.4.4,8.0.2,8.4.2").split(","))

PLUGINS = ("syrupy>=4.9", "pytest-randomly>=3.15", "pytest-rerunfailures>=14",
           "pytest-timeout>=2.3", "pytest-asyncio>=0.24", "hypothesis>=6.100", "trio>=0.25")

REQUIREMENTS = {
    **{f"pytest-{version}": (f"pytest=={version}",) for version in PYTEST_VERSIONS},
    "plugins": PLUGINS,
}


def venv_python(name: str) -> str:
    """The interpreter of the venv `name`, made once and kept while its requirements stay."""
    requirements = (*REQUIREMENTS[name], "-e", str(REPO))
    venv = VENVS / name
    python = venv / "bin" / "python"
    ready = venv / "ready"
    VENVS.mkdir(parents=True, exist_ok=True)
    with open(VENVS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists() or ready.read_text().split("\n") != list(requirements):
            subprocess.run([sys.executable, "-m", "venv", "--clear", "--system-site-packages",
                            str(venv)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements],
                           check=True)
            ready.write_text("\n".join(requirements))
    return str(python)


if __name__ == "__main__":
    for each in REQUIREMENTS:
        print(each, venv_python(each))
