"""``/openapi/v2`` as protobuf: the Swagger 2.0 document of :func:`.openapi.openapi_v2` as gnostic's
``openapi.v2.Document``, the message client-go's ``OpenAPISchema`` asks for (and the only form it takes).

kube-apiserver makes it from its JSON document with gnostic's compiler (kube-openapi
``handler.ToProtoBinary``); this is that mapping for what our documents hold, applied to the JSON we
serve (keys sorted), so that the bytes are the ones gnostic makes of it: a schema's ``type`` is a
``TypeItem``, ``items`` an ``ItemsItem``, ``$ref`` the ``_ref`` field, maps (``paths``, ``definitions``,
``properties``, ``responses``) lists of named pairs in document order, and each ``x-`` extension a
``NamedAny`` whose value is the extension's YAML text, which is how kubectl reads
``x-kubernetes-group-version-kind``. A key outside that subset is a bug here, so it raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import yaml

from .discovery import encode
from .gnostic import OpenAPIv2_pb2 as pb

__all__ = ["openapi_v2_protobuf"]


def openapi_v2_protobuf(document: Mapping[str, Any]) -> bytes:
    """The encoded ``openapi.v2.Document`` of a Swagger 2.0 document (as :func:`.openapi.openapi_v2`
    builds it)."""
    document = orjson.loads(encode(document))  # as served: every map's keys sorted
    _known(document, {"swagger", "info", "paths", "definitions"}, "document")
    info = document["info"]
    _known(info, {"title", "version", "description"}, "info")
    message = pb.Document(
        swagger=document["swagger"],
        info=pb.Info(title=info["title"], version=info["version"], description=info.get("description", "")),
        paths=pb.Paths(
            path=[pb.NamedPathItem(name=p, value=_path_item(item)) for p, item in document["paths"].items()]
        ),
        definitions=pb.Definitions(
            additional_properties=[
                pb.NamedSchema(name=name, value=_schema(schema, name))
                for name, schema in document["definitions"].items()
            ]
        ),
    )
    return message.SerializeToString()


def _known(value: Mapping[str, Any], keys: set[str], where: str) -> None:
    unknown = {k for k in value if k not in keys and not k.startswith("x-")}
    if unknown:
        raise ValueError(f"{where}: no protobuf mapping for {sorted(unknown)}")


def _extensions(value: Mapping[str, Any]) -> list[pb.NamedAny]:
    """The ``x-`` keys, as gnostic keeps them: each value's YAML text."""
    return [pb.NamedAny(name=k, value=pb.Any(yaml=_yaml(v))) for k, v in value.items() if k.startswith("x-")]


class _Dumper(yaml.SafeDumper):
    """YAML as gnostic writes it (go-yaml v3): block style, "" for an empty string."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if not value else None)


_Dumper.add_representer(str, _string)


def _yaml(value: Any) -> str:
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True)
    return text.removesuffix("...\n")  # PyYAML ends a lone scalar with a document end; gnostic does not


_SCHEMA_KEYS = {
    "$ref",
    "type",
    "format",
    "description",
    "properties",
    "required",
    "items",
    "allOf",
    "additionalProperties",
}


def _schema(schema: Mapping[str, Any], where: str) -> pb.Schema:
    _known(schema, _SCHEMA_KEYS, where)
    message = pb.Schema(
        _ref=schema.get("$ref", ""),
        format=schema.get("format", ""),
        description=schema.get("description", ""),
        required=schema.get("required", []),
        all_of=[_schema(s, f"{where}.allOf") for s in schema.get("allOf", [])],
        vendor_extension=_extensions(schema),
    )
    if "type" in schema:
        kind = schema["type"]
        message.type.value.extend([kind] if isinstance(kind, str) else kind)
    if "properties" in schema:
        message.properties.additional_properties.extend(
            pb.NamedSchema(name=name, value=_schema(s, f"{where}.{name}"))
            for name, s in schema["properties"].items()
        )
    if "items" in schema:
        items = schema["items"]
        message.items.schema.extend(
            [_schema(items, f"{where}.items")]
            if isinstance(items, Mapping)
            else [_schema(s, f"{where}.items") for s in items]
        )
    if "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        if isinstance(extra, bool):
            message.additional_properties.boolean = extra
        else:
            message.additional_properties.schema.CopyFrom(_schema(extra, f"{where}.additionalProperties"))
    return message


def _parameter(parameter: Mapping[str, Any]) -> pb.ParametersItem:
    where = f"parameter {parameter.get('name')}"
    located = parameter["in"]
    if located == "body":
        _known(parameter, {"name", "in", "description", "required", "schema"}, where)
        body = pb.BodyParameter(
            name=parameter["name"],
            description=parameter.get("description", ""),
            required=parameter.get("required", False),
            schema=_schema(parameter["schema"], where),
        )
        setattr(body, "in", located)
        return pb.ParametersItem(parameter=pb.Parameter(body_parameter=body))
    _known(parameter, {"name", "in", "description", "required", "type"}, where)
    fields = {
        "name": parameter["name"],
        "in": located,
        "description": parameter.get("description", ""),
        "required": parameter.get("required", False),
        "type": parameter["type"],
    }
    if located == "query":
        other = pb.NonBodyParameter(query_parameter_sub_schema=pb.QueryParameterSubSchema(**fields))
    elif located == "path":
        other = pb.NonBodyParameter(path_parameter_sub_schema=pb.PathParameterSubSchema(**fields))
    else:
        raise ValueError(f"{where}: no protobuf mapping for parameters in {located!r}")
    return pb.ParametersItem(parameter=pb.Parameter(non_body_parameter=other))


_OPERATION_KEYS = {"tags", "description", "operationId", "produces", "consumes", "schemes", "parameters"}


def _operation(operation: Mapping[str, Any]) -> pb.Operation:
    where = f"operation {operation.get('operationId')}"
    _known(operation, _OPERATION_KEYS | {"responses"}, where)
    responses = []
    for code, response in operation["responses"].items():
        _known(response, {"description", "schema"}, f"{where} response {code}")
        answer = pb.Response(description=response["description"])
        if "schema" in response:
            answer.schema.schema.CopyFrom(_schema(response["schema"], f"{where} response {code}"))
        responses.append(pb.NamedResponseValue(name=code, value=pb.ResponseValue(response=answer)))
    return pb.Operation(
        tags=operation.get("tags", []),
        description=operation.get("description", ""),
        operation_id=operation.get("operationId", ""),
        produces=operation.get("produces", []),
        consumes=operation.get("consumes", []),
        schemes=operation.get("schemes", []),
        parameters=[_parameter(p) for p in operation.get("parameters", [])],
        responses=pb.Responses(response_code=responses),
        vendor_extension=_extensions(operation),
    )


_METHODS = ("get", "put", "post", "delete", "patch")


def _path_item(item: Mapping[str, Any]) -> pb.PathItem:
    _known(item, {*_METHODS, "parameters"}, "path item")
    message = pb.PathItem(parameters=[_parameter(p) for p in item.get("parameters", [])])
    for method in _METHODS:
        if method in item:
            getattr(message, method).CopyFrom(_operation(item[method]))
    return message
