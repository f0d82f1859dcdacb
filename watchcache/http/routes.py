"""Which resource a request path names, and which verb it is.

Routing is done by hand over the raw path, segment by segment (each percent-decoded on its own), so
that an encoded ``%2F`` or a ``..`` can never change which resource or key a request reaches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from ..api.options import parse_flag
from ..api.resource import Resource
from ..errors import MethodNotAllowedError, NotFoundError
from ..tenancy.limits import Admission
from .responses import Observation

__all__ = ["Target", "target_of", "verb_of"]


def _not_found() -> NotFoundError:
    return NotFoundError("the server could not find the requested resource")


@dataclass(frozen=True, slots=True)
class Target:
    """A resource path: which resource, through which version, which namespace and object."""

    resource: Resource
    version: str
    namespace: str | None
    name: str | None
    admission: Admission | None = None
    """The calling tenant's limits (None with authentication off)."""
    observation: Observation | None = None
    """Where the request's outcome is counted."""


def target_of(segments: list[str], resources: Mapping[tuple[str, str], Resource]) -> Target:
    """``{group}/{version}/[namespaces/{ns}/]{resource}[/{name}]`` (decoded segments); 404 otherwise."""
    group, version, rest = segments[0], segments[1], segments[2:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
        if namespace == "":
            raise _not_found()
    if not 1 <= len(rest) <= 2 or rest[0] == "":
        raise _not_found()
    resource = resources.get((group, rest[0]))
    if resource is None or version not in resource.spec.versions:
        raise _not_found()
    if namespace is not None and not resource.spec.namespaced:
        raise _not_found()
    name = rest[1] if len(rest) == 2 else None
    if name is not None and resource.spec.namespaced and namespace is None:
        raise _not_found()
    return Target(resource, version, namespace, name)


def verb_of(request: web.BaseRequest, target: Target) -> str:
    """The Kubernetes verb of a request on ``target`` (405 for a method the path does not take)."""
    method = request.method
    watch = method == "GET" and bool(parse_flag(request.query, "watch"))
    if target.name is None:
        if method == "GET":
            return "WATCH" if watch else "LIST"
        if method == "POST":
            spec = target.resource.spec
            if spec.namespaced and target.namespace is None:
                raise MethodNotAllowedError(
                    f"create {spec.qualified} in a namespace: "
                    f"POST /apis/{spec.group}/{target.version}/namespaces/NS/{spec.resource}"
                )
            return "CREATE"
    else:
        verb = {"GET": "WATCH" if watch else "GET", "PUT": "UPDATE", "PATCH": "PATCH", "DELETE": "DELETE"}
        if method in verb:
            return verb[method]
    raise MethodNotAllowedError(f"method {method} is not allowed on {request.path}")
