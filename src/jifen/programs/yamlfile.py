"""YAML read with its line numbers, so that every mistake in a programme file names its line.

`read_yaml` composes the document into PyYAML's node tree (every node knows where it
starts) and builds plain Python values from it, keeping a `SourceMap` from each value's
path (`("earning_rules", 2, "effect")`) to its line. `problems_from` then turns a pydantic
`ValidationError` into `FileProblem`s that name the line and the field path.

The values are built here, not by PyYAML's constructor, because YAML 1.1 guesses types in
ways that silently change a programme: `10:00` is the integer 600 (sexagesimal), `010` is 8
(octal), `no` is false and `1.1` a binary float. Here a scalar is a number only when it is
written as a plain decimal (`1.1` becomes `Decimal("1.1")`, exactly), only `true`/`false`
are booleans, and every other such guess stays the text as written. A key given twice in
one mapping is an error, as are merge keys (`<<`), custom tags and recursive anchors.
JSON is YAML, so a programme file may be JSON too.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from jifen.programs.errors import FileProblem

Path = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_PLAIN_DECIMAL = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_TIMESTAMPS = yaml.constructor.SafeConstructor()


def render_path(path: Path) -> str:
    """`("earning_rules", 2, "effect")` → `earning_rules[2].effect`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass
class SourceMap:
    """Where each value of a document came from."""

    source: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor that is in the file."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return 1

    def problem(self, path: Path, message: str) -> FileProblem:
        return FileProblem(self.source, self.line_of(path), render_path(path), message)


class _Reader:
    def __init__(self, source: str) -> None:
        self.map = SourceMap(source)
        self.problems: list[FileProblem] = []
        self._open: set[int] = set()

    def fail(self, node: Node, path: Path, message: str) -> None:
        line = node.start_mark.line + 1
        self.problems.append(FileProblem(self.map.source, line, render_path(path), message))

    def value(self, node: Node, path: Path) -> Any:
        self.map.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in self._open:
            self.fail(node, path, "an anchor refers to itself (a recursive alias)")
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if node.tag not in (_TAG + "map", _TAG + "seq"):
            self.fail(node, path, f"unsupported tag !{node.tag.removeprefix(_TAG)}")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            return self.mapping(node, path)
        finally:
            self._open.discard(id(node))

    def mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self.fail(key_node, path, "merge keys (<<) are not supported: write the keys out")
                continue
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, path, "a key must be a plain name, not a list or mapping")
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                self.fail(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (first given on line {first_line[key]})",
                )
                continue
            first_line[key] = line
            self.map.lines[(*path, key)] = line
            result[key] = self.value(value_node, (*path, key))
        return result

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        text = str(node.value)
        tag = node.tag.removeprefix(_TAG)
        if tag == "str":
            return text
        if tag == "null":
            return None
        if tag == "bool":
            return {"true": True, "false": False}.get(text.lower(), text)
        if tag == "int":
            return int(text) if _PLAIN_INT.fullmatch(text) else text
        if tag == "float":
            if _PLAIN_DECIMAL.fullmatch(text):
                try:
                    return Decimal(text)
                except InvalidOperation:  # pragma: no cover - the pattern is a valid Decimal
                    return text
            return text
        if tag == "timestamp":
            try:
                return _TIMESTAMPS.construct_yaml_timestamp(node)
            except ValueError:
                return text  # such as 2026-02-30: the field's own check names it
        self.fail(node, path, f"unsupported tag !{node.tag.removeprefix(_TAG)}")
        return text


def read_yaml(text: str, source: str) -> tuple[Any, SourceMap, list[FileProblem]]:
    """The document's value, where each part of it is, and what is wrong with it as YAML."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = exc.problem or exc.context or "not YAML"
        if mark is not None:
            what += f" (column {mark.column + 1})"
        if exc.context and exc.problem and exc.context_mark is not None:
            what += f", {exc.context} begun on line {exc.context_mark.line + 1}"
        return None, reader.map, [FileProblem(source, line, "", f"YAML syntax: {what}")]
    except yaml.YAMLError as exc:
        return None, reader.map, [FileProblem(source, 1, "", f"YAML syntax: {exc}")]
    if root is None:
        return None, reader.map, [FileProblem(source, 1, "", "the file is empty")]
    value = reader.value(root, ())
    return value, reader.map, reader.problems


# -- pydantic errors, placed ---------------------------------------------------------------


def problems_from(
    exc: ValidationError, data: Any, where: SourceMap, model: type[BaseModel]
) -> list[FileProblem]:
    """Each error of `exc` (validating `data` with `model`) at its line and field path.

    A union's member names in pydantic's location (`after_months` in
    `program.expiry_policy.after_months.months`) are not in the file and are left out;
    errors the members of one union report about one field are joined into one."""
    merged: dict[tuple[int, str], list[str]] = {}
    for error in exc.errors(include_url=False):
        path = _in_data(data, tuple(error["loc"]), error["type"])
        discriminator = (error.get("ctx") or {}).get("discriminator")
        if isinstance(discriminator, str) and error["type"].startswith("union_tag"):
            path = (*path, discriminator.strip("'"))
        message = _message(error, path, model)
        key = (where.line_of(path), render_path(path))
        if message not in merged.setdefault(key, []):
            merged[key].append(message)
    return [
        FileProblem(where.source, line, path, _join(messages))
        for (line, path), messages in merged.items()
    ]


def _in_data(data: Any, loc: Path, kind: str) -> Path:
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        inside_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        inside_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if inside_dict or inside_list:
            node = node[part]
        elif kind == "missing" and index == len(loc) - 1:
            pass  # the field that is missing: named, though not in the file
        else:
            continue  # a union member's name
        path.append(part)
    return tuple(path)


def _message(error: Any, path: Path, model: type[BaseModel]) -> str:
    kind = error["type"]
    text = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "missing":
        return "missing: this field is required"
    if kind == "extra_forbidden":
        known = _field_names(model, path[:-1])
        close = difflib.get_close_matches(str(path[-1]), known, n=1, cutoff=0.6)
        if close:
            return f"unknown field (did you mean {close[0]}?)"
        if known:
            return "unknown field; known here: " + ", ".join(sorted(known))
        return "unknown field"
    given = error.get("input")
    if kind == "string_type" and isinstance(given, int | Decimal | bool):
        return f"{text} (write it in quotes: '{given}')"
    return text


def _join(messages: Sequence[str]) -> str:
    first, *rest = messages
    prefix = "Input should be "
    if rest and all(m.startswith(prefix) for m in messages):
        return first + "".join(", or " + m.removeprefix(prefix) for m in rest)
    return "; ".join(messages)


def _field_names(model: type[BaseModel], path: Path) -> list[str]:
    """The fields (by the names a file uses) of the model(s) at `path` below `model`."""
    candidates: list[Any] = [model]
    for part in path:
        following: list[Any] = []
        for kind in _expand(candidates):
            if isinstance(part, int) and typing.get_origin(kind) is list:
                following.extend(typing.get_args(kind)[:1])
            elif isinstance(part, str) and typing.get_origin(kind) is dict:
                following.extend(typing.get_args(kind)[1:2])
            elif isinstance(part, str) and _is_model(kind):
                for name, info in kind.model_fields.items():
                    if part in (name, info.alias):
                        following.append(info.annotation)
        candidates = following
    names: set[str] = set()
    for kind in _expand(candidates):
        if _is_model(kind):
            names.update(info.alias or name for name, info in kind.model_fields.items())
    return sorted(names)


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _expand(kinds: list[Any]) -> list[Any]:
    """Annotated, Optional and unions opened up to their members."""
    found: list[Any] = []
    for kind in kinds:
        origin = typing.get_origin(kind)
        if origin is typing.Annotated:
            found.extend(_expand([typing.get_args(kind)[0]]))
        elif origin in (typing.Union, types.UnionType):
            found.extend(_expand(list(typing.get_args(kind))))
        else:
            found.append(kind)
    return found
