"""The build's configuration: medusa/config.yml, then the command line, into one set of values.

Precedence, lowest first: medusa's defaults, the config file, the command line. The file is
`--config FILE`, else `$MEDUSA_CONFIG`, else `medusa/config.yml` in the current folder or
the nearest folder above it that has one (the project's folder). Paths in the file are
relative to that project folder.

Every key is in KEYS, with how its value is read and what it means (`medusa setup` writes
those explanations into the file it makes, `medusa config` shows where each value came
from). Errors name the file, the line, the key and what was expected; a key that does not
exist is an error, with the nearest known key as a suggestion.

String values may use environment variables, as a shell does: `${VAR}`, `${VAR:-default}`
(the default also when VAR is empty), `${VAR-default}` (only when unset), `$$` for a `$`.
YAML anchors, aliases and merge keys (`<<: *base`) work, so one file serves a laptop and CI;
top-level keys starting with `x-` are ignored, a place to define anchors.
"""
from __future__ import annotations

import difflib
import math
import os
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

CONFIG_FILE = os.path.join("medusa", "config.yml")
ENVIRONMENT_FILE = os.path.join("medusa", "environment.py")
# top-level keys that medusa ignores, to hold YAML anchors (as docker-compose's x- keys)
ANCHOR_PREFIX = "x-"


class ConfigError(Exception):
    """A configuration mistake, in words for the user (the build exits 4)."""


@dataclass(frozen=True)
class Value:
    value: Any
    source: str               # "medusa/config.yml, line 4", "command line", "default"


@dataclass(frozen=True)
class Key:
    name: str
    read: Callable[[Any, Path], Any]   # the YAML value (and the project folder) -> ours
    help: str


@dataclass(frozen=True)
class WorkerSpec:
    """One entry of `workers:`."""
    type: str                 # local or ssh
    runners: int | None       # None: auto (decided on the worker's host)
    name: str = ""
    # ssh only
    connect: str = ""         # [user@]host[:port], or a Host alias of ~/.ssh/config
    directory: str = ""       # where the code lives there (relative: to the login folder)
    python: str = "python3"   # the Python there, with medusa and the project's packages
    sync: bool = True         # copy the working tree there first
    exclude: tuple[str, ...] = ()     # globs not to copy
    setup: tuple[str, ...] = ()       # commands run there, in `directory`, before the worker
    identity: str = ""        # a private key file (default: the agent, ~/.ssh/config, ~/.ssh/id_*)
    known_hosts: str = ""     # default: ~/.ssh/known_hosts
    accept_new_host_key: bool = False   # trust and remember a host never seen (never a changed one)


SSH_KEYS = ("type", "name", "runners", "connect", "directory", "python", "sync", "exclude",
            "setup", "identity", "known_hosts", "accept_new_host_key")


# --- readers: each takes a YAML value and returns the value medusa uses, or raises
# ValueError with what was expected.

def _seconds(value: Any, root: Path) -> float | None:
    if value is None:
        return None
    number = _number(value, float, "a number of seconds")
    if number <= 0:
        raise ValueError(f"expected a number of seconds above 0, got {value!r}")
    return number


def _required(read: Callable[[Any, Path], Any]) -> Callable[[Any, Path], Any]:
    """A key that has no "none": an empty value is a mistake, not "never"."""
    def checked(value: Any, root: Path) -> Any:
        if value is None:
            raise ValueError("expected a value, got nothing")
        return read(value, root)
    return checked


def _count(minimum: int) -> Callable[[Any, Path], int]:
    def read(value: Any, root: Path) -> int:
        number = _number(value, int, "a whole number")
        if number < minimum:
            raise ValueError(f"expected a whole number of at least {minimum}, got {value!r}")
        return number
    return read


def _runners(value: Any, root: Path) -> int | None:
    if value == "auto" or value is None:
        return None
    return _count(1)(value, root)


def _number(value: Any, kind: type, expected: str) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected {expected}, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected {expected}, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != number:
        raise ValueError(f"expected {expected}, got {value!r}")
    if kind is float and not math.isfinite(number):   # nan would time every test out
        raise ValueError(f"expected {expected}, got {value!r}")
    return number


def _flag(value: Any, root: Path) -> bool:
    if isinstance(value, bool):
        return value
    words = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise ValueError(f"expected true or false, got {value!r}")


def _text(value: Any, root: Path) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def _texts(value: Any, root: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(_text(item, root) for item in value)


def _arguments(value: Any, root: Path) -> tuple[str, ...]:
    """A list, or one string split as a shell would: "-p no:randomly -k 'not slow'"."""
    if isinstance(value, str):
        return tuple(shlex.split(value))
    return _texts(value, root)


def _paths(value: Any, root: Path) -> tuple[str, ...]:
    return tuple(_relative_to_cwd(root / path) for path in _texts(value, root))


def _path(value: Any, root: Path) -> str:
    return _relative_to_cwd(root / _text(value, root))


def _env(value: Any, root: Path) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of variable names to values, got {value!r}")
    pairs = []
    for name, text in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"expected an environment variable name, got {name!r}")
        pairs.append((name, "" if text is None else _text(text, root)))
    return tuple(pairs)


def _shard(value: Any, root: Path) -> Any:
    from medusa import sharding
    return sharding.parse(str(value))


def _choice(*choices: str) -> Callable[[Any, Path], str]:
    def read(value: Any, root: Path) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value
    return read


COMMAND_DRIVER_KEYS = ("command", "units", "units_command", "junit_xml")


def _command_driver(value: Any, root: Path) -> tuple[tuple[str, str], ...]:
    """The command driver's settings, as the driver takes them ((name, value) pairs)."""
    if not isinstance(value, dict):
        raise ValueError("expected a mapping: {command: TEMPLATE, units: [GLOB], "
                         "units_command: COMMAND, junit_xml: PATH}")
    unknown = sorted(set(value) - set(COMMAND_DRIVER_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}{_suggestion(unknown[0], COMMAND_DRIVER_KEYS)}")
    pairs = [(name, _text(value[name], root)) for name in ("command", "units_command", "junit_xml")
             if value.get(name)]
    pairs += [("units", glob) for glob in _texts(value.get("units", []), root)]
    return tuple(pairs)


def _reporters(value: Any, root: Path) -> tuple[str, ...]:
    """`- json: out/events.jsonl` or `- json:out/events.jsonl` or `- teamcity`."""
    if not isinstance(value, list):
        raise ValueError(f"expected a list of reports (json: PATH, ...), got {value!r}")
    specs = []
    for item in value:
        if isinstance(item, dict) and len(item) == 1:
            (name, path), = item.items()
            specs.append(f"{name}:{_path(path, root)}" if path else str(name))
        elif isinstance(item, str):
            name, _, path = item.partition(":")
            specs.append(f"{name}:{_path(path, root)}" if path else name)
        else:
            raise ValueError(f"expected a report as NAME: PATH, got {item!r}")
    return tuple(specs)


class ValueAt(ValueError):
    """A problem inside a key's value: `at` is its path below the key ((0, "runners") for
    workers[0].runners), so that the message names that key and its line."""

    def __init__(self, at: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.at = at


def _workers(value: Any, root: Path) -> tuple[WorkerSpec, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a list of workers, e.g. [{type: local, runners: auto}]")
    return name_workers(tuple(_worker(index, item, root) for index, item in enumerate(value)))


def _worker(index: int, item: Any, root: Path) -> WorkerSpec:
    if not isinstance(item, dict):
        raise ValueAt((index,), f"expected a worker as a mapping (type: local, runners: N), "
                                f"got {item!r}")

    def read(key: str, reader: Callable[[Any, Path], Any], default: Any) -> Any:
        try:
            return reader(item[key], root) if item.get(key) is not None else default
        except ValueError as exc:
            raise ValueAt((index, key), str(exc)) from None

    kind = item.get("type", "local")
    if kind not in ("local", "ssh"):
        raise ValueAt((index, "type"), f"unknown type {kind!r} (known: local, ssh)")
    allowed = SSH_KEYS if kind == "ssh" else ("type", "name", "runners")
    unknown = sorted(set(item) - set(allowed))
    if unknown:
        raise ValueAt((index, unknown[0]), f"unknown key{_suggestion(unknown[0], allowed)}")
    runners = read("runners", _runners, _runners("auto", root))
    name = read("name", _text, "")
    if kind == "local":
        return WorkerSpec("local", runners, name)
    if not item.get("connect"):
        raise ValueAt((index,), "an ssh worker needs connect: [user@]host[:port]")
    connect = read("connect", lambda value, root: check_connect(_text(value, root)), "")
    return WorkerSpec(
        "ssh", runners, name, connect=connect,
        directory=read("directory", _text, "") or default_directory(root),
        python=read("python", _text, "python3"),
        sync=read("sync", _flag, True),
        exclude=read("exclude", _texts, ()),
        setup=read("setup", _texts, ()),
        identity=os.path.expanduser(read("identity", _text, "")),
        known_hosts=os.path.expanduser(read("known_hosts", _text, "")),
        accept_new_host_key=read("accept_new_host_key", _flag, False))


def _seconds_or_never(value: Any, root: Path) -> float:
    number = _number(value, float, "a number of seconds (0: never)")
    if number < 0:
        raise ValueError(f"expected a number of seconds, 0 or more, got {value!r}")
    return number


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000 ** 2, "mb": 1000 ** 2,
          "mib": 1024 ** 2, "g": 1000 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3,
          "t": 1000 ** 4, "tb": 1000 ** 4, "tib": 1024 ** 4}


def _bytes(value: Any, root: Path) -> int:
    """A size: 1048576, "100 MB", "1 GiB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    found = _SIZE.fullmatch(str(value)) if isinstance(value, str) else None
    if found is None or found.group(2).lower() not in _UNITS:
        raise ValueError(f"expected a size in bytes (e.g. 50000000 or \"50 MB\"), got {value!r}")
    return int(float(found.group(1)) * _UNITS[found.group(2).lower()])


def _log_level(value: Any, root: Path) -> str:
    import logging
    text = _text(value, root).upper()
    if not isinstance(logging.getLevelName(text), int):
        raise ValueError(f"expected a logging level (DEBUG, INFO, WARNING, ERROR, CRITICAL), "
                         f"got {value!r}")
    return text


def _probes(value: Any, root: Path) -> tuple[Any, ...]:
    """`name: {command: "...", every: 5, unit: connections}` (or `name: "command"`)."""
    from medusa.probes import DEFAULT_EVERY, CommandProbe
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of probe names to {command: ..., every: seconds}")
    probes = []
    for name, entry in value.items():
        entry = {"command": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not entry.get("command"):
            raise ValueError(f"probe {name!r}: expected {{command: ..., every: seconds}}")
        unknown = sorted(set(entry) - {"command", "every", "unit"})
        if unknown:
            raise ValueError(f"probe {name!r}: unknown key {unknown[0]!r} (known: command, "
                             "every, unit)")
        every = _seconds(entry.get("every", DEFAULT_EVERY), root)
        probes.append(CommandProbe(str(name), _text(entry["command"], root), every or DEFAULT_EVERY,
                                   _text(entry.get("unit", ""), root)))
    return tuple(probes)


def _coverage(value: Any, root: Path) -> tuple[str, ...] | None:
    """`true` (what coverage measures by itself), `false`, or the sources to measure."""
    if isinstance(value, bool) or value is None:
        return () if value else None
    return _texts(value, root)


def _coverage_reports(value: Any, root: Path) -> tuple[str, ...]:
    from medusa.coverage_support import parse_report
    specs = _texts(value, root)
    for spec in specs:
        parse_report(spec)
    return specs


def name_workers(specs: list[WorkerSpec]) -> tuple[WorkerSpec, ...]:
    """Every worker has a name of its own: local, local-2, ...; an ssh worker its host."""
    named: list[WorkerSpec] = []
    for spec in specs:
        name = spec.name or ("local" if spec.type == "local" else ssh_host(spec.connect))
        base, number = name, 2
        while name in {s.name for s in named}:
            name, number = f"{base}-{number}", number + 1
        named.append(replace(spec, name=name))
    return tuple(named)


# What a user and a host name may be made of. ~/.ssh/config's `Match exec` hands %h and
# %r to a shell (OpenSSH CVE-2023-51385 is this class): anything else is refused first.
_SAFE_USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")
_SAFE_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+")


def split_connect(connect: str) -> tuple[str, str, str]:
    """`ci@build-7:22` -> ("ci", "build-7", "22"); `[::1]:2222` -> ("", "::1", "2222")."""
    user, _, rest = connect.rpartition("@")
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        return user, host, port.removeprefix(":")
    host, _, port = rest.partition(":")
    return user, host, port


def check_host(host: str) -> None:
    """ValueError unless `host` is a plain name or an IPv6 address."""
    if not (_SAFE_HOST.fullmatch(host) or (":" in host and _IPV6.fullmatch(host))):
        raise ValueError(_refused(f"host {host!r}"))


def check_connect(connect: str) -> str:
    """`connect` if its user, host and port are plain names; else ValueError."""
    user, host, port = split_connect(connect)
    problems = []
    if "@" in connect and not _SAFE_USER.fullmatch(user):
        problems.append(f"user {user!r}")
    try:
        check_host(host)
    except ValueError:
        problems.append(f"host {host!r}")
    if port and not port.isdigit():
        problems.append(f"port {port!r}")
    if problems:
        raise ValueError(f"connect {connect!r}: " + _refused(" and ".join(problems)))
    return connect


def _refused(what: str) -> str:
    return (f"{what} may only have letters, digits and . _ - (refused before ~/.ssh/config "
            f"is read: its Match exec would hand the name to a shell)")


def ssh_host(connect: str) -> str:
    """`ci@build-7:22` -> `build-7`."""
    return split_connect(connect)[1]


def default_directory(root: Path) -> str:
    """Where a project goes on a remote host when the config does not say: below the
    login folder, by the project's folder name."""
    return f"medusa-work/{root.resolve().name}"


KEYS = {key.name: key for key in (
    Key("paths", _paths, "test files or folders (default: what the framework finds)"),
    Key("driver", _text, "test framework: pytest, unittest, behave, command, or auto "
                         "(found from the project)"),
    Key("collect", _choice("session", "file"),
        "pytest: collect the whole session once per worker, as pytest does (session), or "
        "each file in the runner that runs it (file: faster on many tiny files; session "
        "fixtures and collection hooks then see only the runner's files)"),
    Key("framework_args", _arguments,
        "arguments for the framework, as after `--` on the command line"),
    Key("workers", _workers,
        "where runners run: a list of {type: local, runners: N or auto} and {type: ssh, "
        "connect: user@host, directory: ..., runners: ...}"),
    Key("max_host_runners", _count(1),
        "cap on the runners of all medusa builds on this machine together"),
    Key("timeout", _seconds, "seconds a test may run before it is stopped (default: none)"),
    Key("worker_timeout", _required(_seconds), "seconds of silence after which a worker is lost"),
    Key("retries", _count(0), "times a failed test runs again; a pass then is flaky"),
    Key("maxfail", _count(0), "stop after this many failures (0: never; as pytest --maxfail)"),
    Key("max_replacements", _count(0),
        "a worker replaces runners that die up to this many times its number of runners "
        "(a crash loop ends there)"),
    Key("history", _flag, "read and write the timing history in .medusa/"),
    Key("failed_first", _flag, "run the files that failed last time first"),
    Key("split", _flag, "split a file longer than one runner's share between runners"),
    Key("no_split", _texts, "globs of files never split"),
    Key("shard", _shard, "run only part K of N of the files, cut by time from the history "
                         "(K/N, or auto from the CI's parallel job variables)"),
    Key("reporters", _reporters, "reports besides the console: json: PATH, ..."),
    Key("env", _env, "environment variables for the workers and runners"),
    Key("environment", _path, "the hooks file (default: medusa/environment.py)"),
    Key("report_dir", _path, "the report folder, for runner logs, artifacts and coverage "
                             "(default: medusa-report)"),
    Key("log_level", _log_level, "Python logging records of this level and up also go to "
                                 "the runners' logs (default: none)"),
    Key("sample_every", _seconds_or_never,
        "seconds between samples of each worker's CPU, memory and load (default 2; 0: never)"),
    Key("artifact_limit", _bytes, "bytes of $MEDUSA_ARTIFACTS_DIR files shipped per test "
                                  "(default: 100 MiB)"),
    Key("probes", _probes, "resource probes: name: {command: ..., every: seconds, unit: ...}, "
                           "run by the master during the build"),
    Key("coverage", _coverage, "measure coverage: true, or the sources (packages or folders)"),
    Key("coverage_branch", _flag, "measure branch coverage too"),
    Key("coverage_report", _coverage_reports,
        "coverage reports: term, term-missing, xml[:PATH], html[:DIR], json[:PATH], lcov[:PATH]"),
    Key("command_driver", _command_driver,
        "the command driver (driver: command): {command: 'go test -json {unit}', units: "
        "[GLOB], units_command: 'go list ./...', junit_xml: PATH}"),
    Key("ci", _choice("auto", "none", "jenkins", "bamboo", "teamcity", "github", "buildbot"),
        "the CI server, for its reports and a plain console (default: found from the "
        "environment)"),
    Key("junit_suites", _choice("file", "run"),
        "junit: a testsuite per test file, or one for the whole run"),
)}


# --- finding and reading the file ---------------------------------------------------------

def find_config(explicit: str | None, cwd: Path) -> Path | None:
    """--config, then $MEDUSA_CONFIG, then medusa/config.yml here or in a folder above."""
    chosen = explicit or os.environ.get("MEDUSA_CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            origin = "--config" if explicit else "MEDUSA_CONFIG"
            raise ConfigError(f"config file not found: {chosen} (from {origin})")
        return path
    for folder in (cwd, *cwd.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder / CONFIG_FILE
    return None


def project_folder(config_path: Path) -> Path:
    """The folder that `medusa/config.yml` is in; for another file, the file's folder."""
    config_path = config_path.resolve()
    if config_path.parent.name == "medusa":
        return config_path.parent.parent
    return config_path.parent


def load(path: Path, environ: dict[str, str] | None = None) -> dict[str, Value]:
    """The file's keys, read and checked, each with the line it came from."""
    import yaml
    shown = _relative_to_cwd(path)
    environ = dict(os.environ) if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot be read: {exc}") from None
    try:
        data, lines = _parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{shown}{where}: not valid YAML: {problem}") from None
    except _Duplicate as exc:
        raise ConfigError(f"{shown}, line {exc.line}: key {exc.key!r} appears twice") from None
    except RecursionError:   # `x-a: &a [*a]`: a value that contains itself
        raise ConfigError(f"{shown}: not valid here: an alias (*name) that contains "
                          f"itself") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: expected a mapping of keys (driver:, workers:, ...) at "
                          f"the top, got {type(data).__name__}")
    root = project_folder(path)
    values = {}
    for name, raw in data.items():
        line = lines.get((name,), 0)
        where = f"{shown}, line {line}"
        if isinstance(name, str) and name.startswith(ANCHOR_PREFIX):
            continue   # a place for YAML anchors, read only where an alias uses it
        if name not in KEYS:
            raise ConfigError(f"{where}: unknown key {name!r}{_suggestion(str(name), KEYS)}")
        try:
            value = KEYS[name].read(_expand(raw, environ), root)
        except ValueAt as exc:   # the line and name of the key inside the value
            path = (name, *exc.at)
            line = next((lines[path[:end]] for end in range(len(path), 0, -1)
                         if path[:end] in lines), line)
            raise ConfigError(f"{shown}, line {line}: {_key_name(path)}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"{where}: {name}: {exc}") from None
        values[name] = Value(value, where)
    return values


def _key_name(path: tuple[Any, ...]) -> str:
    """("workers", 0, "runners") -> "workers[0].runners"."""
    text = str(path[0])
    for part in path[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


class _Duplicate(Exception):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(key)
        self.key, self.line = key, line


def _parse(text: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """YAML to Python, and the line of every key (by its path of keys), for messages."""
    import yaml
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[tuple[Any, ...], int] = {}
        return _build(loader, node, (), lines), lines
    finally:
        loader.dispose()


def _build(loader: Any, node: Any, path: tuple[Any, ...], lines: dict) -> Any:
    import yaml
    if isinstance(node, yaml.MappingNode):
        own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)   # merge keys (<<: *base) first, then its own keys
        mapping: dict[Any, Any] = {}
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if id(key_node) in own:   # its own key may replace a merged one, not itself
                if key in seen:
                    raise _Duplicate(str(key), line)
                seen.add(key)
            lines[path + (key,)] = line
            mapping[key] = _build(loader, value_node, path + (key,), lines)
        return mapping
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
        return [_build(loader, item, path + (i,), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def _expand(value: Any, environ: dict[str, str]) -> Any:
    """${VAR}, ${VAR:-default}, ${VAR-default} and $$ in every string value."""
    if isinstance(value, dict):
        return {k: _expand(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, form, default = match.group(1), match.group(2), match.group(3)
        current = environ.get(name)
        if form == ":-" and not current:
            return default
        if form == "-" and current is None:
            return default
        if current is None:
            raise ValueError(f"${{{name}}} is not set (give a default: ${{{name}:-value}})")
        return current

    expanded = _VARIABLE.sub(substitute, value)
    # a whole value from a variable is read as YAML would read it: "4" is a number
    if expanded != value and _VARIABLE.fullmatch(value):
        import yaml
        try:
            return yaml.safe_load(expanded) if expanded else expanded
        except yaml.YAMLError:
            return expanded
    return expanded


def _suggestion(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


def _relative_to_cwd(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
