"""One way to read the YAML files users write (catalogs, configs, policies): strictly.

PyYAML's `safe_load` keeps the last of two equal keys, so `license: CC BY-NC 4.0` followed by
`license: CC0` silently opens a closed source; and it expands aliases without bound, so a few
hundred bytes of nested `*a` references (an "alias bomb") grow into gigabytes once anything
walks the value. Here a repeated key is an error naming both lines; aliases (which PyYAML's
own dumper writes for shared values) are followed only while the value they expand to stays
under a million nodes; nesting deeper than any real file is refused before Python's stack
runs out; and every error is one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_MAX_DEPTH = 100  # catalogs and configs nest a few levels; this leaves ample room
_MAX_NODES = 1_000_000  # values and keys of the document with every alias expanded


class StrictYamlError(yaml.YAMLError):
    """A YAML text vaglio refuses; the message is one line that names where."""


def _where(mark: yaml.Mark | None) -> str:
    return "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}: "


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that bounds alias expansion and nesting, and refuses repeated keys."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded: dict[int, int] = {}  # id(node) -> its size with aliases expanded

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None and id(node) not in self._expanded:
                raise StrictYamlError(f"{_where(event.start_mark)}alias *{event.anchor} "
                                      "refers to a value that contains it")  # fmt: skip
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > _MAX_DEPTH:
            raise StrictYamlError(
                f"{_where(self.peek_event().start_mark)}nested more than {_MAX_DEPTH} levels deep"
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._expanded[id(node)] = size = 1 + sum(self._expanded[id(child)]
                                                  for child in _children(node))  # fmt: skip
        if size > _MAX_NODES:
            raise StrictYamlError(
                f"{_where(node.start_mark)}this value expands to more than {_MAX_NODES:,} "
                "values through its aliases (an alias bomb?)"
            )
        return node

    def construct_mapping(self, node, deep=False):
        self.flatten_mapping(node)  # `<<:` merges, so that merged keys are checked too
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in first_line
            except TypeError:  # a list or mapping as a key
                raise StrictYamlError(
                    f"{_where(key_node.start_mark)}a key must be a plain value"
                ) from None
            if repeated:
                raise StrictYamlError(
                    f"{_where(key_node.start_mark)}duplicate key {key!r} "
                    f"(first given on line {first_line[key]})"
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _one_line(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.reader.ReaderError):
        return f"position {error.position}: {error.reason} (the file must be UTF-8 text)"
    if isinstance(error, yaml.MarkedYAMLError):
        return f"{_where(error.problem_mark)}{error.problem or error.context}"
    return " ".join(str(error).split())


def load_yaml(text: str | bytes) -> Any:
    """The value of one YAML document, or StrictYamlError with a one-line reason."""
    try:
        loader = _StrictLoader(text)  # reads the first bytes: a bad encoding fails here
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except StrictYamlError:
        raise
    except yaml.YAMLError as error:
        raise StrictYamlError(_one_line(error)) from None


def read_yaml(path: Path | str) -> Any:
    """`load_yaml` of a file's bytes (PyYAML checks the encoding); OSError if unreadable."""
    return load_yaml(Path(path).read_bytes())
