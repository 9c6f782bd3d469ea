"""--format github: workflow-command annotations, read by a parser of the documented
syntax (integrations_support.py), and the job summary, rendered by cmark-gfm (GitHub's
own Markdown renderer, through cmarkgfm) and read back from its HTML."""
from __future__ import annotations

import io
from html.parser import HTMLParser
from pathlib import Path

from helpers import run_medusa, write_project
from integrations_support import KILLER, PROJECT, RETRIED, need, workflow_commands
from medusa import events, messages
from medusa.integrations.github.commands import Annotation
from medusa.integrations.github.reporter import GitHubReporter
from medusa.integrations.github.summary import LIMIT_BYTES

R = messages.Result


def _render(markdown: str) -> str:
    cmarkgfm = need("cmarkgfm")
    from cmarkgfm.cmark import Options
    # GitHub keeps <details>, <summary> and <code> in a summary: so does UNSAFE here
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


class _Html(HTMLParser):
    """The rendered summary: the table cells, the <summary> lines and the code blocks."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.summaries: list[str] = []
        self.blocks: list[str] = []
        self.items: list[str] = []
        self.headings: list[str] = []
        self._into: list[str] | None = None
        self._tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self._tags.append(tag)
        target = {"td": self.cells, "summary": self.summaries, "pre": self.blocks,
                  "li": self.items, "h2": self.headings, "h3": self.headings}.get(tag)
        if target is not None:
            target.append("")
            self._into = target

    def handle_endtag(self, tag):
        if tag in ("td", "summary", "pre", "li", "h2", "h3"):
            self._into = None

    def handle_data(self, data):
        if self._into is not None:
            self._into[-1] += data


def _reporter(environ: dict[str, str]) -> tuple[GitHubReporter, io.StringIO]:
    out = io.StringIO()
    return GitHubReporter(out, environ), out


def test_annotations_survive_any_text():
    nasty = "100% sure: a, b\r\nline two :: ::error::not a command"
    line = Annotation("error", nasty, title=f"FAILED t.py::test[{nasty}]", file="a,b:c.py",
                      line=7).command()
    [command] = workflow_commands(line)
    assert command.name == "error" and command.message == nasty
    assert command.properties == {"file": "a,b:c.py", "line": "7",
                                  "title": f"FAILED t.py::test[{nasty}]"}


def test_failures_are_annotated_on_the_line_that_failed():
    reporter, out = _reporter({"GITHUB_WORKSPACE": "/ws"})
    reporter.handle(messages.WorkerBegin("local", 2, "", "/ws/project", "pytest", (), 0.1))
    longrepr = ("def test_x():\n>       helper()\n\ntests/test_a.py:12: \n"
                "_ _ _\n\n    def helper():\n>       assert 0\nE       assert 0\n\n"
                "src/lib.py:40: AssertionError")
    reporter.handle(R("local", 0, "tests/test_a.py", "tests/test_a.py::test_x", "failed", "call",
                      0.1, "AssertionError: assert 0", longrepr, path="tests/test_a.py", line=10))
    reporter.handle(R("local", 0, "tests/test_a.py", "tests/test_a.py::test_y", "error", "setup",
                      0.1, "RuntimeError: db", "no location here", path="tests/test_a.py", line=20))
    [first, second] = workflow_commands(out.getvalue())
    # the test file's own frame, not the library's; the path as the repository names it
    assert first.properties == {"file": "project/tests/test_a.py", "line": "12",
                                "title": "FAILED tests/test_a.py::test_x"}
    assert first.message.startswith("AssertionError: assert 0\n\ndef test_x():")
    assert second.properties["line"] == "20"          # no frame: the test's own line
    assert second.properties["title"] == "ERROR tests/test_a.py::test_y"


def test_ten_annotations_of_a_kind_and_the_tenth_says_how_many_more():
    reporter, out = _reporter({})
    for index in range(25):
        reporter.handle(R("local", 0, "t.py", f"t.py::test_{index}", "failed", "call", 0.1,
                          f"AssertionError: {index}", path="t.py", line=index + 1))
    attempt = messages.Attempt("failed", "call", 0.1, "AssertionError: once", "", "local", 0)
    for index in range(10):   # exactly ten flaky ones: all ten annotated
        reporter.handle(R("local", 0, "t.py", f"t.py::test_flaky_{index}", "flaky", "call", 0.1,
                          attempts=(attempt,), path="t.py", line=1))
    reporter.handle(events.BuildFinished(1, 1.0, (("failed", 25), ("flaky", 10)), ()))
    commands = workflow_commands(out.getvalue())
    errors = [c for c in commands if c.name == "error"]
    warnings = [c for c in commands if c.name == "warning"]
    assert len(errors) == 10 and len(warnings) == 10
    assert [e.properties["title"] for e in errors[:9]] == [
        f"FAILED t.py::test_{i}" for i in range(9)]
    assert errors[9].properties["title"] == "medusa: 16 more failures"
    assert "16 more failures" in errors[9].message
    assert warnings[9].properties["title"] == "FLAKY t.py::test_flaky_9"


def test_files_not_run_and_lost_workers_are_errors_too():
    reporter, out = _reporter({})
    reporter.handle(events.WorkerLost("remote-1", "silent for 60 s", "last words"))
    reporter.handle(events.NotRun("tests/test_gone.py", "its runner died"))
    reporter.handle(events.BuildFinished(1, 1.0, (), (events.NotRun("tests/test_gone.py",
                                                                     "its runner died"),)))
    errors = workflow_commands(out.getvalue())
    assert [e.properties.get("title") for e in errors] == [
        "medusa: worker remote-1 was lost: silent for 60 s", "NOT RUN tests/test_gone.py"]
    assert errors[1].properties["file"] == "tests/test_gone.py"


def _summary_build(reporter: GitHubReporter, failures: int = 2, traceback: str = "") -> None:
    odd = "tests/test_a.py::test_odd[<b>|`x`|*y*]"
    reporter.handle(R("local", 0, "tests/test_a.py", odd, "failed", "call", 0.1,
                      "AssertionError: <not html>", traceback or "```\nE   a fence inside\n```"))
    for index in range(1, failures):
        reporter.handle(R("local", 0, "tests/test_a.py", f"tests/test_a.py::test_{index}",
                          "failed", "call", 0.1, "AssertionError", traceback or "E  boom"))
    attempt = messages.Attempt("failed", "call", 0.1, "AssertionError: first", "", "local", 0)
    reporter.handle(R("local", 0, "tests/test_a.py", "tests/test_a.py::test_flaky", "flaky",
                      "call", 0.1, attempts=(attempt,)))
    reporter.handle(events.BuildFinished(
        1, 2.5, (("failed", failures), ("passed", 7), ("flaky", 1)),
        (events.NotRun("tests/test_gone.py", "its runner died"),)))


def test_the_job_summary_as_github_renders_it(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("# from an earlier command of the step\n\n", encoding="utf-8")
    reporter, _ = _reporter({"GITHUB_STEP_SUMMARY": str(summary)})
    _summary_build(reporter)
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# from an earlier command of the step")   # appended, not replaced
    page = _Html(_render(text))
    assert page.headings[0].startswith("❌ medusa: 2 failed, 7 passed, 1 flaky, 1 files not run")
    assert page.cells == ["failed", "2", "passed", "7", "flaky", "1", "files not run", "1"]
    assert page.summaries[0] == "FAILED tests/test_a.py::test_odd[<b>|`x`|*y*]: AssertionError: <not html>"
    assert page.blocks[0] == "```\nE   a fence inside\n```\n"   # the fence inside stays inside
    assert "tests/test_gone.py: its runner died" in page.items
    assert any(i.startswith("tests/test_a.py::test_flaky: failed 1× before it passed") for i in page.items)


def test_the_job_summary_fits_what_github_takes(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("x" * 100_000 + "\n\n", encoding="utf-8")
    reporter, _ = _reporter({"GITHUB_STEP_SUMMARY": str(summary)})
    _summary_build(reporter, failures=600, traceback="E   " + "long line " * 300)
    size = summary.stat().st_size
    assert LIMIT_BYTES - 8192 < size <= LIMIT_BYTES, size   # full, and not over
    page = _Html(_render(summary.read_text(encoding="utf-8")))
    assert page.cells[:2] == ["failed", "600"]
    shown = len(page.summaries)
    assert 100 < shown < 600
    assert f"... and {600 - shown} more failures: see the log." in summary.read_text("utf-8")
    assert "tests/test_gone.py: its runner died" in page.items   # not run: listed first


def test_without_a_summary_file_there_is_no_summary(tmp_path):
    reporter, out = _reporter({})
    _summary_build(reporter)
    assert workflow_commands(out.getvalue())
    assert list(tmp_path.iterdir()) == []
    # one that cannot be written is a warning, not a broken build
    reporter, out = _reporter({"GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "such" / "dir")})
    _summary_build(reporter)
    [warning] = [c for c in workflow_commands(out.getvalue()) if c.name == "warning"][-1:]
    assert warning.message.startswith("medusa could not write the job summary")


# --- a real build ---------------------------------------------------------------------------


def _line_of(project: Path, file: str, text: str) -> int:
    lines = (project / file).read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def test_a_real_build_as_github_reads_it(tmp_path):
    workspace = tmp_path / "repo"                 # the repository; the project is a folder in it
    project = write_project(workspace / "proj", {**PROJECT, **RETRIED, **KILLER})
    summary = tmp_path / "summary.md"
    run = run_medusa(project, "--format", "github", "--retries", "1",
                     env={"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_WORKSPACE": str(workspace)})
    assert run.exit_code == 1, run
    commands = workflow_commands(run.stdout)
    errors = {c.properties["title"]: c for c in commands if c.name == "error"}
    problems = [r for r in run.results if r["outcome"] in ("failed", "error")]
    assert len(errors) == min(10, len(problems) + len(run.finished["not_run"])), run

    failed = errors["FAILED tests/test_outcomes.py::test_fails"]
    assert failed.properties["file"] == "proj/tests/test_outcomes.py"
    assert int(failed.properties["line"]) == _line_of(project, "tests/test_outcomes.py",
                                                      "assert 1 == 2")
    assert failed.message.startswith("AssertionError: the numbers differ")
    odd = errors["FAILED tests/test_odd_names.py::test_odd[a|b]"]
    assert int(odd.properties["line"]) == _line_of(project, "tests/test_odd_names.py",
                                                   "assert value")
    assert "NOT RUN tests/test_kills_runner.py" in errors
    [flaky] = [c for c in commands if c.name == "warning"]
    assert flaky.properties["title"] == "FLAKY tests/test_retried.py::test_flaky"
    assert "first run fails" in flaky.message

    page = _Html(_render(summary.read_text(encoding="utf-8")))
    assert page.headings[0].startswith("❌ medusa: ")
    shown = "\n".join(page.summaries)
    for result in problems:
        assert result["test"].replace("\n", "\\n") in shown
    assert any(i.startswith("tests/test_kills_runner.py: ") for i in page.items)
    assert any("the numbers differ" in block for block in page.blocks)
