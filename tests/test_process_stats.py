"""Process statistics per file (stats.FileMeter), the workers' host samples, and the
resource-load probes (probes.py): present, plausible, with timestamps, in the JSON log,
the console summary and on the HTML report's timeline."""
from __future__ import annotations

import re

from helpers import run_medusa, write_project
from test_html_report import browser  # noqa: F401  (a fixture)

MiB = 1024 * 1024
PROJECT = {
    "tests/test_io.py": """
        def test_writes_and_reads(tmp_path):
            path = tmp_path / "data"
            path.write_bytes(b"x" * (8 * 1024 * 1024))
            assert len(path.read_bytes()) == 8 * 1024 * 1024
    """,
    "tests/test_leaves.py": """
        import subprocess
        import sys
        import threading
        import time

        def test_leaves_a_thread_and_a_child():
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    """,
    "tests/test_memory.py": """
        def test_allocates_200_mib():
            data = b"\\x01" * (200 * 1024 * 1024)   # written, so resident
            assert data[-1] == 1
    """,
    "tests/test_sleeps.py": """
        import time

        def test_sleeps():
            time.sleep(1.2)
    """,
    "tests/test_spins.py": """
        import time

        def test_spins():
            end = time.process_time() + 0.6
            while time.process_time() < end:
                pass
    """,
    "medusa/config.yml": """
        sample_every: 0.2
        history: false
        probes:
          answer: {command: "echo 42 answers", every: 0.3, unit: answers}
          broken: {command: "echo nope >&2; exit 3", every: 0.5}
    """,
    "medusa/environment.py": """
        import os

        def count_test_files():
            return len([n for n in os.listdir("tests") if n.startswith("test_")])

        PROBES = {"test_files": {"sample": count_test_files, "every": 0.3, "unit": "files"}}
    """,
}


def _stats(run) -> dict[str, dict]:
    return {e["file"]: e["stats"] for e in run.events if e["event"] == "file_complete"}


def test_file_statistics_host_samples_and_probes(tmp_path, browser):  # noqa: F811
    project = write_project(tmp_path / "p", PROJECT)
    html = tmp_path / "report.html"
    run = run_medusa(project, "--format", f"html:{html}", runners=1)
    assert run.exit_code == 0, run
    stats = _stats(run)
    assert set(stats) == {n for n in PROJECT if n.startswith("tests/")}

    # memory: the file's own peak; the files after it (one runner, in order) are not
    # charged for it, as the runner's lifetime peak would
    memory = stats["tests/test_memory.py"]
    assert memory["peak_is_file"] and memory["peak_rss"] >= 200 * MiB, memory
    for later in ("tests/test_sleeps.py", "tests/test_spins.py"):
        assert stats[later]["peak_is_file"] and stats[later]["peak_rss"] < 150 * MiB, stats[later]
    # time: a file that sleeps takes wall time, not CPU; one that spins takes CPU
    sleeps, spins = stats["tests/test_sleeps.py"], stats["tests/test_spins.py"]
    assert sleeps["wall"] >= 1.2 and sleeps["cpu_user"] + sleeps["cpu_system"] < 0.3, sleeps
    assert spins["cpu_user"] + spins["cpu_system"] >= 0.5, spins
    # I/O through system calls
    io = stats["tests/test_io.py"]
    assert io["write_bytes"] >= 8 * MiB and io["read_bytes"] >= 8 * MiB, io
    # what a file leaves running
    leaves = stats["tests/test_leaves.py"]
    assert leaves["threads"] >= 2 and len(leaves["children_left"]) == 1, leaves
    assert all(s["children_left"] == [] for f, s in stats.items() if f != "tests/test_leaves.py")

    # the console: the slowest files and the heaviest, and the child left behind
    out = run.stdout
    slowest = out[out.index("slowest files"):]
    assert re.search(r"\n\s+1\.\d\ds\s+0\.\d\ds cpu  tests/test_sleeps.py\n", slowest), out
    heaviest = out[out.index("most memory"):].splitlines()[1]
    assert heaviest.endswith("tests/test_memory.py") and float(heaviest.split()[0]) >= 200, out
    assert f"WARNING: tests/test_leaves.py left 1 child process running (pid " \
           f"{leaves['children_left'][0]})" in out

    # host samples, every 0.2 s of a build of 2 s and more
    hosts = [e for e in run.events if e["event"] == "host_sample"]
    assert len(hosts) >= 5, hosts
    assert [h["at"] for h in hosts] == sorted(h["at"] for h in hosts)
    assert all(0 <= h["cpu_percent"] <= 100 and 0 < h["memory_used"] < h["memory_total"]
               for h in hosts), hosts

    # probes: the master's commands and the worker's environment.py function
    samples = [e for e in run.events if e["event"] == "probe_sample"]
    answer = [s for s in samples if s["name"] == "answer"]
    assert len(answer) >= 3 and all(s["value"] == 42 and s["worker"] == "master"
                                    and s["unit"] == "answers" for s in answer), answer
    assert [s["at"] for s in answer] == sorted(s["at"] for s in answer)
    assert answer[-1]["at"] - answer[0]["at"] >= 0.5
    files = [s for s in samples if s["name"] == "test_files"]
    assert len(files) >= 3 and {s["value"] for s in files} == {5.0}, files
    assert {s["worker"] for s in files} == {"local"}
    broken = [s for s in samples if s["name"] == "broken"]
    assert broken and all(s["value"] is None and "exited with 3: nope" in s["error"]
                          for s in broken), broken

    # the HTML report: a track per series under the lanes, statistics in a bar's panel
    browser.open(html)
    assert browser.errors() == []
    tracks = browser.js("[...document.querySelectorAll('#tl-probes .probe')].map(p => p.dataset.probe)")
    assert sorted(tracks) == ["CPU", "answer", "memory", "test_files"], tracks
    points = browser.js("document.querySelector('.probe[data-probe=\"answer\"] polyline')"
                        ".getAttribute('points')")
    assert len(points.split()) == len(answer)
    detail = browser.js("""(() => {
        document.querySelector('.bar[data-file="tests/test_memory.py"]').click();
        return document.getElementById('bar-detail').innerText;
    })()""")
    assert re.search(r"peak memory\s+2\d\d MiB", detail), detail
    notes = browser.js("document.getElementById('notes').innerText")
    assert "probe broken on master" in notes


def test_a_build_without_samples_sends_none(tmp_path):
    project = write_project(tmp_path / "p", {
        "tests/test_a.py": "import time\n\ndef test_a():\n    time.sleep(0.5)\n",
        "medusa/config.yml": "sample_every: 0\n"})
    run = run_medusa(project, runners=1)
    assert run.exit_code == 0, run
    assert not [e for e in run.events if e["event"] in ("host_sample", "probe_sample")]
    assert _stats(run)["tests/test_a.py"]["wall"] >= 0.5
