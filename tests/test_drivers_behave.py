"""The behave driver: medusa counts every scenario of a real behave suite as behave does.

Each test writes a real behave project, runs behave itself serially with a small formatter
that records, when behave closes its formatters, the status behave gave each scenario (the
statuses behave's own summary counts), and the real `medusa` command in parallel, and
compares per scenario, with behave's summary line and exit code.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import MedusaRun, check_consistent, framework_environment, run_medusa, write_project

pytest.importorskip("behave", reason="the behave driver's tests need behave (the test extra)")

# A behave formatter (`-f medusa_behave_recorder:Recorder`): it keeps the features behave
# hands it and, at the end of the run, writes each scenario's id in medusa's form and its
# status in medusa's words. It imports nothing of medusa.
RECORDER = r'''
import json
import os
from collections import Counter

from behave.formatter.base import Formatter
from behave.model import Rule

OUTCOMES = {"passed": "passed", "failed": "failed", "skipped": "skipped",
            "untested": "skipped", "pending_warn": "passed"}   # the rest are errors


class Recorder(Formatter):
    name = "medusa-recorder"
    description = "records each scenario's status for medusa's tests"

    def __init__(self, stream_opener, config):
        super().__init__(stream_opener, config)
        self.features = []

    def feature(self, feature):
        self.features.append(feature)

    def close(self):
        records = []
        for feature in self.features:
            file = os.path.relpath(feature.filename, os.getcwd())
            names = []
            for item in feature.run_items:
                if isinstance(item, Rule):
                    names += [(s, f"{item.name}::{s.name}") for s in item.walk_scenarios()]
                else:
                    names += [(s, s.name) for s in getattr(item, "scenarios", [item])]
            twice = {n for n, c in Counter(n for _, n in names).items() if c > 1}
            for scenario, name in names:
                suffix = f" (line {scenario.line})" if name in twice else ""
                records.append((f"{file}::{name}{suffix}",
                                OUTCOMES.get(scenario.status.name, "error")))
            if feature.hook_failed or feature.status.name == "cleanup_error":
                records.append((file, "error"))
        with open(os.environ["RECORD_OUT"], "w") as out:
            json.dump(records, out)
'''


@dataclass
class BehaveRun:
    outcomes: list[tuple[str, str]]
    counts: dict[str, int]       # from behave's summary line, in medusa's words
    exit_code: int
    output: str


def behave_serial(project: Path, args: tuple[str, ...] = (), timeout: float = 120) -> BehaveRun:
    scratch = Path(tempfile.mkdtemp(prefix="medusa-behave-recorder-"))
    try:
        (scratch / "medusa_behave_recorder.py").write_text(RECORDER, encoding="utf-8")
        env = {**framework_environment(), "RECORD_OUT": str(scratch / "out.json"),
               "PYTHONPATH": str(scratch)}
        done = subprocess.run([sys.executable, "-m", "behave", "--no-color",
                               "-f", "medusa_behave_recorder:Recorder", *args],
                              cwd=project, capture_output=True, text=True, env=env,
                              timeout=timeout)
        output = done.stdout + done.stderr
        records = json.loads((scratch / "out.json").read_text(encoding="utf-8"))
        return BehaveRun(sorted(map(tuple, records)), scenario_counts(output),
                         done.returncode, output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def scenario_counts(output: str) -> dict[str, int]:
    """behave's "2 scenarios passed, 1 failed, 1 error, 1 hook_error, 3 skipped" in
    medusa's outcome words (every kind of error is an error, untested is skipped)."""
    line = next(line for line in output.splitlines() if re.match(r"^\d+ scenarios? ", line))
    words = {"passed": "passed", "failed": "failed", "skipped": "skipped",
             "untested": "skipped"}
    counts: Counter[str] = Counter()
    for number, status in re.findall(r"(\d+) (?:scenarios? )?(\w+)", line):
        counts[words.get(status, "error")] += int(number)
    return {name: n for name, n in counts.items() if n}


def assert_same_as_behave(project: Path, *paths: str, args: tuple[str, ...] = (),
                          runners: int = 2, medusa_args: tuple[str, ...] = ("--driver", "behave"),
                          ) -> tuple[MedusaRun, BehaveRun]:
    serial = behave_serial(project, (*args, *paths))
    run = run_medusa(project, "--no-history", *medusa_args, *paths, runners=runners,
                     pytest_args=args)
    only_medusa = sorted((Counter(run.outcomes) - Counter(serial.outcomes)).elements())
    only_serial = sorted((Counter(serial.outcomes) - Counter(run.outcomes)).elements())
    assert run.outcomes == serial.outcomes, (
        f"medusa and behave disagree\nonly medusa: {only_medusa}\nonly behave: {only_serial}"
        f"\n{run}\n--- behave ---\n{serial.output}")
    scenarios = Counter({outcome: n for outcome, n in run.counts.items()
                         if outcome in ("passed", "failed", "error", "skipped") and n})
    scenarios["error"] -= sum(1 for test, outcome in run.outcomes
                              if "::" not in test and outcome == "error")   # feature hooks
    assert +scenarios == serial.counts, f"{run.counts}\n{serial.output}"
    assert run.exit_code == serial.exit_code, f"{run}\n{serial.output}"
    check_consistent(run)
    return run, serial


# --- the suite -------------------------------------------------------------------------------

ENVIRONMENT = """
    import os

    def log(text):
        path = os.environ.get("HOOK_LOG")
        if path:
            who = os.environ.get("MEDUSA_RUNNER", "serial")
            with open(path, "a") as out:
                out.write(f"{who} {os.getpid()} {text}\\n")

    def before_all(context):
        context.config.setup_logging()
        context.base = 100
        log("before_all")

    def after_all(context):
        log("after_all")

    def before_feature(context, feature):
        if "feature_hook_fails" in feature.tags:
            raise RuntimeError("before_feature broke")

    def before_scenario(context, scenario):
        if "hook_fails" in scenario.tags:
            raise RuntimeError("before_scenario broke")
        if "hook_skips" in scenario.tags:
            scenario.skip("skipped by the hook")

    def after_scenario(context, scenario):
        if "after_hook_fails" in scenario.tags:
            raise RuntimeError("after_scenario broke")
"""

STEPS = """
    from behave import given, step, then, when

    @given("a number {n:d}")
    def a_number(context, n):
        context.n = n

    @when("I add {m:d}")
    def add(context, m):
        context.n += m

    @then("the result is {r:d}")
    def result(context, r):
        assert context.n == r, f"expected {r}, got {context.n}"

    @then("the base from before_all is {b:d}")
    def base(context, b):
        assert context.base == b

    @step("it explodes")
    def explodes(context):
        raise ValueError("boom")

    @step("it skips itself")
    def skips(context):
        context.scenario.skip("decided in a step")

    @step("a cleanup that fails is registered")
    def bad_cleanup(context):
        context.add_cleanup(lambda: 1 / 0)

    @step("it prints something")
    def prints(context):
        print("printed by a step")
"""

FEATURES = {
    "features/environment.py": ENVIRONMENT,
    "features/steps/steps.py": STEPS,
    "features/math.feature": """
        @smoke
        Feature: Math
          Background:
            Given a number 1

          Scenario: adding
            When I add 2
            Then the result is 3

          Scenario: wrong sum
            When I add 2
            Then the result is 4

          Scenario: explodes
            Then it explodes

          Scenario: undefined step
            Then something nobody defined

          @slow
          Scenario: slow one
            When I add 1
            Then the result is 2

          Scenario Outline: outline <a> + <b>
            Given a number <a>
            When I add <b>
            Then the result is <c>

            Examples: small
              | a | b | c |
              | 1 | 1 | 2 |
              | 2 | 2 | 5 |

            @slow
            Examples: big
              | a   | b | c   |
              | 100 | 1 | 101 |
    """,
    "features/hooks.feature": """
        Feature: Hooks
          Scenario: before_all ran in this process
            Then the base from before_all is 100

          @hook_fails
          Scenario: the before hook fails
            Given a number 1

          @after_hook_fails
          Scenario: the after hook fails
            Given a number 1

          @hook_skips
          Scenario: the hook skips it
            Given a number 1

          Scenario: a step skips it
            Given it skips itself
            Then it explodes

          Scenario: a cleanup fails
            Given a cleanup that fails is registered

          Scenario: output is captured
            Given it prints something
            Then it explodes
    """,
    "features/rules.feature": """
        Feature: Rules
          Rule: adding
            Scenario: one plus one
              Given a number 1
              When I add 1
              Then the result is 2

          Rule: failing
            Scenario: twice the same name
              Given a number 1
              Then the result is 3

            Scenario: twice the same name
              Given a number 2
              Then the result is 2
    """,
    "features/broken_feature_hook.feature": """
        @feature_hook_fails
        Feature: Its before_feature hook fails
          Scenario: never runs
            Given a number 1
    """,
    "features/sub/deeper.feature": """
        Feature: In a subfolder
          @smoke
          Scenario: found there too
            Given a number 5
            Then the result is 5
    """,
}


@pytest.fixture
def behave_project(tmp_path):
    return write_project(tmp_path / "p", FEATURES)


@pytest.mark.parametrize("args", [(), ("--tags", "not @slow"), ("--tags", "@smoke")],
                         ids=["all", "not-slow", "smoke"])
def test_every_scenario_as_behave_counts_it(behave_project, args):
    run, serial = assert_same_as_behave(behave_project, args=args, runners=3)
    outcomes = dict(run.outcomes)
    if not args:
        assert outcomes["features/math.feature::wrong sum"] == "failed"
        assert outcomes["features/math.feature::explodes"] == "error"
        assert outcomes["features/math.feature::outline 2 + 2 -- @1.2 small"] == "failed"
        assert outcomes["features/rules.feature::failing::twice the same name (line 9)"] \
            == "failed"
        assert outcomes["features/hooks.feature::a cleanup fails"] == "error"
        assert outcomes["features/broken_feature_hook.feature"] == "error"
        assert run.result("features/math.feature::wrong sum")["message"] == \
            "AssertionError: expected 4, got 3"
        assert run.result("features/math.feature::undefined step")["message"] == \
            "undefined step: Then something nobody defined"
        printed = run.result("features/hooks.feature::output is captured")
        sections = {section["title"]: section["text"] for section in printed["sections"]}
        assert "printed by a step" in sections["Captured output"]
        assert (printed["path"], printed["line"]) == ("features/hooks.feature", 24)
    if args == ("--tags", "not @slow"):
        assert outcomes["features/math.feature::slow one"] == "skipped"
        assert run.result("features/math.feature::slow one")["message"] == \
            "not selected by the tags"


def test_hooks_of_the_run_once_per_runner(behave_project, tmp_path, monkeypatch):
    """before_all runs once in each runner (before its first feature), after_all once
    when it ends; environment.py and the steps are loaded once, in the worker."""
    log = tmp_path / "hooks.log"
    monkeypatch.setenv("HOOK_LOG", str(log))
    run = run_medusa(behave_project, "--driver", "behave", "--no-history", runners=3)
    assert run.finished["exit_code"] == 1, run
    lines = [line.split(" ", 2) for line in log.read_text().splitlines()]
    by_process: dict[str, list[str]] = {}
    for runner, pid, what in lines:
        by_process.setdefault(pid, []).append(what)
    assert 1 <= len(by_process) <= 3, lines
    assert all(whats == ["before_all", "after_all"] for whats in by_process.values()), lines
    # "before_all ran in this process" passed: the context's value reached the runner
    assert run.result("features/hooks.feature::before_all ran in this process")["outcome"] \
        == "passed"


def test_behaves_config_file_and_another_features_folder(tmp_path):
    """behave.ini: paths (features elsewhere) and default tags apply as in behave."""
    files = {f"spec/{name.removeprefix('features/')}": text for name, text in FEATURES.items()}
    project = write_project(tmp_path / "p", {
        **files,
        "behave.ini": """
            [behave]
            paths = spec
            default_tags = not @slow
        """,
    })
    run, serial = assert_same_as_behave(project)
    assert dict(run.outcomes)["spec/math.feature::slow one"] == "skipped"
    assert "spec/sub/deeper.feature::found there too" in dict(run.outcomes)


def test_paths_and_auto_detection(behave_project):
    """No --driver: a features/ folder means behave. A feature file or FILE:LINE as a path
    runs what behave would run for it."""
    run, _ = assert_same_as_behave(behave_project, "features/rules.feature", medusa_args=())
    assert "behave" in run.stdout and "(auto: feature files given)" in run.stdout
    by_line, _ = assert_same_as_behave(behave_project, "features/math.feature:10",
                                       medusa_args=())
    assert dict(by_line.outcomes)["features/math.feature::wrong sum"] == "failed"
    assert dict(by_line.outcomes)["features/math.feature::adding"] == "skipped"
    everything = run_medusa(behave_project, "--no-history")
    assert "(auto: features/ folder)" in everything.stdout, everything


def test_scenarios_stream_as_they_end(tmp_path):
    """A scenario's result leaves its runner when the next one starts, not at the end of
    its feature."""
    project = write_project(tmp_path / "p", {
        "features/steps/steps.py": """
            import time
            from behave import step

            @step("it waits {seconds:f} seconds")
            def wait(context, seconds):
                time.sleep(seconds)
        """,
        "features/slow.feature": """
            Feature: Slow
              Scenario: quick
                Given it waits 0.0 seconds

              Scenario: slow
                Given it waits 1.5 seconds
        """,
    })
    run = run_medusa(project, "--driver", "behave", "--no-history", runners=1)
    assert run.exit_code == 0, run
    times = {e["test"]: e["time"] for e in run.results}
    assert times["features/slow.feature::slow"] - times["features/slow.feature::quick"] > 1.0


def test_a_long_feature_is_split_and_counted_once(tmp_path):
    scenarios = "\n".join(f"""
  Scenario: waits {n}
    Given it waits 0.3 seconds
    Then scenario {n} passes""" for n in range(6))
    project = write_project(tmp_path / "p", {
        "features/steps/steps.py": """
            import time
            from behave import step

            @step("it waits {seconds:f} seconds")
            def wait(context, seconds):
                time.sleep(seconds)

            @step("scenario {n:d} passes")
            def passes(context, n):
                assert n != 4, "scenario 4 fails"
        """,
        "features/long.feature": "Feature: Long\n" + scenarios + "\n",
        **{f"features/short_{n}.feature": f"Feature: Short {n}\n  Scenario: quick\n"
                                          f"    Given it waits 0.0 seconds\n" for n in range(3)},
    })
    first = run_medusa(project, "--driver", "behave", runners=2)
    second = run_medusa(project, "--driver", "behave", runners=2)
    serial = behave_serial(project)
    assert first.outcomes == second.outcomes == serial.outcomes, second
    parts = [e for e in second.events if e["event"] == "file_started"
             and e["file"] == "features/long.feature"]
    assert len(parts) >= 2, parts
    assert second.exit_code == serial.exit_code == 1


@pytest.mark.parametrize("args, message", [
    (("--no-such-option",), "behave: "),
    (("--tags", "@a and"), "behave: "),
], ids=["unknown-option", "bad-tag-expression"])
def test_what_behave_refuses_is_a_usage_error(behave_project, args, message):
    run = run_medusa(behave_project, "--driver", "behave", pytest_args=args)
    assert run.exit_code == 4, run
    assert message in run.output


def test_a_project_without_steps_is_a_usage_error(tmp_path):
    project = write_project(tmp_path / "p", {
        "features/lonely.feature": "Feature: Lonely\n  Scenario: s\n    Given nothing\n"})
    run = run_medusa(project, "--driver", "behave")
    assert run.exit_code == 4, run
    assert "No steps directory" in run.output


def test_stop_ends_the_scenarios_that_run(tmp_path):
    """behave's --stop: after the first failure the build's tests stop; a runner ends the
    scenario it is in, and the rest is listed as not run, not as skipped."""
    project = write_project(tmp_path / "p", {
        "features/steps/steps.py": """
            import time
            from behave import step

            @step("it waits {seconds:f} seconds")
            def wait(context, seconds):
                time.sleep(seconds)

            @step("it fails")
            def fails(context):
                assert False, "the first failure"
        """,
        "features/a_fails.feature": """
            Feature: Fails
              Scenario: fails late
                Given it waits 0.5 seconds
                Then it fails
        """,
        "features/b_long.feature": """
            Feature: Long
              Scenario: first
                Given it waits 0.0 seconds

              Scenario: slow
                Given it waits 1.5 seconds

              Scenario: third
                Given it waits 0.0 seconds

              Scenario: fourth
                Given it waits 0.0 seconds
        """,
        **{f"features/c{n}.feature": f"Feature: C{n}\n  Scenario: s\n"
                                     f"    Given it waits 0.0 seconds\n" for n in range(3)},
    })
    run = run_medusa(project, "--driver", "behave", "--no-history", runners=2,
                     pytest_args=("--stop",), timeout=60)
    assert run.exit_code == 1, run
    assert run.outcomes == [("features/a_fails.feature::fails late", "failed"),
                            ("features/b_long.feature::first", "passed"),
                            ("features/b_long.feature::slow", "passed")], run
    not_run = {item["file"]: item["reason"] for item in run.finished["not_run"]}
    assert "2 of its 4 tests did not run" in not_run["features/b_long.feature"], not_run
    assert all(f"features/c{n}.feature" in not_run for n in range(3)), not_run
    assert not [e for e in run.events if e["event"] == "runner_died"], run
