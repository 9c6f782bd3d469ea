"""The command driver: a real Go module run with the real `go test -json`, a Maven project
(offline, when this machine's Maven can build one), commands that write JUnit XML, and
commands judged by their exit code alone."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import check_consistent, run_medusa, write_project

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medusa.drivers.auto import detect  # noqa: E402
from medusa.drivers.command_driver import CommandSettings, render, unit_name  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_go() -> str:
    """Go must be there in CI (.ci/run installs it); elsewhere its absence skips."""
    go = shutil.which("go")
    if go is None:
        if IN_CI:
            pytest.fail("go is not installed, and CI must run the Go tests (.ci/run installs "
                        "golang-go)")
        pytest.skip("go is not installed")
    return go


@pytest.fixture
def go_env(monkeypatch, tmp_path):
    need_go()
    # no network and no toolchain download, whatever the machine's Go would like to do
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOTOOLCHAIN", "local")
    if not os.environ.get("HOME"):
        monkeypatch.setenv("GOCACHE", str(tmp_path / "go-cache"))


GO_MODULE = {
    "go.mod": "module example.com/shop\n\ngo 1.18\n",
    "calc/calc.go": """
        package calc

        func Add(a, b int) int { return a + b }
    """,
    "calc/calc_test.go": """
        package calc

        import "testing"

        func TestAdd(t *testing.T) {
        	if Add(2, 2) != 4 {
        		t.Fatal("2 + 2 is not 4")
        	}
        }

        func TestFails(t *testing.T) {
        	t.Logf("about to fail")
        	t.Errorf("Add(2, 2) = %d, want 5", Add(2, 2))
        }

        func TestTable(t *testing.T) {
        	for _, c := range []struct{ a, b, want int }{{1, 1, 2}, {2, 2, 5}} {
        		c := c
        		t.Run("sum", func(t *testing.T) {
        			if got := Add(c.a, c.b); got != c.want {
        				t.Fatalf("Add(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
        			}
        		})
        	}
        }
    """,
    "inventory/inventory_test.go": """
        package inventory

        import (
        	"os"
        	"testing"
        )

        func TestNeedsADatabase(t *testing.T) {
        	if os.Getenv("SHOP_DB") == "" {
        		t.Skip("no database here")
        	}
        }

        func TestCounts(t *testing.T) {}

        func TestRunnerVariables(t *testing.T) {
        	if os.Getenv("MEDUSA_RUNNER") == "" && os.Getenv("SERIAL") == "" {
        		t.Fatal("not run by a medusa runner")
        	}
        }
    """,
    "broken/broken_test.go": """
        package broken

        import "testing"

        func TestNeverBuilds(t *testing.T) { undefinedThing() }
    """,
    "docs/doc.go": "package docs\n",
    "setup/setup_test.go": """
        package setup

        import (
        	"os"
        	"testing"
        )

        func TestPasses(t *testing.T) {}

        func TestMain(m *testing.M) {
        	m.Run()
        	os.Exit(3) // everything passed, yet the package fails
        }
    """,
}


def go_serial(project: Path) -> list[tuple[str, str]]:
    """What `go test -json ./...` itself reports: each test's pass/fail/skip, and a package
    that failed with no failing test of its own (a build error, TestMain) as an error."""
    done = subprocess.run(["go", "test", "-json", "./..."], cwd=project, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "SERIAL": "1"})
    outcomes, failing_packages, failed = [], set(), []
    words = {"pass": "passed", "fail": "failed", "skip": "skipped"}
    for line in done.stdout.splitlines():
        if line.startswith("FAIL\t") and line.endswith("[build failed]"):
            failed.append(line.split("\t")[1].split()[0])
            continue
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event["Action"] not in words:
            continue
        if event.get("Test"):
            outcomes.append((f"{event['Package']}::{event['Test']}", words[event["Action"]]))
            if event["Action"] == "fail":
                failing_packages.add(event["Package"])
        elif event["Action"] == "fail":
            failed.append(event["Package"])
    outcomes += [(package, "error") for package in failed if package not in failing_packages]
    return sorted(outcomes)


@pytest.mark.parametrize("runners", [2, 3])
def test_a_go_module_as_go_test_reports_it(go_env, tmp_path, runners):
    """No option at all: a go.mod means `go list ./...` for the units and
    `go test -json {unit}` for each."""
    project = write_project(tmp_path / "shop", GO_MODULE)
    serial = go_serial(project)
    run = run_medusa(project, "--no-history", runners=runners, timeout=600)
    assert run.outcomes == serial, f"{run}\n{serial}"
    assert run.exit_code == 1, run
    check_consistent(run)
    outcomes = dict(run.outcomes)
    assert outcomes["example.com/shop/calc::TestTable/sum#01"] == "failed"
    assert outcomes["example.com/shop/inventory::TestNeedsADatabase"] == "skipped"
    assert outcomes["example.com/shop/inventory::TestRunnerVariables"] == "passed"
    assert outcomes["example.com/shop/broken"] == "error"
    assert outcomes["example.com/shop/setup"] == "error"
    assert not any(test.startswith("example.com/shop/docs") for test in outcomes)
    fails = run.result("example.com/shop/calc::TestFails")
    assert fails["message"] == "calc_test.go:12: about to fail"
    assert "Add(2, 2) = 4, want 5" in fails["longrepr"]
    assert run.result("example.com/shop/inventory::TestNeedsADatabase")["message"] == \
        "inventory_test.go:10: no database here"
    broken = run.result("example.com/shop/broken")
    assert broken["when"] == "collect" and "undefined: undefinedThing" in broken["message"]
    assert run.result("example.com/shop/setup")["when"] == "teardown"
    begin = next(e for e in run.events if e["event"] == "worker_begin")
    assert "command: go test -json {unit}" in begin["framework"]
    assert "(auto: go.mod)" in begin["framework"]
    assert sorted(begin["files"]) == [f"example.com/shop/{p}" for p in
                                      ("broken", "calc", "docs", "inventory", "setup")]


def test_go_packages_given_as_paths(go_env, tmp_path):
    project = write_project(tmp_path / "shop", GO_MODULE)
    run = run_medusa(project, "--driver", "command", "--command", "go test -json {unit}",
                     "--no-history", "./calc", "./inventory", timeout=600)
    assert [t for t, _ in run.outcomes] == [
        "example.com/shop/calc::TestAdd", "example.com/shop/calc::TestFails",
        "example.com/shop/calc::TestTable", "example.com/shop/calc::TestTable/sum",
        "example.com/shop/calc::TestTable/sum#01",
        "example.com/shop/inventory::TestCounts",
        "example.com/shop/inventory::TestNeedsADatabase",
        "example.com/shop/inventory::TestRunnerVariables"], run
    assert {e["file"] for e in run.results} == {"./calc", "./inventory"}
    # framework arguments go to every command: -run selects in each package
    only = run_medusa(project, "--no-history", "./calc", "./inventory",
                      pytest_args=("-run", "TestAdd|TestCounts"), timeout=600)
    assert only.outcomes == [("example.com/shop/calc::TestAdd", "passed"),
                             ("example.com/shop/inventory::TestCounts", "passed")], only
    assert only.exit_code == 0


def test_a_hung_go_test_times_out_and_its_package_is_not_run_again_for_ever(go_env, tmp_path):
    """--timeout stops the Go test that hangs; the package's rerun (for its other tests)
    reports none of what was reported before, and when it hangs again (the command cannot
    leave the test out) the package is an error and not run a third time. Nothing that
    the commands started outlives the build (conftest checks)."""
    project = write_project(tmp_path / "shop", {
        "go.mod": GO_MODULE["go.mod"],
        "hang/hang_test.go": """
            package hang

            import (
            	"testing"
            	"time"
            )

            func TestFirst(t *testing.T) {}

            func TestHangs(t *testing.T) { time.Sleep(300 * time.Second) }

            func TestLast(t *testing.T) {}
        """,
    })
    subprocess.run(["go", "test", "-count=1", "-run", "TestFirst", "./hang"], cwd=project,
                   capture_output=True, timeout=600)   # compiled before the clock runs
    run = run_medusa(project, "--timeout", "3", "--no-history", "./hang", timeout=120)
    assert run.exit_code == 1, run
    assert run.outcomes == [("./hang", "error"),
                            ("example.com/shop/hang::TestFirst", "passed"),
                            ("example.com/shop/hang::TestHangs", "error")], run
    assert "timed out after 3 s" in run.result("example.com/shop/hang::TestHangs")["message"]


# --- JUnit XML -----------------------------------------------------------------------------

# A test runner of our own that writes JUnit XML, as Maven's surefire or a jest reporter
# would: suites/NAME.suite lists "test outcome [message]" lines; it writes
# reports/TEST-NAME.xml and exits 1 when a test failed.
SUITE_RUNNER = """
    import sys
    import time
    from pathlib import Path
    from xml.sax.saxutils import quoteattr

    suite = Path(sys.argv[1])
    lines = [line.split(" ", 2) for line in suite.read_text().splitlines() if line.strip()]
    if lines and lines[0][0] == "crash":
        sys.exit("the runner crashed before writing its report")
    cases, failed = [], False
    for name, outcome, *message in lines:
        text = quoteattr(message[0] if message else "")
        inner = {"failed": f"<failure message={text}>trace of {name}</failure>",
                 "error": f"<error message={text} type='IOError'>trace of {name}</error>",
                 "skipped": f"<skipped message={text}/>", "passed": ""}[outcome]
        out = f"<system-out>output of {name}</system-out>"
        cases.append(f"<testcase classname='{suite.stem}' name='{name}' time='0.5'>"
                     f"{inner}{out}</testcase>")
        failed = failed or outcome in ("failed", "error")
    Path("reports").mkdir(exist_ok=True)
    Path(f"reports/TEST-{suite.stem}.xml").write_text(
        "<?xml version='1.0'?><testsuites><testsuite name='" + suite.stem + "'>"
        + "".join(cases) + "</testsuite></testsuites>")
    sys.exit(1 if failed or "exit" in suite.stem else 0)
"""


def junit_project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", {
        "run_suite.py": SUITE_RUNNER,
        "suites/alpha.suite": """
            adds passed
            subtracts failed expected 1, got 2
            divides error disk on fire
            multiplies skipped not on Tuesdays
        """,
        "suites/beta.suite": "works passed\n",
        "suites/crashes.suite": "crash now\n",
        "suites/exits.suite": "passes_then_exits passed\n",
    })


def test_results_from_the_junit_xml_a_command_writes(tmp_path):
    project = junit_project(tmp_path)
    # a report left by an earlier run is not this run's news
    (project / "reports").mkdir()
    (project / "reports" / "TEST-crashes.xml").write_text(
        "<testsuite><testcase classname='crashes' name='stale'/></testsuite>")
    os.utime(project / "reports" / "TEST-crashes.xml", (time.time() - 3600,) * 2)
    run = run_medusa(project, "--units", "suites/*.suite",
                     "--command", f"{sys.executable} run_suite.py {{unit}}",
                     "--junit-xml", "reports/TEST-{name}.xml", "--no-history")
    assert run.exit_code == 1, run
    check_consistent(run)
    assert run.outcomes == [
        ("suites/alpha.suite::alpha::adds", "passed"),
        ("suites/alpha.suite::alpha::divides", "error"),
        ("suites/alpha.suite::alpha::multiplies", "skipped"),
        ("suites/alpha.suite::alpha::subtracts", "failed"),
        ("suites/beta.suite::beta::works", "passed"),
        ("suites/crashes.suite", "error"),
        ("suites/exits.suite", "error"),
        ("suites/exits.suite::exits::passes_then_exits", "passed"),
    ], run
    subtracts = run.result("suites/alpha.suite::alpha::subtracts")
    assert subtracts["message"] == "expected 1, got 2"
    assert subtracts["longrepr"] == "trace of subtracts"
    assert subtracts["duration"] == 0.5
    assert {"title": "Captured stdout", "text": "output of subtracts"} in subtracts["sections"]
    assert run.result("suites/alpha.suite::alpha::multiplies")["message"] == "not on Tuesdays"
    crashed = run.result("suites/crashes.suite")
    assert crashed["message"].startswith("no JUnit XML written at ")
    assert "the runner crashed before writing its report" in crashed["longrepr"]
    assert run.result("suites/exits.suite")["message"].startswith(
        "exit code 1 with no failing test")


def test_exit_codes_alone_and_units_from_a_command(tmp_path):
    project = write_project(tmp_path / "p", {
        "checks/lint.sh": "echo linting; exit 0\n",
        "checks/types.sh": "echo 'types: 3 problems'; echo 'src/a.py:1: bad'; exit 2\n",
        "checks/format.sh": "exit 0\n",
        "list-checks": "ls checks | sed 's|^|checks/|'\n",
    })
    run = run_medusa(project, "--units-command", "sh list-checks", "--command", "sh {unit}",
                     "--no-history", runners=3)
    assert run.exit_code == 1, run
    check_consistent(run)
    assert run.outcomes == [("checks/format.sh", "passed"), ("checks/lint.sh", "passed"),
                            ("checks/types.sh", "failed")], run
    types = run.result("checks/types.sh")
    assert types["message"] == "exit code 2: src/a.py:1: bad"
    assert "types: 3 problems" in types["longrepr"]


def test_what_a_command_leaves_running_ends_with_it(tmp_path):
    """A command that exits while something it started still holds its output: the unit
    ends then, and so does what it left behind."""
    project = write_project(tmp_path / "p", {
        "checks/daemon.sh": "sleep 300 &\necho started a background job\nexit 0\n",
    })
    started = time.monotonic()
    run = run_medusa(project, "--units", "checks/*.sh", "--command", "sh {unit}",
                     "--no-history", timeout=60)
    assert time.monotonic() - started < 30
    assert run.exit_code == 0 and run.outcomes == [("checks/daemon.sh", "passed")], run


def test_a_unit_past_the_timeout_leaves_nothing_running(tmp_path):
    """--timeout kills the runner, and its command with it (no process outlives the build:
    conftest checks)."""
    project = write_project(tmp_path / "p", {
        "checks/quick.sh": "exit 0\n",
        "checks/hangs.sh": "sleep 120\n",
    })
    started = time.monotonic()
    run = run_medusa(project, "--units", "checks/*.sh", "--command", "sh {unit}",
                     "--timeout", "1", "--no-history")
    assert time.monotonic() - started < 60
    assert run.exit_code == 1, run
    assert dict(run.outcomes) == {"checks/quick.sh": "passed", "checks/hangs.sh": "error"}
    assert "timed out" in run.result("checks/hangs.sh")["message"]


@pytest.mark.parametrize("args, message", [
    (("--driver", "command"), "the command driver needs a command"),
    (("--command", "sh {unit}"), "the command driver needs its units"),
    (("--units-command", "exit 3", "--command", "sh {unit}"),
     "the units command failed with exit code 3"),
    (("--driver", "pytest", "--command", "sh {unit}"),
     "are settings of the command driver, not of --driver pytest"),
], ids=["no-command", "no-units", "units-command-fails", "wrong-driver"])
def test_what_the_command_driver_refuses(tmp_path, args, message):
    project = write_project(tmp_path / "p", {"checks/a.sh": "exit 0\n"})
    run = run_medusa(project, *args)
    assert run.exit_code == 4, run
    assert message in run.output


# --- Maven ---------------------------------------------------------------------------------

POM = """
    <project xmlns="http://maven.apache.org/POM/4.0.0">
      <modelVersion>4.0.0</modelVersion>
      <groupId>com.example</groupId>
      <artifactId>shop</artifactId>
      <version>1.0</version>
      <properties>
        <maven.compiler.release>17</maven.compiler.release>
        <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
      </properties>
      <dependencies>
        <dependency>
          <groupId>org.junit.jupiter</groupId>
          <artifactId>junit-jupiter</artifactId>
          <version>5.10.2</version>
          <scope>test</scope>
        </dependency>
      </dependencies>
      <build>
        <plugins>
          <plugin>
            <groupId>org.apache.maven.plugins</groupId>
            <artifactId>maven-surefire-plugin</artifactId>
            <version>3.2.5</version>
          </plugin>
          <plugin>
            <groupId>org.apache.maven.plugins</groupId>
            <artifactId>maven-compiler-plugin</artifactId>
            <version>3.11.0</version>
          </plugin>
          <plugin>
            <groupId>org.apache.maven.plugins</groupId>
            <artifactId>maven-resources-plugin</artifactId>
            <version>3.3.1</version>
          </plugin>
        </plugins>
      </build>
    </project>
"""


def test_a_maven_project_through_surefire_reports(tmp_path):
    """Each test class a unit, run by surefire; its results from surefire's JUnit XML.
    Compiled once first, as a pre-initializer would: runners must not compile at once."""
    if shutil.which("mvn") is None or shutil.which("javac") is None:
        pytest.skip("Maven or a JDK is not installed")
    project = write_project(tmp_path / "shop", {
        "pom.xml": POM,
        "src/test/java/com/example/CartTest.java": """
            package com.example;

            import org.junit.jupiter.api.*;
            import static org.junit.jupiter.api.Assertions.*;

            class CartTest {
                @Test void addsItems() { assertEquals(4, 2 + 2); }
                @Test void totalIsWrong() { assertEquals(5, 2 + 2, "total"); }
                @Disabled("not today") @Test void checksOut() {}
            }
        """,
        "src/test/java/com/example/PriceTest.java": """
            package com.example;

            import org.junit.jupiter.api.*;
            import static org.junit.jupiter.api.Assertions.*;

            class PriceTest {
                @Test void rounds() { assertEquals(3, Math.round(2.6)); }
                @Test void explodes() { throw new IllegalStateException("no price"); }
            }
        """,
    })
    compiled = subprocess.run(["mvn", "-o", "-q", "test-compile"], cwd=project,
                              capture_output=True, text=True, timeout=600)
    if compiled.returncode != 0:
        pytest.skip("this machine's Maven cannot build offline:\n" + compiled.stdout[-2000:])
    run = run_medusa(project, "--units", "src/test/java/**/*Test.java",
                     "--command", "mvn -o -q surefire:test -Dtest={name} "
                                  "-Dsurefire.failIfNoSpecifiedTests=false",
                     "--junit-xml", "target/surefire-reports/TEST-*.{name}.xml",
                     "--no-history", timeout=600)
    assert run.exit_code == 1, run
    check_consistent(run)
    cart, price = "src/test/java/com/example/CartTest.java", "src/test/java/com/example/PriceTest.java"
    assert run.outcomes == [
        (f"{cart}::com.example.CartTest::addsItems", "passed"),
        (f"{cart}::com.example.CartTest::checksOut", "skipped"),
        (f"{cart}::com.example.CartTest::totalIsWrong", "failed"),
        (f"{price}::com.example.PriceTest::explodes", "error"),
        (f"{price}::com.example.PriceTest::rounds", "passed"),
    ], run
    assert "expected: <5> but was: <4>" in run.result(
        f"{cart}::com.example.CartTest::totalIsWrong")["message"]


# --- small parts -----------------------------------------------------------------------------

def test_templates_and_unit_names():
    assert unit_name("src/test/java/com/x/CalcTest.java") == "CalcTest"
    assert unit_name("example.com/shop/calc") == "calc"
    assert unit_name("./calc/") == "calc"
    assert render("go test -json {unit}", "./my pkg", ("-run", "A B"), quote=True) == \
        "go test -json './my pkg' -run 'A B'"
    assert render("x {args} {unit}", "u", ("-v",), quote=True) == "x -v u"
    assert render("reports/TEST-{name}.xml", "a/b.suite", (), quote=False) == "reports/TEST-b.xml"
    assert render("awk '{print $1}' {unit}", "f", (), quote=True) == "awk '{print $1}' f"
    settings = CommandSettings(command="c {unit}", units=("a/*", "b/*"), junit_xml="r.xml")
    assert CommandSettings.from_options(settings.to_options()) == settings


def test_auto_detection(tmp_path):
    def project(files: dict[str, str]) -> Path:
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        return write_project(root, files)

    assert detect(project({"pytest.ini": "[pytest]\n"})).driver == "pytest"
    assert detect(project({"tests/conftest.py": ""})).driver == "pytest"
    assert detect(project({"features/a.feature": "Feature: a\n"})).driver == "behave"
    assert detect(project({"go.mod": "module x\n"})).driver == "command"
    assert detect(project({"tests/test_x.py": ""})).driver == "pytest"   # it is installed
    assert detect(project({"spec/a.feature": ""}), ("spec/a.feature",)).driver == "behave"
    assert detect(project({"x.txt": ""}), (), (("command", "c"),)).driver == "command"
    assert Counter(detect(project({})).reason.split(","))   # always says why
