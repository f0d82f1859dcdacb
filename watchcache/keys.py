"""The etcd key layout of a resource, and validation of the names that go into keys.

``{prefix}/{group}/{resource}/{namespace}/{name}`` (namespaced) or
``{prefix}/{group}/{resource}/{name}`` (cluster-scoped); the core group "" has no group segment,
as in Kubernetes. ``KeyLayout.object_key`` is the only place object keys are built, so it is where
a tenant is kept inside its resource: names and namespaces are validated there and the result is
checked again. ``KeyLayout.parse_key`` checks only structure, so that objects written by other
tools stay readable.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

from .errors import BadRequestError, FieldError, InvalidError

__all__ = [
    "LABEL_RULE",
    "SUBDOMAIN_RULE",
    "KeyLayout",
    "label_problems",
    "name_errors",
    "namespace_errors",
    "prefix_range_end",
    "subdomain_problems",
    "validate_name",
    "validate_namespace",
]

_DNS1123_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")

# k8s.io/apimachinery/pkg/util/validation's rules, word for word (the regexes as it prints them).
_LABEL_FORMAT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FORMAT = _LABEL_FORMAT + "(\\." + _LABEL_FORMAT + ")*"
SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    f"and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    f"validation is '{_SUBDOMAIN_FORMAT}')"
)
LABEL_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    f"start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    f"validation is '{_LABEL_FORMAT}')"
)


def _byte_length(value: str) -> int:
    """Go's ``len``: UTF-8 bytes."""
    return len(value.encode("utf-8", "surrogatepass"))


def subdomain_problems(value: str) -> list[str]:
    """Why ``value`` is not a DNS-1123 subdomain (kube's ``IsDNS1123Subdomain``); [] when it is."""
    problems = []
    if _byte_length(value) > 253:
        problems.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        problems.append(SUBDOMAIN_RULE)
    return problems


def label_problems(value: str) -> list[str]:
    """Why ``value`` is not a DNS-1123 label (kube's ``IsDNS1123Label``); [] when it is."""
    problems = []
    if _byte_length(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _DNS1123_LABEL.fullmatch(value):
        # A valid subdomain that is no label has dots (the length is reported already).
        problems.append("must not contain dots" if _DNS1123_SUBDOMAIN.fullmatch(value) else LABEL_RULE)
    return problems


def name_errors(name: str) -> list[FieldError]:
    """What is wrong with an object's name, as kube-apiserver reports it for a custom resource."""
    if not name:
        return [FieldError.required("metadata.name", "name or generateName is required")]
    return [FieldError.invalid("metadata.name", name, problem) for problem in subdomain_problems(name)]


def namespace_errors(namespace: str) -> list[FieldError]:
    """What is wrong with a namespace, as kube-apiserver reports it."""
    if not namespace:
        return [FieldError.required("metadata.namespace")]
    return [FieldError.invalid("metadata.namespace", namespace, p) for p in label_problems(namespace)]


def validate_name(name: str) -> None:
    """Raise ``InvalidError`` unless ``name`` is a DNS-1123 subdomain (so never "..", nor a '/')."""
    errors = name_errors(name)
    if errors:
        raise InvalidError.of(errors)


def validate_namespace(namespace: str) -> None:
    """Raise ``InvalidError`` unless ``namespace`` is a DNS-1123 label."""
    errors = namespace_errors(namespace)
    if errors:
        raise InvalidError.of(errors)


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range end covering every key that starts with ``prefix`` (b"\\0": every key)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\0"
    return stripped[:-1] + bytes((stripped[-1] + 1,))


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Where one resource's objects live in etcd. Invalid settings raise ``ValueError``."""

    #: The etcd prefix of all resources, e.g. "/registry": starts with '/', does not end with one.
    prefix: str
    #: The API group, a DNS-1123 subdomain, or "" for the core group (no segment in the key).
    group: str
    #: The plural resource name, a DNS-1123 label.
    resource: str
    #: Whether keys carry a namespace segment.
    namespaced: bool
    #: ``{prefix}/{group}/{resource}/``: every object key of this resource starts with it.
    resource_prefix: bytes = dataclasses.field(init=False, repr=False, compare=False)
    #: ``{prefix}/{group}/{resource}``: written by the cache as an ordered progress signal; it sorts
    #: just before every object key and is never one itself.
    progress_key: bytes = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefix = self.prefix
        if not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix or "\0" in prefix:
            raise ValueError(
                f"etcd prefix {self.prefix!r} must start with '/', not end with '/', "
                "and contain no '//' and no NUL"
            )
        if self.group and not (len(self.group) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(self.group)):
            raise ValueError(f"group {self.group!r} is not a DNS-1123 subdomain")
        if not (len(self.resource) <= 63 and _DNS1123_LABEL.fullmatch(self.resource)):
            raise ValueError(f"resource {self.resource!r} is not a DNS-1123 label")
        segments = [prefix, self.group, self.resource] if self.group else [prefix, self.resource]
        progress_key = "/".join(segments).encode()
        object.__setattr__(self, "progress_key", progress_key)
        object.__setattr__(self, "resource_prefix", progress_key + b"/")

    @property
    def _qualified_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def watch_range(self) -> tuple[bytes, bytes]:
        """One etcd range holding the progress key and every object key (and possibly keys of
        other resources, such as ``{resource}-old/...``, which ``parse_key`` rejects)."""
        return self.progress_key, prefix_range_end(self.resource_prefix)

    def list_range(self, namespace: str | None = None) -> tuple[bytes, bytes]:
        """The range of every object, or of one namespace's objects (None or "": all of them)."""
        if not namespace:
            return self.resource_prefix, prefix_range_end(self.resource_prefix)
        self._check_scope(namespace)
        validate_namespace(namespace)
        start = self.resource_prefix + namespace.encode() + b"/"
        return start, prefix_range_end(start)

    def object_key(self, namespace: str | None, name: str) -> bytes:
        """The key of one object; ``namespace`` is None or "" for cluster-scoped resources.

        Raises ``BadRequestError`` for a namespace that does not fit the scope, ``InvalidError``
        for a name or namespace that is not valid.
        """
        self._check_scope(namespace)
        if namespace:
            validate_namespace(namespace)
        validate_name(name)
        tail = f"{namespace}/{name}" if namespace else name
        key = self.resource_prefix + tail.encode()
        # Validation already excludes '/' in names; this check keeps any future gap in it from
        # letting a key land outside this resource or at the wrong depth.
        expected = 1 if self.namespaced else 0
        if not key.startswith(self.resource_prefix) or (
            key.count(b"/", len(self.resource_prefix)) != expected
        ):
            raise BadRequestError(f"refusing to build key {key!r} for {self._qualified_resource}")
        return key

    def _check_scope(self, namespace: str | None) -> None:
        if self.namespaced and not namespace:
            raise BadRequestError(f"{self._qualified_resource} is namespaced: a namespace is required")
        if not self.namespaced and namespace:
            raise BadRequestError(
                f"{self._qualified_resource} is cluster-scoped: "
                f"namespace {json.dumps(namespace)} is not allowed"
            )

    def parse_key(self, key: bytes) -> tuple[str, str] | None:
        """``(namespace or "", name)`` of an object key of this resource, else None."""
        if not key.startswith(self.resource_prefix):
            return None
        segments = key[len(self.resource_prefix) :].split(b"/")
        if len(segments) != (2 if self.namespaced else 1) or not all(segments):
            return None
        try:
            decoded = [segment.decode() for segment in segments]
        except UnicodeDecodeError:
            return None
        if self.namespaced:
            return decoded[0], decoded[1]
        return "", decoded[0]
