"""Two medusa builds of one project at the same time (two CI jobs on one checkout, or a
developer's build beside a watcher's) share the project's files: the timing history in
.medusa/, pytest's cache (what --lf reruns), pytest's temporary folders. Neither may
corrupt or lose what the other writes."""
from __future__ import annotations

import json

from helpers import read_events, run_medusa, start_medusa, stop_medusa, write_project

# Each test keeps its tmp_path a while, so the two builds' temporary folders overlap.
def _file(group: str, n: int) -> str:
    fails = n == 0
    return f"""
        import time

        def test_tmp_{group}{n}(tmp_path):
            (tmp_path / "mine").write_text("{group}{n}")
            time.sleep(0.2)
            assert (tmp_path / "mine").read_text() == "{group}{n}"

        def test_check_{group}{n}():
            assert {not fails}, "the failure of {group}"
    """


def test_two_builds_of_one_project_at_once(tmp_path):
    files = {f"tests/{g}/test_{g}{n}.py": _file(g, n) for g in "ab" for n in range(4)}
    project = write_project(tmp_path / "p", files)
    for round_ in range(2):
        events = [tmp_path / f"events-{round_}-{g}.jsonl" for g in "ab"]
        builds = [start_medusa(project, events[i], f"tests/{g}", runners=2)
                  for i, g in enumerate("ab")]
        try:
            outputs = [b.communicate(timeout=90) for b in builds]
        finally:
            for build in builds:
                if build.poll() is None:
                    stop_medusa(build)
        for build, output, path in zip(builds, outputs, events):
            assert build.returncode == 1, output
            counts = [e for e in read_events(path) if e["event"] == "build_finished"][0]["counts"]
            assert counts == {"failed": 1, "passed": 7}, (counts, output)

    # the history holds every file of both builds, as valid JSON
    history = json.loads((project / ".medusa/history.json").read_text())
    assert set(files) <= set(history["files"]), history["files"].keys()
    # pytest's cache holds both builds' failures: --lf runs exactly those
    lastfailed = json.loads((project / ".pytest_cache/v/cache/lastfailed").read_text())
    assert set(lastfailed) == {"tests/a/test_a0.py::test_check_a0",
                               "tests/b/test_b0.py::test_check_b0"}, lastfailed
    rerun = run_medusa(project, runners=2, pytest_args=["--lf"])
    assert sorted(t for t, _ in rerun.outcomes) == sorted(lastfailed), rerun
