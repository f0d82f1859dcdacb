"""/openapi/v2 as gnostic's protobuf, byte for byte as kube-apiserver would encode the same JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watchcache.api.spec import ResourceSpec
from watchcache.http.gnostic import OpenAPIv2_pb2 as pb
from watchcache.http.openapi import openapi_v2
from watchcache.http.openapi_proto import openapi_v2_protobuf

DATA = Path(__file__).parent.parent / "data"


def test_the_encoding_is_gnostics() -> None:
    """A served v2 document (the example configuration's) encodes to exactly the bytes gnostic's
    compiler makes of it (tests/data/gnostic_convert.go)."""
    document = json.loads((DATA / "openapi_v2.json").read_text())
    assert openapi_v2_protobuf(document) == (DATA / "openapi_v2.gnostic.pb").read_bytes()


def test_every_served_document_encodes_and_names_its_kinds() -> None:
    """Today's document (more versions, cluster-scoped and namespaced kinds) encodes; each kind's
    definition carries its group-version-kind as YAML, where kubectl looks it up."""
    specs = [
        ResourceSpec("wardle.example.com", "flunders", "Flunder", True, ("v1alpha1", "v1beta1")),
        ResourceSpec("acme.example.com", "widgets", "Widget", False, ("v1",)),
    ]
    document = pb.Document()
    document.ParseFromString(openapi_v2_protobuf(openapi_v2(specs)))
    assert document.swagger == "2.0"
    definitions = {named.name: named.value for named in document.definitions.additional_properties}
    widget = definitions["com.example.acme.v1.Widget"]
    assert widget.type.value == ["object"]
    [gvk] = widget.vendor_extension
    assert (gvk.name, gvk.value.yaml) == (
        "x-kubernetes-group-version-kind",
        "- group: acme.example.com\n  kind: Widget\n  version: v1\n",
    )
    paths = {named.name: named.value for named in document.paths.path}
    patch = paths["/apis/acme.example.com/v1/widgets/{name}"].patch
    query, body = patch.parameters
    assert query.parameter.non_body_parameter.query_parameter_sub_schema.name == "fieldValidation"
    assert body.parameter.body_parameter.schema._ref == (
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
    )


def test_an_unmapped_key_is_a_bug_not_a_silent_loss() -> None:
    """A key the encoder has no mapping for raises instead of vanishing from the protobuf form."""
    document = json.loads((DATA / "openapi_v2.json").read_text())
    document["definitions"]["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["pattern"] = "x"
    with pytest.raises(ValueError, match="pattern"):
        openapi_v2_protobuf(document)
