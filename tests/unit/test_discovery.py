"""Discovery and OpenAPI documents: shapes, what kubectl 1.32 checks in them, and client-model parsing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from kubernetes.client import ApiClient

from watchcache.api.spec import ResourceSpec
from watchcache.http.discovery import (
    DISCOVERY_VERBS,
    KUBERNETES_VERSION,
    OPENAPI_V2_PROTOBUF,
    accepts_json,
    api_group,
    api_group_list,
    api_resource_list,
    api_versions,
    document_hash,
    encode,
    version_info,
)
from watchcache.http.openapi import openapi_v2, openapi_v3_document, openapi_v3_index

WARDLE = "wardle.example.com"
FLUNDERS = ResourceSpec(
    group=WARDLE, resource="flunders", kind="Flunder", namespaced=True, versions=("v1alpha1", "v1beta1")
)
FISCHERS = ResourceSpec(
    group=WARDLE, resource="fischers", kind="Fischer", namespaced=False, versions=("v1beta1", "v1")
)
WIDGETS = ResourceSpec(group="other.example.org", resource="widgets", kind="Widget", versions=("v2",))
SPECS = (FLUNDERS, FISCHERS, WIDGETS)

# From kubectl 1.32's requests (client-go discovery and openapi clients).
AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def deserialize(doc: object, model: str) -> Any:
    """Parse ``doc`` as the official Python client parses a response into ``model``."""
    return ApiClient().deserialize(json.dumps(doc), model, "application/json")


def gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def refs(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


def document(group: str, version: str) -> dict[str, Any]:
    doc = openapi_v3_document(group, version, SPECS)
    assert doc is not None
    return doc


# kubectl's checks, ported. cli-runtime resource/query_param_verifier_v3.go supportsQueryParamV3 and
# kubectl cmd/apply/patcher.go gvkSupportsPatchOpenAPIV3: the first PATCH operation whose (single)
# x-kubernetes-group-version-kind matches decides.


def kubectl_supports_field_validation(doc: dict[str, Any], target: dict[str, str]) -> bool:
    for path, item in doc["paths"].items():
        if not path.startswith("/"):  # kube-openapi's spec3.Paths drops such keys
            continue
        op = item.get("patch")
        if op is None or op.get("x-kubernetes-group-version-kind") != target:
            continue
        return any(p.get("name") == "fieldValidation" for p in op.get("parameters", []))
    return False


def kubectl_would_send_strategic_merge_patch(doc: dict[str, Any], target: dict[str, str]) -> bool:
    for item in doc["paths"].values():
        op = item.get("patch")
        if op is not None and op.get("x-kubernetes-group-version-kind") == target:
            return "application/strategic-merge-patch+json" in op.get("requestBody", {}).get("content", {})
    return False


def test_version_parses_as_semver_within_kubectl_skew() -> None:
    """gitVersion is semantic (kubectl version errors otherwise) and 1.32, within kubectl 1.31-1.33's skew."""
    info = version_info()
    match = re.fullmatch(
        r"v(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?",
        info["gitVersion"],
    )
    assert match is not None, info["gitVersion"]
    assert (int(match[1]), int(match[2]), int(match[3])) == KUBERNETES_VERSION
    assert (info["major"], info["minor"]) == ("1", "32")
    assert match[4] is not None and match[4].startswith("watchcache.")
    parsed = deserialize(info, "VersionInfo")
    assert parsed.git_version == info["gitVersion"]
    assert parsed.platform == info["platform"]


def test_api_versions_lists_core_v1() -> None:
    """/api is an APIVersions listing v1: the core group's read-only namespaces (tests/integration/
    test_namespaces.py)."""
    doc: dict[str, object] = dict(api_versions())
    assert doc == {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    assert deserialize(doc, "V1APIVersions").versions == ["v1"]


def test_api_group_list_versions_in_order_preferring_the_first() -> None:
    """/apis lists each group once, versions as configured (union over its resources), first preferred."""
    doc = api_group_list(SPECS)
    assert (doc["kind"], doc["apiVersion"]) == ("APIGroupList", "v1")
    groups = {g["name"]: g for g in doc["groups"]}
    assert list(groups) == [WARDLE, "other.example.org"]
    wardle = groups[WARDLE]
    assert [v["version"] for v in wardle["versions"]] == ["v1alpha1", "v1beta1", "v1"]
    assert [v["groupVersion"] for v in wardle["versions"]] == [
        f"{WARDLE}/{v}" for v in ("v1alpha1", "v1beta1", "v1")
    ]
    assert wardle["preferredVersion"] == {"groupVersion": f"{WARDLE}/v1alpha1", "version": "v1alpha1"}
    assert "kind" not in wardle
    parsed = deserialize(doc, "V1APIGroupList")
    assert [g.name for g in parsed.groups] == [WARDLE, "other.example.org"]
    assert parsed.groups[0].preferred_version.version == "v1alpha1"


def test_api_group_is_a_document_or_none() -> None:
    """/apis/{group} is an APIGroup for a visible group, None (404) otherwise."""
    doc = api_group(WARDLE, SPECS)
    assert doc is not None
    assert (doc["kind"], doc["apiVersion"], doc["name"]) == ("APIGroup", "v1", WARDLE)
    assert doc["preferredVersion"]["version"] == "v1alpha1"
    assert deserialize(doc, "V1APIGroup").versions[2].group_version == f"{WARDLE}/v1"
    assert api_group("unknown.example.com", SPECS) is None
    assert api_group("", SPECS) is None
    assert api_group(WARDLE, [WIDGETS]) is None


def test_api_resource_list_names_resources_serving_the_version() -> None:
    """/apis/{group}/{version} lists the resources serving that version, with scope, kind and verbs."""
    doc = api_resource_list(WARDLE, "v1beta1", SPECS)
    assert doc is not None
    assert (doc["kind"], doc["apiVersion"], doc["groupVersion"]) == (
        "APIResourceList",
        "v1",
        f"{WARDLE}/v1beta1",
    )
    assert doc["resources"] == [
        {
            "name": "flunders",
            "singularName": "flunder",
            "namespaced": True,
            "kind": "Flunder",
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        },
        {
            "name": "fischers",
            "singularName": "fischer",
            "namespaced": False,
            "kind": "Fischer",
            "verbs": list(DISCOVERY_VERBS),
        },
    ]
    only_v1 = api_resource_list(WARDLE, "v1", SPECS)
    assert only_v1 is not None
    assert [r["name"] for r in only_v1["resources"]] == ["fischers"]
    parsed = deserialize(doc, "V1APIResourceList")
    assert parsed.resources[0].singular_name == "flunder"
    assert parsed.resources[1].namespaced is False


def test_api_resource_list_none_for_what_is_not_served() -> None:
    """Unknown groups, unknown versions and the core group give None (404)."""
    assert api_resource_list(WARDLE, "v2", SPECS) is None
    assert api_resource_list("unknown.example.com", "v1", SPECS) is None
    assert api_resource_list("", "v1", SPECS) is None
    assert api_resource_list(WARDLE, "v1alpha1", [WIDGETS]) is None


def test_documents_show_only_the_visible_specs() -> None:
    """A tenant that sees a subset finds nothing of the rest, in discovery or OpenAPI."""
    visible = [WIDGETS]
    assert [g["name"] for g in api_group_list(visible)["groups"]] == ["other.example.org"]
    assert list(openapi_v3_index(visible)["paths"]) == ["apis/other.example.org/v2"]
    assert openapi_v3_document(WARDLE, "v1alpha1", visible) is None
    assert WARDLE not in encode(openapi_v2(visible)).decode()
    assert api_group_list([])["groups"] == []
    assert openapi_v3_index([]) == {"paths": {}}


def test_openapi_v3_index_links_each_group_version_with_its_hash() -> None:
    """/openapi/v3 has an entry per group-version whose URL carries the upper-case SHA-512 of the document."""
    index = openapi_v3_index(SPECS)
    expected = [(WARDLE, "v1alpha1"), (WARDLE, "v1beta1"), (WARDLE, "v1"), ("other.example.org", "v2")]
    assert list(index["paths"]) == [f"apis/{g}/{v}" for g, v in expected]
    for group, version in expected:
        url = index["paths"][f"apis/{group}/{version}"]["serverRelativeURL"]
        digest = document_hash(document(group, version))
        assert re.fullmatch(r"[0-9A-F]{128}", digest)
        assert url == f"/openapi/v3/apis/{group}/{version}?hash={digest}"


def test_openapi_v3_hash_is_stable_and_follows_content() -> None:
    """The hash does not depend on the specs' order, and changes when the document does."""
    assert openapi_v3_index(SPECS) == openapi_v3_index(tuple(reversed(SPECS)))
    grown = ResourceSpec(
        group=WARDLE, resource="flunders", kind="Flunder", versions=("v1alpha1", "v1beta1", "v1")
    )
    before = openapi_v3_index(SPECS)["paths"][f"apis/{WARDLE}/v1"]
    after = openapi_v3_index((grown, FISCHERS, WIDGETS))["paths"][f"apis/{WARDLE}/v1"]
    assert before != after


def test_openapi_v3_document_none_for_what_is_not_served() -> None:
    """Unknown group-versions give None (404)."""
    assert openapi_v3_document(WARDLE, "v2", SPECS) is None
    assert openapi_v3_document("unknown.example.com", "v1", SPECS) is None
    assert openapi_v3_document("", "v1", SPECS) is None


def test_openapi_v3_paths_namespaced_and_cluster_scoped() -> None:
    """Namespaced kinds get an all-namespaces list, a namespaced collection and item; cluster kinds none."""
    doc = document(WARDLE, "v1beta1")
    assert doc["openapi"].startswith("3.0")
    methods = {path: sorted(m for m in METHODS if m in item) for path, item in doc["paths"].items()}
    base = f"/apis/{WARDLE}/v1beta1"
    assert methods == {
        f"{base}/flunders": ["get"],
        f"{base}/namespaces/{{namespace}}/flunders": ["get", "post"],
        f"{base}/namespaces/{{namespace}}/flunders/{{name}}": ["delete", "get", "patch", "put"],
        f"{base}/fischers": ["get", "post"],
        f"{base}/fischers/{{name}}": ["delete", "get", "patch", "put"],
    }
    for path, item in doc["paths"].items():
        declared = {p["name"] for p in item["parameters"] if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), path
        assert all(p["required"] for p in item["parameters"] if p["in"] == "path")
    actions = {(p, m): op["x-kubernetes-action"] for p, m, op in operations(doc)}
    assert actions[(f"{base}/flunders", "get")] == "list"
    assert actions[(f"{base}/fischers/{{name}}", "get")] == "get"
    assert actions[(f"{base}/fischers", "post")] == "post"


def test_openapi_v3_every_write_operation_takes_field_validation() -> None:
    """Every POST, PUT and PATCH has an inline, operation-level fieldValidation query parameter."""
    for group, version in [
        (WARDLE, "v1alpha1"),
        (WARDLE, "v1beta1"),
        (WARDLE, "v1"),
        ("other.example.org", "v2"),
    ]:
        writes = [
            op for _, method, op in operations(document(group, version)) if method in ("post", "put", "patch")
        ]
        assert writes
        for op in writes:
            params = [p for p in op["parameters"] if p.get("name") == "fieldValidation"]
            assert len(params) == 1
            assert (params[0]["in"], params[0]["schema"]) == ("query", {"type": "string"})


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_kubectl_leaves_validation_to_the_server(spec: ResourceSpec) -> None:
    """kubectl's supportsQueryParamV3 finds fieldValidation on the PATCH of every served GVK."""
    for version in spec.versions:
        target = gvk(spec.group, version, spec.kind)
        assert kubectl_supports_field_validation(document(spec.group, version), target)
        assert not kubectl_supports_field_validation(
            document(spec.group, version), gvk(spec.group, version, "Other")
        )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_kubectl_apply_sends_json_merge_patch(spec: ResourceSpec) -> None:
    """PATCH lists exactly the served patch types, so kubectl apply's gvkSupportsPatchOpenAPIV3 says no."""
    for version in spec.versions:
        doc = document(spec.group, version)
        assert not kubectl_would_send_strategic_merge_patch(doc, gvk(spec.group, version, spec.kind))
        for _, method, op in operations(doc):
            if method == "patch":
                content = op["requestBody"]["content"]
                assert sorted(content) == ["application/json-patch+json", "application/merge-patch+json"]


def test_openapi_v3_operations_name_their_kind() -> None:
    """Each operation carries one x-kubernetes-group-version-kind object (not a list) and a unique id."""
    doc = document(WARDLE, "v1beta1")
    ids = []
    for path, _, op in operations(doc):
        kind = "Fischer" if "/fischers" in path else "Flunder"
        assert op["x-kubernetes-group-version-kind"] == gvk(WARDLE, "v1beta1", kind)
        ids.append(op["operationId"])
    assert len(ids) == len(set(ids)) == 7 + 6  # namespaced: also a list in all namespaces
    assert "listFlunderForAllNamespaces" in ids
    assert "patchNamespacedFlunder" in ids
    assert "patchFischer" in ids


def test_openapi_v3_kind_schemas_are_permissive() -> None:
    """Kinds keep unknown fields and type apiVersion, kind and metadata; list kinds hold items of the kind."""
    schemas = document(WARDLE, "v1alpha1")["components"]["schemas"]
    flunder = schemas["com.example.wardle.v1alpha1.Flunder"]
    assert flunder["type"] == "object"
    assert flunder["x-kubernetes-preserve-unknown-fields"] is True
    assert flunder["x-kubernetes-group-version-kind"] == [gvk(WARDLE, "v1alpha1", "Flunder")]
    assert flunder["properties"]["apiVersion"]["type"] == "string"
    assert flunder["properties"]["kind"]["type"] == "string"
    assert flunder["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    flunder_list = schemas["com.example.wardle.v1alpha1.FlunderList"]
    assert flunder_list["x-kubernetes-group-version-kind"] == [gvk(WARDLE, "v1alpha1", "FlunderList")]
    assert flunder_list["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/com.example.wardle.v1alpha1.Flunder"
    }
    assert "com.example.wardle.v1alpha1.Fischer" not in schemas  # fischers are not served at v1alpha1
    meta = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert meta["labels"]["additionalProperties"] == {"type": "string"}


def test_openapi_v3_references_resolve() -> None:
    """Every $ref points at a schema the document defines."""
    for group, version in [(WARDLE, "v1alpha1"), (WARDLE, "v1"), ("other.example.org", "v2")]:
        doc = document(group, version)
        defined = {"#/components/schemas/" + name for name in doc["components"]["schemas"]}
        assert set(refs(doc)) <= defined


def test_documents_are_plain_json() -> None:
    """Every document survives encoding unchanged (no tuples, no shared mutable parts across calls)."""
    docs: list[object] = [
        version_info(),
        api_versions(),
        api_group_list(SPECS),
        api_group(WARDLE, SPECS),
        api_resource_list(WARDLE, "v1beta1", SPECS),
        openapi_v3_index(SPECS),
        document(WARDLE, "v1beta1"),
        openapi_v2(SPECS),
    ]
    for doc in docs:
        assert orjson.loads(encode(doc)) == doc
    first = document(WARDLE, "v1beta1")
    for _, _, op in operations(first):
        op["parameters"].clear()
    assert kubectl_supports_field_validation(document(WARDLE, "v1beta1"), gvk(WARDLE, "v1beta1", "Flunder"))


def test_openapi_v2_is_swagger_with_bare_kinds() -> None:
    """/openapi/v2 (JSON) covers every visible group-version; kinds are bare objects, refs resolve."""
    doc = openapi_v2(SPECS)
    assert doc["swagger"] == "2.0"
    kind = doc["definitions"]["com.example.wardle.v1alpha1.Flunder"]
    assert kind == {"type": "object", "x-kubernetes-group-version-kind": [gvk(WARDLE, "v1alpha1", "Flunder")]}
    defined = {"#/definitions/" + name for name in doc["definitions"]}
    assert set(refs(doc)) <= defined
    patch = doc["paths"][f"/apis/{WARDLE}/v1/fischers/{{name}}"]["patch"]
    assert patch["consumes"] == ["application/json-patch+json", "application/merge-patch+json"]
    assert any(p["name"] == "fieldValidation" and p["type"] == "string" for p in patch["parameters"])
    assert patch["x-kubernetes-group-version-kind"] == gvk(WARDLE, "v1", "Fischer")
    item = doc["paths"][f"/apis/{WARDLE}/v1alpha1/namespaces/{{namespace}}/flunders/{{name}}"]
    assert [p["name"] for p in item["parameters"]] == ["name", "namespace"]
    assert len(doc["paths"]) == 3 * 2 + 2 * 2 + 3  # flunders at 2 versions, fischers at 2, widgets


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, True),
        ("", True),
        ("*/*", True),
        ("application/json", True),
        ("application/json, */*", True),
        ("application/*;q=0.5", True),
        (AGGREGATED_ACCEPT, True),
        (OPENAPI_V2_PROTOBUF, False),
        ("application/json;q=0, " + OPENAPI_V2_PROTOBUF, False),
        ("application/yaml", False),
    ],
)
def test_accepts_json(accept: str | None, expected: bool) -> None:
    """kubectl's protobuf-only request for /openapi/v2 is not answerable with JSON; the usual ones are."""
    assert accepts_json(accept) is expected
