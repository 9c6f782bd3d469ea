#!/usr/bin/env python3
"""Compare serial pytest, pytest-xdist and medusa on the same suites, side by side.

Run by hand; it prints a table of wall times and is not a test (it asserts nothing
about timings).

    python benchmarks/bench_core.py                      # every suite that exists, 3 repeats
    python benchmarks/bench_core.py --suites trivial,skewed --only serial,xdist --repeat 1
    python benchmarks/bench_core.py --suites attrs,jinja2,more-itertools --check-outcomes --markdown

Suites (--suites, comma separated; default: all that exist):
  trivial         1000 files of empty tests (pure runner overhead), N=2
  skewed          200 files, lognormal sleep durations, 40 s of work, N=8
  cpu             200 files, lognormal CPU-bound durations, 20 s of work, N=2
  attrs, jinja2, more-itertools
                  real suites in BENCH_DIR/suites/NAME (see shared/bench/real-suites.sh),
                  run as `pytest tests` from the suite directory, N=2

The generated suites are made by shared/bench/make_suite.py into a temporary directory
(deleted afterwards) and run with --python (default: this interpreter). The real suites
are run with --real-python (default: BENCH_DIR/venv/bin/python). Commands, all with
cwd = the suite directory:

  serial   PYTHON -m pytest -q -p no:cacheprovider tests
  xdist    PYTHON -m pytest -q -p no:cacheprovider -n N tests
  medusa   PYTHON REPO/bin/medusa --local N tests
  medusa-file   the same with --collect file (each file collected in its runner)
  medusa-nosession   medusa with MEDUSA_CONTROLLER=off: without pytest's session in the
                master, to measure what that session costs (column "session overhead")

Each command runs --repeat times, round-robin across the commands (the order rotates
every round) so that noise hits them all alike; the table shows the median wall time
and the raw times are listed under it. Before timing, each suite is collected once
(untimed) so that no command pays for writing the bytecode caches. Output of every run
goes to a log file; an exit code other than 0 (all passed) or 1 (some tests failed)
prints the tail of the log and marks the cell with "!".

--check-outcomes additionally runs, for each real suite, serial pytest once with a small
recording plugin and medusa once with --format json:PATH, and compares the per-test
outcomes (passed/failed/error/skipped/xfailed/xpassed).

Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MEDUSA_BIN = REPO_ROOT / "bin" / "medusa"
DEFAULT_MAKE_SUITE = REPO_ROOT.parent / "shared" / "bench" / "make_suite.py"
DEFAULT_BENCH_DIR = Path("/root/medusa-bench")

RUNNERS = ("serial", "xdist", "medusa", "medusa-file", "medusa-nosession")
PYTEST_BASE = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
NORMAL_EXIT = (0, 1)  # pytest: 0 = all passed, 1 = some tests failed
TAIL_LINES = 25

# key -> (display name, make_suite.py arguments, N)
GENERATED = {
    "trivial": ("trivial", ["--files", "1000", "--profile", "trivial"], 2),
    "skewed": ("skewed-sleep", ["--files", "200", "--profile", "skewed", "--kind", "sleep", "--total", "40"], 8),
    "cpu": ("cpu-skewed", ["--files", "200", "--profile", "skewed", "--kind", "cpu", "--total", "20"], 2),
}
REAL = {"attrs": 2, "jinja2": 2, "more-itertools": 2}  # name -> N
ALIASES = {"skewed-sleep": "skewed", "cpu-skewed": "cpu"}

# Loaded into serial pytest with -p for --check-outcomes: records {nodeid: [category, ...]}
# where category is what the terminal reporter counts (passed, failed, error, skipped,
# xfailed, xpassed): the first non-empty one of setup/call, plus "error" if teardown fails.
# Subtest reports (pytest >= 9, pytest-subtests) are left out: they share the test's node id.
OUTCOME_PLUGIN_NAME = "_medusa_bench_outcomes"
OUTCOME_PLUGIN = '''
import json
import os

_config = None
_outcomes = {}


def pytest_configure(config):
    global _config
    _config = config


def pytest_runtest_logreport(report):
    if type(report).__name__.lower() == "subtestreport":
        return  # a subtest; a failed one also fails its test's own report
    category = _config.hook.pytest_report_teststatus(report=report, config=_config)[0]
    if not category:
        return
    entry = _outcomes.setdefault(report.nodeid, [])
    if report.when in ("setup", "call"):
        if not entry:
            entry.append(category)
    elif report.failed:  # teardown
        entry.append("error")


def pytest_sessionfinish(session):
    with open(os.environ["MEDUSA_BENCH_OUTCOMES"], "w") as f:
        json.dump(_outcomes, f, indent=0, sort_keys=True)
'''


@dataclass
class Suite:
    key: str
    name: str
    n: int
    python: str
    cwd: Path | None = None  # set once the suite exists on disk
    gen_args: list[str] | None = None  # make_suite.py arguments; None for real suites
    lower_bound: float | None = None  # from the manifest; generated suites only
    args: list[str] = field(default_factory=lambda: ["tests"])

    @property
    def real(self) -> bool:
        return self.gen_args is None


@dataclass
class Command:
    runner: str
    argv: list[str] | None  # None: runner not available
    note: str = ""  # why it is not available / not run
    env: dict[str, str] | None = None   # the environment, when not this one


@dataclass
class Run:
    seconds: float
    returncode: int


@dataclass
class Result:
    suite: Suite
    commands: dict[str, Command]
    runs: dict[str, list[Run]]
    outcome_report: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- options

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--suites", help="comma separated: " + ",".join([*GENERATED, *REAL])
                    + " (default: all that exist)")
    ap.add_argument("--only", default=",".join(RUNNERS), help="runners to time (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per command; the median is reported")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the generated suites")
    ap.add_argument("--real-python", help="interpreter for the real suites (default: BENCH_DIR/venv/bin/python)")
    ap.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH_DIR,
                    help="where real-suites.sh put venv/ and suites/ (default: %(default)s)")
    ap.add_argument("--make-suite", type=Path, default=DEFAULT_MAKE_SUITE, help="path of make_suite.py")
    ap.add_argument("--medusa", type=Path, default=MEDUSA_BIN, help="path of bin/medusa (default: %(default)s)")
    ap.add_argument("--check-outcomes", action="store_true",
                    help="compare per-test outcomes of serial pytest and medusa on the real suites")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed collection run per suite")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary directory (logs, suites)")
    a = ap.parse_args(argv)
    a.only = [r.strip() for r in a.only.split(",") if r.strip()]
    bad = set(a.only) - set(RUNNERS)
    if bad:
        ap.error(f"--only: unknown runner(s) {', '.join(sorted(bad))}; choose from {', '.join(RUNNERS)}")
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    if a.real_python is None:
        a.real_python = str(a.bench_dir / "venv" / "bin" / "python")
    return a


def select_suites(a: argparse.Namespace) -> tuple[list[Suite], list[str]]:
    """The suites to run, in a fixed order, and notes about those skipped."""
    explicit = a.suites is not None
    wanted = [ALIASES.get(s.strip(), s.strip()) for s in (a.suites or "").split(",") if s.strip()]
    if not explicit:
        wanted = [*GENERATED, *REAL]
    unknown = [s for s in wanted if s not in GENERATED and s not in REAL]
    if unknown:
        sys.exit(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join([*GENERATED, *REAL])}")
    suites, notes = [], []
    for key in wanted:
        if key in GENERATED:
            name, gen_args, n = GENERATED[key]
            if not a.make_suite.is_file():
                notes.append(f"{name}: skipped, {a.make_suite} not found")
                continue
            suites.append(Suite(key, name, n, a.python, gen_args=gen_args))
        else:
            path = a.bench_dir / "suites" / key
            if not path.is_dir():
                notes.append(f"{key}: skipped, {path} not found (run shared/bench/real-suites.sh)")
                continue
            if not Path(a.real_python).exists():
                notes.append(f"{key}: skipped, interpreter {a.real_python} not found")
                continue
            suites.append(Suite(key, key, REAL[key], a.real_python, cwd=path))
    return suites, notes


# --------------------------------------------------------------------------- running

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join("    " + line for line in text[-lines:])


def timed_run(argv: list[str], cwd: Path, log_path: Path, env: dict[str, str] | None = None) -> Run:
    """Run argv with its output in log_path; the wall time covers only the subprocess."""
    with open(log_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env)
        seconds = time.perf_counter() - start
    run = Run(seconds, proc.returncode)
    if run.returncode not in NORMAL_EXIT:
        log(f"  WARNING: exit code {run.returncode} from {' '.join(argv)} (cwd {cwd}); "
            f"last lines of {log_path}:\n{tail(log_path)}")
    return run


def generate_suite(suite: Suite, make_suite: Path, tmp: Path) -> None:
    out = tmp / f"suite-{suite.key}"
    subprocess.run([sys.executable, str(make_suite), str(out), *suite.gen_args],
                   check=True, stdout=subprocess.DEVNULL)
    manifest = json.loads((out / "manifest.json").read_text())
    bound = manifest["lower_bound"].get(str(suite.n), 0.0)
    suite.cwd = out
    suite.lower_bound = bound if bound > 0 else None  # the trivial profile plans 0 s


_has_xdist: dict[str, bool] = {}


def has_xdist(python: str) -> bool:
    if python not in _has_xdist:
        proc = subprocess.run([python, "-c", "import xdist"], capture_output=True)
        _has_xdist[python] = proc.returncode == 0
    return _has_xdist[python]


def build_commands(suite: Suite, only: list[str], medusa: Path) -> dict[str, Command]:
    py, n = suite.python, str(suite.n)
    cmds = {
        "serial": Command("serial", [py, *PYTEST_BASE, *suite.args]),
        "xdist": (Command("xdist", [py, *PYTEST_BASE, "-n", n, *suite.args]) if has_xdist(py)
                  else Command("xdist", None, "xdist: not available")),
        # --no-history: this benchmark measures a first run (bench_schedule.py the second)
        "medusa": (Command("medusa", [py, str(medusa), "--local", n, "--no-history", *suite.args])
                   if medusa.is_file()
                   else Command("medusa", None, "medusa: not available")),
        # the opt-in per-file collection (--collect file), beside the default session one
        "medusa-file": (Command("medusa-file", [py, str(medusa), "--local", n, "--no-history",
                                                "--collect", "file", *suite.args])
                        if medusa.is_file()
                        else Command("medusa-file", None, "medusa: not available")),
        "medusa-nosession": (Command("medusa-nosession",
                                     [py, str(medusa), "--local", n, "--no-history", *suite.args],
                                     env={**os.environ, "MEDUSA_CONTROLLER": "off"})
                             if medusa.is_file()
                             else Command("medusa-nosession", None, "medusa: not available")),
    }
    for runner, cmd in cmds.items():
        if runner not in only:
            cmd.argv, cmd.note = None, "-"
    return cmds


def warm_up(suite: Suite, tmp: Path) -> None:
    """Collect once, untimed, so the first timed command does not pay for writing .pyc files."""
    argv = [suite.python, *PYTEST_BASE, "--collect-only", *suite.args]
    timed_run(argv, suite.cwd, tmp / f"{suite.key}-warmup.log")


def bench_suite(suite: Suite, commands: dict[str, Command], repeat: int, tmp: Path) -> dict[str, list[Run]]:
    active = [c for c in commands.values() if c.argv is not None]
    runs: dict[str, list[Run]] = {c.runner: [] for c in active}
    for c in active:
        log(f"  {c.runner}: {' '.join(c.argv)}")
    for r in range(repeat):
        k = r % len(active) if active else 0
        for c in active[k:] + active[:k]:  # rotate the order every round
            run = timed_run(c.argv, suite.cwd, tmp / f"{suite.key}-{c.runner}-{r + 1}.log",
                            env=c.env)
            runs[c.runner].append(run)
            log(f"  [{suite.name}] {c.runner} run {r + 1}/{repeat}: {run.seconds:.2f} s (exit {run.returncode})")
    return runs


# --------------------------------------------------------------------------- outcomes

def serial_outcomes(suite: Suite, tmp: Path) -> tuple[dict[str, list[str]], int]:
    plugin_dir = tmp / "plugin"
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / f"{OUTCOME_PLUGIN_NAME}.py").write_text(OUTCOME_PLUGIN)
    out = tmp / f"{suite.key}-outcomes-serial.json"
    env = dict(os.environ, MEDUSA_BENCH_OUTCOMES=str(out))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))
    argv = [suite.python, *PYTEST_BASE, "-p", OUTCOME_PLUGIN_NAME, *suite.args]
    run = timed_run(argv, suite.cwd, tmp / f"{suite.key}-outcomes-serial.log", env=env)
    return (json.loads(out.read_text()) if out.exists() else {}), run.returncode


def medusa_outcomes(suite: Suite, medusa: Path, tmp: Path) -> tuple[dict[str, list[str]], int]:
    out = tmp / f"{suite.key}-outcomes-medusa.jsonl"
    argv = [suite.python, str(medusa), "--local", str(suite.n), "--format", f"json:{out}", *suite.args]
    run = timed_run(argv, suite.cwd, tmp / f"{suite.key}-outcomes-medusa.log")
    outcomes: dict[str, list[str]] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "result":
                outcomes.setdefault(event["test"], []).append(event["outcome"])
    return outcomes, run.returncode


def count(outcomes: dict[str, list[str]]) -> str:
    totals: dict[str, int] = {}
    for cats in outcomes.values():
        for c in cats:
            totals[c] = totals.get(c, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(totals.items())) or "nothing"


def compare_outcomes(serial: dict[str, list[str]], medusa: dict[str, list[str]], limit: int = 10) -> list[str]:
    diffs = []
    for nodeid in sorted(set(serial) | set(medusa)):
        s, m = serial.get(nodeid), medusa.get(nodeid)
        if s is None:
            diffs.append(f"only in medusa: {nodeid} ({'/'.join(m)})")
        elif m is None:
            diffs.append(f"only in serial: {nodeid} ({'/'.join(s)})")
        elif sorted(s) != sorted(m):
            diffs.append(f"differs: {nodeid} serial={'/'.join(s)} medusa={'/'.join(m)}")
    head = f"outcomes equal: {'no' if diffs else 'yes'} ({len(serial)} tests in serial, {len(medusa)} in medusa)"
    if diffs:
        head += f"; {len(diffs)} difference(s)" + (f", the first {limit}:" if len(diffs) > limit else ":")
    lines = [head]
    lines += ["    " + d for d in diffs[:limit]]
    return lines


def check_outcomes(suite: Suite, medusa: Path, tmp: Path) -> list[str]:
    if not medusa.is_file():
        return ["outcomes: medusa not available"]
    log(f"  [{suite.name}] checking outcomes")
    serial, s_rc = serial_outcomes(suite, tmp)
    med, m_rc = medusa_outcomes(suite, medusa, tmp)
    return [f"serial (exit {s_rc}): {count(serial)}",
            f"medusa (exit {m_rc}): {count(med)}",
            *compare_outcomes(serial, med)]


# --------------------------------------------------------------------------- report

def median(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def time_cell(res: Result, runner: str) -> str:
    cmd = res.commands[runner]
    if cmd.argv is None:
        return cmd.note
    runs = res.runs[runner]
    flag = "" if all(r.returncode in NORMAL_EXIT for r in runs) else "!"
    return f"{median(runs):.2f}{flag}"


def ratio_cell(num: float | None, den: float | None, flag: str = "") -> str:
    return f"{num / den:.2f}{flag}" if num is not None and den else "-"


def table_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for res in results:
        med = {r: median(res.runs[r]) if res.runs.get(r) else None for r in RUNNERS}
        bad = {r: any(run.returncode not in NORMAL_EXIT for run in res.runs.get(r, [])) for r in RUNNERS}

        def flag(*runners: str) -> str:
            return "!" if any(bad[r] for r in runners) else ""

        rows.append([
            res.suite.name, str(res.suite.n),
            time_cell(res, "serial"), time_cell(res, "xdist"), time_cell(res, "medusa"),
            time_cell(res, "medusa-file"), time_cell(res, "medusa-nosession"),
            ratio_cell(med["medusa"], med["medusa-nosession"], flag("medusa", "medusa-nosession")),
            ratio_cell(med["medusa"], med["serial"], flag("medusa", "serial")),
            ratio_cell(med["medusa"], med["xdist"], flag("medusa", "xdist")),
            ratio_cell(med["medusa"], res.suite.lower_bound, flag("medusa")),
            ratio_cell(med["xdist"], res.suite.lower_bound, flag("xdist")),
        ])
    return rows


HEADER = ["suite", "N", "serial s", "xdist -n N s", "medusa s", "medusa --collect file s",
          "medusa without session s", "session overhead", "medusa/serial",
          "medusa/xdist", "medusa/lower-bound", "xdist/lower-bound"]


def format_text(rows: list[list[str]], header: list[str] = HEADER) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def format_markdown(rows: list[list[str]], header: list[str] = HEADER) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def format_raw(results: list[Result]) -> str:
    lines = []
    for res in results:
        for runner, runs in res.runs.items():
            times = " ".join(f"{r.seconds:.2f}" for r in runs)
            codes = sorted({r.returncode for r in runs})
            lines.append(f"  {res.suite.name:<16} {runner:<7} {times}   exit {','.join(map(str, codes))}")
    return "\n".join(lines)


def interpreter_version(python: str) -> str:
    proc = subprocess.run([python, "-c", "import sys, pytest; print(sys.version.split()[0], 'pytest', pytest.__version__)"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def git_revision() -> str:
    proc = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "no commit"


def print_report(results: list[Result], notes: list[str], a: argparse.Namespace) -> None:
    pythons = sorted({r.suite.python for r in results})
    print()
    print(f"medusa benchmark  {time.strftime('%Y-%m-%d %H:%M')}  cpus={os.cpu_count()}  "
          f"repeat={a.repeat} (median)  repo={git_revision()}")
    for py in pythons:
        print(f"  {py}: {interpreter_version(py)}")
    print()
    rows = table_rows(results)
    print(format_text(rows))
    if any("!" in c for r in rows for c in r):
        print("! = some run exited with a code other than 0/1 (see the warnings above)")
    if any(r.suite.lower_bound for r in results):
        print("lower-bound = max(total planned seconds / N, longest file), from the generated manifest")
    print("\nraw wall times (s), one per repeat:")
    print(format_raw(results))
    for res in results:
        if res.outcome_report:
            print(f"\n{res.suite.name}:")
            print("\n".join("  " + line for line in res.outcome_report))
    for note in notes:
        print(f"note: {note}")
    if a.markdown:
        print()
        print(format_markdown(rows))


# --------------------------------------------------------------------------- main

@contextmanager
def scratch_dir(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary directory for suites and logs, deleted at the end unless `keep`.
    Ctrl-C ends the block quietly, so that the caller reports what finished."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    except KeyboardInterrupt:
        log("interrupted; reporting what finished")
    finally:
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    suites, notes = select_suites(a)
    for note in notes:
        log(f"note: {note}")
    results: list[Result] = []
    with scratch_dir("medusa-bench-", a.keep_temp) as tmp:
        for suite in suites:
            log(f"== {suite.name} (N={suite.n})")
            if not suite.real:
                generate_suite(suite, a.make_suite, tmp)
            if not a.no_warmup:
                warm_up(suite, tmp)
            commands = build_commands(suite, a.only, a.medusa)
            res = Result(suite, commands, bench_suite(suite, commands, a.repeat, tmp))
            if a.check_outcomes and suite.real:
                res.outcome_report = check_outcomes(suite, a.medusa, tmp)
            results.append(res)
            if not suite.real and not a.keep_temp:
                shutil.rmtree(suite.cwd, ignore_errors=True)
    print_report(results, notes, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
