"""Which CI server runs this build, and what it gets without being asked.

Each CI server says who it is in an environment variable it sets for every build step.
On a CI server medusa adds that server's report formats (a format the user names
himself wins over the default of the same name) and keeps the console plain: one line
per file, no status line redrawn in place, which a CI log would keep as garbage.

Buildbot sets no variable of its own: its MedusaTest step (buildbot/step.py) runs
`medusa --ci buildbot`. `--ci NAME` (or $MEDUSA_CI) names the CI server outright, and
`--ci none` turns all of this off.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, Mapping

# Where JUnit XML goes on Jenkins and Bamboo unless --format junit:PATH says otherwise:
# the folder Bamboo's JUnit parser task searches by default (**/test-reports/*.xml),
# relative to the folder medusa runs in, which the Jenkinsfile's `junit` step names.
DEFAULT_JUNIT_PATH = "test-reports/medusa.xml"


@dataclass(frozen=True)
class Platform:
    name: str                    # as --ci takes it
    title: str                   # as people write it
    variable: str                # the environment variable that gives it away ("" if none)
    formats: tuple[tuple[str, str | None], ...]   # (format name, path) added by default


PLATFORMS = (
    Platform("teamcity", "TeamCity", "TEAMCITY_VERSION", (("teamcity", None),)),
    Platform("github", "GitHub Actions", "GITHUB_ACTIONS", (("github", None),)),
    Platform("bamboo", "Bamboo", "bamboo_buildKey", (("junit", DEFAULT_JUNIT_PATH),)),
    Platform("jenkins", "Jenkins", "JENKINS_URL", (("junit", DEFAULT_JUNIT_PATH),)),
    Platform("buildbot", "Buildbot", "", (("buildbot", None),)),
)
CHOICES = ("auto", "none", *(p.name for p in PLATFORMS))


@dataclass(frozen=True)
class Detection:
    platform: Platform | None
    how: str                     # why we think so, for the user: "TEAMCITY_VERSION is set"


def detect(choice: str, environ: Mapping[str, str]) -> Detection:
    """`choice` is --ci's value: auto (look at the environment), none, or a platform."""
    if choice == "none":
        return Detection(None, "--ci none")
    if choice != "auto":
        return Detection(by_name(choice), f"--ci {choice}")
    # The first that matches: a TeamCity or GitHub runner started by a Jenkins job (or
    # the other way round) reports to the one that started medusa most directly.
    for platform in PLATFORMS:
        if platform.variable and environ.get(platform.variable):
            if platform.name == "github" and environ[platform.variable] != "true":
                continue
            return Detection(platform, f"{platform.variable} is set")
    return Detection(None, "no CI server found in the environment")


def by_name(name: str) -> Platform:
    for platform in PLATFORMS:
        if platform.name == name:
            return platform
    raise ValueError(f"unknown CI {name!r} (known: {', '.join(CHOICES)})")


def choose_formats(platform: Platform | None,
                   given: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """The formats the user gave, then the platform's defaults that he did not give."""
    if platform is None:
        return list(given)
    names = {name for name, _ in given}
    return list(given) + [f for f in platform.formats if f[0] not in names]


def describe(detection: Detection, added: list[tuple[str, str | None]]) -> str:
    """One line for the top of the console output: what medusa picked, and why."""
    if detection.platform is None:
        return ""
    picked = ", ".join(f"--format {n}:{p}" if p else f"--format {n}" for n, p in added)
    return (f"medusa: on {detection.platform.title} ({detection.how}): plain console"
            + (f", {picked}" if picked else "") + "; --ci none turns this off")


class PlainStream:
    """stdout as the console reporter should see it on CI: not a terminal, so that it
    writes plain lines, even where the CI server gives the build a pseudo-terminal
    (Buildbot's usePTY, `docker run -t`).

    What the console shows of the tests (their output, their tracebacks) is the tests'
    text: a `##teamcity[...]` or a line starting `::error::` in it would be taken by the
    CI server as a command (a forged test result, a masked secret). A zero-width space
    breaks each such command; the reports meant for the CI server do not pass here."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._line_start = True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._stream.write(_defused(text, self._line_start))
        if text:
            self._line_start = text.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> object:   # encoding, fileno, ...
        return getattr(self._stream, name)


ZERO_WIDTH_SPACE = "\u200b"


def _defused(text: str, at_line_start: bool) -> str:
    text = text.replace("##teamcity[", "#" + ZERO_WIDTH_SPACE + "#teamcity[")
    text = text.replace("##[", "#" + ZERO_WIDTH_SPACE + "#[")   # GitHub's older form
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if (index or at_line_start) and line.lstrip().startswith("::"):
            lines[index] = ZERO_WIDTH_SPACE + line
    return "\n".join(lines)


def choice_from_environment(environ: Mapping[str, str] = os.environ) -> str:
    """--ci's default: $MEDUSA_CI, for a CI server medusa cannot see (a container that
    is not handed the CI's variables), else auto."""
    value = environ.get("MEDUSA_CI", "").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"MEDUSA_CI={value!r}: expected one of {', '.join(CHOICES)}")
    return value
