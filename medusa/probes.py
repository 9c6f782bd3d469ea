"""Resource-load probes: numbers sampled every few seconds during the build, with
timestamps, drawn on the HTML report's timeline under the runners (and in the JSON log
as probe_sample events).

Two kinds:

- a shell command in config.yml, for a resource the whole build shares (a database
  server): run by the master, in a thread of its own, every `every` seconds; its output's
  first number is the value.

      probes:
        db_connections: {command: "psql -tAc 'select count(*) from pg_stat_activity'", every: 5}

- a `PROBES` mapping in environment.py, for what each machine has (open files, a local
  service): run by every worker, between relaying messages, so each must be quick (it
  is timed; one slower than a second is reported once). A value is a function without
  arguments that returns a number, or a mapping with `sample` (that function), `every`
  (seconds, default 5) and `unit`.

      def db_connections():
          return len(psutil.net_connections(kind="tcp"))
      PROBES = {"db_connections": db_connections,
                "tmp_files": {"sample": lambda: len(os.listdir("/tmp")), "every": 2}}
"""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from medusa.messages import ProbeSample

DEFAULT_EVERY = 5.0
SLOW_SECONDS = 1.0
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class CommandProbe:
    """One `probes:` entry of config.yml."""
    name: str
    command: str
    every: float = DEFAULT_EVERY
    unit: str = ""


def parse_value(output: str) -> float:
    found = _NUMBER.search(output)
    if found is None:
        raise ValueError(f"no number in its output: {output.strip()[:200]!r}")
    return float(found.group())


# --- config.yml commands, on the master ---------------------------------------------------------

class CommandProbes:
    """Runs the commands in a thread; `drain()` hands the samples to the master's loop."""

    def __init__(self, probes: tuple[CommandProbe, ...], cwd: str) -> None:
        self.probes = probes
        self.cwd = cwd
        self.samples: queue.SimpleQueue[ProbeSample] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.running: subprocess.Popen[str] | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.probes:
            self.thread = threading.Thread(target=self._loop, name="medusa-probes", daemon=True)
            self.thread.start()

    def drain(self) -> list[ProbeSample]:
        found = []
        while True:
            try:
                found.append(self.samples.get_nowait())
            except queue.Empty:
                return found

    def stop(self) -> None:
        self.stopping.set()
        running = self.running
        if running is not None and running.poll() is None:
            _kill_group(running)
        if self.thread is not None:
            self.thread.join(10)

    def _loop(self) -> None:
        due = {probe.name: 0.0 for probe in self.probes}
        while not self.stopping.is_set():
            now = time.monotonic()
            for probe in self.probes:
                if now >= due[probe.name] and not self.stopping.is_set():
                    due[probe.name] = now + probe.every
                    self.samples.put(self._sample(probe))
            self.stopping.wait(max(0.05, min(due.values()) - time.monotonic()))

    def _sample(self, probe: CommandProbe) -> ProbeSample:
        at = time.time()
        try:
            process = subprocess.Popen(probe.command, shell=True, cwd=self.cwd, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            self.running = process
            try:
                out, err = process.communicate(timeout=max(probe.every, 10.0))
            except subprocess.TimeoutExpired:
                _kill_group(process)
                process.communicate()
                return ProbeSample("master", probe.name, at, None, probe.unit,
                                   f"`{probe.command}` took longer than {max(probe.every, 10.0):g} s")
            finally:
                self.running = None
            if process.returncode != 0:
                return ProbeSample("master", probe.name, at, None, probe.unit,
                                   f"`{probe.command}` exited with {process.returncode}: "
                                   f"{err.strip()[-300:]}")
            return ProbeSample("master", probe.name, at, parse_value(out), probe.unit)
        except (OSError, ValueError) as exc:
            return ProbeSample("master", probe.name, at, None, probe.unit, str(exc))


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- environment.py PROBES, in each worker ------------------------------------------------------

@dataclass(frozen=True)
class FunctionProbe:
    name: str
    sample: Callable[[], Any]
    every: float = DEFAULT_EVERY
    unit: str = ""


def from_environment(module: Any, source: str) -> tuple[FunctionProbe, ...]:
    """environment.py's PROBES, checked (a mistake is the user's: ValueError)."""
    table = getattr(module, "PROBES", None) if module is not None else None
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise ValueError(f"{source}: PROBES must be a mapping of names to functions")
    found = []
    for name, entry in table.items():
        options = entry if isinstance(entry, dict) else {"sample": entry}
        unknown = set(options) - {"sample", "every", "unit"}
        if unknown or not callable(options.get("sample")):
            raise ValueError(f"{source}: PROBES[{name!r}] must be a function, or a mapping "
                             "with sample (a function), every (seconds) and unit")
        every = float(options.get("every", DEFAULT_EVERY))
        if every <= 0:
            raise ValueError(f"{source}: PROBES[{name!r}]: every must be above 0")
        found.append(FunctionProbe(str(name), options["sample"], every, str(options.get("unit", ""))))
    return tuple(found)


class FunctionProbes:
    """Samples environment.py's probes when they are due (asked at every worker tick)."""

    def __init__(self, worker: str, probes: tuple[FunctionProbe, ...]) -> None:
        self.worker = worker
        self.probes = probes
        self.due_at = {probe.name: 0.0 for probe in probes}
        self.warned: set[str] = set()

    def due(self) -> list[ProbeSample]:
        now = time.monotonic()
        samples = []
        for probe in self.probes:
            if now >= self.due_at[probe.name]:
                self.due_at[probe.name] = now + probe.every
                samples.append(self._sample(probe))
        return samples

    def _sample(self, probe: FunctionProbe) -> ProbeSample:
        at, started = time.time(), time.monotonic()
        try:
            value = float(probe.sample())
        except Exception as exc:
            return ProbeSample(self.worker, probe.name, at, None, probe.unit,
                               f"{probe.name}() raised {exc!r}")
        took = time.monotonic() - started
        if took > SLOW_SECONDS and probe.name not in self.warned:
            self.warned.add(probe.name)
            return ProbeSample(self.worker, probe.name, at, value, probe.unit,
                               f"{probe.name}() took {took:.1f} s: probes run in the worker "
                               "between messages and should take milliseconds")
        return ProbeSample(self.worker, probe.name, at, value, probe.unit)
