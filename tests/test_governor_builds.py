"""Two real medusa builds started together on one machine share its runner slots."""
from __future__ import annotations

import json

from helpers import read_events, start_medusa, stop_medusa, write_project

SLOW_FILES = {f"tests/test_{n}.py": f"""
    import json, os, time

    def test_record():
        started = time.time()
        time.sleep(0.4)
        with open(os.environ["RECORD"], "a") as out:
            out.write(json.dumps([os.environ["MEDUSA_RUN_ID"], os.environ["MEDUSA_RUNNER"],
                                  started, time.time()]) + "\\n")
""" for n in range(6)}


def _finish(process) -> tuple[str, str]:
    try:
        return process.communicate(timeout=90)
    except Exception:
        return stop_medusa(process)


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_two_builds_together_never_run_more_runners_than_the_host_has_slots(tmp_path):
    record = tmp_path / "record.jsonl"
    env = {"MEDUSA_MAX_HOST_RUNNERS": "2", "RECORD": str(record)}
    builds = []
    for name in ("a", "b"):
        project = write_project(tmp_path / name, SLOW_FILES)
        events = tmp_path / f"{name}.jsonl"
        builds.append((start_medusa(project, events, runners=2, env=env), events))
    outputs = [_finish(process) for process, _ in builds]
    for (process, _), (stdout, stderr) in zip(builds, outputs):
        assert process.returncode == 0, stdout + stderr
    # every test ran, and at no moment were more than 2 tests (runners) running
    spans = [(start, end) for _, _, start, end in map(json.loads, record.read_text().splitlines())]
    assert len(spans) == 12
    assert _most_at_once(spans) <= 2, spans
    began = [e for _, events in builds for e in read_events(events) if e["event"] == "worker_begin"]
    assert sum(e["runners"] for e in began) >= 2
    assert any("waiting for a runner slot" in stdout or "slots were free" in stdout
               for stdout, _ in outputs), outputs
