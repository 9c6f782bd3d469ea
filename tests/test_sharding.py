"""--shard K/N: each CI job runs one part of the files, cut by time from the history, with
no word between the jobs. The parts must cover every file once, whichever order the jobs
run in (here: one after another in one checkout), and the tests of all of them must be
what serial pytest runs."""
from __future__ import annotations

import json
import re

import pytest

from helpers import medusa_outcomes, run_medusa, serial_outcomes, write_project
from medusa import sharding
from medusa.history import FileTiming, History


def _history(seconds: dict[str, float]) -> History:
    return History({file: FileTiming(s, False, 0.0, ()) for file, s in seconds.items()})


def test_the_cut_covers_every_file_once_in_parts_of_about_equal_time():
    seconds = {f"tests/test_{n:02}.py": float(n + 1) for n in range(20)}   # 1 s .. 20 s
    files = list(seconds)
    parts = sharding.cut(files, _history(seconds), 3)
    assert sorted(f for part in parts for f in part) == sorted(files)
    loads = [sum(seconds[f] for f in part) for part in parts]
    # the longest processing time rule: within the longest file of the ideal share
    assert max(loads) - min(loads) <= max(seconds.values()), loads
    assert all(part == sorted(part) for part in parts), "each part in the order found"


def test_untimed_files_count_as_the_average_and_the_cut_is_the_same_every_time():
    files = [f"t/test_{n}.py" for n in range(7)]
    history = _history({"t/test_0.py": 30.0, "t/test_1.py": 2.0})
    first = sharding.cut(files, history, 2)
    assert first == sharding.cut(list(files), history, 2)
    # the five untimed files count 16 s each; longest first, each to the lighter part
    assert first == [["t/test_0.py", "t/test_4.py", "t/test_6.py"],
                     ["t/test_1.py", "t/test_2.py", "t/test_3.py", "t/test_5.py"]], first
    assert sharding.digest(files, history, 2) == sharding.digest(files, history, 2)
    assert sharding.digest(files, History(), 2) != sharding.digest(files, history, 2)


def test_more_shards_than_files_leaves_some_empty():
    parts = sharding.cut(["a.py", "b.py"], History(), 4)
    assert sorted(map(len, parts)) == [0, 0, 1, 1]


@pytest.mark.parametrize("environ, expected", [
    ({"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"}, "2/3"),                     # GitLab: from 1
    ({"BUILDKITE_PARALLEL_JOB": "0", "BUILDKITE_PARALLEL_JOB_COUNT": "4"}, "1/4"),   # from 0
    ({"CIRCLE_NODE_INDEX": "3", "CIRCLE_NODE_TOTAL": "4"}, "4/4"),
])
def test_auto_reads_the_ci_servers_parallel_job_variables(environ, expected):
    assert str(sharding.parse("auto", environ)) == expected


@pytest.mark.parametrize("text, error", [
    ("0/3", "K must be from 1 to N"), ("4/3", "K must be from 1 to N"),
    ("2", "--shard takes K/N"), ("auto", "says nothing of parallel jobs"),
])
def test_bad_shards_are_refused_with_a_reason(text, error):
    with pytest.raises(sharding.ShardError, match=re.escape(error)):
        sharding.parse(text, {})


PROJECT = {
    **{f"tests/test_{n}.py": f"""
        import time
        import pytest

        @pytest.mark.parametrize("i", range({n % 4 + 1}))
        def test_work(i):
            time.sleep(0.02 * {n})

        def test_outcome():
            assert {n} % 5 != 3
    """ for n in range(10)},
}


def test_the_shards_of_a_build_run_every_test_once_as_serial_pytest(tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    serial = serial_outcomes(project)
    first = run_medusa(project)   # a build before: the history the shards cut by
    assert first.exit_code == 1, first
    history = (project / ".medusa" / "history.json").read_text()

    outcomes, cuts, files = [], set(), []
    for k in (1, 2, 3):
        run = run_medusa(project, "--shard", f"{k}/3")
        assert run.exit_code in (0, 1), run
        line = re.search(r"medusa: shard (\d)/3: (\d+) of 10 files, cut (\w+)", run.output)
        assert line and line.group(1) == str(k), run.output
        cuts.add(line.group(3))
        ran = {r["file"] for r in run.results}
        assert len(ran) == int(line.group(2)), (ran, line.group(0))
        files.extend(ran)
        assert not [e for e in run.events if e["event"] == "not_run"], run
        outcomes.extend(medusa_outcomes(run.events))
        assert (project / ".medusa" / "history.json").read_text() == history, \
            "a shard rewrote the history the next shard cuts by"
    assert len(cuts) == 1, cuts
    assert sorted(files) == sorted(set(files)) and len(files) == 10, files
    assert sorted(outcomes) == serial.outcomes


def test_a_bad_shard_is_a_usage_error(tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    run = run_medusa(project, "--shard", "5/4")
    assert run.exit_code == 4, run   # medusa's usage errors exit as pytest's
    assert "argument --shard: 5/4: K must be from 1 to N" in run.stderr, run
    config = project / "medusa" / "config.yml"
    config.parent.mkdir()
    config.write_text(json.dumps({"shard": "auto"}))
    run = run_medusa(project, env={"CI_NODE_INDEX": "", "BUILDKITE_PARALLEL_JOB": "",
                                   "CIRCLE_NODE_INDEX": ""})
    assert run.exit_code == 4, run
    assert "shard: --shard auto: this CI job says nothing of parallel jobs" in run.stderr, run
