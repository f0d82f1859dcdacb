"""OpenAPI documents: what kubectl validates manifests against and ``kubectl explain`` reads.

What kubectl 1.32 needs, and why (file references are to kubernetes/kubernetes staging at v1.32):

Validation. ``kubectl create|apply|replace`` validate ``Strict`` by default. The validator
(``kubectl/pkg/cmd/util/factory_client_access.go`` ``Validator``, ``kubectl/pkg/validation/schema.go``
``paramVerifyingSchema``) first asks whether the server validates: ``cli-runtime/pkg/resource/
query_param_verifier_v3.go`` ``supportsQueryParamV3`` fetches the OpenAPI v3 document of the object's
group-version (``client-go/openapi3/root.go``: the ``/openapi/v3`` index entry ``apis/{group}/{version}``,
then its ``serverRelativeURL`` with ``Accept: application/json``) and looks, among *operation-level*
parameters of the first PATCH operation whose ``x-kubernetes-group-version-kind`` extension (a single
object, not a list) names the GVK, for one named ``fieldValidation``. Found: kubectl skips client-side
validation and sends ``fieldValidation=Strict``. Not found: it validates client-side against
``/openapi/v2`` fetched as protobuf. Any other error (v3 unreachable, malformed) falls back to the v2
verifier, and a v2 failure then fails the command. So every PATCH (and, for accuracy, POST and PUT)
operation carries an inline ``fieldValidation`` query parameter, and path keys start with ``/`` (kube-openapi
``spec3.Paths`` drops other keys).

Apply. ``kubectl/pkg/cmd/apply/patcher.go`` ``patchSimple`` uses a strategic merge patch only if
``gvkSupportsPatchOpenAPIV3`` finds ``application/strategic-merge-patch+json`` in the PATCH
``requestBody.content`` for the GVK, or the v2 document says so (``getPatchTypeFromOpenAPI``; its errors
are ignored), or the kind is in kubectl's built-in scheme. Otherwise it sends a three-way JSON merge
patch. Our PATCH operations list only ``application/json-patch+json`` and ``application/merge-patch+json``
(what the server accepts), so ``apply`` uses merge patch. Caveat: a GVK that collides with one compiled
into kubectl (say ``apps/v1 Deployment``) would still get strategic merge patches, which are refused (415).

OpenAPI v3. The index is ``{"paths": {"apis/G/V": {"serverRelativeURL": "/openapi/v3/apis/G/V?hash=H"}}}``
with ``H`` the upper-case hex SHA-512 of the encoded document (kube-openapi ``handler3``), so clients that
cache by URL see a new URL when the document changes. Each kind has a permissive schema
(``x-kubernetes-preserve-unknown-fields``, typed ``apiVersion``/``kind``/``metadata``), its list kind, the
meta schemas they reference, and an operation for every URL served (no ``/watch/`` paths: watching is
``?watch=true`` on the list). This is also what ``kubectl explain`` (v3 by default) reads.

OpenAPI v2. client-go's ``OpenAPISchema`` asks only for protobuf (``Accept: application/com.github.
proto-openapi.spec.v2@v1.0+protobuf``) and kubectl 1.32 reaches it on the fallbacks above: the patcher
ignores its errors, but the validator does not — a manifest whose kind is not served (a typo) has no
PATCH operation in v3, so kubectl validates it against v2 and, had v2 failed, would report "failed to
download openapi" instead of the real problem. :func:`openapi_v2` is served as JSON and, encoded by
:mod:`.openapi_proto`, as gnostic's protobuf ``Document``, negotiated as kube-openapi does
(:func:`.discovery.openapi_v2_format`). Kinds follow kube's v2 convention for unknown-field-preserving
kinds: ``type: object`` and no properties.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from ..api.options import PARAMETERS
from ..api.spec import ResourceSpec
from .discovery import (
    JSON,
    PATCH_CONTENT_TYPES,
    OpenAPIV3Index,
    OpenAPIV3Path,
    document_hash,
    group_versions,
    served_specs,
    watchcache_version,
)

__all__ = ["openapi_v2", "openapi_v3_document", "openapi_v3_index"]

_SCHEMAS: Final = "#/components/schemas/"
_V2_DEFINITIONS: Final = "#/definitions/"
_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1."
_OBJECT_META: Final = _META + "ObjectMeta"
_LIST_META: Final = _META + "ListMeta"
_PATCH: Final = _META + "Patch"
_DELETE_OPTIONS: Final = _META + "DeleteOptions"
_STATUS: Final = _META + "Status"
_WATCH_EVENT: Final = _META + "WatchEvent"

# -- OpenAPI ---------------------------------------------------------------------------------------

Action = Literal["list", "get", "post", "put", "patch", "delete"]


@dataclass(frozen=True, slots=True)
class _Route:
    """One operation on one URL, independent of the OpenAPI version it is written in."""

    path: str
    method: Literal["get", "post", "put", "patch", "delete"]
    action: Action
    operation_id: str
    description: str
    namespaced: bool
    """Whether ``{namespace}`` is in the path."""
    named: bool
    """Whether ``{name}`` is in the path."""


def _routes(spec: ResourceSpec, version: str) -> Iterator[_Route]:
    """Every URL served for ``spec`` at ``version``, with its operations (kube's CRD names)."""
    kind, ns = spec.kind, spec.namespaced
    scope = "Namespaced" if ns else ""
    collection = f"/apis/{spec.group}/{version}/{spec.resource}"
    if ns:
        everywhere = f"list or watch objects of kind {kind} in all namespaces"
        yield _Route(collection, "get", "list", f"list{kind}ForAllNamespaces", everywhere, False, False)
        collection = f"/apis/{spec.group}/{version}/namespaces/{{namespace}}/{spec.resource}"
    item = f"{collection}/{{name}}"
    yield _Route(
        collection, "get", "list", f"list{scope}{kind}", f"list or watch objects of kind {kind}", ns, False
    )
    yield _Route(collection, "post", "post", f"create{scope}{kind}", f"create a {kind}", ns, False)
    yield _Route(item, "get", "get", f"read{scope}{kind}", f"read the specified {kind}", ns, True)
    yield _Route(item, "put", "put", f"replace{scope}{kind}", f"replace the specified {kind}", ns, True)
    yield _Route(
        item, "patch", "patch", f"patch{scope}{kind}", f"partially update the specified {kind}", ns, True
    )
    yield _Route(item, "delete", "delete", f"delete{scope}{kind}", f"delete a {kind}", ns, True)


def _kind_schema_name(spec: ResourceSpec, version: str, kind: str) -> str:
    """kube's REST-friendly definition name of a CRD kind: the group reversed, e.g.
    ``com.example.wardle.v1alpha1.Flunder``."""
    return ".".join([*reversed(spec.group.split(".")), version, kind])


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _SCHEMAS + name}


def _ref_with(name: str, description: str) -> dict[str, Any]:
    # A $ref with siblings is not valid OpenAPI 3.0; kube wraps it in allOf to add a description.
    return {"description": description, "allOf": [_ref(name)]}


def _gvk(spec: ResourceSpec, version: str, kind: str) -> dict[str, str]:
    return {"group": spec.group, "version": version, "kind": kind}


def _query(name: str, type_: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": type_}}


def _field_validation() -> dict[str, Any]:
    return _query(
        "fieldValidation",
        "string",
        "How the server treats unknown or duplicate fields in the request body: Ignore, Warn or Strict. "
        "Its presence on PATCH tells kubectl that the server validates, so kubectl does not.",
    )


def _list_parameters() -> list[dict[str, Any]]:
    return [
        _query(p.name, p.type, p.description)
        for p in sorted(PARAMETERS, key=lambda p: p.name)
        if p.verbs & {"list", "watch"}
    ]


def _path_parameters(route: _Route, kind: str) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    if route.named:
        params.append(_path_parameter("name", f"name of the {kind}"))
    if route.namespaced:
        params.append(
            _path_parameter("namespace", "object name and auth scope, such as for teams and projects")
        )
    return params


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "description": description,
        "required": True,
        "schema": {"type": "string"},
    }


def _v3_operation(route: _Route, spec: ResourceSpec, version: str) -> dict[str, Any]:
    kind_schema = _kind_schema_name(spec, version, spec.kind)
    list_schema = _kind_schema_name(spec, version, spec.kind + "List")

    def content(schema: str, *types: str) -> dict[str, Any]:
        return {t: {"schema": _ref(schema)} for t in types}

    def ok(schema: str, description: str = "OK") -> dict[str, Any]:
        return {"description": description, "content": content(schema, JSON)}

    operation: dict[str, Any] = {
        "tags": [_tag(spec.group, version)],
        "description": route.description,
        "operationId": route.operation_id,
        "parameters": [],
    }
    responses: dict[str, Any]
    if route.action == "list":
        operation["parameters"] = _list_parameters()
        both = {**content(list_schema, JSON), **content(_WATCH_EVENT, JSON + ";stream=watch")}
        responses = {"200": {"description": "OK", "content": both}}
    elif route.action == "get":
        responses = {"200": ok(kind_schema)}
    elif route.action in ("post", "put"):
        operation["parameters"] = [_field_validation()]
        operation["requestBody"] = {"required": True, "content": content(kind_schema, JSON)}
        responses = (
            {"201": ok(kind_schema, "Created")} if route.action == "post" else {"200": ok(kind_schema)}
        )
    elif route.action == "patch":
        operation["parameters"] = [_field_validation()]
        operation["requestBody"] = {"required": True, "content": content(_PATCH, *PATCH_CONTENT_TYPES)}
        responses = {"200": ok(kind_schema)}
    else:
        operation["requestBody"] = {"required": False, "content": content(_DELETE_OPTIONS, JSON)}
        responses = {"200": ok(kind_schema, "OK: the deleted object")}
    responses["default"] = {"description": "Error", "content": content(_STATUS, JSON)}
    operation["responses"] = responses
    operation["x-kubernetes-action"] = route.action
    operation["x-kubernetes-group-version-kind"] = _gvk(spec, version, spec.kind)
    return operation


def _tag(group: str, version: str) -> str:
    return f"{group}_{version}"


def _kind_schemas(spec: ResourceSpec, version: str) -> dict[str, dict[str, Any]]:
    """The permissive schema of ``spec``'s kind and of its list kind, in v3 form."""
    kind, list_kind = spec.kind, spec.kind + "List"
    type_meta = {
        "apiVersion": {"type": "string", "description": "The versioned schema of this object."},
        "kind": {"type": "string", "description": "The REST resource this object represents."},
    }
    return {
        _kind_schema_name(spec, version, kind): {
            "type": "object",
            "description": f"{kind} of {spec.qualified}; any fields besides apiVersion, kind and "
            "metadata are kept as sent.",
            "properties": {**type_meta, "metadata": _ref_with(_OBJECT_META, "Standard object metadata.")},
            "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [_gvk(spec, version, kind)],
        },
        _kind_schema_name(spec, version, list_kind): {
            "type": "object",
            "description": f"{list_kind} is a list of {kind}",
            "required": ["items"],
            "properties": {
                **type_meta,
                "items": {"type": "array", "items": _ref(_kind_schema_name(spec, version, kind))},
                "metadata": _ref_with(_LIST_META, "Standard list metadata."),
            },
            "x-kubernetes-group-version-kind": [_gvk(spec, version, list_kind)],
        },
    }


def _string(description: str = "") -> dict[str, Any]:
    return {"type": "string", "description": description} if description else {"type": "string"}


def _int64(description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "format": "int64"}
    return {**schema, "description": description} if description else schema


def _string_map(description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "additionalProperties": {"type": "string"}}


def _meta_schemas() -> dict[str, dict[str, Any]]:
    """The meta/v1 schemas that kinds, lists and operations refer to (v3 refs)."""
    time = _META + "Time"
    return {
        _OBJECT_META: {
            "type": "object",
            "description": "Metadata that all persisted resources must have.",
            "properties": {
                "annotations": _string_map("Unstructured key value map set by external tools."),
                "creationTimestamp": _ref_with(time, "When the object was created; set by the server."),
                "deletionGracePeriodSeconds": _int64(),
                "deletionTimestamp": _ref(time),
                "finalizers": {"type": "array", "items": {"type": "string"}},
                "generateName": _string("Prefix of a name the server generates when name is empty."),
                "generation": _int64(),
                "labels": _string_map("Map of string keys and values to select objects by."),
                "managedFields": {"type": "array", "items": _ref(_META + "ManagedFieldsEntry")},
                "name": _string("Unique within a namespace."),
                "namespace": _string("The namespace of a namespaced object."),
                "ownerReferences": {"type": "array", "items": _ref(_META + "OwnerReference")},
                "resourceVersion": _string("Opaque version of the object, for optimistic concurrency."),
                "selfLink": _string(),
                "uid": _string("Unique in time and space; set by the server."),
            },
        },
        _LIST_META: {
            "type": "object",
            "description": "Metadata of a list.",
            "properties": {
                "continue": _string("Token to fetch the next page, if any."),
                "remainingItemCount": _int64("How many items the next pages hold, when known."),
                "resourceVersion": _string("The state the list was read at."),
                "selfLink": _string(),
            },
        },
        _META + "ManagedFieldsEntry": {
            "type": "object",
            "properties": {
                "apiVersion": _string(),
                "fieldsType": _string(),
                "fieldsV1": _ref(_META + "FieldsV1"),
                "manager": _string(),
                "operation": _string(),
                "subresource": _string(),
                "time": _ref(time),
            },
        },
        _META + "FieldsV1": {"type": "object"},
        _META + "OwnerReference": {
            "type": "object",
            "required": ["apiVersion", "kind", "name", "uid"],
            "properties": {
                "apiVersion": _string(),
                "blockOwnerDeletion": {"type": "boolean"},
                "controller": {"type": "boolean"},
                "kind": _string(),
                "name": _string(),
                "uid": _string(),
            },
            "x-kubernetes-map-type": "atomic",
        },
        time: {"type": "string", "format": "date-time"},
        _PATCH: {"type": "object", "description": "A JSON merge patch (object) or JSON patch (array)."},
        _DELETE_OPTIONS: {
            "type": "object",
            "properties": {
                "apiVersion": _string(),
                "kind": _string(),
                "dryRun": {"type": "array", "items": {"type": "string"}},
                "gracePeriodSeconds": _int64(),
                "orphanDependents": {"type": "boolean"},
                "preconditions": _ref(_META + "Preconditions"),
                "propagationPolicy": _string(),
            },
            "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "DeleteOptions"}],
        },
        _META + "Preconditions": {
            "type": "object",
            "properties": {"resourceVersion": _string(), "uid": _string()},
        },
        _STATUS: {
            "type": "object",
            "properties": {
                "apiVersion": _string(),
                "code": {"type": "integer", "format": "int32"},
                "details": _ref(_META + "StatusDetails"),
                "kind": _string(),
                "message": _string(),
                "metadata": _ref(_LIST_META),
                "reason": _string(),
                "status": _string(),
            },
            "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Status"}],
        },
        _META + "StatusDetails": {
            "type": "object",
            "properties": {
                "causes": {"type": "array", "items": _ref(_META + "StatusCause")},
                "group": _string(),
                "kind": _string(),
                "name": _string(),
                "retryAfterSeconds": {"type": "integer", "format": "int32"},
                "uid": _string(),
            },
        },
        _META + "StatusCause": {
            "type": "object",
            "properties": {"field": _string(), "message": _string(), "reason": _string()},
        },
        _WATCH_EVENT: {
            "type": "object",
            "required": ["type", "object"],
            "properties": {
                "type": _string("ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."),
                "object": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
            "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "WatchEvent"}],
        },
    }


def openapi_v3_document(group: str, version: str, specs: Sequence[ResourceSpec]) -> dict[str, Any] | None:
    """``/openapi/v3/apis/{group}/{version}``; ``None`` (404) when no visible resource serves it."""
    served = served_specs(group, version, specs)
    if not served:
        return None
    paths: dict[str, dict[str, Any]] = {}
    schemas = _meta_schemas()
    for spec in served:
        schemas.update(_kind_schemas(spec, version))
        for route in _routes(spec, version):
            path = paths.setdefault(route.path, {"parameters": _path_parameters(route, spec.kind)})
            path[route.method] = _v3_operation(route, spec, version)
    return {
        "openapi": "3.0.0",
        "info": {"title": "watchcache", "version": watchcache_version()},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_v3_index(specs: Sequence[ResourceSpec]) -> OpenAPIV3Index:
    """``/openapi/v3``: one entry per visible group-version, its URL carrying the document's hash."""
    paths: dict[str, OpenAPIV3Path] = {}
    for group, versions in group_versions(specs).items():
        for version in versions:
            document = openapi_v3_document(group, version, specs)
            url = f"/openapi/v3/apis/{group}/{version}?hash={document_hash(document)}"
            paths[f"apis/{group}/{version}"] = {"serverRelativeURL": url}
    return {"paths": paths}


def _to_v2(value: Any) -> Any:
    """A v3 schema rewritten for Swagger 2.0: refs point into ``definitions``."""
    if isinstance(value, dict):
        return {
            k: (_V2_DEFINITIONS + v.removeprefix(_SCHEMAS) if k == "$ref" else _to_v2(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_to_v2(v) for v in value]
    return value


def _v2_parameters(v3: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Swagger 2.0 puts a non-body parameter's type beside its name, not in a schema."""
    return [{**{k: v for k, v in p.items() if k != "schema"}, "type": p["schema"]["type"]} for p in v3]


def _v2_operation(route: _Route, spec: ResourceSpec, version: str) -> dict[str, Any]:
    """The Swagger 2.0 twin of :func:`_v3_operation`."""
    v3 = _v3_operation(route, spec, version)
    params = _v2_parameters(v3["parameters"])
    operation: dict[str, Any] = {
        "tags": v3["tags"],
        "description": v3["description"],
        "operationId": v3["operationId"],
        "produces": [JSON] + ([JSON + ";stream=watch"] if route.action == "list" else []),
        "schemes": ["https"],
    }
    body = v3.get("requestBody")
    if body is not None:
        content_types = list(body["content"])
        operation["consumes"] = content_types
        schema = body["content"][content_types[0]]["schema"]
        params.append({"name": "body", "in": "body", "required": body["required"], "schema": _to_v2(schema)})
    operation["parameters"] = params
    responses: dict[str, Any] = {}
    for code, response in v3["responses"].items():
        schema = response["content"][JSON]["schema"]
        responses[code] = {"description": response["description"], "schema": _to_v2(schema)}
    operation["responses"] = responses
    operation["x-kubernetes-action"] = v3["x-kubernetes-action"]
    operation["x-kubernetes-group-version-kind"] = v3["x-kubernetes-group-version-kind"]
    return operation


def openapi_v2(specs: Sequence[ResourceSpec]) -> dict[str, Any]:
    """``/openapi/v2``, as JSON (the protobuf form is its encoding by :mod:`.openapi_proto`).

    Kinds are bare ``type: object`` schemas, as kube publishes unknown-field-preserving CRDs in v2:
    a v2 validator (kubectl before 1.27) rejects any field not among listed properties.
    """
    paths: dict[str, dict[str, Any]] = {}
    definitions = {name: _to_v2(schema) for name, schema in _meta_schemas().items()}
    for group, versions in group_versions(specs).items():
        for version in versions:
            for spec in served_specs(group, version, specs):
                kinds = _kind_schemas(spec, version)
                kind_name = _kind_schema_name(spec, version, spec.kind)
                kinds[kind_name] = {
                    "type": "object",
                    "x-kubernetes-group-version-kind": kinds[kind_name]["x-kubernetes-group-version-kind"],
                }
                definitions.update(_to_v2(kinds))
                for route in _routes(spec, version):
                    if route.path not in paths:
                        paths[route.path] = {"parameters": _v2_parameters(_path_parameters(route, spec.kind))}
                    paths[route.path][route.method] = _v2_operation(route, spec, version)
    return {
        "swagger": "2.0",
        "info": {"title": "watchcache", "version": watchcache_version()},
        "paths": paths,
        "definitions": definitions,
    }
