"""PATCH semantics: JSON merge patch (RFC 7386) and JSON patch (RFC 6902), bounded as they apply.

A patch is computed against the current object before anything is written, and a small patch can ask
for a lot of work: twenty rounds of ``copy`` double an object twenty times, and copying a node into its
own child deepens it without end. So every bound is checked *while* the patch applies, before the
work is done rather than after: the number of operations (kube-apiserver's 10,000), the size of the
result (tracked operation by operation, and the total of everything ``copy`` duplicated never refunded,
as evanphx/json-patch's ``AccumulatedCopySizeLimit``) and the depth of every placed value. A patch
that would break a bound fails in milliseconds with 413 (too large) or 422 (too deep, or not
applicable), never a blocked event loop or a ``RecursionError``.

RFC 6902 is applied here rather than by the ``jsonpatch`` library because the bounds must be checked
between the steps of an operation (resolve, measure, place), which the library does not expose; JSON
pointers are parsed by ``jsonpointer``. Merge patches are applied by ``json-merge-patch``; their result
can only be as large as the object and the patch together, so they are checked once, afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import json_merge_patch
import jsonpointer
import orjson

from ..errors import (
    BadRequestError,
    FieldError,
    InvalidError,
    RequestEntityTooLargeError,
    UnsupportedMediaTypeError,
)

__all__ = [
    "JSON_PATCH",
    "MAX_OPERATIONS",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "Mutation",
    "PatchLimits",
    "json_depth",
    "json_patch",
    "json_size",
    "merge_patch",
    "parse_patch",
]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH)
MAX_OPERATIONS = 10_000
"""kube-apiserver's limit on the operations of one JSON patch (``maxJSONPatchOperations``)."""

_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})

Mutation = Callable[[dict[str, Any]], dict[str, Any]]
"""What a patch does to the current object: the function a guaranteed update applies."""


@dataclass(frozen=True, slots=True)
class PatchLimits:
    """Bounds on what applying one patch may produce."""

    max_bytes: int = 1_572_864
    """Largest serialized result (etcd's default request limit, 1.5 MiB): 413 beyond it."""
    max_depth: int = 64
    """Deepest nesting of the result: 422 beyond it."""
    max_operations: int = MAX_OPERATIONS
    """Most operations in one JSON patch: 413 beyond it."""


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), stopping early once past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def json_size(value: Any) -> int:
    """Bytes of ``value`` serialized (the caller has bounded its depth, so encoding cannot recurse
    past orjson's limit)."""
    return len(orjson.dumps(value))


def _too_large(limits: PatchLimits) -> RequestEntityTooLargeError:
    return RequestEntityTooLargeError(
        f"the patched object would be larger than {limits.max_bytes} bytes; nothing was written"
    )


def _invalid(detail: str) -> InvalidError:
    """A patch that does not apply, as a field error of the patch (the API layer names the object)."""
    return InvalidError.of([FieldError("patch", "FieldValueInvalid", detail=detail)])


def _too_deep(limits: PatchLimits) -> InvalidError:
    return _invalid(
        f"the patched object would be nested deeper than {limits.max_depth} levels; nothing was written"
    )


def parse_patch(content_type: str, body: object, limits: PatchLimits) -> Mutation:
    """The mutation a PATCH body of ``content_type`` asks for (400 for a malformed patch, 415 for a
    patch type not served)."""
    if content_type == MERGE_PATCH:
        return merge_patch(body, limits)
    if content_type == JSON_PATCH:
        return json_patch(body, limits)
    raise UnsupportedMediaTypeError(
        f"the patch type {content_type[:100]!r} is not supported; use {MERGE_PATCH} or {JSON_PATCH}"
    )


# -- RFC 7386 --------------------------------------------------------------------------------------


def merge_patch(patch: object, limits: PatchLimits) -> Mutation:
    """A JSON merge patch (RFC 7386): its result is never larger than the object and the patch
    together, so it is measured once, after merging."""
    if not isinstance(patch, dict):
        raise BadRequestError("a merge patch must be a JSON object")

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        # merge() may keep references into the patch: each attempt gets a copy of its own.
        merged = json_merge_patch.merge(current, copy.deepcopy(patch))
        if not isinstance(merged, dict):
            raise _invalid("the patched object is not a JSON object")
        if json_depth(merged, limits.max_depth) > limits.max_depth:
            raise _too_deep(limits)
        if json_size(merged) > limits.max_bytes:
            raise _too_large(limits)
        return merged

    return mutate


# -- RFC 6902 --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Op:
    op: str
    path: tuple[str, ...]
    source: tuple[str, ...] = ()
    """``from``, for move and copy."""
    value: Any = None
    value_size: int = 0
    value_depth: int = 0


def _pointer(op: dict[str, Any], member: str, index: int) -> tuple[str, ...]:
    text = op.get(member)
    if not isinstance(text, str):
        raise BadRequestError(f"JSON patch operation {index}: {member!r} must be a JSON pointer string")
    try:
        return tuple(jsonpointer.JsonPointer(text).parts)
    except jsonpointer.JsonPointerException as err:
        raise BadRequestError(f"JSON patch operation {index}: bad {member} {text[:100]!r}: {err}") from None


def _parse_operations(patch: object, limits: PatchLimits) -> list[_Op]:
    if not isinstance(patch, list):
        raise BadRequestError("a JSON patch must be a JSON array of operations")
    if len(patch) > limits.max_operations:
        raise RequestEntityTooLargeError(
            f"the allowed maximum operations in a JSON patch is {limits.max_operations}, got {len(patch)}"
        )
    ops = []
    for index, raw in enumerate(patch):
        if not isinstance(raw, dict):
            raise BadRequestError(f"JSON patch operation {index} is not a JSON object")
        name = raw.get("op")
        if name not in _OPS:
            raise BadRequestError(
                f"JSON patch operation {index}: unknown op {str(name)[:50]!r}; "
                "want add, remove, replace, move, copy or test"
            )
        path = _pointer(raw, "path", index)
        if name in ("move", "copy"):
            ops.append(_Op(name, path, source=_pointer(raw, "from", index)))
        elif name in ("add", "replace", "test"):
            if "value" not in raw:
                raise BadRequestError(f"JSON patch operation {index} ({name}) has no 'value'")
            value = raw["value"]
            # The request body was depth-checked, so its values can be measured safely.
            ops.append(
                _Op(
                    name,
                    path,
                    value=value,
                    value_size=json_size(value),
                    value_depth=json_depth(value, 1 << 30),
                )
            )
        else:
            ops.append(_Op(name, path))
    return ops


class _PatchFailed(Exception):
    """An operation cannot be applied to this object (422)."""


def _index(container: list[Any], token: str, *, append: bool) -> int:
    if append and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise _PatchFailed(f"{token!r} is not an array index")
    index = int(token)
    if index > len(container) or (index == len(container) and not append):
        raise _PatchFailed(f"array index {index} is out of range")
    return index


def _parent(doc: Any, path: tuple[str, ...]) -> Any:
    node = doc
    for token in path[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise _PatchFailed(f"path /{'/'.join(path)} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, append=False)]
        else:
            raise _PatchFailed(f"path /{'/'.join(path)} does not exist")
    return node


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    if not path:
        return doc
    parent, token = _parent(doc, path), path[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise _PatchFailed(f"path /{'/'.join(path)} does not exist")
        return parent[token]
    if isinstance(parent, list):
        return parent[_index(parent, token, append=False)]
    raise _PatchFailed(f"path /{'/'.join(path)} does not exist")


def _json_equal(a: Any, b: Any) -> bool:
    """RFC 6902 equality: like ``==``, but a boolean is never equal to a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)


class _Application:
    """One application of a JSON patch to one object, with the running size of the result."""

    def __init__(self, doc: dict[str, Any], limits: PatchLimits) -> None:
        self.doc: Any = doc
        self.limits = limits
        self.size = json_size(doc)
        self.copied = 0

    def _grow(self, added: int, removed: int = 0) -> None:
        self.size += added - removed
        if self.size > self.limits.max_bytes:
            raise _too_large(self.limits)

    def _check_depth(self, path: tuple[str, ...], value_depth: int) -> None:
        if len(path) + value_depth > self.limits.max_depth:
            raise _too_deep(self.limits)

    def _place(self, path: tuple[str, ...], value: Any, size: int) -> None:
        """RFC 6902 ``add`` of a measured value."""
        if not path:
            self._grow(size, self.size)
            self.doc = value
            return
        parent, token = _parent(self.doc, path), path[-1]
        if isinstance(parent, dict):
            removed = json_size(parent[token]) if token in parent else 0
            self._grow(size + len(token) + 4, removed)
            parent[token] = value
        elif isinstance(parent, list):
            index = _index(parent, token, append=True)
            self._grow(size + 1)
            parent.insert(index, value)
        else:
            raise _PatchFailed(f"cannot add at /{'/'.join(path)}: its parent is not an object or array")

    def _remove(self, path: tuple[str, ...]) -> Any:
        if not path:
            raise _PatchFailed("cannot remove the whole object")
        parent, token = _parent(self.doc, path), path[-1]
        if isinstance(parent, dict):
            if token not in parent:
                raise _PatchFailed(f"path /{'/'.join(path)} does not exist")
            value = parent.pop(token)
        elif isinstance(parent, list):
            value = parent.pop(_index(parent, token, append=False))
        else:
            raise _PatchFailed(f"path /{'/'.join(path)} does not exist")
        return value

    def apply(self, op: _Op) -> None:
        if op.op == "test":
            if not _json_equal(_get(self.doc, op.path), op.value):
                raise _PatchFailed(f"test failed: the value at /{'/'.join(op.path)} differs")
        elif op.op == "add":
            self._check_depth(op.path, op.value_depth)
            self._place(op.path, copy.deepcopy(op.value), op.value_size)
        elif op.op == "replace":
            _get(self.doc, op.path)  # must exist
            self._check_depth(op.path, op.value_depth)
            self._place(op.path, copy.deepcopy(op.value), op.value_size)
        elif op.op == "remove":
            value = self._remove(op.path)
            self._grow(0, json_size(value))
        elif op.op == "move":
            if op.path[: len(op.source)] == op.source and op.path != op.source:
                raise _PatchFailed("cannot move a value into one of its own children")
            value = _get(self.doc, op.source)
            depth = json_depth(value, self.limits.max_depth)
            self._check_depth(op.path, depth)
            self._remove(op.source)
            self._place(op.path, value, 0)
        else:  # copy
            value = _get(self.doc, op.source)
            depth = json_depth(value, self.limits.max_depth)
            self._check_depth(op.path, depth)
            size = json_size(value)
            # What copies duplicate is never refunded: a copy-then-remove loop cannot do unbounded work.
            self.copied += size
            if self.copied > self.limits.max_bytes:
                raise _too_large(self.limits)
            self._place(op.path, copy.deepcopy(value), size)


def json_patch(patch: object, limits: PatchLimits) -> Mutation:
    """A JSON patch (RFC 6902): validated now (400, or 413 for too many operations), applied with
    its bounds checked operation by operation (413 too large, 422 too deep or not applicable)."""
    ops = _parse_operations(patch, limits)

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        application = _Application(current, limits)
        for index, op in enumerate(ops):
            try:
                application.apply(op)
            except _PatchFailed as err:
                why = f"the JSON patch cannot be applied: operation {index} ({op.op}): {err}"
                raise _invalid(why) from None
        if not isinstance(application.doc, dict):
            raise _invalid("the patched object is not a JSON object")
        return application.doc

    return mutate
