#!/usr/bin/env python3
"""Time medusa's SECOND run (timing history present) beside pytest-xdist, against a lower bound.

medusa orders work longest first by the history it writes to <project>/.medusa/history.json
after each run, and splits a file longer than total/runners into parts. This benchmark
shows how close that gets to the ideal. Run by hand; it prints a table and asserts nothing.

    python benchmarks/bench_schedule.py                          # every suite, 3 repeats (long)
    python benchmarks/bench_schedule.py --quick --repeat 1       # totals / 10: a smoke test
    python benchmarks/bench_schedule.py --suites tail,big-file --markdown
    python benchmarks/bench_schedule.py --suites more-itertools --with-serial

Suites (--suites, comma separated; default: all that exist):
  skewed          make_suite --files 200 --profile skewed --kind sleep --total 40, N=8;
                  lower bound = manifest lower_bound["8"], target medusa/lb <= 1.08
  tail            make_suite --files 100 --profile tail --kind sleep --total 30, N=8;
                  lower bound = manifest lower_bound["8"], target <= 1.10
  big-file        make_suite --files 100 --profile uniform --kind sleep --total 30, then one
                  file rewritten to 40 independent tests holding 25% of the new total, N=8;
                  lower bound = max(total/8, longest single test), target <= 1.15
  cpu             make_suite --files 200 --profile skewed --kind cpu --total 20, N=2;
                  lower bound = total/2, target <= 1.15
  more-itertools  BENCH_DIR/suites/more-itertools with BENCH_DIR/venv/bin/python, `tests`,
                  N=2; target: medusa faster than pytest -n 2 (skipped if absent)

Per suite: delete <suite>/.medusa, run medusa once untimed (it writes the history and the
bytecode caches), then --repeat rounds, round-robin with the order rotated each round, of
  xdist    PYTHON -m pytest -q -p no:cacheprovider -n N tests
  medusa   PYTHON REPO/bin/medusa --local N tests --format json:PATH
  serial   PYTHON -m pytest -q -p no:cacheprovider tests   (more-itertools, --with-serial only)
all with cwd = the suite. The table shows medians; raw times and exit codes follow it,
and, from the JSON log of medusa's last timed run, how many files it split into parts
(events "file_started" with "parts" > 1). --quick divides the generated suites' totals by
10 (runner overhead then dominates: the ratios mean little, it only checks the plumbing;
more-itertools is run as it is). The real suite's .medusa is deleted again at the end.

Reuses bench_core.py (same folder). Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_core import (DEFAULT_BENCH_DIR, DEFAULT_MAKE_SUITE, MEDUSA_BIN, NORMAL_EXIT,
                        PYTEST_BASE, Command, Result, Run, Suite, bench_suite, format_markdown,
                        format_raw, format_text, generate_suite, git_revision, has_xdist,
                        interpreter_version, log, ratio_cell, scratch_dir, time_cell, timed_run)

QUICK_FACTOR = 0.1
BIG_FILE_SHARE = 0.25   # of all the work, in the one big file
BIG_FILE_TESTS = 40


@dataclass(frozen=True)
class Spec:
    key: str
    n: int
    gen_args: list[str] | None   # make_suite.py arguments without --total; None: real suite
    total: float = 0.0           # planned seconds (generated suites)
    bound: str = ""              # "manifest", "total" or "big-file"; "" for real suites
    target: float | None = None  # medusa/lower-bound at most; None: medusa faster than xdist


SPECS = {s.key: s for s in [
    Spec("skewed", 8, ["--files", "200", "--profile", "skewed", "--kind", "sleep"], 40, "manifest", 1.08),
    Spec("tail", 8, ["--files", "100", "--profile", "tail", "--kind", "sleep"], 30, "manifest", 1.10),
    Spec("big-file", 8, ["--files", "100", "--profile", "uniform", "--kind", "sleep"], 30, "big-file", 1.15),
    Spec("cpu", 2, ["--files", "200", "--profile", "skewed", "--kind", "cpu"], 20, "total", 1.15),
    Spec("more-itertools", 2, None),
]}


@dataclass
class ScheduleResult(Result):
    spec: Spec | None = None
    prime: list[Run] = field(default_factory=list)   # the untimed medusa run(s) before timing
    split_files: int | None = None     # files split into parts in the last timed run


# --------------------------------------------------------------------------- options

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--suites", help="comma separated: " + ",".join(SPECS) + " (default: all that exist)")
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds per suite; the median is reported")
    ap.add_argument("--quick", action="store_true", help="generated suites with a tenth of the work")
    ap.add_argument("--with-serial", action="store_true", help="also time serial pytest (more-itertools only)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the generated suites")
    ap.add_argument("--real-python", help="interpreter for more-itertools (default: BENCH_DIR/venv/bin/python)")
    ap.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH_DIR, help="default: %(default)s")
    ap.add_argument("--make-suite", type=Path, default=DEFAULT_MAKE_SUITE, help="path of make_suite.py")
    ap.add_argument("--medusa", type=Path, default=MEDUSA_BIN, help="path of bin/medusa (default: %(default)s)")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary directory (logs, suites)")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    if not a.medusa.is_file():
        ap.error(f"medusa not found at {a.medusa}")
    if a.real_python is None:
        a.real_python = str(a.bench_dir / "venv" / "bin" / "python")
    return a


def select_specs(a: argparse.Namespace) -> tuple[list[Spec], list[str]]:
    """The suites to run, in a fixed order, and notes about those skipped (logged now too)."""
    wanted = [s.strip() for s in (a.suites or ",".join(SPECS)).split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SPECS]
    if unknown:
        sys.exit(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SPECS)}")
    specs, notes = [], []
    for spec in (SPECS[k] for k in wanted):
        missing = missing_input(spec, a)
        if missing:
            notes.append(f"{spec.key}: skipped, {missing} not found")
            log(f"note: {notes[-1]}")
        else:
            specs.append(spec)
    return specs, notes


def missing_input(spec: Spec, a: argparse.Namespace) -> str:
    if spec.gen_args is not None:
        return "" if a.make_suite.is_file() else str(a.make_suite)
    path = a.bench_dir / "suites" / spec.key
    if not path.is_dir():
        return f"{path} (run shared/bench/real-suites.sh)"
    return "" if Path(a.real_python).exists() else f"interpreter {a.real_python}"


# --------------------------------------------------------------------------- suites

def prepare(spec: Spec, a: argparse.Namespace, tmp: Path) -> Suite:
    """The suite on disk, with its lower bound (None for the real suite)."""
    if spec.gen_args is None:
        return Suite(spec.key, spec.key, spec.n, a.real_python, cwd=a.bench_dir / "suites" / spec.key)
    total = spec.total * (QUICK_FACTOR if a.quick else 1.0)
    suite = Suite(spec.key, spec.key, spec.n, a.python, gen_args=[*spec.gen_args, "--total", f"{total:g}"])
    generate_suite(suite, a.make_suite, tmp)   # sets cwd and lower_bound from the manifest
    if spec.bound == "total":
        suite.lower_bound = read_manifest(suite.cwd)["total_seconds"] / spec.n
    elif spec.bound == "big-file":
        suite.lower_bound = make_big_file(suite.cwd, spec.n)
    return suite


def read_manifest(cwd: Path) -> dict:
    return json.loads((cwd / "manifest.json").read_text())


def make_big_file(cwd: Path, n: int) -> float:
    """Rewrite the middle file of a generated suite into BIG_FILE_TESTS independent sleeping
    tests that hold BIG_FILE_SHARE of the new total; update the manifest and return the
    lower bound max(total/n, longest single test)."""
    manifest = read_manifest(cwd)
    files = manifest["files"]
    name = sorted(files)[len(files) // 2]
    rest = manifest["total_seconds"] - files[name]
    work = rest * BIG_FILE_SHARE / (1 - BIG_FILE_SHARE)
    per_test = work / BIG_FILE_TESTS
    tests = "".join(f"\n\ndef test_{i}():\n    time.sleep({per_test!r})\n" for i in range(BIG_FILE_TESTS))
    (cwd / name).write_text("import time\n" + tests)
    longest_test = max([per_test] + [s / manifest["tests_per_file"] for f, s in files.items() if f != name])
    files[name] = work
    manifest.update(total_seconds=rest + work, longest_seconds=max(files.values()), big_file=name,
                    longest_test_seconds=longest_test)
    (cwd / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    log(f"  big file {name}: {BIG_FILE_TESTS} tests x {per_test:.3f} s = {work:.2f} s "
        f"of {rest + work:.2f} s")
    return max((rest + work) / n, longest_test)


def build_commands(suite: Suite, a: argparse.Namespace, json_log: Path) -> dict[str, Command]:
    py, n = suite.python, str(suite.n)
    cmds = {
        "xdist": (Command("xdist", [py, *PYTEST_BASE, "-n", n, *suite.args]) if has_xdist(py)
                  else Command("xdist", None, "not available")),
        "medusa": Command("medusa", [py, str(a.medusa), "--local", n, *suite.args,
                                     "--format", f"json:{json_log}"]),
    }
    if suite.real and a.with_serial:
        cmds["serial"] = Command("serial", [py, *PYTEST_BASE, *suite.args])
    return cmds


def prime_history(suite: Suite, medusa: Command, tmp: Path, attempts: int = 2) -> list[Run]:
    """Delete the suite's history and run medusa, untimed, until it has written a new one
    (at most `attempts` times: without a history the timed runs would not be second runs)."""
    history = suite.cwd / ".medusa" / "history.json"
    shutil.rmtree(history.parent, ignore_errors=True)
    runs = []
    while len(runs) < attempts and not history.is_file():
        runs.append(timed_run(medusa.argv, suite.cwd, tmp / f"{suite.key}-medusa-prime-{len(runs) + 1}.log"))
        log(f"  [{suite.name}] medusa first run (untimed, writes history): "
            f"{runs[-1].seconds:.2f} s (exit {runs[-1].returncode})")
    if not history.is_file():
        log(f"  WARNING: no {history} after {attempts} untimed runs; the first timed medusa run is a first run")
    return runs


def count_split_files(json_log: Path) -> int | None:
    """Files that medusa's JSON log shows started in more than one part; None: no log."""
    if not json_log.is_file():
        return None
    split = set()
    for line in json_log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "file_started" and event.get("parts", 1) > 1:
            split.add(event["file"])
    return len(split)


def run_suite(spec: Spec, a: argparse.Namespace, tmp: Path) -> ScheduleResult:
    log(f"== {spec.key} (N={spec.n})")
    suite = prepare(spec, a, tmp)
    json_log = tmp / f"{spec.key}-medusa.jsonl"   # each run overwrites it: the last one stays
    try:
        commands = build_commands(suite, a, json_log)
        prime = prime_history(suite, commands["medusa"], tmp)
        runs = bench_suite(suite, commands, a.repeat, tmp)
        return ScheduleResult(suite, commands, runs, spec=spec, prime=prime,
                              split_files=count_split_files(json_log))
    finally:
        if suite.real:   # leave the shared suite without the history this run wrote
            shutil.rmtree(suite.cwd / ".medusa", ignore_errors=True)
        elif not a.keep_temp:
            shutil.rmtree(suite.cwd, ignore_errors=True)


# --------------------------------------------------------------------------- report

HEADER = ["suite", "N", "xdist s", "medusa s", "lower bound s", "xdist/lb", "medusa/lb", "target", "met?"]


def median_of(res: ScheduleResult, runner: str) -> float | None:
    runs = res.runs.get(runner)
    return statistics.median(r.seconds for r in runs) if runs else None


def bad_exit(res: ScheduleResult, runner: str) -> str:
    return "!" if any(r.returncode not in NORMAL_EXIT for r in res.runs.get(runner, [])) else ""


def target_cells(res: ScheduleResult) -> list[str]:
    """The target and whether the medians meet it."""
    med, xd, lb = median_of(res, "medusa"), median_of(res, "xdist"), res.suite.lower_bound
    if res.spec.target is None:
        met = med is not None and xd is not None and med < xd
        return ["medusa < xdist", "yes" if met else "no"]
    met = med is not None and bool(lb) and med / lb <= res.spec.target
    return [f"<= {res.spec.target:.2f}", "yes" if met else "no"]


def table_row(res: ScheduleResult) -> list[str]:
    lb = res.suite.lower_bound
    return [res.suite.name, str(res.suite.n), time_cell(res, "xdist"), time_cell(res, "medusa"),
            f"{lb:.2f}" if lb else "-",
            ratio_cell(median_of(res, "xdist"), lb, bad_exit(res, "xdist")),
            ratio_cell(median_of(res, "medusa"), lb, bad_exit(res, "medusa")),
            *target_cells(res)]


def suite_notes(res: ScheduleResult) -> list[str]:
    prime = ", ".join(f"{r.seconds:.2f} s exit {r.returncode}" for r in res.prime)
    lines = [f"{res.suite.name}: medusa untimed first run(s): {prime}; last timed run split "
             f"{'?' if res.split_files is None else res.split_files} file(s) into parts"]
    serial, med = median_of(res, "serial"), median_of(res, "medusa")
    if serial is not None:
        lines.append(f"{res.suite.name}: serial pytest {serial:.2f} s, medusa/serial "
                     f"{ratio_cell(med, serial, bad_exit(res, 'medusa') or bad_exit(res, 'serial'))}")
    return lines


def print_report(results: list[ScheduleResult], notes: list[str], a: argparse.Namespace) -> None:
    print()
    print(f"medusa second-run benchmark  {time.strftime('%Y-%m-%d %H:%M')}  cpus={os.cpu_count()}  "
          f"repeat={a.repeat} (median){'  QUICK (totals / 10)' if a.quick else ''}  repo={git_revision()}")
    for py in sorted({r.suite.python for r in results}):
        print(f"  {py}: {interpreter_version(py)}")
    print()
    rows = [table_row(r) for r in results]
    print(format_text(rows, HEADER))
    if any("!" in c for r in rows for c in r):
        print("! = some run exited with a code other than 0/1 (see the warnings above)")
    print("lb: skewed, tail = manifest lower_bound[N]; big-file = max(total/N, longest test); "
          "cpu = total/N")
    if a.quick:
        print("--quick: runner start-up dominates a tenth of the work; the targets are for full size")
    print("\nraw wall times (s), one per round, and exit codes:")
    print(format_raw(results))
    print()
    for res in results:
        print("\n".join(suite_notes(res)))
    for note in notes:
        print(f"note: {note}")
    if a.markdown:
        print()
        print(format_markdown(rows, HEADER))


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    specs, notes = select_specs(a)
    results: list[ScheduleResult] = []
    with scratch_dir("medusa-bench-schedule-", a.keep_temp) as tmp:
        for spec in specs:
            results.append(run_suite(spec, a, tmp))
    print_report(results, notes, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
