"""What an object's metadata may hold, checked before a write as kube-apiserver checks ObjectMeta.

A field of the wrong JSON type is 400 (kube-apiserver cannot decode it either); a well-typed value
that breaks a rule (a label key that is not a qualified name, a label value too long) is 422 Invalid,
with one cause per problem. Fields the server sets itself (uid, creationTimestamp, resourceVersion)
are overwritten by the write; their types are still checked, as Kubernetes decodes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import BadRequestError, InvalidError, StatusCause
from ..selectors import label_key_problem, label_value_problem

__all__ = ["validate_metadata"]

_MAX_ANNOTATIONS_BYTES = 256 * 1024
"""kube-apiserver's limit on the total size of an object's annotations."""


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _is_string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **{f: (_is_string, "a string") for f in ("name", "generateName", "namespace", "uid", "resourceVersion")},
    **{f: (_is_string, "a string") for f in ("creationTimestamp", "deletionTimestamp")},
    "generation": (_is_integer, "an integer"),
    "deletionGracePeriodSeconds": (_is_integer, "an integer"),
    "labels": (_is_string_map, "a map of strings to strings"),
    "annotations": (_is_string_map, "a map of strings to strings"),
    "finalizers": (_is_strings, "a list of strings"),
    "ownerReferences": (_is_objects, "a list of objects"),
    "managedFields": (_is_objects, "a list of objects"),
}
"""ObjectMeta's fields and the JSON type each must have (null is absent)."""


def validate_metadata(meta: dict[str, Any], *, kind: str, name: str | None) -> None:
    """400 for a metadata field of the wrong type, 422 for a value Kubernetes would refuse."""
    for field, (fits, what) in _TYPES.items():
        value = meta.get(field)
        if value is not None and not fits(value):
            raise BadRequestError(f"metadata.{field} must be {what}")
    causes: list[StatusCause] = []
    for key, value in (meta.get("labels") or {}).items():
        problem = label_key_problem(key)
        if problem is not None:
            causes.append(_cause("metadata.labels", key, problem))
        problem = label_value_problem(value)
        if problem is not None:
            causes.append(_cause(f"metadata.labels[{key}]", value, problem))
    annotations: dict[str, str] = meta.get("annotations") or {}
    for key in annotations:
        problem = label_key_problem(key)
        if problem is not None:
            causes.append(_cause("metadata.annotations", key, problem))
    if sum(len(k) + len(v) for k, v in annotations.items()) > _MAX_ANNOTATIONS_BYTES:
        message = f"Too long: must have at most {_MAX_ANNOTATIONS_BYTES} bytes"
        causes.append({"reason": "FieldValueTooLong", "message": message, "field": "metadata.annotations"})
    if causes:
        shown = "; ".join(f"{c['field']}: {c['message']}" for c in causes[:5])
        raise InvalidError(
            f'{kind} "{name or ""}" is invalid: {shown}',
            details={"kind": kind, "name": name or "", "causes": causes},
        )


def _cause(field: str, value: str, problem: str) -> StatusCause:
    return {
        "reason": "FieldValueInvalid",
        "message": f"Invalid value: {value[:100]!r}: {problem}",
        "field": field,
    }
