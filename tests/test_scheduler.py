"""The scheduling policy on its own, without processes: the order of the work
(medusa.scheduler.plan), how a long file is cut into parts (split_file), what each runner
would run (simulate), and the timing history it all comes from (medusa.history), read
and written through real files, by real concurrent processes where that matters."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medusa import history  # noqa: E402
from medusa.history import PRUNE_AFTER_DAYS, FileTiming, History  # noqa: E402
from medusa.scheduler import Scheduler, Unit, plan, simulate, split_file  # noqa: E402

DAY = 86400.0
NOW = 1_700_000_000.0


def timing(seconds: float, failed: bool = False, tests=(), seen: float = NOW) -> FileTiming:
    return FileTiming(float(seconds), failed, seen, tuple((t, float(s)) for t, s in tests))


def even_tests(file: str, names: list[str], each: float = 1.0) -> tuple[tuple[str, float], ...]:
    return tuple((f"{file}::{name}", each) for name in names)


def files_of(units: list[Unit]) -> list[str]:
    return [unit.file for unit in units]


# --- the history file -----------------------------------------------------------------------

def test_record_then_load_gives_the_same_timings(tmp_path):
    path = tmp_path / ".medusa" / "history.json"   # the folder is made on the way
    news = {
        "tests/test_a.py": timing(2.5, failed=True, tests=[
            ("tests/test_a.py::test_one", 1.25),
            ("tests/test_a.py::TestX::test_two", 1.0),
            ("tests/test_a.py::test_p[1-x]", 0.125)]),
        "tests/test_b.py": timing(0.0625, tests=[("tests/test_b.py::test_b", 0.0625)]),
        "tests/test_empty.py": timing(0.5),
    }
    history.record(path, news, now=NOW)
    loaded = History.load(path)
    assert loaded.files == news
    assert loaded.get("tests/test_a.py") == news["tests/test_a.py"]
    assert loaded.get("tests/test_missing.py") is None
    # what is on disk is plain JSON, the tests of a file in its order
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == history.VERSION
    assert list(data["files"]["tests/test_a.py"]["tests"]) == [
        "tests/test_a.py::test_one", "tests/test_a.py::TestX::test_two",
        "tests/test_a.py::test_p[1-x]"]
    assert data["files"]["tests/test_a.py"]["failed"] is True


def test_round_trip_keeps_times_to_a_tenth_of_a_millisecond(tmp_path):
    path = tmp_path / "history.json"
    news = {"t.py": timing(1.23456789, tests=[("t.py::test", 0.987654321)], seen=NOW + 0.04)}
    history.record(path, news, now=NOW)
    loaded = History.load(path).get("t.py")
    assert loaded.seconds == pytest.approx(1.23456789, abs=1e-4)
    assert loaded.tests[0][1] == pytest.approx(0.987654321, abs=1e-4)
    assert loaded.seen == pytest.approx(NOW, abs=0.1)


def test_a_missing_history_loads_as_empty(tmp_path):
    assert History.load(tmp_path / "nowhere" / "history.json").files == {}


@pytest.mark.parametrize("content", [
    b"",
    b"{",
    b'{"version": 1, "files": {"a.py": {"seconds": 1.0, "fail',   # cut off mid-write
    b"\xff\xfe\x00garbage",
    b"null",
    b"[]",
    b'"text"',
    b'{"version": 1}',
    b'{"version": 1, "files": {"a.py": {"seconds": "slow", "failed": false, "seen": 1}}}',
    b'{"version": 1, "files": {"a.py": null}}',
    b'{"version": 1, "files": {"a.py": 3}}',
], ids=repr)
def test_an_unreadable_history_loads_as_empty(tmp_path, content):
    path = tmp_path / "history.json"
    path.write_bytes(content)
    assert History.load(path).files == {}


def test_a_history_that_is_a_folder_loads_as_empty(tmp_path):
    path = tmp_path / "history.json"
    path.mkdir()
    assert History.load(path).files == {}


# BUG (medusa/history.py, History.load): JSON that parses but has a list or null where a
# dict is expected raises AttributeError (`.items()` on it), which the `except (OSError,
# ValueError, KeyError, TypeError)` does not catch. The master calls History.load in
# on_worker_begin, so such a .medusa/history.json makes every build end as an internal
# error (exit 3), and record() never gets to replace it. See also
# test_history_e2e.py::test_a_history_file_of_the_wrong_shape_does_not_break_the_build.
@pytest.mark.parametrize("content", [
    '{"version": 1, "files": null}',
    '{"version": 1, "files": []}',
    '{"version": 1, "files": {"a.py": {"seconds": 1.0, "failed": false, "seen": 1.0, '
    '"tests": [["a.py::test", 1.0]]}}}',
], ids=["files-null", "files-list", "tests-list"])
def test_json_of_the_wrong_shape_loads_as_empty_and_is_replaced_by_record(tmp_path, content):
    path = tmp_path / "history.json"
    path.write_text(content, encoding="utf-8")
    assert History.load(path).files == {}
    news = {"b.py": timing(1.0)}
    history.record(path, news, now=NOW)
    assert History.load(path).files == news


def test_a_corrupt_history_is_replaced_by_the_next_record(tmp_path):
    path = tmp_path / "history.json"
    path.write_text("{ not json", encoding="utf-8")
    news = {"a.py": timing(1.0)}
    history.record(path, news, now=NOW)
    assert History.load(path).files == news
    json.loads(path.read_text(encoding="utf-8"))


def test_records_of_different_files_merge_and_the_newer_entry_of_a_file_wins(tmp_path):
    path = tmp_path / "history.json"
    old_a = timing(5.0, failed=True, tests=[("a.py::test_old", 5.0)], seen=NOW - 100)
    history.record(path, {"a.py": old_a, "b.py": timing(2.0, seen=NOW - 100)}, now=NOW - 100)
    new_a = timing(1.0, failed=False, tests=[("a.py::test_new", 1.0)], seen=NOW)
    history.record(path, {"a.py": new_a, "c.py": timing(3.0)}, now=NOW)
    loaded = History.load(path).files
    assert loaded == {"a.py": new_a, "b.py": timing(2.0, seen=NOW - 100), "c.py": timing(3.0)}


def test_entries_not_seen_for_more_than_the_prune_age_are_dropped(tmp_path):
    path = tmp_path / "history.json"
    limit = PRUNE_AFTER_DAYS * DAY
    history.record(path, {
        "stale.py": timing(1.0, seen=NOW - limit - 3600),
        "recent.py": timing(1.0, seen=NOW - limit + 3600),
    }, now=NOW - 2 * DAY)   # written two days ago: both were young enough then
    assert set(History.load(path).files) == {"stale.py", "recent.py"}
    history.record(path, {"today.py": timing(1.0, seen=NOW)}, now=NOW)
    assert set(History.load(path).files) == {"recent.py", "today.py"}
    # news that is itself too old is not kept either
    history.record(path, {"ancient.py": timing(1.0, seen=NOW - 2 * limit)}, now=NOW)
    assert "ancient.py" not in History.load(path).files


WRITER = r"""
import sys, time
from pathlib import Path
from medusa import history

path, writer, start, rounds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
for index in range(rounds):
    name = f"{writer}/test_{index}.py"
    history.record(path, {name: history.FileTiming(
        1.0 + index, index % 2 == 0, time.time(), ((name + "::test", 0.5),))})
"""


def test_concurrent_writers_lose_nothing_and_never_leave_half_a_file(tmp_path):
    path = tmp_path / ".medusa" / "history.json"
    writers, rounds = 4, 25
    start = time.time() + 1.0   # all of them start writing at the same moment
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{n}",
                                   repr(start), str(rounds)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n in range(writers)]
    try:
        # while they write, every read of the file is a whole JSON document
        reads = 0
        while any(p.poll() is None for p in processes):
            if path.exists():
                json.loads(path.read_text(encoding="utf-8"))
                reads += 1
            time.sleep(0.002)
        for process in processes:
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    data = json.loads(path.read_text(encoding="utf-8"))
    expected = {f"w{n}/test_{i}.py" for n in range(writers) for i in range(rounds)}
    assert set(data["files"]) == expected
    loaded = History.load(path).files
    assert set(loaded) == expected
    for name, entry in loaded.items():
        index = int(name.rsplit("_", 1)[1].split(".")[0])
        assert entry.seconds == 1.0 + index and entry.failed == (index % 2 == 0)
        assert entry.tests == ((name + "::test", 0.5),)
    # no temporary file is left beside it
    assert sorted(p.name for p in path.parent.iterdir()) == ["history.json", "history.json.lock"]


# --- the order --------------------------------------------------------------------------------

def test_without_history_the_order_is_the_discovery_order():
    files = ["tests/test_z.py", "tests/test_a.py", "tests/sub/test_m.py", "tests/test_b.py"]
    for runners in (1, 2, 8):
        units = plan(files, runners, History(), failed_first=True, split=True)
        assert units == [Unit(file) for file in files]
        assert all(unit.expected is None and unit.parts == 1 for unit in units)
    assert files_of(Scheduler(files, 4).plan) == files
    assert files_of(Scheduler(files, 4, None).plan) == files


def ordered_history() -> tuple[list[str], History]:
    """Discovery order, and a history in which several files failed, some are new."""
    files = ["ok_short.py", "new_1.py", "failed_short.py", "ok_long.py", "failed_long.py",
             "new_2.py", "ok_mid.py", "failed_mid.py", "new_3.py"]
    past = History({
        "ok_short.py": timing(1.0),
        "failed_short.py": timing(0.5, failed=True),
        "ok_long.py": timing(9.0),
        "failed_long.py": timing(4.0, failed=True),
        "ok_mid.py": timing(3.0),
        "failed_mid.py": timing(2.0, failed=True),
        "gone.py": timing(100.0, failed=True),    # in the history, not found this time
    })
    return files, past


def test_failed_files_first_longest_first_then_new_files_in_discovery_order_then_longest_first():
    files, past = ordered_history()
    units = plan(files, 2, past, failed_first=True, split=False)
    assert files_of(units) == [
        "failed_long.py", "failed_mid.py", "failed_short.py",   # failed, longest first
        "new_1.py", "new_2.py", "new_3.py",                     # never timed, as found
        "ok_long.py", "ok_mid.py", "ok_short.py",               # the rest, longest first
    ]
    assert [u.expected for u in units] == [4.0, 2.0, 0.5, None, None, None, 9.0, 3.0, 1.0]
    assert "gone.py" not in files_of(units)


def test_without_failed_first_failed_files_are_ordered_by_duration_with_the_rest():
    files, past = ordered_history()
    units = plan(files, 2, past, failed_first=False, split=False)
    assert files_of(units) == [
        "new_1.py", "new_2.py", "new_3.py",
        "ok_long.py", "failed_long.py", "ok_mid.py", "failed_mid.py", "ok_short.py",
        "failed_short.py",
    ]
    scheduler = Scheduler(files, 2, past, failed_first=False, split=False)
    assert scheduler.plan == units


def test_files_of_equal_duration_keep_the_discovery_order():
    files = ["c.py", "a.py", "b.py", "d.py"]
    past = History({name: timing(2.0, failed=name in ("b.py", "d.py")) for name in files})
    assert files_of(plan(files, 2, past, True, False)) == ["b.py", "d.py", "c.py", "a.py"]
    assert files_of(plan(files, 2, past, False, False)) == files


def test_the_scheduler_hands_out_the_plan_in_order_and_knows_when_it_is_done():
    files, past = ordered_history()
    scheduler = Scheduler(files, 2, past, split=False)
    first, second = scheduler.next_unit(), scheduler.next_unit()
    assert [first, second] == scheduler.plan[:2]
    assert scheduler.queued == len(files) - 2 and not scheduler.done
    scheduler.finished(first)
    dropped = scheduler.drop_queued()
    assert dropped == scheduler.plan[2:] and scheduler.queued == 0
    assert scheduler.next_unit() is None
    assert not scheduler.done          # `second` is still running
    scheduler.finished(second)
    assert scheduler.done


# --- splitting ----------------------------------------------------------------------------------

LONG = "tests/test_long.py"
# top-level groups, in the file's order: a class with its methods (and a nested class),
# a parametrized function with all its cases (ids with "::" and "[" in them included),
# plain functions
LONG_GROUPS = [
    ["TestA::test_1", "TestA::test_2", "TestA::TestInner::test_3"],
    ["test_p[1]", "test_p[a::b]", "test_p[x[1]]", "test_p[y-2]"],
    ["test_plain"],
    ["TestB::test_1", "TestB::test_2"],
    ["test_other"],
    ["test_q[0]", "test_q[1]", "test_q[2]"],
]


def long_timing(each: float = 1.0, overhead: float = 0.0) -> FileTiming:
    names = [name for group in LONG_GROUPS for name in group]
    tests = even_tests(LONG, names, each)
    return timing(sum(s for _, s in tests) + overhead, tests=tests)


def group_of(test: str) -> int:
    name = test.split("::", 1)[1]
    return next(i for i, group in enumerate(LONG_GROUPS) if name in group)


def group_key(test: str) -> str:
    """The top-level group a part names: `f.py::TestA::t` -> `f.py::TestA`."""
    file, name = test.split("::", 1)
    return f"{file}::{name.split('::')[0].split('[')[0]}"


def members(names: tuple[str, ...], all_tests: list[str]) -> list[str]:
    """The tests of the file that a part's group names select, in the file's order."""
    return [t for t in all_tests if group_key(t) in names]


def check_parts(units: list[Unit], timing_: FileTiming) -> None:
    """What every split must hold: parts numbered 1..n, the earlier ones name whole
    top-level groups (so a test added to a class later runs with its class) that hold
    contiguous runs of the file's tests in order; the last names none and excludes
    exactly the groups of the earlier parts."""
    all_tests = [t for t, _ in timing_.tests]
    n = len(units)
    assert n >= 2
    assert [(u.file, u.part, u.parts) for u in units] == [(LONG, i, n) for i in range(1, n + 1)]
    assert all(u.tests and not u.exclude for u in units[:-1])
    assert all(name == group_key(name + "::x") for u in units[:-1] for name in u.tests), \
        "parts name groups, not tests"
    earlier = [t for u in units[:-1] for t in members(u.tests, all_tests)]
    assert earlier == all_tests[:len(earlier)], "the parts are not the file's order"
    last = units[-1]
    earlier_groups = tuple(name for u in units[:-1] for name in u.tests)
    assert last.tests == () and last.exclude == earlier_groups
    assert len(earlier) < len(all_tests), "the last part has nothing of its own"
    # a group never spans two parts
    part_of_group: dict[int, int] = {}
    for unit in units[:-1]:
        for test in members(unit.tests, all_tests):
            assert part_of_group.setdefault(group_of(test), unit.part) == unit.part, test
    for test in all_tests[len(earlier):]:
        assert group_of(test) not in part_of_group, f"{test}'s group is cut"


def test_a_file_longer_than_the_share_is_cut_between_top_level_groups():
    long = long_timing(each=1.0)             # groups of 3, 4, 1, 2, 1, 3 seconds: 14
    units = split_file(LONG, long, share=5.0)
    check_parts(units, long)
    all_tests = [t for t, _ in long.tests]
    names = [[t.split("::", 1)[1] for t in members(u.tests, all_tests)] for u in units]
    assert names[:-1] == [LONG_GROUPS[0],                       # 3 (+4 would be 7)
                          LONG_GROUPS[1] + LONG_GROUPS[2],      # 4 + 1
                          LONG_GROUPS[3] + LONG_GROUPS[4]]      # 2 + 1 (+3 would be 6)
    assert [u.expected for u in units] == [3.0, 5.0, 3.0, 3.0]


@pytest.mark.parametrize("share", [1.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 13.5])
def test_every_split_keeps_groups_whole_and_in_order(share):
    long = long_timing(each=1.0)
    units = split_file(LONG, long, share)
    if len(units) == 1:
        assert units == [Unit(LONG, expected=long.seconds)]
        return
    check_parts(units, long)
    for unit in units[:-1]:
        # a part is over the share only when it is one group on its own
        own = sum(s for t, s in long.tests if group_key(t) in unit.tests)
        assert own <= share or len(unit.tests) == 1, (share, unit)


def test_a_group_longer_than_the_share_is_a_part_of_its_own():
    tests = (even_tests(LONG, ["test_a", "test_b"], 0.5)
             + even_tests(LONG, [f"TestBig::test_{i}" for i in range(6)], 1.0)
             + even_tests(LONG, ["test_c"], 0.5)
             + even_tests(LONG, [f"test_p[{i}]" for i in range(4)], 0.25))
    long = timing(sum(s for _, s in tests), tests=tests)
    units = split_file(LONG, long, share=2.0)
    a_b = tuple(f"{LONG}::{n}" for n in ["test_a", "test_b"])
    big = (f"{LONG}::TestBig",)
    assert [(u.tests, u.exclude) for u in units] == [
        (a_b, ()),
        (big, ()),                   # 6 s, three times the share: a part of its own
        ((), a_b + big),             # test_c and test_p[*]: the rest
    ]
    assert [u.expected for u in units] == [1.0, 6.0, 1.5]


def test_a_huge_first_group_is_its_own_part_too():
    tests = (even_tests(LONG, [f"TestBig::test_{i}" for i in range(4)], 2.0)
             + even_tests(LONG, ["test_x", "test_y"], 1.0))
    long = timing(10.0, tests=tests)
    units = split_file(LONG, long, share=3.0)
    assert len(units) == 2
    assert units[0].tests == (f"{LONG}::TestBig",)
    assert units[1].tests == () and units[1].exclude == units[0].tests
    assert [u.expected for u in units] == [8.0, 2.0]


def test_the_file_overhead_is_expected_in_every_part():
    long = long_timing(each=1.0, overhead=0.5)       # 14 s of tests, 14.5 s of file
    units = split_file(LONG, long, share=5.0)
    assert [u.expected for u in units] == [3.5, 5.5, 3.5, 3.5]


def test_a_file_that_fits_in_the_share_is_not_split():
    long = long_timing(each=1.0)
    assert split_file(LONG, long, share=long.seconds) == [Unit(LONG, expected=14.0)]
    assert split_file(LONG, long, share=100.0) == [Unit(LONG, expected=14.0)]
    assert split_file(LONG, long, share=0.0) == [Unit(LONG, expected=14.0)]
    # a file of one group cannot be cut, however long
    one_group = timing(10.0, tests=even_tests(LONG, [f"TestA::test_{i}" for i in range(10)]))
    assert split_file(LONG, one_group, share=1.0) == [Unit(LONG, expected=10.0)]
    param = timing(10.0, tests=even_tests(LONG, [f"test_p[{i}]" for i in range(10)]))
    assert split_file(LONG, param, share=1.0) == [Unit(LONG, expected=10.0)]
    # a history without the tests of the file: nothing to cut by
    assert split_file(LONG, timing(10.0), share=1.0) == [Unit(LONG, expected=10.0)]


def split_history() -> tuple[list[str], History]:
    long = long_timing(each=1.0)                         # 14 s
    files = ["tests/test_short.py", LONG, "tests/test_mid.py", "tests/test_new.py"]
    past = History({
        LONG: long,
        "tests/test_short.py": timing(1.0, tests=even_tests("tests/test_short.py", ["t"])),
        "tests/test_mid.py": timing(5.0, tests=even_tests("tests/test_mid.py",
                                                          ["t1", "t2", "t3", "t4", "t5"])),
    })
    return files, past


def test_plan_splits_a_file_longer_than_its_share_of_the_known_total():
    files, past = split_history()
    units = plan(files, 4, past, failed_first=True, split=True)   # share: 20 / 4 = 5 s
    # (the parts are queued longest first, not in their order)
    parts = sorted((u for u in units if u.file == LONG), key=lambda u: u.part)
    check_parts(parts, past.get(LONG))
    assert parts == split_file(LONG, past.get(LONG), 5.0)
    # the mid file (5 s) fits its share; the new file comes before the timed ones
    assert [u for u in units if u.file != LONG] == [
        Unit("tests/test_new.py"), Unit("tests/test_mid.py", expected=5.0),
        Unit("tests/test_short.py", expected=1.0)]
    assert units[0] == Unit("tests/test_new.py")
    # the rest longest first: the parts are ordered by what they are expected to take
    rest = [u.expected for u in units[1:]]
    assert rest == sorted(rest, reverse=True)


def test_a_failed_split_file_has_all_its_parts_first():
    files, past = split_history()
    past.files[LONG] = timing(14.0, failed=True, tests=past.get(LONG).tests)
    units = plan(files, 4, past, failed_first=True, split=True)
    parts = split_file(LONG, past.get(LONG), 5.0)
    assert len(parts) > 1
    assert units[:len(parts)] == sorted(parts, key=lambda u: -u.expected)


@pytest.mark.parametrize("how", ["split=False", "no_split glob", "no_split exact",
                                 "one runner", "Scheduler with one runner"])
def test_a_file_is_left_whole(how):
    files, past = split_history()
    if how == "split=False":
        units = plan(files, 4, past, failed_first=True, split=False)
    elif how == "no_split glob":
        units = plan(files, 4, past, True, True, no_split=("tests/*_db.py", "tests/test_l*"))
    elif how == "no_split exact":
        units = plan(files, 4, past, True, True, no_split=(LONG,))
    elif how == "one runner":
        units = plan(files, 1, past, failed_first=True, split=True)
    else:
        units = Scheduler(files, 1, past, split=True).plan
    assert [u for u in units if u.file == LONG] == [Unit(LONG, expected=14.0)]
    assert all(u.parts == 1 for u in units)


def test_a_no_split_glob_that_does_not_match_leaves_splitting_on():
    files, past = split_history()
    units = plan(files, 4, past, True, True, no_split=("test_long.py", "other/*"))
    assert len([u for u in units if u.file == LONG]) > 1
    assert len([u for u in Scheduler(files, 4, past).plan if u.file == LONG]) > 1
    assert len([u for u in Scheduler(files, 4, past, split=False).plan if u.file == LONG]) == 1


def test_unit_labels_name_the_part():
    assert Unit("a.py").label == "a.py"
    assert Unit("a.py", tests=("a.py::t",), part=2, parts=3).label == "a.py [part 2/3]"


# --- simulate --------------------------------------------------------------------------------

def test_simulate_puts_each_unit_on_the_least_loaded_runner_in_order():
    a, b, c, d, e = (Unit(f"{n}.py", expected=s) for n, s in
                     zip("abcde", (5.0, 3.0, 2.0, 2.0, 1.0)))
    # a->0 (0,0: the first); b->1; c->1 (3<5); d->0 (5=5: the first); e->1 (5<7)
    assert simulate([a, b, c, d, e], 2) == ((a, d), (b, c, e))
    assert simulate([a, b, c, d, e], 1) == ((a, b, c, d, e),)
    assert simulate([a, b], 4) == ((a,), (b,), (), ())


def test_simulate_guesses_the_average_for_new_files():
    known1, known2 = Unit("k1.py", expected=4.0), Unit("k2.py", expected=2.0)
    new1, new2 = Unit("n1.py"), Unit("n2.py")
    # new ones count 3 s (the average): k1->0 (4), n1->1 (3), n2->1 (6), k2->0 (6)
    assert simulate([known1, new1, new2, known2], 2) == ((known1, known2), (new1, new2))
    # without any timing, every unit counts the same
    units = [Unit(f"{i}.py") for i in range(5)]
    assert simulate(units, 2) == ((units[0], units[2], units[4]), (units[1], units[3]))
    assert simulate([], 3) == ((), (), ())


def test_a_retry_goes_to_another_runner_when_one_can_take_it():
    scheduler = Scheduler(["a.py", "b.py"], runners=2, failed_first=False)
    first = scheduler.next_unit("w/0")
    assert first.file == "a.py"
    scheduler.retry(Unit("a.py", tests=("a.py::t",), retry_of="w/0"))
    # the runner it failed on takes other work first ...
    assert scheduler.next_unit("w/0", others_free=True).file == "b.py"
    # ... is not given the retry while another runner is there to take it ...
    assert scheduler.next_unit("w/0", others_free=True) is None
    # ... which the other runner gets; alone, the same runner gets it after all
    assert scheduler.next_unit("w/1", others_free=True).retry_of == "w/0"
    scheduler.retry(Unit("a.py", tests=("a.py::t",), retry_of="w/0"))
    assert scheduler.next_unit("w/0", others_free=False).retry_of == "w/0"
    assert scheduler.next_unit("w/0") is None


def test_the_group_a_part_is_named_by_selects_its_tests():
    """The scheduler names a part by top-level groups; a driver selects a test when one
    of its group names is asked for: the two definitions must agree."""
    from medusa.grouping import group_names, top_level_group
    for test in ("t.py::test_plain", "t.py::test_p[1-a::b]", "dir/t.py::TestA::test_x[2]",
                 "t.py::TestA::TestInner::test_y", "t.py::test_p[x[y]]"):
        assert top_level_group(test) in group_names(test), test
        assert test in group_names(test), test
    assert top_level_group("dir/t.py::TestA::test_x[2]") == "dir/t.py::TestA"
    assert top_level_group("t.py::test_p[1]") == "t.py::test_p"
    assert "t.py::TestB" not in group_names("t.py::TestA::test_x")
