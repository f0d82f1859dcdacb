"""The JSONPath of a printer column: the simple subset of kubectl's JSONPath that CRDs' columns use.

kube-apiserver parses a column's ``jsonPath`` with client-go's ``util/jsonpath`` (inside ``{…}``, missing
keys allowed) and shows the *first* value it finds. Served here: fields (``.spec.size``, a ``\\``
escaping the next character, as in ``.metadata.labels.app\\.kubernetes\\.io/name``), ``['key']`` (a field
again, dots splitting it as client-go does), list indexes (``[0]``, ``[-1]`` from the end) and ``[*]``
(every element, of which the first that has the rest of the path wins). Filters, slices, unions,
recursive descent and ``.*`` are refused when the configuration is loaded. A path is at most
:data:`MAX_PATH_LENGTH` characters and :data:`MAX_STEPS` steps, and finding a value visits each element
of the object at most once.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_PATH_LENGTH", "MAX_STEPS", "MISSING", "JSONPath"]

MAX_PATH_LENGTH = 512
MAX_STEPS = 32

_TERMINATORS = frozenset(" \t\r\n.,[]$@{}")
_INDEX = re.compile(r"-?[0-9]{1,9}")
_DICT_KEY = re.compile(r"'([^']*)'")


class _Missing(enum.Enum):
    MISSING = enum.auto()


MISSING = _Missing.MISSING
"""What :meth:`JSONPath.first` finds when the path leads nowhere (a JSON null is ``None``)."""


class _Every(enum.Enum):
    EVERY = enum.auto()


_EVERY = _Every.EVERY

Step = str | int | _Every
"""A field name, a list index, or every element of a list."""


@dataclass(frozen=True, slots=True)
class JSONPath:
    """A compiled column path; ``JSONPath.parse`` raises ``ValueError`` saying what is not supported."""

    text: str
    steps: tuple[Step, ...]

    @classmethod
    def parse(cls, text: str) -> JSONPath:
        if not text.startswith("."):
            raise ValueError("must be a simple json path starting with .")
        if len(text) > MAX_PATH_LENGTH:
            raise ValueError(f"must be at most {MAX_PATH_LENGTH} characters")
        steps = tuple(_steps(text))
        if not steps:
            raise ValueError("must name a field")
        if len(steps) > MAX_STEPS:
            raise ValueError(f"must have at most {MAX_STEPS} steps")
        return cls(text, steps)

    def first(self, value: Any) -> Any:
        """The first value the path finds in ``value`` (parsed JSON), or :data:`MISSING`."""
        return _first(value, self.steps, 0)


def _steps(text: str) -> Iterator[Step]:
    i = 0
    while i < len(text):
        char = text[i]
        if char == ".":
            if text.startswith("..", i):
                raise ValueError("recursive descent (..) is not supported")
            name, i = _field(text, i + 1)
            if name == "*":
                raise ValueError("the wildcard .* is not supported; use [*] on a list")
            yield name
        elif char == "[":
            end = text.find("]", i)
            if end < 0:
                raise ValueError("unterminated [")
            yield from _bracket(text[i + 1 : end])
            i = end + 1
        else:
            raise ValueError(f"unexpected {char!r} at position {i}")


def _field(text: str, i: int) -> tuple[str, int]:
    """The field name starting at ``i`` (a backslash takes the next character as it is)."""
    name: list[str] = []
    while i < len(text) and text[i] not in _TERMINATORS:
        if text[i] == "\\":
            i += 1
            if i == len(text):
                break
        name.append(text[i])
        i += 1
    return "".join(name), i


def _bracket(inside: str) -> Iterator[Step]:
    if inside == "*":
        yield _EVERY
        return
    if _INDEX.fullmatch(inside):
        yield int(inside)
        return
    key = _DICT_KEY.fullmatch(inside)
    if key is not None:
        # client-go reads ['a.b'] as the path .a.b: dots split it unless escaped.
        dotted = "." + key.group(1)
        fields = list(_steps(dotted))
        if not all(isinstance(f, str) for f in fields):
            raise ValueError(f"unsupported key [{inside}]")
        yield from fields
        return
    raise ValueError(f"[{inside}] is not supported: only [N], [*] and ['key']")


def _first(value: Any, steps: tuple[Step, ...], at: int) -> Any:
    for position in range(at, len(steps)):
        step = steps[position]
        if value is None:
            return MISSING
        if isinstance(step, str):
            if not isinstance(value, dict) or step not in value:
                return MISSING
            value = value[step]
        elif isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return MISSING
            value = value[step]
        else:
            if not isinstance(value, list):
                return MISSING
            for element in value:
                found = _first(element, steps, position + 1)
                if found is not MISSING:
                    return found
            return MISSING
    return value
