"""`--format html:PATH`: one self-contained HTML file, written when the build ends.

The page is html_template.html (CSS and a small script, no network) with the build's data
embedded as JSON; the script draws it when the page opens. Doing the layout in the
browser keeps the file small for a suite of thousands of tests (one short array per
passing test) and lets the page collapse, filter and search without a server.

Events carry no timestamps: a moment on the timeline is when this reporter received the
event, in seconds since BuildStarted, as the JSON log stamps its lines.

The data model (`report_data()`), version 1; later additions fill its empty fields:
- `build`: run id, start (epoch seconds), rootdir, argv, workers.
- `summary`: exit code and status, duration, counts, the console's summary line, whether
  BuildFinished arrived at all.
- `lanes`: one per runner per worker, `{worker, runner, began, startup}`; the timeline
  draws one row each.
- `bars`: one per file or file part a runner took, `{lane, file, label, start, end,
  seconds, status, counts, tests, reason}`; status is passed, failed, error, flaky,
  retried (a failure in it ran again, --retries), skipped (nothing but skips, or no
  tests), died or unfinished.
- `marks`: instants on a lane (a runner that died while idle).
- `files`: `{file, tests: [[name, outcome, seconds, lane, message, problem]]}`, every result.
- `problems`: failed, error and flaky results in full (traceback, captured output,
  earlier attempts) with `artifacts: [{name, href}]`, for the artifact shipping to fill.
- `not_run`, `notes` (runner deaths, lost workers, start-up failures), `output` (the tail
  of what workers printed outside pytest's capture).
- `probes`: resource-load series `{name, worker, unit, samples: [[seconds, value]]}` on the
  timeline's time axis; the page draws one track per series: each worker's host CPU and
  memory (HostSample), and every probe (ProbeSample: config.yml commands, environment.py
  PROBES).
- bars carry their file's process statistics (`stats`, messages.FileStats), shown in the
  detail panel; problems link their artifacts and their runner's log, with the lines of
  their run (`log`), from the report folder (report_folder.py).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections import Counter, deque
from importlib import resources

from medusa import artifacts, events, messages
from medusa.reporters import Reporter
from medusa.report_folder import worker_folder
from medusa.reporters.console import summary_text
from medusa.scheduler import file_label

TEMPLATE = "html_template.html"
DATA_MARK = "__MEDUSA_REPORT_DATA__"
PROBLEM_OUTCOMES = ("failed", "error", "flaky")
RAN_AGAIN = " (ran again)"   # counted on the bar of a run whose failure was retried
# A traceback or captured output longer than this keeps its head and tail: one test that
# prints megabytes must not make the page slow to open.
TEXT_LIMIT = 64 * 1024
OUTPUT_LIMIT = 256 * 1024
LOG_EXCERPT = 16 * 1024   # bytes of a failed test's log lines shown with it
MiB = 1024 * 1024
EXIT_STATUS = {0: "passed", 1: "tests failed", 2: "interrupted", 3: "internal error",
               4: "usage error", 5: "no tests collected"}


@dataclasses.dataclass
class Bar:
    """A file (or file part) on a runner, from FileStarted to its end."""
    lane: int
    file: str
    label: str
    start: float
    end: float | None = None
    seconds: float | None = None     # as the runner measured it (FileComplete)
    tests: int | None = None
    died: bool = False
    reason: str = ""
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    stats: dict[str, object] | None = None   # messages.FileStats

    def status(self) -> str:
        if self.died:
            return "died"
        if self.end is None:
            return "unfinished"
        for outcome in PROBLEM_OUTCOMES:
            if self.counts[outcome]:
                return outcome
        if any(outcome.endswith(RAN_AGAIN) for outcome in self.counts):
            return "retried"   # a failure here ran again; the retry's bar has the verdict
        if any(n for outcome, n in self.counts.items() if outcome != "skipped"):
            return "passed"
        return "skipped"


class HtmlReporter(Reporter):
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        # a path that cannot be written fails now (a usage error), not after the build
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"{path} is a directory")
        with tempfile.TemporaryFile(dir=os.path.dirname(self.path)):
            pass
        self.origin = time.monotonic()   # reset by BuildStarted
        self.build: dict[str, object] = {}
        self.finished: events.BuildFinished | None = None
        self.end: float | None = None
        self.lanes: dict[tuple[str, int], int] = {}   # (worker, runner) -> lane index
        self.lane_info: list[dict[str, object]] = []
        self.bars: list[Bar] = []
        self.running: dict[int, Bar] = {}             # lane -> its open bar
        self.marks: list[dict[str, object]] = []
        self.files: dict[str, list[list[object]]] = {}
        self.problems: list[dict[str, object]] = []
        self.notes: list[dict[str, str]] = []
        self.output: deque[str] = deque()
        self.output_size = 0
        self.written = False
        self.report_dir = ""
        self.problem_logs: list[tuple[str, int, tuple[int, ...]]] = []   # per problem
        self.series: dict[tuple[str, str], dict[str, object]] = {}   # (worker, name) ->
        self.probe_errors: set[tuple[str, str]] = set()

    def now(self) -> float:
        return round(time.monotonic() - self.origin, 4)

    def lane(self, worker: str, runner: int) -> int:
        key = (worker, runner)
        if key not in self.lanes:   # a runner its worker never announced: still drawn
            self.lanes[key] = len(self.lane_info)
            self.lane_info.append({"worker": worker, "runner": runner, "began": None,
                                   "startup": 0.0})
        return self.lanes[key]

    # --- events ----------------------------------------------------------------------------

    def on_build_started(self, event: events.BuildStarted) -> None:
        self.origin = time.monotonic()
        self.report_dir = event.report_dir
        self.build = {"run_id": event.run_id, "started_at": event.started_at,
                      "rootdir": event.rootdir, "workers": list(event.workers),
                      "argv": list(event.argv)}

    def on_worker_begin(self, event: messages.WorkerBegin) -> None:
        began = self.now()
        for runner in range(event.runners):
            self.lane_info[self.lane(event.worker, runner)].update(
                began=began, startup=round(event.startup_seconds, 4))
        self.notes.append({"kind": "worker", "title": f"worker {event.worker}",
                           "text": f"{event.runners} runners ({event.runners_reason}); "
                                   f"{event.framework}, {len(event.files)} files, ready in "
                                   f"{event.startup_seconds:.2f}s"})

    def on_worker_startup_failure(self, event: messages.WorkerStartupFailure) -> None:
        self.notes.append({"kind": "error", "title": f"worker {event.worker} could not start: "
                                                     f"{event.message}",
                           "text": _cut(event.detail)})

    def on_worker_lost(self, event: events.WorkerLost) -> None:
        for lane in list(self.running):
            if self.lane_info[lane]["worker"] == event.worker:
                self.close_bar(lane, died=True, reason=f"worker lost: {event.reason}")
        self.notes.append({"kind": "error", "title": f"worker {event.worker} was lost: "
                                                     f"{event.reason}",
                           "text": _cut(event.output)})

    def on_file_started(self, event: events.FileStarted) -> None:
        lane = self.lane(event.worker, event.runner)
        if lane in self.running:   # never told how the last one ended
            self.close_bar(lane, died=False, reason="no end was reported")
        label = file_label(event.file, event.part, event.parts)
        # a rerun of a file's failed tests (--retries), named as the console names it
        bar = Bar(lane, event.file, f"{label} [retry]" if event.retry else label, self.now())
        self.bars.append(bar)
        self.running[lane] = bar

    def on_result(self, event: messages.Result) -> None:
        lane = self.lane(event.worker, event.runner)
        bar = self.running.get(lane)
        if bar is not None and bar.file != event.file:
            bar = None   # a verdict reported late (a retried test's), not this run's
        if bar is not None:
            bar.counts[event.outcome] += 1
        self.count_attempts(event, bar)
        problem = -1
        if event.outcome in PROBLEM_OUTCOMES:
            problem = len(self.problems)
            self.problems.append({**_problem(event, lane), **self.attachments(event)})
        prefix = event.file + "::"
        name = event.test[len(prefix):] if event.test.startswith(prefix) else event.test
        message = "" if event.outcome == "passed" else _cut(event.message, 2000)
        self.files.setdefault(event.file, []).append(
            [name, event.outcome, round(event.duration, 4), lane, message, problem])

    def count_attempts(self, event: messages.Result, current: Bar | None) -> None:
        """With --retries, a failed run's result never arrives on its own: the master
        holds it back and reports it as an attempt of the test's final result. Each
        attempt is counted on the last earlier bar of that file on the attempt's runner,
        so the run where the test failed does not look clean."""
        credited: set[int] = set()
        for attempt in event.attempts:
            lane = self.lane(attempt.worker, attempt.runner)
            for index in range(len(self.bars) - 1, -1, -1):
                bar = self.bars[index]
                if (bar.lane == lane and bar.file == event.file and bar is not current
                        and index not in credited):
                    bar.counts[attempt.outcome + RAN_AGAIN] += 1
                    credited.add(index)
                    break

    def on_file_complete(self, event: messages.FileComplete) -> None:
        lane = self.lane(event.worker, event.runner)
        bar = self.running.get(lane)
        if bar is None or bar.file != event.file:   # no FileStarted seen: draw it anyway
            bar = Bar(lane, event.file, event.file, max(0.0, self.now() - event.duration))
            self.bars.append(bar)
            self.running[lane] = bar
        bar.seconds = round(event.duration, 4)
        bar.tests = event.tests
        if event.stats is not None:
            bar.stats = dataclasses.asdict(event.stats)
        self.close_bar(lane, died=False)

    def on_host_sample(self, event: messages.HostSample) -> None:
        at = self.now()
        self.sample(event.worker, "CPU", "%", at, event.cpu_percent)
        self.sample(event.worker, "memory", "MiB", at, round(event.memory_used / MiB, 1))

    def on_probe_sample(self, event: messages.ProbeSample) -> None:
        if event.value is not None and math.isfinite(event.value):
            self.sample(event.worker, event.name, event.unit, self.now(), event.value)
        if event.error and (event.worker, event.name) not in self.probe_errors:
            self.probe_errors.add((event.worker, event.name))   # once: it fails every time
            self.notes.append({"kind": "error", "title": f"probe {event.name} on "
                                                         f"{event.worker}: {event.error}",
                               "text": ""})

    def sample(self, worker: str, name: str, unit: str, at: float, value: float) -> None:
        series = self.series.setdefault((worker, name), {"name": name, "worker": worker,
                                                         "unit": unit, "samples": []})
        series["samples"].append([at, value])  # type: ignore[union-attr]

    def on_runner_died(self, event: messages.RunnerDied) -> None:
        lane = self.lane(event.worker, event.runner)
        what = f"runner {event.worker}/{event.runner} died ({event.reason})"
        if lane in self.running:
            self.close_bar(lane, died=True, reason=event.reason)
        else:
            self.marks.append({"lane": lane, "at": self.now(), "kind": "died", "text": what})
        where = f" while running {event.test or event.file}" if event.file else " while idle"
        self.notes.append({"kind": "error", "title": what + where, "text": _cut(event.stacks)})

    def on_stop_build(self, event: messages.StopBuild) -> None:
        self.notes.append({"kind": "error", "title": f"build stopped by {event.worker}/"
                                                     f"{event.runner}: {event.reason}",
                           "text": ""})

    def on_output(self, event: events.Output) -> None:
        self.output.append(event.text)
        self.output_size += len(event.text)
        while self.output_size > OUTPUT_LIMIT and len(self.output) > 1:
            self.output_size -= len(self.output.popleft())

    def on_build_finished(self, event: events.BuildFinished) -> None:
        self.finished = event
        self.end = self.now()

    def attachments(self, result: messages.Result) -> dict[str, object]:
        """Links from a problem to its artifacts and its runner's log, relative to this
        page (the report folder is beside it, or anywhere); the log lines of its run are
        copied in, as the folder may not travel with the page."""
        here = os.path.dirname(self.path)
        self.problem_logs.append((result.worker, result.runner, result.log))
        return {"artifacts": [{"name": self.artifact_name(result.test, path),
                               "href": _href(path, here)} for path in result.artifacts]}

    def artifact_name(self, test: str, path: str) -> str:
        """`.../artifacts/tests/t.py/test_x[@2]/dom/page.html` -> `dom/page.html`."""
        folder = os.path.join(self.report_dir, "artifacts", artifacts.test_path(test))
        if not path.startswith(folder):
            return os.path.basename(path)
        rest = path[len(folder):]
        return rest.split(os.sep, 1)[1] if os.sep in rest else os.path.basename(path)

    def log_link(self, worker: str, runner: int, span: tuple[int, ...]) -> dict[str, object] | None:
        """Read when the page is written: the log's last bytes may come after the Result."""
        if not self.report_dir:
            return None
        log = os.path.join(self.report_dir, "logs", worker_folder(worker), f"{runner}.log")
        if not os.path.exists(log):
            return None
        return {"href": _href(log, os.path.dirname(self.path)), "name": f"{worker}/{runner}.log",
                "start": span[0] if span else None, "end": span[1] if span else None,
                "text": _log_excerpt(log, span)}

    def close_bar(self, lane: int, died: bool, reason: str = "") -> None:
        bar = self.running.pop(lane)
        bar.end = self.now()
        bar.died = died
        bar.reason = reason

    # --- the file --------------------------------------------------------------------------

    def close(self) -> None:
        if self.written:
            return
        self.written = True
        write_report(self.path, self.report_data())

    def report_data(self) -> dict[str, object]:
        end = self.end if self.end is not None else self.now()
        bars = []
        for bar in self.bars:
            status = bar.status()   # before the end: a bar still open is unfinished
            bars.append({"lane": bar.lane, "file": bar.file, "label": bar.label,
                         "start": bar.start, "end": bar.end if bar.end is not None else end,
                         "seconds": bar.seconds, "tests": bar.tests, "status": status,
                         "reason": bar.reason, "counts": dict(bar.counts), "stats": bar.stats})
        for problem, (worker, runner, span) in zip(self.problems, self.problem_logs):
            problem["log"] = self.log_link(worker, runner, span)
        return {
            "version": 1,
            "build": self.build,
            "summary": self.summary(end),
            "lanes": self.lane_info,
            "bars": bars,
            "marks": self.marks,
            "files": [{"file": file, "tests": tests} for file, tests in self.files.items()],
            "problems": self.problems,
            "not_run": [{"file": n.file, "reason": n.reason}
                        for n in (self.finished.not_run if self.finished else ())],
            "notes": self.notes,
            "output": _cut("".join(self.output), OUTPUT_LIMIT),
            "probes": list(self.series.values()),
        }

    def summary(self, end: float) -> dict[str, object]:
        event = self.finished
        if event is None:   # the build ended without saying how: say what we know
            counts = Counter(test[1] for tests in self.files.values() for test in tests)
            return {"finished": False, "exit_code": None, "status": "did not finish",
                    "duration": end, "counts": sorted(counts.items()), "message": "",
                    "line": "the build did not finish"}
        return {"finished": True, "exit_code": event.exit_code,
                "status": EXIT_STATUS.get(event.exit_code, f"exit code {event.exit_code}"),
                "duration": round(event.duration, 4), "counts": [list(c) for c in event.counts],
                "message": event.message, "line": summary_text(event)}


def write_report(path: str, data: dict[str, object]) -> None:
    """Fill the template and replace `path` in one step: a reader (or a build that is
    killed meanwhile) never sees half a report."""
    template = resources.files("medusa.reporters").joinpath(TEMPLATE).read_text("utf-8")
    page = template.replace(DATA_MARK, embed_json(data), 1)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".medusa-report-", suffix=".html", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            # a lone surrogate (undecodable bytes a test printed) cannot be UTF-8: "?"
            out.write(page.encode("utf-8", errors="replace"))
        os.chmod(temporary, 0o644)   # mkstemp makes it private; a report is for reading
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def embed_json(data: object) -> str:
    """JSON that is safe inside <script>: no "</script>", "<!--" or "]]>" can appear, since
    every <, > and & is escaped; JSON.parse reads the escapes back as the characters."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _problem(result: messages.Result, lane: int) -> dict[str, object]:
    return {"test": result.test, "file": result.file, "outcome": result.outcome,
            "when": result.when, "duration": round(result.duration, 4), "lane": lane,
            "runner": f"{result.worker}/{result.runner}", "message": _cut(result.message, 2000),
            "longrepr": _cut(result.longrepr), "path": result.path, "line": result.line,
            "sections": [[title, _cut(text)] for title, text in result.sections if text.strip()],
            "attempts": [{"outcome": a.outcome, "when": a.when, "duration": round(a.duration, 4),
                          "message": _cut(a.message, 2000), "longrepr": _cut(a.longrepr),
                          "runner": f"{a.worker}/{a.runner}"} for a in result.attempts],
            "artifacts": []}


def _href(path: str, here: str) -> str:
    """A path as a link from the page's folder (URL-quoted, "/"-separated)."""
    from urllib.parse import quote
    relative = os.path.relpath(os.path.abspath(path), here)
    # the file name's own bytes, so that a name that is not UTF-8 still links to its file
    return quote(os.fsencode(relative.replace(os.sep, "/")))


def _log_excerpt(path: str, span: tuple[int, ...]) -> str:
    """The bytes a test's run wrote to its runner's log (its head and tail if long)."""
    if not span or span[1] <= span[0]:
        return ""
    try:
        with open(path, "rb") as log:
            log.seek(span[0])
            data = log.read(span[1] - span[0])
    except OSError:
        return ""
    return _cut(data.decode("utf-8", errors="replace"), LOG_EXCERPT)


def _cut(text: str, limit: int = TEXT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]}\n[... {len(text) - 2 * keep} characters cut ...]\n{text[-keep:]}"
