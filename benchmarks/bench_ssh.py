#!/usr/bin/env python3
"""What an ssh worker costs: startup, and a build shared between local and ssh runners.

Run by hand; it prints a table and asserts nothing. It starts its own OpenSSH server on
127.0.0.1 (tests/sshd.py: throwaway keys, a free port), so the "remote" worker is this
machine reached over a real ssh connection, sync and port forward included.

    python benchmarks/bench_ssh.py               # 3 repeats
    python benchmarks/bench_ssh.py --repeat 5

1. Startup: seconds from starting `medusa` to its first test result, on a suite of a few
   trivial files: one local worker (1 runner) against one ssh worker (1 runner) alone.
   Target: the ssh worker adds at most 1.5 s.
2. The skewed sleep suite (shared/bench/make_suite.py: 200 files, 40 s of work): serial
   pytest, pytest-xdist -n 8, medusa --local 8, and medusa with 4 local + 4 ssh runners.
   Target: the mixed build within 10% of the all-local one.

Medians of --repeat runs, round-robin so that noise hits every command alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from sshd import start_sshd, stop_sshd  # noqa: E402

MEDUSA = REPO / "bin" / "medusa"
MAKE_SUITE = REPO.parent / "shared" / "bench" / "make_suite.py"


def ssh_worker(server, remote: Path, runners: int) -> dict:
    return {"type": "ssh", "connect": server.connect, "directory": str(remote),
            "runners": runners, "python": sys.executable, "identity": str(server.identity),
            "known_hosts": str(server.known_hosts)}


def write_config(project: Path, workers: list[dict]) -> Path:
    path = project.parent / f"config-{len(list(project.parent.glob('config-*')))}.yml"
    path.write_text(json.dumps({"workers": workers}))   # JSON is YAML
    return path


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, float | None]:
    """Wall seconds, exit code, and seconds to the first result (from the JSON log)."""
    events = cwd.parent / "events.jsonl"
    events.unlink(missing_ok=True)
    started_wall = time.time()
    started = time.perf_counter()
    is_medusa = str(MEDUSA) in argv   # only medusa writes the JSON log
    done = subprocess.run([*argv, *(["--format", f"json:{events}"] if is_medusa else [])],
                          cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    first = None
    for line in events.read_text().splitlines() if events.exists() else []:
        event = json.loads(line)
        if event["event"] == "result":
            first = event["time"] - started_wall
            break
    return seconds, done.returncode, first


def rounds(commands: dict[str, list[str]], cwd: Path, env: dict[str, str], repeat: int,
           pick: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            result = run(commands[name], cwd, env)
            if result[1] not in (0, 1):
                print(f"  ! {name}: exit code {result[1]}", file=sys.stderr)
            times[name].append(result[pick])
            print(f"  {name} run {r + 1}: {result[pick]:.2f} s", file=sys.stderr)
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medusa-bench-ssh-") as scratch:
        tmp = Path(scratch)
        server, sshd = start_sshd(tmp / "sshd", os.environ.get("MEDUSA_TEST_MARK", "bench"))
        env = dict(os.environ, HOME=str(server.home))
        env.pop("SSH_AUTH_SOCK", None)
        try:
            py, medusa = sys.executable, [sys.executable, str(MEDUSA), "--no-history"]
            # 1. startup
            small = tmp / "small" / "project"
            (small / "tests").mkdir(parents=True)
            for n in range(4):
                (small / "tests" / f"test_{n}.py").write_text("def test_x():\n    pass\n")
            local_cfg = write_config(small, [{"type": "local", "runners": 1}])
            ssh_cfg = write_config(small, [ssh_worker(server, tmp / "remote-small", 1)])
            print("startup: seconds to the first result", file=sys.stderr)
            startup = rounds({"local worker": [*medusa, "--config", str(local_cfg)],
                              "ssh worker": [*medusa, "--config", str(ssh_cfg)]},
                             small, env, options.repeat, pick=2)
            # 2. the skewed sleep suite
            suite = tmp / "skewed" / "project"
            subprocess.run([py, str(MAKE_SUITE), str(suite), "--files", "200", "--profile",
                            "skewed", "--kind", "sleep", "--total", "40"], check=True,
                           stdout=subprocess.DEVNULL)
            bound = json.loads((suite / "manifest.json").read_text())["lower_bound"]["8"]
            mixed_cfg = write_config(suite, [{"type": "local", "runners": 4},
                                             ssh_worker(server, tmp / "remote-skewed", 4)])
            local8_cfg = write_config(suite, [{"type": "local", "runners": 8}])
            pytest = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            subprocess.run([*pytest, "--collect-only", "tests"], cwd=suite,
                           stdout=subprocess.DEVNULL)
            print("skewed sleep suite: wall seconds", file=sys.stderr)
            wall = rounds({"serial pytest": [*pytest, "tests"],
                           "xdist -n 8": [*pytest, "-n", "8", "tests"],
                           "medusa 8 local": [*medusa, "--config", str(local8_cfg), "tests"],
                           "medusa 4 local + 4 ssh": [*medusa, "--config", str(mixed_cfg),
                                                      "tests"]},
                          suite, env, options.repeat, pick=0)
        finally:
            stop_sshd(sshd)
    med = {name: statistics.median(times) for name, times in {**startup, **wall}.items()}
    print(f"\nmedians of {options.repeat} runs, {os.cpu_count()} CPUs\n")
    print("| startup (s to first result) | local worker | ssh worker | added |")
    print("| --- | --- | --- | --- |")
    print(f"| 4 trivial files, 1 runner | {med['local worker']:.2f} | {med['ssh worker']:.2f} | "
          f"{med['ssh worker'] - med['local worker']:+.2f} (target <= 1.5) |")
    print(f"\n| skewed sleep, 40 s of work (lower bound at 8 runners: {bound:.2f} s) | wall | vs medusa 8 local |")
    print("| --- | --- | --- |")
    for name in wall:
        print(f"| {name} | {med[name]:.2f} | {med[name] / med['medusa 8 local']:.2f}x |")
    print("\nraw:", json.dumps({name: [round(t, 2) for t in times]
                                for name, times in {**startup, **wall}.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
