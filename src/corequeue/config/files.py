"""Finding and reading configuration files, with the line of every key for error messages.

YAML (and so JSON) and TOML files are read into plain mappings. Alongside, `Lines` maps each
key path (`("queue", "emails", "parallelism")`) to the line it is written on, so an error about
a value names `file:line`. Syntax errors say where, but never quote the line: it may hold a
password.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeAlias

import yaml

from corequeue.errors import ConfigError

CONFIG_VARIABLE: Final = "COREQUEUE_CONFIG"
"""The environment variable naming the configuration file when `--config` is not given."""

DEFAULT_FILES: Final = ("corequeue.yaml", "corequeue.yml", "corequeue.toml")
"""Files looked for in the working directory when no file is named."""

Lines: TypeAlias = dict[tuple[str, ...], int]
"""The line (from 1) each key path is written on."""


def find_config_file(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """Return the configuration file `load_config` would read, or None for the built-in default.

    Raises:
        ConfigError: A named file (`path` or `COREQUEUE_CONFIG`) does not exist.
    """
    environ = os.environ if environ is None else environ
    if path is not None or environ.get(CONFIG_VARIABLE):
        source = "--config" if path is not None else CONFIG_VARIABLE
        named = Path(path if path is not None else environ[CONFIG_VARIABLE])
        if not _is_file(named):
            raise ConfigError(repr(str(named))[1:-1], "", f"no such file (named by {source})")
        return named
    folder = cwd or Path.cwd()
    return next((folder / name for name in DEFAULT_FILES if _is_file(folder / name)), None)


def read_config_file(path: Path) -> Mapping[str, Any]:
    """Return the raw mapping in a YAML (or JSON) or TOML file, by its suffix.

    Raises:
        ConfigError: The file cannot be read or parsed, or does not hold a mapping.
    """
    return read_with_lines(path)[0]


def read_with_lines(path: Path) -> tuple[dict[str, Any], Lines]:
    """Return the raw mapping in a file and the line of each of its keys.

    Raises:
        ConfigError: The file cannot be read or parsed, or does not hold a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(str(path), "", f"cannot be read: {reason}") from None
    toml = path.suffix.lower() == ".toml"
    data = parse_config_text(text, source=str(path), toml=toml)
    return data, toml_lines(text) if toml else yaml_lines(text)


def parse_config_text(text: str, *, source: str = "<text>", toml: bool = False) -> dict[str, Any]:
    """Return the raw mapping in YAML (a superset of JSON) or TOML text.

    Raises:
        ConfigError: The text does not parse or does not hold a mapping.
    """
    kind = "TOML" if toml else "YAML or JSON"
    try:
        data = tomllib.loads(text) if toml else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(source, "", f"expected valid {kind}: {_syntax_error(exc)}") from None
    except RecursionError:
        raise ConfigError(source, "", f"expected valid {kind}: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        names: dict[type, str] = {list: "a list", str: "a string"}
        found = names.get(type(data), f"a value of type {type(data).__name__}")
        raise ConfigError(source, "", f"expected a mapping at the top, got {found}")
    return data


def yaml_lines(text: str) -> Lines:
    """Return the line of every key of the mappings in YAML `text` (which parses).

    Items of a list count as keys named by their index (`("queue", "q", "periodic", "0")`).
    """
    lines: Lines = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return lines
    stack: list[tuple[yaml.Node | None, tuple[str, ...]]] = [(root, ())]
    listed: set[int] = set()  # nodes reached through a list: an alias is walked once
    while stack:
        node, path = stack.pop()
        if len(path) > _DEEPEST_KEYED:
            continue
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines.setdefault((*path, str(index)), item.start_mark.line + 1)
                if id(item) not in listed:
                    listed.add(id(item))
                    stack.append((item, (*path, str(index))))
        if not isinstance(node, yaml.MappingNode):
            continue
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                lines.setdefault((*path, key.value), key.start_mark.line + 1)
                stack.append((value, (*path, key.value)))
    return lines


def toml_lines(text: str) -> Lines:
    """Return the line of the keys of TOML `text`: tables, `key = value` and inline tables.

    The tables of an array (`[[queue.q.periodic]]`) count as keys named by their index.
    """
    lines: Lines = {}
    table: tuple[str, ...] = ()
    arrays: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TOML_TABLE.match(line) or _TOML_ARRAY_TABLE.match(line)
        if header:
            table = _dotted(header.group(1))
            lines.setdefault(table, number)
            if header.re is _TOML_ARRAY_TABLE:
                arrays[table] = arrays.get(table, -1) + 1
                table = (*table, str(arrays[table]))
                lines.setdefault(table, number)
            continue
        entry = _TOML_ENTRY.match(line)
        if entry is None:
            continue
        key = (*table, *_dotted(entry.group(1)))
        lines.setdefault(key, number)
        for inner in _TOML_ENTRY_INSIDE.findall(entry.group(2)):
            lines.setdefault((*key, *_dotted(inner)), number)
    return lines


def key_path(key: str) -> tuple[str, ...]:
    """Return the path of a dotted key in `Lines`, a list index as its own part.

    Example:
        >>> key_path("queue.q.periodic[2].schedule")
        ('queue', 'q', 'periodic', '2', 'schedule')
    """
    return tuple(_INDEX.sub(r".\1", key).split("."))


_DEEPEST_KEYED: Final = 4
"""Keys are recorded down to five parts (`queue.q.periodic.0.schedule`)."""

_KEY = r"""(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')"""
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_TOML_TABLE: Final = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]")
_TOML_ARRAY_TABLE: Final = re.compile(rf"^\s*\[\[\s*({_DOTTED})\s*\]\]")
_INDEX: Final = re.compile(r"\[(\d+)\]")
_TOML_ENTRY: Final = re.compile(rf"^\s*({_DOTTED})\s*=(.*)$")
_TOML_ENTRY_INSIDE: Final = re.compile(rf"[{{,]\s*({_DOTTED})\s*=")


def _dotted(key: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in re.findall(_KEY, key))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name with a NUL, or too long for the system
        return False


def _syntax_error(exc: Exception) -> str:
    """Say what is wrong and where, without quoting the line: it may hold a password."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, yaml.YAMLError):
        return type(exc).__name__
    return " ".join(str(exc).split())  # tomllib names the line and column, never the text
