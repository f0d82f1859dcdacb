"""Kubernetes label and field selectors: parsing, validation, canonical form and matching.

The grammar and the matching semantics are those of k8s.io/apimachinery ``pkg/labels/selector.go``
and ``pkg/fields/selector.go``. Parsing does all the work once (validation, sorting, building one
small check per requirement) because ``matches`` runs for every watch event and every watcher.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from .errors import BadRequestError

__all__ = [
    "EVERYTHING",
    "label_key_problem",
    "label_value_problem",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "Selector",
]

Operator = Literal["exists", "!", "=", "!=", "in", "notin", ">", "<"]
FieldOperator = Literal["=", "!="]

_Check = Callable[[Mapping[str, str]], bool]

# Kubernetes' lexer: these symbols (longest match first) and runs of anything that is neither a
# symbol nor one of its four whitespace characters. ``findall`` skips the whitespace between tokens.
_LABEL_TOKEN = re.compile(r"!=|==|[=!(),<>]|[^ \t\r\n=!(),<>]+")
_SYMBOLS = frozenset("=!(),<>")
_END = ""  # the token returned past the end; no real token is empty
_BINARY_OPERATORS: dict[str, Operator] = {
    "=": "=",
    "==": "=",
    "!=": "!=",
    "in": "in",
    "notin": "notin",
    ">": ">",
    "<": "<",
}

_QUALIFIED_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_SELECTOR_INTEGER = re.compile(r"[0-9]+")
# Label values on stored objects are parsed like Go's strconv.ParseInt, which accepts a sign; the
# bound on digits keeps int() cheap on foreign data (anything that long is out of int64 anyway).
_LABEL_INTEGER = re.compile(r"[+-]?[0-9]{1,64}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)

_FIELD_OPERATOR = re.compile(r"(.*?)(!=|==|=)(.*)", re.DOTALL)  # the first operator splits the term
_ESCAPED_VALUE = re.compile(r"(?:[^\\,=]|\\[\\,=])*", re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_FIELD_OPERATORS: dict[str, FieldOperator] = {"=": "=", "==": "=", "!=": "!="}
_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


def _quote(value: str) -> str:
    return json.dumps(value)  # escapes control characters and lone surrogates too


def _found(token: str, expected: str) -> str:
    return f"found {_quote(token) if token else 'end of string'}, expected: {expected}"


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key (a qualified name), or None."""
    prefix, slash, name = key.rpartition("/")
    if "/" in prefix:
        return f"a qualified name {_NAME_RULE}, with an optional DNS subdomain prefix and '/'"
    if slash:
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253:
            return "prefix part must be no more than 253 characters"
        if not _DNS1123_SUBDOMAIN.fullmatch(prefix):
            return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.fullmatch(name):
        return f"name part {_NAME_RULE}"
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if value and not _QUALIFIED_NAME.fullmatch(value):
        return f"a valid label must be an empty string or {_NAME_RULE.removeprefix('must ')}"
    return None


def _validate_label_value(key: str, value: str) -> None:
    problem = label_value_problem(value)
    if problem is not None:
        raise BadRequestError(f"invalid label value {_quote(value)} for key {_quote(key)}: {problem}")


def _label_integer(value: str | None) -> int | None:
    if value is None or not _LABEL_INTEGER.fullmatch(value):
        return None
    number = int(value)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One label requirement, validated on construction (``BadRequestError``)."""

    key: str
    operator: Operator
    #: Empty for ``exists`` and ``!``; one value for ``=``, ``!=``, ``>``, ``<``; else one or more.
    values: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        problem = label_key_problem(self.key)
        if problem is not None:
            raise BadRequestError(f"invalid label key {_quote(self.key)}: {problem}")
        count = len(self.values)
        if self.operator in ("exists", "!"):
            valid = count == 0
        elif self.operator in ("=", "!=", ">", "<"):
            valid = count == 1
        elif self.operator in ("in", "notin"):
            valid = count > 0
        else:
            raise BadRequestError(f"unknown label selector operator {_quote(self.operator)}")
        if not valid:
            raise BadRequestError(
                f"wrong number of values ({count}) for operator {_quote(self.operator)} "
                f"on key {_quote(self.key)}"
            )
        for value in self.values:
            _validate_label_value(self.key, value)
        if self.operator in (">", "<"):
            (value,) = self.values
            if not _SELECTOR_INTEGER.fullmatch(value) or int(value) > _INT64_MAX:
                raise BadRequestError(
                    f"for '>' and '<' operators the value must be an integer, got {_quote(value)}"
                )

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(sorted(self.values))})"
        (value,) = self.values
        return f"{self.key}{self.operator}{value}"

    def compile(self) -> _Check:
        """A predicate on an object's labels, with Kubernetes' semantics for missing labels."""
        key, operator, values = self.key, self.operator, self.values
        if operator == "exists":
            return lambda labels: key in labels
        if operator == "!":
            return lambda labels: key not in labels
        # A missing label gives None, which is in no set: "="/"in" fail, "!="/"notin" pass.
        if operator in ("=", "in"):
            return lambda labels: labels.get(key) in values
        if operator in ("!=", "notin"):
            return lambda labels: labels.get(key) not in values
        bound = int(next(iter(values)))
        if operator == ">":
            return lambda labels: (n := _label_integer(labels.get(key))) is not None and n > bound
        return lambda labels: (n := _label_integer(labels.get(key))) is not None and n < bound


class _LabelParser:
    """Recursive descent over the token list, mirroring apimachinery's parser and its messages."""

    __slots__ = ("_position", "_tokens")

    def __init__(self, text: str) -> None:
        self._tokens: list[str] = _LABEL_TOKEN.findall(text)
        self._position = 0

    def _peek(self) -> str:
        return self._tokens[self._position] if self._position < len(self._tokens) else _END

    def _next(self) -> str:
        token = self._peek()
        self._position += 1
        return token

    @staticmethod
    def _is_identifier(token: str) -> bool:
        return token != _END and token[0] not in _SYMBOLS

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        if self._peek() == _END:
            return requirements
        while True:
            token = self._peek()
            if token != "!" and not self._is_identifier(token):
                raise BadRequestError(_found(token, "'!', identifier, or end of string"))
            try:
                requirements.append(self._requirement())
            except BadRequestError as error:
                raise BadRequestError(f"unable to parse requirement: {error.message}") from None
            token = self._next()
            if token == _END:
                return requirements
            if token != ",":
                raise BadRequestError(_found(token, "',' or end of string"))
            token = self._peek()
            if token != "!" and not self._is_identifier(token):
                raise BadRequestError(_found(token, "identifier after ','"))

    def _requirement(self) -> Requirement:
        token = self._next()
        negated = token == "!"
        if negated:
            token = self._next()
        if not self._is_identifier(token):
            raise BadRequestError(_found(token, "identifier"))
        key = token
        # "!key" takes no operator: anything after it is left to the caller to reject.
        if negated:
            return Requirement(key, "!")
        if self._peek() in (_END, ","):
            return Requirement(key, "exists")
        token = self._next()
        operator = _BINARY_OPERATORS.get(token)
        if operator is None:
            raise BadRequestError(_found(token, "'=', '==', '!=', 'in', 'notin', '>' or '<'"))
        if operator in ("in", "notin"):
            return Requirement(key, operator, self._set_values())
        return Requirement(key, operator, frozenset({self._exact_value()}))

    def _exact_value(self) -> str:
        token = self._peek()
        if token in (_END, ","):
            return ""
        self._position += 1
        if self._is_identifier(token):
            return token
        raise BadRequestError(_found(token, "identifier"))

    def _set_values(self) -> frozenset[str]:
        token = self._next()
        if token != "(":
            raise BadRequestError(_found(token, "'('"))
        values: set[str] = set()
        # Empty items count as "" ("()", "(a,)", "(,a)"), as in Kubernetes.
        while True:
            token = self._peek()
            if self._is_identifier(token):
                self._position += 1
                values.add(token)
            else:
                values.add("")
            token = self._next()
            if token == ")":
                return frozenset(values)
            if token != ",":
                raise BadRequestError(_found(token, "',' or ')'"))


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of label requirements; no requirement matches everything."""

    requirements: tuple[Requirement, ...] = ()
    _checks: tuple[_Check, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Sorted so that equal selectors compare and print equal.
        ordered = tuple(sorted(self.requirements, key=lambda r: (r.key, str(r))))
        object.__setattr__(self, "requirements", ordered)
        object.__setattr__(self, "_checks", tuple(r.compile() for r in ordered))

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse Kubernetes' ``labelSelector`` syntax; any error is a ``BadRequestError``."""
        return cls(tuple(_LabelParser(text).parse()))

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        for check in self._checks:  # noqa: SIM110 - a plain loop is faster than all(<generator>)
            if not check(labels):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """``field=value`` or ``field!=value`` on ``metadata.name`` or ``metadata.namespace``."""

    field: str
    operator: FieldOperator
    value: str

    def __post_init__(self) -> None:
        if self.field not in _FIELDS:
            raise BadRequestError(f"field label not supported: {self.field}")
        if self.operator not in ("=", "!="):
            raise BadRequestError(f"unknown field selector operator {_quote(self.operator)}")

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{self.operator}{escaped}"


def _split_field_terms(text: str) -> list[str]:
    terms: list[str] = []
    start = 0
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _parse_field_term(term: str) -> FieldRequirement:
    match = _FIELD_OPERATOR.fullmatch(term)
    if match is None:
        raise BadRequestError(f"invalid field selector: can't understand {_quote(term)}")
    field, operator, raw = match.groups()
    if not _ESCAPED_VALUE.fullmatch(raw):
        raise BadRequestError(
            f"invalid field selector value {_quote(raw)}: ',', '=' and '\\' must be escaped "
            "with '\\', and no other character may be"
        )
    value = _ESCAPE.sub(r"\1", raw)
    return FieldRequirement(field, _FIELD_OPERATORS[operator], value)


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A conjunction of field requirements; no requirement matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()
    # (on metadata.name?, must equal?, value) per requirement: the cheapest form to test.
    _checks: tuple[tuple[bool, bool, str], ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.requirements, key=str))
        object.__setattr__(self, "requirements", ordered)
        checks = tuple((r.field == "metadata.name", r.operator == "=", r.value) for r in ordered)
        object.__setattr__(self, "_checks", checks)

    @classmethod
    def parse(cls, text: str) -> FieldSelector:
        """Parse Kubernetes' ``fieldSelector`` syntax; any error is a ``BadRequestError``."""
        if not text.strip():
            return cls()
        # Empty terms ("a=b,") are skipped, as Kubernetes does.
        return cls(tuple(_parse_field_term(t) for t in _split_field_terms(text) if t))

    @property
    def empty(self) -> bool:
        return not self.requirements

    @property
    def exact_name(self) -> str | None:
        """The name every match must have, for an index lookup; None when unconstrained."""
        return self._exact("metadata.name")

    @property
    def exact_namespace(self) -> str | None:
        """The namespace every match must be in, for an index lookup; None when unconstrained."""
        return self._exact("metadata.namespace")

    def _exact(self, field: str) -> str | None:
        for requirement in self.requirements:
            if requirement.field == field and requirement.operator == "=":
                return requirement.value
        return None

    def matches(self, name: str, namespace: str) -> bool:
        """``namespace`` is "" for cluster-scoped objects, as in Kubernetes."""
        for on_name, equal, value in self._checks:
            if ((name if on_name else namespace) == value) is not equal:
                return False
        return True

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


@dataclass(frozen=True, slots=True)
class Selector:
    """A request's label and field selectors together: an object must match both."""

    label: LabelSelector
    field: FieldSelector

    @classmethod
    def parse(cls, label_selector: str | None, field_selector: str | None) -> Selector:
        """Parse both query parameters (None when absent); any error is a ``BadRequestError``."""
        if not label_selector and not field_selector:
            return _EVERYTHING  # immutable: one for every watch and list without selectors
        return cls(LabelSelector.parse(label_selector or ""), FieldSelector.parse(field_selector or ""))

    @property
    def empty(self) -> bool:
        return self.label.empty and self.field.empty

    def matches(self, name: str, namespace: str, labels: Mapping[str, str]) -> bool:
        # Fields first: they are cheaper and, with a name selector, reject almost every event.
        return self.field.matches(name, namespace) and self.label.matches(labels)


EVERYTHING = Selector(LabelSelector(), FieldSelector())


_EVERYTHING = Selector(LabelSelector(), FieldSelector())
