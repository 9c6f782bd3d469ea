"""Artifacts (medusa/artifacts.py): files a test writes in $MEDUSA_ARTIFACTS_DIR reach the
master's report folder byte for byte, from local and ssh workers, and are named in the
test's result, the JSON log, the JUnit XML (Jenkins' [[ATTACHMENT|path]]) and the HTML
report."""
from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

from helpers import run_medusa, write_project
from test_html_report import browser  # noqa: F401  (a fixture)
from test_ssh import _run, _ssh_worker

LIMIT = 2_000_000


def _data(name: str, size: int) -> bytes:
    return random.Random(name).randbytes(size)


# what each test leaves: name in its folder -> (seed, size); the test makes the same bytes
LEFT = {
    "test_screenshot": {"shot.png": ("shot", 1_500_000), "dom/page.html": ("page", 2000),
                        "empty.txt": ("empty", 0)},
    "test_passes_with_a_note": {"note.txt": ("note", 10)},
    "test_over_the_limit[small]": {"small.txt": ("small", 100)},
    "test_slash[a/b]": {"x.bin": ("x", 5)},
}
PROJECT = {
    "tests/conftest.py": """
        import os
        import random

        def leave(name, seed, size):
            path = os.path.join(os.environ["MEDUSA_ARTIFACTS_DIR"], name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as out:
                out.write(random.Random(seed).randbytes(size))
    """,
    "tests/test_art.py": f"""
        import os
        import pytest
        from conftest import leave

        def test_screenshot():
            leave("shot.png", "shot", 1_500_000)
            leave("dom/page.html", "page", 2000)
            leave("empty.txt", "empty", 0)
            print("the page was", "blank")
            assert False, "the button is missing"

        def test_passes_with_a_note():
            leave("note.txt", "note", 10)

        def test_nothing_left():
            # every test starts with an empty folder of its own
            assert os.listdir(os.environ["MEDUSA_ARTIFACTS_DIR"]) == []

        @pytest.mark.parametrize("size", ["small"])
        def test_over_the_limit(size):
            leave("huge.bin", "huge", {LIMIT + 1})
            leave("small.txt", "small", 100)

        @pytest.mark.parametrize("where", ["a/b"])
        def test_slash(where):
            leave("x.bin", "x", 5)
    """,
    "medusa/config.yml": f"artifact_limit: {LIMIT}\nhistory: false\n",
}


def _folder(test: str) -> str:
    return {"test_screenshot": "test_screenshot", "test_passes_with_a_note": "test_passes_with_a_note",
            "test_over_the_limit[small]": "test_over_the_limit[small]",
            "test_slash[a/b]": "test_slash[a_b]"}[test]


def _check(events: list[dict], project: Path) -> None:
    results = {e["test"].split("::")[1]: e for e in events if e["event"] == "result"}
    assert set(results) == {*LEFT, "test_nothing_left"}, results
    assert results["test_nothing_left"]["artifacts"] == []
    for test, files in LEFT.items():
        folder = f"medusa-report/artifacts/tests/test_art.py/{_folder(test)}"
        assert sorted(results[test]["artifacts"]) == sorted(f"{folder}/{n}" for n in files), test
        for name, (seed, size) in files.items():
            assert (project / folder / name).read_bytes() == _data(seed, size), (test, name)
    # over the limit: not shipped, and the runner's log says so
    assert not list((project / "medusa-report/artifacts").rglob("huge.bin"))
    logs = b"".join(p.read_bytes() for p in (project / "medusa-report/logs").rglob("*.log"))
    assert b"artifact huge.bin of tests/test_art.py::test_over_the_limit[small] not shipped" in logs


def test_artifacts_arrive_whole_and_are_listed_everywhere(tmp_path, browser):
    project = write_project(tmp_path / "p", PROJECT)
    junit, html = tmp_path / "out" / "junit.xml", tmp_path / "out" / "report.html"
    run = run_medusa(project, "--format", f"junit:{junit}", "--format", f"html:{html}")
    assert run.exit_code == 1, run
    _check(run.events, project)

    # JUnit XML: an [[ATTACHMENT|absolute path]] line per file, in the test's system-out
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    out = cases["test_screenshot"].findtext("system-out")
    folder = project / "medusa-report/artifacts/tests/test_art.py/test_screenshot"
    lines = out.splitlines()
    for name in LEFT["test_screenshot"]:
        assert f"[[ATTACHMENT|{folder / name}]]" in lines, out
    assert "the page was blank" in out   # the captured output stays
    assert "ATTACHMENT" not in ET.tostring(cases["test_nothing_left"]).decode()

    # HTML: the failure links its files, relative to the page, and shows its runner's log
    browser.open(html)
    assert browser.errors() == []
    links = browser.js("""[...document.querySelectorAll('#problems .problem .artifacts a')]
        .map(a => [a.textContent, a.getAttribute('href')])""")
    assert sorted(name for name, _ in links) == ["dom/page.html", "empty.txt", "shot.png"]
    for name, href in links:
        target = (html.parent / unquote(href)).resolve()
        assert target.read_bytes() == _data(*LEFT["test_screenshot"][
            name]), href
    log_link = browser.js("document.querySelector('#problems .runner-log a').getAttribute('href')")
    assert (html.parent / unquote(log_link)).resolve().is_file()


def test_artifacts_of_an_ssh_worker_arrive_whole(tmp_path, sshd):
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "p", {
        **PROJECT, "medusa/config.yml": PROJECT["medusa/config.yml"] + "workers:\n"
                                        + _ssh_worker(sshd, remote)})
    done, events = _run(project, sshd)
    assert done.returncode == 1, done
    assert {e["worker"] for e in events if e["event"] == "result"} == {"127.0.0.1"}
    _check(events, project)
