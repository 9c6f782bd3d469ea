"""--retries N: which failed tests run again, and each test's verdict. Policy only: the
master hands results in and acts on what comes out (reports verdicts, queues retries).

While a unit runs, its results are held: a test that fails may run again, and its results
(a passing call, then a failing teardown) may come in two batches, so its verdict waits
for the unit's end. Then each test either runs again, as part of a retry unit for the
file, or gets its verdict: its last run, with its earlier failed runs attached; a test
that failed and then passed is "flaky", neither passed nor failed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from medusa.messages import Attempt, Result
from medusa.scheduler import Unit

PROBLEMS = ("failed", "error")

RunnerKey = tuple[str, int]   # (worker, runner index)


@dataclass
class _Runs:
    """A test that failed and runs again."""
    last: list[Result]                                      # the results of its latest run
    attempts: list[Attempt] = field(default_factory=list)   # its failed runs, oldest first


@dataclass(frozen=True)
class Settled:
    verdicts: tuple[Result, ...]      # to report now
    again: Unit | None                # the tests that run again, or None
    decided: frozenset[str]           # the tests of the unit that had results


class Retries:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[RunnerKey, dict[str, list[Result]]] = {}
        self._runs: dict[str, _Runs] = {}

    def hold(self, runner: RunnerKey, result: Result) -> None:
        self._held.setdefault(runner, {}).setdefault(result.test, []).append(result)

    def settle(self, runner: RunnerKey, unit: Unit, may_retry: bool) -> Settled:
        """The unit on `runner` ended: decide on every test it held."""
        held = self._held.pop(runner, {})
        if unit.retry_of:
            # a framework that cannot select the retried id alone (a unittest subtest or
            # class fixture) runs its whole test or class: the others were reported already
            held = {test: results for test, results in held.items() if test in unit.tests}
        verdicts: list[Result] = []
        again: list[str] = []
        for test, results in held.items():
            runs = self._runs.get(test)
            failed = [r for r in results if r.outcome in PROBLEMS]
            if failed and may_retry and (runs is None or len(runs.attempts) < self.limit):
                runs = self._runs.setdefault(test, _Runs(results))
                runs.last = results
                runs.attempts.append(_attempt(failed[0]))
                again.append(test)
            else:
                verdicts += verdict(results, tuple(runs.attempts) if runs else ())
        retry = Unit(unit.file, tests=tuple(again), retry_of=f"{runner[0]}/{runner[1]}") \
            if again else None
        return Settled(tuple(verdicts), retry, frozenset(held))

    def last_runs(self, tests: list[str]) -> list[Result]:
        """Verdicts of retried tests whose retry will not run (the build stopped, or the
        test is gone from its file): their last, failed, run."""
        verdicts: list[Result] = []
        for test in tests:
            runs = self._runs[test]
            verdicts += verdict(runs.last, tuple(runs.attempts[:-1]))
        return verdicts


def verdict(results: list[Result], earlier: tuple[Attempt, ...]) -> list[Result]:
    """A test's last run is its verdict; one that failed before and passes now is flaky."""
    flaky = bool(earlier) and not any(r.outcome in PROBLEMS for r in results)
    return [dataclasses.replace(r, outcome="flaky" if flaky and r.outcome == "passed"
                                else r.outcome, attempts=earlier)
            for r in results]


def _attempt(result: Result) -> Attempt:
    return Attempt(result.outcome, result.when, result.duration, result.message,
                   result.longrepr, result.worker, result.runner)
