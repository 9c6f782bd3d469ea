"""`--driver auto` (the default): pick the driver by looking at the project.

It runs in the worker, which sees the project (on a remote host, the synced copy). In order:
1. PATHS that are .feature files or `features` folders: behave;
2. a pytest configuration (pytest.ini, [tool.pytest.ini_options], [tool:pytest], tox.ini's
   [pytest]) or a conftest.py: pytest;
3. a `features/` folder with .feature files: behave;
4. a go.mod: the command driver, with `go list ./...` and `go test -json {unit}`;
5. Python test files (test*.py, *_test.py): pytest if it is installed (it runs unittest
   tests too), else unittest;
6. nothing of the above: pytest if it is installed, else unittest.
Command-driver settings on the command line (--command...) mean the command driver.
The choice and its reason are in the report's header.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from medusa.drivers import COLLECT_OPTION, CONTROLLER_OPTION, Channel, Driver, DriverOptions, Prepared, create

# folders never searched for test files: tools' and packagers' copies of other code
SKIPPED_FOLDERS = {"node_modules", "venv", "env", "site-packages", "__pycache__", "build",
                   "dist", "target", "vendor"}
PYTEST_SECTIONS = {"pyproject.toml": ("[tool.pytest.ini_options]", "[tool.pytest]"),
                   "tox.ini": ("[pytest]",), "setup.cfg": ("[tool:pytest]",)}


@dataclass(frozen=True)
class Choice:
    driver: str
    reason: str


class AutoDriver:
    name = "auto"

    def __init__(self) -> None:
        self.driver: Driver | None = None

    def prepare(self, paths: tuple[str, ...], framework_args: tuple[str, ...],
                options: DriverOptions = (), processes: int = 1) -> Prepared:
        choice = detect(Path.cwd(), paths, options)
        self.driver = create(choice.driver)
        prepared = self.driver.prepare(paths, framework_args, options, processes)
        return dataclasses.replace(prepared, framework=f"{prepared.framework} "
                                                      f"(auto: {choice.reason})")

    def serve(self, channel: Channel, runner: int) -> int:
        assert self.driver is not None
        return self.driver.serve(channel, runner)


def picks_pytest(driver: str, root: Path, paths: tuple[str, ...] = (),
                 options: DriverOptions = ()) -> bool:
    """Whether a build with this --driver runs pytest in its workers."""
    return (detect(root, paths, options).driver if driver == "auto" else driver) == "pytest"


def detect(root: Path, paths: tuple[str, ...] = (), options: DriverOptions = ()) -> Choice:
    if any(name not in (COLLECT_OPTION, CONTROLLER_OPTION) for name, _ in options):
        return Choice("command", "command settings given")
    if any(_is_features(root / path) for path in paths):
        return Choice("behave", "feature files given")
    if _pytest_configured(root):
        return Choice("pytest", "pytest configuration found")
    if _is_features(root / "features"):
        return Choice("behave", "features/ folder")
    if (root / "go.mod").is_file():
        return Choice("command", "go.mod")
    has_pytest = importlib.util.find_spec("pytest") is not None   # found, not imported
    places = [root / path for path in paths] or [root]
    if any(_has_python_tests(place) for place in places):
        if has_pytest:
            return Choice("pytest", "Python tests, pytest installed")
        return Choice("unittest", "Python tests, pytest not installed")
    if has_pytest:
        return Choice("pytest", "no tests recognised, pytest installed")
    return Choice("unittest", "no tests recognised, pytest not installed")


def _is_features(path: Path) -> bool:
    if path.suffix == ".feature" or ".feature:" in path.name:   # behave's FILE:LINE too
        return True
    return path.name == "features" and path.is_dir() and any(path.rglob("*.feature"))


def _pytest_configured(root: Path) -> bool:
    if (root / "pytest.ini").is_file() or (root / ".pytest.ini").is_file():
        return True
    for name, sections in PYTEST_SECTIONS.items():
        try:
            text = (root / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if any(section in text for section in sections):
            return True
    # conftest.py at the top or one folder down (tests/conftest.py)
    return any(root.glob("conftest.py")) or any(root.glob("*/conftest.py"))


def _has_python_tests(place: Path) -> bool:
    if place.is_file():
        return place.suffix == ".py"
    for folder, subfolders, files in os.walk(place):
        subfolders[:] = [name for name in subfolders
                         if not name.startswith(".") and name not in SKIPPED_FOLDERS]
        if any(_is_test_file(name) for name in files):
            return True
    return False


def _is_test_file(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test") or name.endswith("_test.py"))
