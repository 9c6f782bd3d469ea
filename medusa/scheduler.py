"""The queue of work and its order: policy only, no sockets, no processes.

Order, when there is a timing history (history.py):
1. files that failed last time (so their news comes first), longest first;
2. files never timed (new ones), in the order they were found;
3. the rest, longest first: the longest processing time rule, so that the build does not
   end waiting for one long file started late.
Without history the order is the order the files were found: deterministic.

A file expected to take longer than one runner's fair share of the whole build (total /
runners) is split into parts that different runners run at once. Parts are cut only
between top-level groups of tests (a class, or a function with all its parameters), in
the file's order, and name the groups they run, not the tests: a test added to a class
since the history was written runs with its class, and the last part runs "every group
not in the other parts", so a new group runs too.
"""
from __future__ import annotations

import fnmatch
from collections import deque
from dataclasses import dataclass, replace

from medusa.grouping import top_level_group
from medusa.history import FileTiming, History


@dataclass(frozen=True)
class Unit:
    """A piece of work for one runner: a file, or a part of a split file."""
    file: str
    tests: tuple[str, ...] = ()      # run only these groups or test ids
    exclude: tuple[str, ...] = ()    # and not these (the last part of a split file, or
                                     # what already ran when a runner died)
    part: int = 1
    parts: int = 1
    expected: float | None = None    # seconds, from the history
    retry_of: str = ""               # a rerun of failed tests (--retries): the runner
                                     # ("worker/index") they failed on, to avoid

    @property
    def label(self) -> str:
        return file_label(self.file, self.part, self.parts)

    def without(self, tests: set[str]) -> Unit:
        """What is left of this unit once `tests` have run (maybe nothing)."""
        return replace(self, exclude=tuple(sorted(set(self.exclude) | tests)), expected=None)


class Scheduler:
    def __init__(self, files: list[str], runners: int, history: History | None = None,
                 failed_first: bool = True, split: bool = True,
                 no_split: tuple[str, ...] = ()) -> None:
        self.files = tuple(files)
        self.plan = plan(files, runners, history or History(), failed_first,
                         split and runners > 1, no_split)
        self._queue: deque[Unit] = deque(self.plan)
        self._in_flight: set[Unit] = set()

    def next_unit(self, runner: str = "", others_free: bool = False) -> Unit | None:
        """The next unit for `runner`. A retry is not for the runner its tests failed on:
        that runner takes other work, and gets the retry only when nothing else is left
        and no other runner is there to take it (`others_free`: one runs or waits)."""
        fallback = None
        for index, unit in enumerate(self._queue):
            if runner and unit.retry_of == runner:
                fallback = index if fallback is None else fallback
                continue
            return self._take(index)
        if fallback is not None and not others_free:
            return self._take(fallback)
        return None

    def _take(self, index: int) -> Unit:
        unit = self._queue[index]
        del self._queue[index]
        self._in_flight.add(unit)
        return unit

    def finished(self, unit: Unit) -> None:
        self._in_flight.discard(unit)

    def give_back(self, unit: Unit, rest: Unit) -> None:
        """`unit` ended half done (its runner died): `rest` runs next, on another runner."""
        self._in_flight.discard(unit)
        self._queue.appendleft(rest)

    def retry(self, unit: Unit) -> None:
        """Failed tests run again (--retries) before anything else: their verdict is
        what the build waits for, and a retry is short."""
        self._queue.appendleft(unit)

    def drop_queued(self) -> list[Unit]:
        """Empty the queue (build ending early); returns what was still waiting."""
        dropped = list(self._queue)
        self._queue.clear()
        return dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def done(self) -> bool:
        return not self._queue and not self._in_flight


def part_name(part: int, parts: int) -> str:
    return f"part {part}/{parts}"


def file_label(file: str, part: int, parts: int) -> str:
    """How a file, or a part of a split one, is named to the user."""
    return file if parts == 1 else f"{file} [{part_name(part, parts)}]"


def plan(files: list[str], runners: int, history: History, failed_first: bool,
         split: bool, no_split: tuple[str, ...] = ()) -> list[Unit]:
    timings = {file: history.get(file) for file in files}
    known = [t.seconds for t in timings.values() if t is not None]
    share = sum(known) / max(1, runners)
    failed: list[Unit] = []
    new: list[Unit] = []
    rest: list[Unit] = []
    for file in files:
        timing = timings[file]
        if timing is None:
            new.append(Unit(file))
            continue
        if split and not any(fnmatch.fnmatch(file, glob) for glob in no_split):
            units = split_file(file, timing, share)
        else:
            units = [Unit(file, expected=timing.seconds)]
        (failed if failed_first and timing.failed else rest).extend(units)
    return _longest_first(failed) + new + _longest_first(rest)


def simulate(units: list[Unit], runners: int) -> tuple[tuple[Unit, ...], ...]:
    """What each runner would run if every unit took its expected time (unknown: the
    average of the known) and each free runner took the next unit, as runners do."""
    known = [u.expected for u in units if u.expected is not None]
    guess = sum(known) / len(known) if known else 1.0
    loads = [0.0] * max(1, runners)
    lanes: list[list[Unit]] = [[] for _ in loads]
    for unit in units:
        lane = loads.index(min(loads))
        loads[lane] += unit.expected if unit.expected is not None else guess
        lanes[lane].append(unit)
    return tuple(tuple(lane) for lane in lanes)


def split_file(file: str, timing: FileTiming, share: float) -> list[Unit]:
    """Parts of at most `share` seconds each (a single group may be longer), or the
    whole file when it fits in one share."""
    if timing.seconds <= share or share <= 0 or not timing.tests:
        return [Unit(file, expected=timing.seconds)]
    chunks: list[list[tuple[str, float]]] = [[]]
    for group in _groups(timing.tests):
        chunk_seconds = sum(s for _, s in chunks[-1])
        if chunks[-1] and chunk_seconds + sum(s for _, s in group) > share:
            chunks.append([])
        chunks[-1].extend(group)
    if len(chunks) == 1:
        return [Unit(file, expected=timing.seconds)]
    # the wall time of the file beyond its tests' own time (imports, module fixtures)
    # is paid by every part
    overhead = max(0.0, timing.seconds - sum(s for _, s in timing.tests))
    groups = [tuple(dict.fromkeys(top_level_group(test) for test, _ in chunk)) for chunk in chunks]
    earlier = tuple(group for chunk_groups in groups[:-1] for group in chunk_groups)
    units = []
    for index, (chunk, chunk_groups) in enumerate(zip(chunks, groups), 1):
        last = index == len(chunks)
        units.append(Unit(file, tests=() if last else chunk_groups,
                          exclude=earlier if last else (), part=index, parts=len(chunks),
                          expected=overhead + sum(s for _, s in chunk)))
    return units


def _groups(tests: tuple[tuple[str, float], ...]) -> list[list[tuple[str, float]]]:
    """Consecutive tests of the same top-level class or function (parameters ignored)."""
    groups: list[list[tuple[str, float]]] = []
    previous = None
    for test, seconds in tests:
        key = top_level_group(test)
        if key != previous:
            groups.append([])
            previous = key
        groups[-1].append((test, seconds))
    return groups


def _longest_first(units: list[Unit]) -> list[Unit]:
    # sorted() is stable: equal times keep the order the files were found in
    return sorted(units, key=lambda unit: -(unit.expected or 0.0))
