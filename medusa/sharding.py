"""Static sharding (`--shard K/N`): the build's files cut into N parts of about equal time,
each CI job running one, for fleets whose jobs share neither a network nor a queue.

Policy only. Every job computes the same cut from the same inputs, the files found and
the timing history, with no word between them: the files, longest first, each go to the
part with the least time so far (the longest processing time rule, as pytest-split's
least_duration). A file with no timing counts as the average of the timed ones. The cut is
the same on every job only if every job has the same history: `digest` names it, and each
job prints it.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from medusa.history import History

# The CI servers that start N parallel jobs and tell each which it is: (index variable,
# total variable, whether the index counts from 1).
CI_VARIABLES = (
    ("CI_NODE_INDEX", "CI_NODE_TOTAL", True),                              # GitLab parallel:
    ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", False),     # Buildkite
    ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", False),                     # CircleCI
)
AUTO = "auto"


@dataclass(frozen=True)
class Shard:
    index: int   # 1-based
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


class ShardError(ValueError):
    pass


def parse(text: str, environ: dict[str, str] | None = None) -> Shard:
    """`K/N` (1 <= K <= N), or `auto`: from the CI server's variables."""
    if text == AUTO:
        return from_ci(os.environ if environ is None else environ)
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ShardError(f"--shard takes K/N (the K-th of N parts, from 1) or auto, "
                         f"not {text!r}")
    index, total = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= total:
        raise ShardError(f"--shard {text}: K must be from 1 to N")
    return Shard(index, total)


def from_ci(environ: dict[str, str]) -> Shard:
    for index_name, total_name, from_one in CI_VARIABLES:
        index, total = environ.get(index_name, ""), environ.get(total_name, "")
        if index.isdigit() and total.isdigit():
            return parse(f"{int(index) + (0 if from_one else 1)}/{total}")
    names = ", ".join(f"{i}/{t}" for i, t, _ in CI_VARIABLES)
    raise ShardError(f"--shard auto: this CI job says nothing of parallel jobs (none of "
                     f"{names} is set); give --shard K/N")


def cut(files: list[str], history: History, total: int) -> list[list[str]]:
    """Every part's files, each in the order they were found."""
    seconds = {file: timing.seconds for file in files
               if (timing := history.get(file)) is not None}
    guess = sum(seconds.values()) / len(seconds) if seconds else 1.0
    order = {file: index for index, file in enumerate(files)}
    loads = [0.0] * total
    parts: list[list[str]] = [[] for _ in range(total)]
    for file in sorted(files, key=lambda f: (-seconds.get(f, guess), order[f])):
        lightest = loads.index(min(loads))
        loads[lightest] += seconds.get(file, guess)
        parts[lightest].append(file)
    return [sorted(part, key=order.__getitem__) for part in parts]


def files_of(shard: Shard, files: list[str], history: History) -> list[str]:
    return cut(files, history, shard.total)[shard.index - 1]


def digest(files: list[str], history: History, total: int) -> str:
    """Names the whole cut: equal on two jobs if and only if they cut alike."""
    text = "\n\n".join("\n".join(part) for part in cut(files, history, total))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
