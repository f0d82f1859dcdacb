"""What an object's metadata may hold, checked before a write as kube-apiserver checks ObjectMeta.

A field of the wrong JSON type is 400 (kube-apiserver cannot decode it either); a well-typed value
that breaks a rule (a label key that is not a qualified name, a label value too long) is a field
error, worded as k8s.io/apimachinery words it; the writer raises them together as one 422 Invalid
naming the object.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import BadRequestError, FieldError
from ..keys import subdomain_problems

__all__ = ["generate_name_errors", "label_key_problems", "label_value_problems", "metadata_errors"]

_MAX_ANNOTATIONS_BYTES = 256 * 1024
"""kube-apiserver's limit on the total size of an object's annotations."""

# k8s.io/apimachinery/pkg/util/validation (Kubernetes 1.32), word for word.
_QUALIFIED_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_QUALIFIED_NAME_FORMAT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    f"alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    f"is '{_QUALIFIED_NAME_FORMAT}')"
)
_LABEL_VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    f"'12345', regex used for validation is '({_QUALIFIED_NAME_FORMAT})?')"
)


def _byte_length(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def label_key_problems(key: str) -> list[str]:
    """Why ``key`` is not a qualified name (kube's ``IsQualifiedName``); [] when it is."""
    parts = key.split("/")
    if len(parts) > 2:
        return [
            f"a qualified name {_QUALIFIED_NAME_RULE} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    problems = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems.extend(f"prefix part {p}" for p in subdomain_problems(prefix))
    if not name:
        problems.append("name part must be non-empty")
    elif _byte_length(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not _QUALIFIED_NAME.fullmatch(name):
        problems.append(f"name part {_QUALIFIED_NAME_RULE}")
    return problems


def label_value_problems(value: str) -> list[str]:
    """Why ``value`` is not a label value (kube's ``IsValidLabelValue``); [] when it is."""
    problems = []
    if _byte_length(value) > 63:
        problems.append("must be no more than 63 characters")
    if value and not _QUALIFIED_NAME.fullmatch(value):
        problems.append(_LABEL_VALUE_RULE)
    return problems


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


def metadata_errors(meta: dict[str, Any]) -> list[FieldError]:
    """400 for a metadata field of the wrong type; the field errors of labels and annotations
    Kubernetes would refuse (in kube-apiserver's order), [] when there are none."""
    for field, (fits, what) in _TYPES.items():
        value = meta.get(field)
        if value is not None and not fits(value):
            raise BadRequestError(f"metadata.{field} must be {what}")
    errors: list[FieldError] = []
    for key, value in (meta.get("labels") or {}).items():
        errors.extend(FieldError.invalid("metadata.labels", key, p) for p in label_key_problems(key))
        errors.extend(FieldError.invalid("metadata.labels", value, p) for p in label_value_problems(value))
    annotations: dict[str, str] = meta.get("annotations") or {}
    for key in annotations:
        # The rule is a qualified name, except that case does not matter.
        problems = label_key_problems(key.lower())
        errors.extend(FieldError.invalid("metadata.annotations", key, p) for p in problems)
    if sum(len(k) + len(v) for k, v in annotations.items()) > _MAX_ANNOTATIONS_BYTES:
        errors.append(FieldError.too_long("metadata.annotations", _MAX_ANNOTATIONS_BYTES))
    return errors


def generate_name_errors(generate_name: str) -> list[FieldError]:
    """A generateName must make a valid name once random characters follow it, as kube-apiserver
    checks it for a custom resource (its ``maskTrailingDash``, quirk included)."""
    masked = generate_name
    if len(generate_name) > 1 and generate_name.endswith("-"):
        masked = generate_name[:-2] + "a"
    return [FieldError.invalid("metadata.generateName", generate_name, p) for p in subdomain_problems(masked)]
