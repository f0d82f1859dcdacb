"""Discovery documents: what kubectl and client libraries read to learn what is served.

Pure functions that build JSON-ready dicts from the :class:`ResourceSpec` objects a client may see (a
tenant sees a subset, so every function takes the visible specs). The HTTP layer encodes them (with
:func:`encode`, once per visible set) and maps ``None`` to a 404.

What kubectl 1.32 needs, and why (file references are to kubernetes/kubernetes staging at v1.32):

Discovery. client-go ``discovery/discovery_client.go`` asks ``/api`` and ``/apis`` with ``Accept:
application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...;v=v2beta1...,application/json``
and branches on the *response* ``Content-Type`` (``ContentTypeIsGVK``): anything but the aggregated
types is parsed as legacy ``APIVersions`` / ``APIGroupList``, after which it fetches
``/apis/{group}/{version}`` (an ``APIResourceList``) for every version. We serve only the legacy form,
always as plain ``application/json``: it needs no content negotiation, one format fewer to keep right,
and kubectl keeps discovery in its disk cache for hours, so the N+2 requests of a cold cache do not
matter. (Mixing the forms would not help: ``GroupsAndMaybeResources`` uses aggregated resources only
when ``/api`` and ``/apis`` both answer aggregated.) ``/api`` lists ``v1``, whose one resource is
``namespaces`` (get, list, watch; short name ``ns``): read-only, derived from the caches
(``watchcache.api.namespaces``), because namespace-aware clients wait for it in discovery before
anything else (kopf, for one, waits forever without it). Verbs are the seven we serve;
``deletecollection`` is not (``kubectl delete --all`` lists and deletes one by one). ``singularName`` is
the lower-case kind, as for a CRD without one; it lets kubectl resolve ``kubectl get flunder``.
``storageVersionHash`` is left out: versions share storage without conversion, so there is no storage
version for a migrator to follow. Versions are listed in configuration order; the first is preferred.

Version. ``kubectl version`` parses the server's ``gitVersion`` with ``version.ParseSemantic`` (an error
if it is not ``vMAJOR.MINOR.PATCH[-pre][+build]``) and warns when the minor versions differ by more than
one (``kubectl/pkg/cmd/version/skew_warning.go``). We report the Kubernetes API level we follow, 1.32,
with watchcache's own version as semver build metadata: ``v1.32.0+watchcache.0.1.0``.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Sequence
from typing import Final, Literal, NotRequired, TypedDict

import orjson

from ..api.spec import ResourceSpec
from ..version import VERSION

__all__ = [
    "CORE_VERBS",
    "DISCOVERY_VERBS",
    "KUBERNETES_VERSION",
    "OPENAPI_V2_PROTOBUF",
    "OPENAPI_V2_PROTOBUF_TYPE",
    "PATCH_CONTENT_TYPES",
    "APIGroup",
    "APIGroupList",
    "APIResource",
    "APIResourceList",
    "APIVersions",
    "GroupVersionForDiscovery",
    "OpenAPIV2Format",
    "OpenAPIV3Index",
    "OpenAPIV3Path",
    "VersionInfo",
    "accepts_json",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "core_resource_list",
    "document_hash",
    "encode",
    "group_versions",
    "openapi_v2_format",
    "quality",
    "served_specs",
    "version_info",
    "watchcache_version",
]

KUBERNETES_VERSION: Final = (1, 32, 0)
"""The Kubernetes API level followed; reported by ``/version``, so kubectl 1.31 to 1.33 see no skew."""

DISCOVERY_VERBS: Final = ("create", "delete", "get", "list", "patch", "update", "watch")
"""Verbs every served resource supports, as discovery lists them."""

CORE_VERBS: Final = ("get", "list", "watch")
"""Verbs of the core ``namespaces``: read-only."""

PATCH_CONTENT_TYPES: Final = ("application/json-patch+json", "application/merge-patch+json")
"""Patch types served. Not strategic merge patch: listing it would make ``kubectl apply`` send one."""

OPENAPI_V2_PROTOBUF: Final = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
"""What client-go asks ``/openapi/v2`` for (kube-openapi's deprecated name of the protobuf form)."""

OPENAPI_V2_PROTOBUF_TYPE: Final = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
"""The protobuf form's current name: what kube-apiserver answers with, whichever was asked for."""

OpenAPIV2Format = Literal["json", "protobuf"]

_OPENAPI_V2_FORMATS: Final[tuple[tuple[str, OpenAPIV2Format], ...]] = (
    ("application/json", "json"),
    (OPENAPI_V2_PROTOBUF, "protobuf"),
    (OPENAPI_V2_PROTOBUF_TYPE, "protobuf"),
)

JSON: Final = "application/json"


# -- wire shapes -----------------------------------------------------------------------------------


class VersionInfo(TypedDict):
    """``/version``: k8s.io/apimachinery ``version.Info``."""

    major: str
    minor: str
    gitVersion: str
    gitCommit: str
    gitTreeState: str
    buildDate: str
    goVersion: str
    compiler: str
    platform: str


class ServerAddressByClientCIDR(TypedDict):
    clientCIDR: str
    serverAddress: str


class APIVersions(TypedDict):
    """``/api``: the versions of the core group."""

    kind: Literal["APIVersions"]
    versions: list[str]
    serverAddressByClientCIDRs: list[ServerAddressByClientCIDR]


class GroupVersionForDiscovery(TypedDict):
    groupVersion: str
    version: str


class APIGroup(TypedDict):
    """One group; ``kind``/``apiVersion`` only when it is the whole ``/apis/{group}`` document."""

    kind: NotRequired[Literal["APIGroup"]]
    apiVersion: NotRequired[Literal["v1"]]
    name: str
    versions: list[GroupVersionForDiscovery]
    preferredVersion: GroupVersionForDiscovery


class APIGroupList(TypedDict):
    """``/apis``."""

    kind: Literal["APIGroupList"]
    apiVersion: Literal["v1"]
    groups: list[APIGroup]


class APIResource(TypedDict):
    name: str
    singularName: str
    namespaced: bool
    kind: str
    verbs: list[str]
    shortNames: NotRequired[list[str]]


class APIResourceList(TypedDict):
    """``/apis/{group}/{version}``."""

    kind: Literal["APIResourceList"]
    apiVersion: Literal["v1"]
    groupVersion: str
    resources: list[APIResource]


class OpenAPIV3Path(TypedDict):
    serverRelativeURL: str


class OpenAPIV3Index(TypedDict):
    """``/openapi/v3``: kube-openapi ``handler3.OpenAPIV3Discovery``."""

    paths: dict[str, OpenAPIV3Path]


# -- encoding --------------------------------------------------------------------------------------


def encode(document: object) -> bytes:
    """The canonical encoding of a document (sorted keys): the bytes to serve and to hash."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def document_hash(document: object) -> str:
    """The ``hash`` of an OpenAPI v3 document, as kube-openapi computes it: upper-case hex SHA-512 of
    its encoding. Serve it as the document's ``ETag`` too."""
    return hashlib.sha512(encode(document)).hexdigest().upper()


def openapi_v2_format(accept: str | None) -> OpenAPIV2Format | None:
    """What ``/openapi/v2`` answers an ``Accept`` header with, as kube-openapi's handler chooses: the
    most preferred clause (by ``q``, then the most specific) that JSON or one of the protobuf types
    matches, JSON first; None (406) when none does. No header means anything goes."""
    clauses: list[tuple[float, bool, bool, int, str, str]] = []
    for position, clause in enumerate((accept or "*/*").split(",")):
        media, _, params = clause.partition(";")
        kind, _, subtype = media.strip().lower().partition("/")
        q = quality(params)
        if kind and subtype and q > 0:
            clauses.append((-q, kind == "*", subtype == "*", position, kind, subtype))
    for *_, kind, subtype in sorted(clauses):
        for media_type, answer in _OPENAPI_V2_FORMATS:
            offered_kind, _, offered_subtype = media_type.partition("/")
            if kind in (offered_kind, "*") and subtype in (offered_subtype, "*"):
                return answer
    return None


def accepts_json(accept: str | None) -> bool:
    """Whether ``/openapi/v2`` answers an ``Accept`` header with JSON."""
    return openapi_v2_format(accept) == "json"


def quality(params: str) -> float:
    """The ``q`` of an Accept clause's parameters (1 when absent or unreadable)."""
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 1.0
    return 1.0


# -- /version, /api, /apis -------------------------------------------------------------------------


def watchcache_version() -> str:
    return VERSION


def _platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386"}.get(machine, machine)
    return f"{sys.platform}/{arch}"


def version_info() -> VersionInfo:
    """``/version``: the Kubernetes API level followed, with watchcache's version as build metadata."""
    major, minor, patch = KUBERNETES_VERSION
    build = watchcache_version().replace("+", ".")
    return {
        "major": str(major),
        "minor": str(minor),
        "gitVersion": f"v{major}.{minor}.{patch}+watchcache.{build}",
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "1970-01-01T00:00:00Z",  # kube's value for "not stamped"
        "goVersion": f"python{platform.python_version()}",
        "compiler": platform.python_implementation().lower(),
        "platform": _platform(),
    }


def api_versions() -> APIVersions:
    """``/api``: the core group's versions: ``v1``, for ``namespaces``."""
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def core_resource_list() -> APIResourceList:
    """``/api/v1``: the one core resource served, ``namespaces``, read-only."""
    namespaces: APIResource = {
        "name": "namespaces",
        "singularName": "namespace",
        "namespaced": False,
        "kind": "Namespace",
        "verbs": list(CORE_VERBS),
        "shortNames": ["ns"],
    }
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [namespaces]}


def group_versions(specs: Sequence[ResourceSpec]) -> dict[str, list[str]]:
    """Each visible group's versions: the union over its resources, in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for spec in specs:
        versions = groups.setdefault(spec.group, [])
        versions.extend(v for v in spec.versions if v not in versions)
    return {group: versions for group, versions in groups.items() if group and versions}


def _group(name: str, versions: list[str]) -> APIGroup:
    def entry(version: str) -> GroupVersionForDiscovery:
        return {"groupVersion": f"{name}/{version}", "version": version}

    return {"name": name, "versions": [entry(v) for v in versions], "preferredVersion": entry(versions[0])}


def api_group_list(specs: Sequence[ResourceSpec]) -> APIGroupList:
    """``/apis``: every visible group, each preferring its first version."""
    groups = [_group(name, versions) for name, versions in group_versions(specs).items()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str, specs: Sequence[ResourceSpec]) -> APIGroup | None:
    """``/apis/{group}``; ``None`` (404) for a group not visible."""
    versions = group_versions(specs).get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def served_specs(group: str, version: str, specs: Sequence[ResourceSpec]) -> list[ResourceSpec]:
    if not group:  # the core group has no resources here
        return []
    return [s for s in specs if s.group == group and version in s.versions]


def api_resource_list(group: str, version: str, specs: Sequence[ResourceSpec]) -> APIResourceList | None:
    """``/apis/{group}/{version}``; ``None`` (404) when no visible resource serves that version."""
    served = served_specs(group, version, specs)
    if not served:
        return None
    resources: list[APIResource] = [
        {
            "name": spec.resource,
            "singularName": spec.kind.lower(),
            "namespaced": spec.namespaced,
            "kind": spec.kind,
            "verbs": list(DISCOVERY_VERBS),
        }
        for spec in served
    ]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}",
        "resources": resources,
    }
