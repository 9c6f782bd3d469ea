"""`--format html:PATH`: the report's data from event sequences, and the page itself opened
in a real headless Chromium.

Chromium is driven over the DevTools protocol (a websocket on 127.0.0.1) with the small
client below: it reports every console message, uncaught exception and network request
as an event, can ask the page questions in JavaScript and take screenshots, and needs no
package beside Chromium itself. `--dump-dom` cannot tell a console error from other log
lines reliably, and selenium would add chromedriver, a second process to keep in step
with the browser's version, for nothing we need.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from helpers import (
    run_medusa,
    start_medusa,
    started,
    stop_medusa,
    wait_for,
    write_project,
)
from medusa import events, messages
from medusa.reporters import FormatError, parse_format
from medusa.reporters.html import HtmlReporter, embed_json, write_report

MARKUP = "</script><script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">"
UNICODE = "ünïcödé ✓ 日本語 \u2028 end"


# --- event sequences -----------------------------------------------------------------------

def _report(tmp_path: Path, sequence: list[object], name: str = "report.html") -> tuple[Path, dict]:
    path = tmp_path / "out" / name
    reporter = HtmlReporter(str(path))
    for event in sequence:
        reporter.handle(event)
    reporter.close()
    return path, _data(path)


def _data(path: Path) -> dict:
    """The JSON the page draws from, read back as the browser's JSON.parse would."""
    page = path.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="medusa-data">(.*?)</script>', page, re.S)
    assert found, page[:2000]
    return json.loads(found.group(1))


def _begin(runners: int = 2, worker: str = "local") -> list[object]:
    return [events.BuildStarted("run1", time.time(), "/project", (worker,), ("--local", str(runners))),
            messages.WorkerBegin(worker, runners, f"--local {runners}", "/project", "pytest 9",
                                 ("tests/test_a.py", "tests/test_b.py"), 0.25)]


def _result(file: str, name: str, outcome: str = "passed", runner: int = 0, **more) -> messages.Result:
    return messages.Result(worker="local", runner=runner, file=file, test=f"{file}::{name}",
                           outcome=outcome, when="call", duration=0.01, **more)


def _finished(code: int = 1, not_run=(), counts=(("passed", 1),)) -> events.BuildFinished:
    return events.BuildFinished(code, 1.5, counts, tuple(not_run))


def test_format_is_registered_and_needs_a_path():
    assert parse_format("html:out/report.html") == ("html", "out/report.html")
    with pytest.raises(FormatError):
        parse_format("html")


def test_a_path_that_cannot_be_written_fails_before_the_build(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        HtmlReporter(str(tmp_path / "file" / "report.html"))
    with pytest.raises(OSError):
        HtmlReporter(str(tmp_path))


def test_untrusted_text_cannot_end_the_script_or_become_markup(tmp_path):
    name = f"test_x[{MARKUP}]"
    path, data = _report(tmp_path, [
        *_begin(),
        events.FileStarted("local", 0, "tests/test_a.py"),
        _result("tests/test_a.py", name, "failed", message=f"{MARKUP} {UNICODE}",
                longrepr=f"<!-- {MARKUP} ]]> &amp; {UNICODE}",
                sections=(("Captured stdout call", f"{MARKUP}\n{UNICODE}\udcff"),)),
        messages.FileComplete("local", 0, "tests/test_a.py", 0.5, 1),
        events.Output("local", f"printed {MARKUP}"),
        _finished(),
    ])
    page = path.read_text(encoding="utf-8")
    # the template's two script elements end, and nothing else does
    assert page.lower().count("</script") == 2, page
    assert page.count("<!--") == 1   # the template's own comment
    assert "<img" not in page
    problem = data["problems"][0]
    assert problem["test"] == f"tests/test_a.py::{name}"
    assert problem["message"] == f"{MARKUP} {UNICODE}"
    assert problem["longrepr"] == f"<!-- {MARKUP} ]]> &amp; {UNICODE}"
    # a lone surrogate (bytes that were not UTF-8) is replaced, not a reason to fail
    assert problem["sections"] == [["Captured stdout call", f"{MARKUP}\n{UNICODE}?"]]
    assert "日本語" in page   # written as UTF-8, not as escapes
    assert data["output"] == f"printed {MARKUP}"


def test_embedded_json_round_trips_what_browsers_read_specially():
    text = "</SCRIPT> <!-- --> <\u2028\u2029> & \x00"
    embedded = embed_json({"t": text})
    assert not re.search(r"[<>&\u2028\u2029]", embedded)
    assert json.loads(embedded) == {"t": text}


def test_a_bar_per_file_part_and_a_lane_per_runner(tmp_path):
    _, data = _report(tmp_path, [
        *_begin(runners=3),
        events.FileStarted("local", 0, "tests/test_a.py", part=1, parts=2),
        events.FileStarted("local", 1, "tests/test_a.py", part=2, parts=2),
        _result("tests/test_a.py", "test_1", runner=0),
        _result("tests/test_a.py", "test_2", "skipped", runner=1),
        messages.FileComplete("local", 1, "tests/test_a.py", 0.2, 1),
        _result("tests/test_a.py", "test_3", "failed", runner=0),
        messages.FileComplete("local", 0, "tests/test_a.py", 0.3, 2),
        events.FileStarted("local", 1, "tests/test_b.py"),
        messages.FileComplete("local", 1, "tests/test_b.py", 0.1, 0),
        _finished(),
    ])
    # runner 2 ran nothing: it still has its lane, empty, so a reader sees it idled
    assert [(lane["worker"], lane["runner"]) for lane in data["lanes"]] == [
        ("local", 0), ("local", 1), ("local", 2)]
    assert all(lane["startup"] == 0.25 and lane["began"] is not None for lane in data["lanes"])
    summary = [(b["lane"], b["label"], b["status"], b["seconds"], b["counts"]) for b in data["bars"]]
    assert summary == [
        (0, "tests/test_a.py [part 1/2]", "failed", 0.3, {"passed": 1, "failed": 1}),
        (1, "tests/test_a.py [part 2/2]", "skipped", 0.2, {"skipped": 1}),
        (1, "tests/test_b.py", "skipped", 0.1, {}),
    ]
    for bar in data["bars"]:
        assert 0 <= bar["start"] <= bar["end"]
    assert data["summary"]["line"] == "1 passed in 1.50s"
    assert data["summary"]["status"] == "tests failed" and data["summary"]["exit_code"] == 1
    assert data["probes"] == []   # room for the resource probes, drawn on the same axis


def test_a_runner_that_dies_ends_its_bar_and_its_file_goes_on_elsewhere(tmp_path):
    crash = "tests/test_a.py"
    _, data = _report(tmp_path, [
        *_begin(),
        events.FileStarted("local", 0, crash),
        _result(crash, "test_before"),
        # the master reports the test the runner was running as an error, then the death
        _result(crash, "test_crash", "error", message="runner local/0 died (exit code 3)"),
        messages.RunnerDied("local", 0, crash, "exit code 3", test=f"{crash}::test_crash",
                            done=(f"{crash}::test_before",)),
        events.FileStarted("local", 1, crash),
        _result(crash, "test_after", runner=1),
        messages.FileComplete("local", 1, crash, 0.1, 1),
        messages.RunnerDied("local", 1, "", "killed by signal 9 (SIGKILL)"),   # while idle
        _finished(),
    ])
    died, rest = data["bars"]
    assert (died["lane"], died["status"], died["reason"]) == (0, "died", "exit code 3")
    assert died["seconds"] is None and died["end"] >= died["start"]
    assert (rest["lane"], rest["status"]) == (1, "passed")
    assert [(m["lane"], m["kind"]) for m in data["marks"]] == [(1, "died")]
    titles = [note["title"] for note in data["notes"]]
    assert "runner local/0 died (exit code 3) while running tests/test_a.py::test_crash" in titles
    assert "runner local/1 died (killed by signal 9 (SIGKILL)) while idle" in titles


def test_files_not_run_are_listed_with_their_reason(tmp_path):
    _, data = _report(tmp_path, [
        *_begin(),
        _finished(not_run=[events.NotRun("tests/test_b.py", "stopped after 1 failures (--maxfail=1)")]),
    ])
    assert data["not_run"] == [{"file": "tests/test_b.py",
                                "reason": "stopped after 1 failures (--maxfail=1)"}]


def test_a_flaky_test_keeps_its_failed_attempts(tmp_path):
    """With --retries the master holds a failed test's result back and runs it again, as
    a unit of its own; the verdict arrives with the retry's end."""
    attempt = messages.Attempt("failed", "call", 0.2, "assert 0", "E   assert 0", "local", 0)
    _, data = _report(tmp_path, [
        *_begin(),
        events.FileStarted("local", 0, "tests/test_a.py"),
        _result("tests/test_a.py", "test_always", runner=0),
        messages.FileComplete("local", 0, "tests/test_a.py", 0.4, 2),
        events.FileStarted("local", 1, "tests/test_a.py", retry=True),
        _result("tests/test_a.py", "test_sometimes", "flaky", runner=1, attempts=(attempt,)),
        messages.FileComplete("local", 1, "tests/test_a.py", 0.2, 1),
        _finished(0, counts=(("passed", 1), ("flaky", 1))),
    ])
    (problem,) = data["problems"]
    assert problem["outcome"] == "flaky"
    assert problem["attempts"] == [{"outcome": "failed", "when": "call", "duration": 0.2,
                                    "message": "assert 0", "longrepr": "E   assert 0",
                                    "runner": "local/0"}]
    # the first run shows that its failure was run again; the retry has the verdict
    assert [(b["lane"], b["label"], b["status"], b["counts"]) for b in data["bars"]] == [
        (0, "tests/test_a.py", "retried", {"passed": 1, "failed (ran again)": 1}),
        (1, "tests/test_a.py [retry]", "flaky", {"flaky": 1})]
    tests = data["files"][0]["tests"]
    assert [t[:2] for t in tests] == [["test_always", "passed"], ["test_sometimes", "flaky"]]
    assert tests[1][5] == 0   # links to its problem entry


def test_an_interrupted_build_still_gets_its_report(tmp_path):
    """No FileComplete, no BuildFinished (a build killed midway, or our own crash): the
    report is still written, and says what was running when it ended."""
    path, data = _report(tmp_path, [
        *_begin(),
        events.FileStarted("local", 0, "tests/test_a.py"),
        _result("tests/test_a.py", "test_1"),
        messages.FileComplete("local", 0, "tests/test_a.py", 0.1, 1),
        events.FileStarted("local", 0, "tests/test_b.py"),
        events.FileStarted("local", 1, "tests/test_a.py"),
        events.WorkerLost("local", "its process exited", "Segmentation fault"),
    ])
    statuses = [(b["label"], b["status"]) for b in data["bars"]]
    assert statuses == [("tests/test_a.py", "passed"), ("tests/test_b.py", "died"),
                        ("tests/test_a.py", "died")]
    assert data["summary"]["finished"] is False
    assert data["summary"]["exit_code"] is None
    assert data["summary"]["counts"] == [["passed", 1]]

    _, data = _report(tmp_path, [*_begin(), events.FileStarted("local", 0, "tests/test_a.py")],
                      name="cut.html")
    assert [b["status"] for b in data["bars"]] == ["unfinished"]
    # the report is replaced in one step: no temporary file is left beside it
    assert sorted(p.name for p in path.parent.iterdir()) == ["cut.html", "report.html"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_huge_traceback_is_cut_in_the_middle(tmp_path):
    longrepr = "first line\n" + "x" * 500_000 + "\nlast line"
    _, data = _report(tmp_path, [*_begin(), events.FileStarted("local", 0, "tests/test_a.py"),
                                 _result("tests/test_a.py", "test_1", "failed", longrepr=longrepr),
                                 _finished()])
    kept = data["problems"][0]["longrepr"]
    assert kept.startswith("first line\n") and kept.endswith("\nlast line")
    assert "characters cut" in kept and len(kept) < 70_000


# --- headless Chromium -----------------------------------------------------------------------

def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("Chromium is needed for the HTML report's tests (apt-get install chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


class WebSocket:
    """The client side of RFC 6455, as much as the DevTools protocol needs: text frames
    out (masked), text frames in (maybe fragmented), pings answered."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._chunk()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"websocket refused: {head!r}")

    def _chunk(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("the browser closed the connection")
        return chunk

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += self._chunk()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        header = bytes([0x80 | opcode])
        if size < 126:
            header += bytes([0x80 | size])
        elif size < 1 << 16:
            header += bytes([0x80 | 126]) + size.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def recv(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(self._read(2), "big")
            elif size == 127:
                size = int.from_bytes(self._read(8), "big")
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(size)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise EOFError("the browser closed the connection")
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            message += payload
            if first & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class Browser:
    """One headless Chromium with one page; every console message, uncaught exception and
    network request of that page is kept in `events`."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1000) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "DevToolsActivePort").unlink(missing_ok=True)   # a stale port of an earlier run
        self.log = open(profile.parent / "chromium.log", "wb")
        self.process = subprocess.Popen(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             f"--user-data-dir={profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, start_new_session=True)
        self.events: list[dict] = []
        self.next_id = 0
        self.socket: WebSocket | None = None
        try:
            port = self._port(profile / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
                targets = json.load(reply)
            page = next(t for t in targets if t["type"] == "page")
            self.socket = WebSocket(page["webSocketDebuggerUrl"])
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _port(self, path: Path, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Chromium exited with {self.process.returncode}: {self._log()}")
            if path.exists():
                lines = path.read_text().split()
                if lines:
                    return int(lines[0])
            time.sleep(0.05)
        raise TimeoutError(f"Chromium did not open its DevTools port: {self._log()}")

    def _log(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def call(self, method: str, **params: object) -> dict:
        assert self.socket is not None
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            if "method" in reply:
                self.events.append(reply)

    def open(self, path: Path, timeout: float = 30.0) -> float:
        """Load the report and wait until its script has drawn it; returns the seconds that took."""
        started = time.monotonic()
        self.call("Page.navigate", url=path.resolve().as_uri())
        while time.monotonic() - started < timeout:
            if self.js("document.body && document.body.getAttribute('data-ready')") == "1":
                return time.monotonic() - started
            if self.errors():
                break
            time.sleep(0.05)
        raise AssertionError(f"the report did not draw itself: {self.errors()}")

    def js(self, expression: str) -> object:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and error log entries so far."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {params['args']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                found.append(f"log: {params['entry']}")
        return found

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path, width: int = 1400) -> None:
        height = int(self.js("document.documentElement.scrollHeight"))
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        shot = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        """End Chromium and every process it started, even when it does not listen."""
        if self.socket is not None:
            self.socket.close()
        try:
            family = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            family = []
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        for child in family:
            try:
                child.kill()
            except psutil.Error:
                pass
        try:   # helpers it started later (its own session: nothing else is in it)
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        psutil.wait_procs(family, timeout=5)
        self.log.close()


@pytest.fixture
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium") / "profile"
    opened = Browser(profile)
    try:
        yield opened
    finally:
        opened.close()


def _only_the_report_was_loaded(browser: Browser, path: Path) -> None:
    assert browser.requests() == [path.resolve().as_uri()], browser.requests()


E2E_PROJECT = {
    "pytest.ini": "[pytest]\ntestpaths = tests\n",
    **{f"tests/test_fast_{n}.py": f"""
        import time
        import pytest

        @pytest.mark.parametrize("n", range(5))
        def test_many(n):
            time.sleep(0.02 * {n % 3})
    """ for n in range(5)},
    "tests/test_slow.py": """
        import time

        def test_slow():
            time.sleep(0.8)
    """,
    "tests/test_fails.py": """
        def test_passes():
            pass

        def test_numbers():
            print("printed </script><script>window.pwned = 1</script> ünïcödé ✓")
            assert 1 + 1 == 3, "the numbers differ <b>bold</b>"
    """,
    "tests/test_setup_error.py": """
        import pytest

        @pytest.fixture
        def database():
            raise RuntimeError("database is down")

        def test_query(database):
            pass
    """,
    "tests/test_skips.py": """
        import pytest

        @pytest.mark.skip(reason="not here")
        def test_skipped():
            pass
    """,
    "tests/test_flaky.py": """
        from pathlib import Path

        def test_fails_once():
            marker = Path(__file__).with_name("ran-once")
            if not marker.exists():
                marker.write_text("")
                assert False, "first run"
    """,
    "tests/test_crash.py": """
        import os
        import time

        def test_before():
            time.sleep(0.2)

        def test_crash():
            os._exit(3)

        def test_after():
            pass
    """,
}


def test_a_real_build_opens_in_chromium_with_a_lane_per_runner(tmp_path, browser):
    project = write_project(tmp_path / "p", E2E_PROJECT)
    report = tmp_path / "reports" / "build.html"
    run = run_medusa(project, "--format", f"html:{report}", "--no-history", "--retries", "1",
                     runners=3, timeout=120)
    assert run.exit_code == 1, run
    browser.open(report)
    assert browser.errors() == []
    _only_the_report_was_loaded(browser, report)
    assert browser.js("window.pwned") is None

    # one lane per runner the worker started, each named after it
    (begin,) = [e for e in run.events if e["event"] == "worker_begin"]
    assert begin["runners"] == 3
    assert browser.js("document.querySelectorAll('#tl-lanes .lane').length") == 3
    assert browser.js("[...document.querySelectorAll('.lane-label .mono')].map(e => e.textContent)") == [
        "local/0", "local/1", "local/2"]
    # a bar for every file a runner took (the crash file twice: the dead runner's bar and
    # the rest of the file on another runner), on the lane of the runner that ran it
    started = [(e["file"], f"local/{e['runner_index']}") for e in run.events if e["event"] == "file_started"]
    drawn = browser.js("""[...document.querySelectorAll('#tl-lanes .bar')].map(b => [
        b.dataset.file, b.closest('.lane').dataset.lane])""")
    assert sorted((file, f"local/{lane}") for file, lane in drawn) == sorted(started)
    assert {file for file, _ in drawn} == set(begin["files"])
    statuses = browser.js("""Object.fromEntries([...document.querySelectorAll('#tl-lanes .bar')]
        .map(b => [b.dataset.file + ' ' + b.className, 1]))""")
    assert "tests/test_fails.py bar o-failed" in statuses
    assert "tests/test_setup_error.py bar o-error" in statuses
    assert "tests/test_skips.py bar o-skipped" in statuses
    assert "tests/test_crash.py bar o-died" in statuses
    assert "tests/test_slow.py bar o-passed" in statuses
    # --retries: a run whose failure ran again, and the retry with the verdict
    assert "tests/test_flaky.py bar o-retried" in statuses
    assert "tests/test_flaky.py bar o-flaky" in statuses

    # the failures, with their tracebacks and captured output, as text
    names = browser.js("[...document.querySelectorAll('#problems .problem')].map(p => p.querySelector('.ptest').textContent)")
    assert set(names) == {"tests/test_crash.py::test_crash", "tests/test_fails.py::test_numbers",
                          "tests/test_flaky.py::test_fails_once", "tests/test_setup_error.py::test_query"}
    assert len(names) == len(run.results) - len([r for r in run.results if r["outcome"] in (
        "passed", "skipped")])
    text = browser.js("document.getElementById('problems').innerText")
    assert "the numbers differ <b>bold</b>" in text
    assert "printed </script><script>window.pwned = 1</script> ünïcödé ✓" in text
    assert "RuntimeError: database is down" in text
    summary = browser.js("document.getElementById('summary-line').textContent")
    assert summary == "=== " + run.stdout.strip().splitlines()[-1].strip("= ") + " ==="

    # hovering a bar tells file, runner, duration and counts; a click keeps it below
    tip = browser.js("""(() => {
        const bar = document.querySelector('.bar.o-retried[data-file="tests/test_fails.py"]');
        const box = bar.getBoundingClientRect();
        bar.dispatchEvent(new MouseEvent('mouseover', {bubbles: true, clientX: box.x + 1, clientY: box.y + 1}));
        bar.click();
        return [document.getElementById('tip').innerText, document.getElementById('bar-detail').innerText];
    })()""")
    assert "tests/test_fails.py" in tip[0] and "1 passed, 1 failed (ran again)" in tip[0], tip
    assert "local/" in tip[1] and "2 collected" in tip[1], tip
    assert browser.errors() == []


def test_an_interrupted_build_writes_its_report(tmp_path, browser):
    project = write_project(tmp_path / "p", {
        "tests/test_quick.py": "def test_quick():\n    pass\n",
        "tests/test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(60)\n",
    })
    events_path, report = tmp_path / "events.jsonl", tmp_path / "report.html"
    process = start_medusa(project, events_path, "--format", f"html:{report}", "--no-history")
    try:
        wait_for(events_path, started("tests/test_slow.py"), process,
                 what="the slow file's start")
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    finally:
        stop_medusa(process)
    assert process.returncode == 2
    data = _data(report)
    assert data["summary"]["status"] == "interrupted" and data["summary"]["exit_code"] == 2
    slow = [b for b in data["bars"] if b["file"] == "tests/test_slow.py"]
    assert [b["status"] for b in slow] == ["unfinished"]
    assert {n["file"] for n in data["not_run"]} >= {"tests/test_slow.py"}
    browser.open(report)
    assert browser.errors() == []
    assert browser.js("document.querySelectorAll('.bar.o-unfinished').length") == 1
    assert "interrupted" in browser.js("document.getElementById('status').textContent")


def test_escaping_holds_in_the_browser(tmp_path, browser):
    name = f"test_x[{MARKUP}]"
    path, _ = _report(tmp_path, [
        *_begin(),
        events.FileStarted("local", 0, f"tests/{MARKUP}.py"),
        _result(f"tests/{MARKUP}.py", name, "failed", message=MARKUP, longrepr=f"{MARKUP}\n{UNICODE}",
                sections=(("Captured stdout call", MARKUP),)),
        messages.FileComplete("local", 0, f"tests/{MARKUP}.py", 0.5, 1),
        messages.RunnerDied("local", 1, "", MARKUP),
        _finished(not_run=[events.NotRun(f"tests/{MARKUP}.py", MARKUP)]),
    ])
    browser.open(path)
    assert browser.errors() == []
    assert browser.js("window.pwned") is None
    assert browser.js("document.querySelectorAll('img').length") == 0
    assert browser.js("document.querySelectorAll('script').length") == 2
    assert browser.js("document.querySelector('#problems .ptest').textContent") == f"tests/{MARKUP}.py::{name}"
    assert UNICODE.replace("\u2028", "") in browser.js("document.querySelector('#problems pre').textContent").replace("\u2028", "")
    assert MARKUP in browser.js("document.getElementById('not-run').textContent")
    _only_the_report_was_loaded(browser, path)


def test_a_suite_of_5000_tests_opens_fast_and_searches(tmp_path, browser):
    sequence: list[object] = [*_begin(runners=4)]
    for index in range(500):
        file, runner = f"tests/pkg{index % 7}/test_mod{index}.py", index % 4
        sequence.append(events.FileStarted("local", runner, file))
        for number in range(10):
            outcome = "failed" if (index, number) in {(i, 3) for i in range(0, 500, 5)} else "passed"
            sequence.append(_result(file, f"test_{number}", outcome, runner=runner,
                                    longrepr="Traceback\n" + "  frame\n" * 40 if outcome == "failed" else ""))
        sequence.append(messages.FileComplete("local", runner, file, 0.05, 10))
    sequence.append(_finished(counts=(("failed", 100), ("passed", 4900))))
    path, _ = _report(tmp_path, sequence)
    assert path.stat().st_size < 1_500_000
    seconds = browser.open(path)
    assert browser.errors() == []
    assert seconds < 10, f"the report took {seconds:.1f}s to draw"
    assert browser.js("document.querySelectorAll('#tl-lanes .lane').length") == 4
    assert browser.js("document.querySelectorAll('#tl-lanes .bar').length") == 500
    assert browser.js("document.querySelectorAll('#problems .problem').length") == 100
    # every file is listed collapsed, failing ones first: no test row is built yet
    assert browser.js("document.querySelectorAll('#files details.file').length") == 500
    assert browser.js("document.querySelectorAll('#files details.file[open], #files tr').length") == 0
    assert browser.js("document.querySelector('#files .fname').textContent") == "tests/pkg0/test_mod0.py"
    # searching the failures
    browser.js("""(() => {
        const box = document.getElementById('problem-search');
        box.value = 'test_mod105.py';
        box.dispatchEvent(new Event('input'));
    })()""")
    time.sleep(0.5)   # the search waits for typing to pause
    shown = browser.js("[...document.querySelectorAll('#problems .problem')].filter(p => p.style.display !== 'none').length")
    assert shown == 1
    # searching all tests opens the files that match, with the matching tests only
    browser.js("""(() => {
        const box = document.getElementById('test-search');
        box.value = 'test_mod499.py::test_';
        box.dispatchEvent(new Event('input'));
    })()""")
    time.sleep(0.5)
    rows = browser.js("[...document.querySelectorAll('#files tr')].map(r => r.cells[1].textContent)")
    assert sorted(rows) == [f"test_{n}" for n in range(10)]
    assert browser.errors() == []


def test_probe_series_are_drawn_on_the_time_axis(tmp_path, browser):
    """The resource probes are not made yet; the page already draws what they will record."""
    reporter = HtmlReporter(str(tmp_path / "unused.html"))
    for event in [*_begin(), events.FileStarted("local", 0, "tests/test_a.py"),
                  messages.FileComplete("local", 0, "tests/test_a.py", 1.0, 0), _finished()]:
        reporter.handle(event)
    data = reporter.report_data()
    data["probes"] = [{"name": "db connections", "worker": "local", "unit": "",
                       "samples": [[0.0, 1], [0.5, 7], [1.0, 3]]}]
    path = tmp_path / "probes.html"
    write_report(str(path), data)
    browser.open(path)
    assert browser.errors() == []
    points = browser.js("document.querySelector('.probe[data-probe=\"db connections\"] polyline').getAttribute('points')")
    assert len(points.split()) == 3
