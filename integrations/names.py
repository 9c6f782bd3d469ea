"""Test names that stay the same from build to build, for every CI format.

CI servers keep a test's history (duration trends, "failing since", flakiness) by its
name, so a name must depend on nothing but the pytest node id: not on the runner, the
order, or the build. The names are the ones the usual pytest tools give, so that a
project moving to medusa keeps its history:

- JUnit: pytest's own --junitxml (`mangle_test_address`): the file as a dotted module,
  then the classes, make the classname; the function with its parameters is the name.
- TeamCity: the teamcity-messages pytest plugin's names, the ones TeamCity has shown for
  pytest suites so far: dots throughout, parameters in parentheses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class JUnitName:
    classname: str
    name: str


def junit_name(node_id: str) -> JUnitName:
    """`tests/test_x.py::TestA::test_b[1-x]` -> (`tests.test_x.TestA`, `test_b[1-x]`);
    a file as a whole (a collection error, a file not run) -> ("", `tests.test_x`)."""
    path, bracket, params = node_id.partition("[")   # parameters may hold "::" or "/"
    names = path.split("::")
    names[0] = _dotted_module(names[0])
    names[-1] += bracket + params
    return JUnitName(".".join(names[:-1]), names[-1])


def teamcity_name(node_id: str) -> str:
    """`tests/test_x.py::TestA::test_b[1.5]` -> `tests.test_x.TestA.test_b(1_5)`; a file
    as a whole -> `tests.test_x.top_level`.

    TeamCity splits a test name at its dots into package, class and method, and takes
    what is in parentheses as parameters: dots in the parameters become underscores, or
    TeamCity would cut the name inside them."""
    path, bracket, params = node_id.partition("[")
    if "::" not in path:
        path += "::top_level"
    file, _, rest = path.partition("::")
    module = re.sub(r"\.pyc?$", "", file).replace(".", "_").replace("/", ".")
    name = ".".join([module, *(part.replace(".", "_") for part in rest.split("::") if part)])
    if bracket:
        inner = params[:-1] if params.endswith("]") else params
        name += "(" + inner.replace(".", "_") + ")"
    return name


def file_test_id(file: str) -> str:
    """The id of a file as a whole, as pytest names a module that failed to collect: a
    file that was not run is reported under the same name in every format."""
    return file


def _dotted_module(path: str) -> str:
    return re.sub(r"\.py$", "", path.replace("/", "."))
