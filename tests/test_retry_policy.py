"""retries.py alone: which failed tests run again and each test's verdict (the end-to-end
behaviour, on real runners, is in test_retries.py)."""
from __future__ import annotations

from medusa.messages import Result
from medusa.retries import Retries
from medusa.scheduler import Unit


def _result(test: str, outcome: str, when: str = "call", runner: int = 0) -> Result:
    return Result(worker="w", runner=runner, file="f.py", test=test, outcome=outcome,
                  when=when, duration=0.1, message=f"{outcome} {when}")


def test_a_failure_runs_again_away_from_its_runner_then_a_pass_is_flaky():
    retries = Retries(limit=2)
    retries.hold(("w", 0), _result("f.py::t", "failed"))
    retries.hold(("w", 0), _result("f.py::ok", "passed"))
    first = retries.settle(("w", 0), Unit("f.py"), may_retry=True)
    assert [(r.test, r.outcome) for r in first.verdicts] == [("f.py::ok", "passed")]
    assert first.again == Unit("f.py", tests=("f.py::t",), retry_of="w/0")
    assert first.decided == {"f.py::t", "f.py::ok"}
    retries.hold(("w", 1), _result("f.py::t", "passed", runner=1))
    second = retries.settle(("w", 1), first.again, may_retry=True)
    (flaky,) = second.verdicts
    assert flaky.outcome == "flaky" and second.again is None
    assert [(a.outcome, a.runner) for a in flaky.attempts] == [("failed", 0)]


def test_a_test_failing_every_time_fails_once_with_its_attempts():
    retries = Retries(limit=2)
    unit = Unit("f.py")
    for runner in range(3):
        retries.hold(("w", runner), _result("f.py::t", "failed", runner=runner))
        settled = retries.settle(("w", runner), unit, may_retry=True)
        unit = settled.again or unit
    assert settled.again is None
    (failed,) = settled.verdicts
    assert failed.outcome == "failed" and failed.runner == 2
    assert [a.runner for a in failed.attempts] == [0, 1]


def test_a_failing_teardown_after_a_passing_call_is_one_failed_run():
    retries = Retries(limit=1)
    retries.hold(("w", 0), _result("f.py::t", "passed"))
    retries.hold(("w", 0), _result("f.py::t", "error", when="teardown"))
    first = retries.settle(("w", 0), Unit("f.py"), may_retry=True)
    assert first.verdicts == () and first.again is not None
    retries.hold(("w", 1), _result("f.py::t", "passed", runner=1))
    (flaky,) = retries.settle(("w", 1), first.again, may_retry=True).verdicts
    assert flaky.outcome == "flaky" and flaky.attempts[0].when == "teardown"


def test_no_retry_when_not_allowed_and_the_last_run_stands_when_a_retry_never_runs():
    retries = Retries(limit=3)
    retries.hold(("w", 0), _result("f.py::t", "failed"))
    stopped = retries.settle(("w", 0), Unit("f.py"), may_retry=False)
    assert [r.outcome for r in stopped.verdicts] == ["failed"] and stopped.again is None
    retries.hold(("w", 0), _result("f.py::u", "error", when="setup"))
    again = retries.settle(("w", 0), Unit("f.py"), may_retry=True).again
    (last,) = retries.last_runs(list(again.tests))
    assert last.outcome == "error" and last.attempts == ()


def test_a_retry_reports_only_the_tests_it_was_for():
    """unittest runs a subtest's whole test again: the other results were reported."""
    retries = Retries(limit=1)
    retry = Unit("f.py", tests=("f.py::C::t (i=1)",), retry_of="w/0")
    retries.hold(("w", 1), _result("f.py::C::t", "passed", runner=1))
    settled = retries.settle(("w", 1), retry, may_retry=True)
    assert settled.verdicts == () and settled.decided == frozenset()
