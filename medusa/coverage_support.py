"""Coverage (--cov[=SOURCE], --cov-report): every runner measures, the master combines.

Measuring starts in the worker, before it loads environment.py and the test framework:
modules imported there (conftest.py files and what they import) run their module-level
code once, in the worker, before the runners are forked, and that must count as it does
under `coverage run -m pytest`. Each runner inherits the running measurement with the
fork and goes on with it; at its end it saves its data to a file of its own (coverage
picks a new data file name in a forked process), the worker's data holding what ran
before the fork. The worker ships every data file to the master (CoverageFile), and the
master combines them, with remote paths mapped to the local tree by coverage's own
[paths] remapping, and writes the reports asked for. Lines counted twice (before the
fork, in several runners) are one line once combined, so the totals equal those of one
serial process.

medusa's own modules are never measured. The project's coverage configuration
(.coveragerc, setup.cfg, tox.ini, pyproject.toml) applies as it would to `coverage run`.
"""
from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from typing import Any

import medusa

DATA_NAME = ".coverage"
# quiet in runners that never import a source, or that are killed before they save
QUIET = ["module-not-imported", "no-data-collected", "module-not-measured",
         "couldnt-parse"]
REPORT_KINDS = ("term", "term-missing", "xml", "html", "json", "lcov")


class CoverageError(Exception):
    """--cov cannot work here (the coverage package is missing)."""


@dataclass(frozen=True)
class CoverageSettings:
    sources: tuple[str, ...] | None = None   # None: not measured; (): what coverage measures
    branch: bool = False
    reports: tuple[str, ...] = ("term",)     # term, term-missing, xml:PATH, html:DIR, ...


def parse_report(spec: str) -> tuple[str, str]:
    """`xml:out/cov.xml` -> ("xml", "out/cov.xml"); `term` -> ("term", "")."""
    kind, _, path = spec.partition(":")
    if kind not in REPORT_KINDS:
        raise ValueError(f"unknown coverage report {kind!r} (known: {', '.join(REPORT_KINDS)})")
    if kind.startswith("term") and path:
        raise ValueError(f"coverage report {kind} takes no path")
    return kind, path


def _omit_medusa(cov: Any) -> None:
    own = os.path.dirname(os.path.abspath(medusa.__file__))
    cov.set_option("run:omit", [*(cov.get_option("run:omit") or []), own + os.sep + "*"])
    cov.set_option("report:omit", [*(cov.get_option("report:omit") or []), own + os.sep + "*"])


def _import_coverage() -> Any:
    try:
        import coverage
    except ImportError:
        raise CoverageError(f"--cov needs the coverage package, which {sys.executable} "
                            "cannot import (pip install coverage)") from None
    return coverage


# --- in the worker ----------------------------------------------------------------------------

def start_in_worker(sources: tuple[str, ...], branch: bool, data_dir: str) -> Any:
    """Start measuring in this process (the runners forked later inherit it)."""
    coverage = _import_coverage()
    os.makedirs(data_dir, exist_ok=True)
    cov = coverage.Coverage(data_file=os.path.join(data_dir, DATA_NAME), data_suffix=True,
                            source=list(sources) or None, branch=True if branch else None,
                            config_file=True)
    _omit_medusa(cov)
    cov.set_option("run:disable_warnings", [*(cov.get_option("run:disable_warnings") or []),
                                            *QUIET])
    cov.start()
    return cov


def finish_in_worker(cov: Any, data_dir: str) -> list[tuple[str, bytes]]:
    """Stop and save, then every data file there (the runners' too), to be shipped."""
    cov.stop()
    cov.save()
    files = []
    for name in sorted(os.listdir(data_dir)):
        if name.startswith(DATA_NAME + "."):
            with open(os.path.join(data_dir, name), "rb") as data:
                files.append((name, data.read()))
    return files


def save_in_runner() -> None:
    """A runner ends with os._exit, which skips coverage's own saving: save here."""
    if "coverage" not in sys.modules:
        return
    cov = sys.modules["coverage"].Coverage.current()
    if cov is None:
        return
    try:
        cov.stop()
        cov.save()
    except Exception as exc:   # a full disk, say: the build goes on without this part
        print(f"medusa: could not save this runner's coverage data: {exc!r}", file=sys.stderr)


# --- on the master ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CoverageOutcome:
    text: str                 # the terminal report ("" unless asked for)
    total: float              # percent, as coverage reports it
    written: tuple[str, ...]  # report files and folders written
    data_file: str


def combine_and_report(data_dir: str, remaps: list[tuple[str, str]],
                       reports: tuple[str, ...], branch: bool) -> CoverageOutcome:
    """Combine the data files in `data_dir`/parts ((local root, remote root) pairs map
    a remote worker's paths to ours) and write the reports."""
    coverage = _import_coverage()
    data_file = os.path.join(data_dir, DATA_NAME)
    cov = coverage.Coverage(data_file=data_file, config_file=True,
                            branch=True if branch else None)
    _omit_medusa(cov)
    paths = dict(cov.get_option("paths") or {})
    for number, (local, remote) in enumerate(sorted(set(remaps))):
        if os.path.normpath(local) != os.path.normpath(remote):
            paths[f"medusa-worker-{number}"] = [local.rstrip("/") + "/", remote.rstrip("/") + "/"]
    cov.set_option("paths", paths)
    cov.combine([os.path.join(data_dir, "parts")], strict=True, keep=False)
    cov.save()
    text, total, written = "", 0.0, []
    for spec in reports or ("term",):
        kind, path = parse_report(spec)
        if kind.startswith("term"):
            out = io.StringIO()
            total = cov.report(file=out, show_missing=kind == "term-missing" or None)
            text += out.getvalue()
            continue
        target = path or {"xml": "coverage.xml", "html": "htmlcov", "json": "coverage.json",
                          "lcov": "coverage.lcov"}[kind]
        if kind == "html":
            total = cov.html_report(directory=target)
        else:
            total = getattr(cov, f"{kind}_report")(outfile=target)
        written.append(target)
    if not any(parse_report(s)[0].startswith("term") for s in reports):
        total = cov.report(file=io.StringIO())
    return CoverageOutcome(text, float(total), tuple(written), data_file)
