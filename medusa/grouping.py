"""What a group of tests is: the one definition the scheduler (which cuts long files into
parts of whole groups, and names each part by its groups) and the drivers (which select
a part's tests by those names) must agree on.

A test id is `file::Class::test[params]` (pytest's node ids; the other drivers make ids
of the same shape). Its top-level group is the first name after the file, without
parameters: a class with all its tests, or a function with all its parameters.
"""
from __future__ import annotations


def top_level_group(test_id: str) -> str:
    """`tests/t.py::TestA::test_x[1]` -> `tests/t.py::TestA`; `t.py::test_p[2]` -> `t.py::test_p`."""
    parts = test_id.split("::")
    return f"{parts[0]}::{parts[1].split('[', 1)[0]}" if len(parts) > 1 else test_id


def group_names(test_id: str) -> set[str]:
    """A test id and the groups it belongs to, as a part of a split file may name them:
    `f.py::C::t[1]` -> itself, `f.py::C::t`, `f.py::C`."""
    plain = test_id.split("[", 1)[0]
    parts = plain.split("::")
    return {test_id, plain, *("::".join(parts[:end]) for end in range(2, len(parts)))}
