"""``/openapi/v2`` as client-go asks for it (gnostic protobuf) and as others do (JSON), and what kubectl
makes of it: a manifest whose kind is misspelled gets ``no matches for kind``, not an OpenAPI error."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from support.kubectl import Kubectl

from watchcache.config import parse_config
from watchcache.http.gnostic import OpenAPIv2_pb2 as pb
from watchcache.service import Service, ServiceOptions

pytestmark = pytest.mark.etcd

CLIENT_GO = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
TOKENS = {"wardle": "wardle-token", "acme": "acme-token"}

kubectl_only = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


@pytest.fixture
async def tenants_service(etcd_endpoints: list[str], prefix: str) -> AsyncIterator[Service]:
    """Two tenants, each owning one group of one resource."""
    config = {
        "resources": [
            {
                "group": "wardle.example.com",
                "versions": ["v1alpha1"],
                "resource": "flunders",
                "kind": "Flunder",
            },
            {"group": "acme.example.com", "versions": ["v1"], "resource": "widgets", "kind": "Widget"},
        ],
        "tenants": [
            {"name": name, "groups": [f"{name}.example.com"], "tokens": [token]}
            for name, token in TOKENS.items()
        ],
    }
    options = ServiceOptions(
        config=parse_config(yaml.safe_dump(config)),
        etcd_servers=tuple(etcd_endpoints),
        etcd_prefix=prefix,
        port=0,
    )
    async with Service(options) as svc:
        assert svc.storage is not None
        await svc.storage.wait_ready()
        yield svc


async def fetch(svc: Service, accept: str | None, token: str | None = None) -> tuple[int, str, bytes]:
    headers = {"Accept": accept} if accept is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(svc.url + "/openapi/v2", headers=headers) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


def kinds(body: bytes) -> set[str]:
    document = pb.Document()
    document.ParseFromString(body)
    return {named.name.rsplit(".", 1)[-1] for named in document.definitions.additional_properties}


async def test_protobuf_is_served_as_kube_apiserver_serves_it(service: Service) -> None:
    """client-go's Accept gets gnostic's Document under kube-openapi's current content type; JSON
    stays the default; a type neither form is gets 406."""
    status, content_type, body = await fetch(service, CLIENT_GO)
    assert (status, content_type) == (200, PROTOBUF)
    assert {"Flunder", "FlunderList", "Fischer", "FischerList"} <= kinds(body)
    status, content_type, same = await fetch(service, f"application/json;q=0.5, {PROTOBUF}")
    assert (status, content_type, same) == (200, PROTOBUF, body)
    for accept in (None, "*/*", "application/json", f"application/json, {CLIENT_GO}"):
        status, content_type, _ = await fetch(service, accept)
        assert (status, content_type) == (200, "application/json"), accept
    status, _, _ = await fetch(service, "application/yaml")
    assert status == 406


async def test_a_tenant_sees_only_its_groups_in_protobuf_too(tenants_service: Service) -> None:
    """Each tenant's protobuf document holds its own kinds only; without credentials, 401."""
    _, _, wardle = await fetch(tenants_service, CLIENT_GO, TOKENS["wardle"])
    _, _, acme = await fetch(tenants_service, CLIENT_GO, TOKENS["acme"])
    assert "Flunder" in kinds(wardle) and "Widget" not in kinds(wardle)
    assert "Widget" in kinds(acme) and "Flunder" not in kinds(acme)
    status, _, _ = await fetch(tenants_service, CLIENT_GO)
    assert status == 401


@kubectl_only
@pytest.mark.clients
async def test_kubectl_reports_a_misspelled_kind(service: Service, tmp_path: Path) -> None:
    """kubectl create -f with a kind the server does not serve: kubectl validates against the v2
    document (the v3 one has no PATCH for that kind), finds no schema, and reports the real problem."""
    kubectl = Kubectl(service.url, tmp_path)
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(
        "apiVersion: wardle.example.com/v1alpha1\n"
        "kind: Flounder\n"
        "metadata: {name: typo, namespace: default}\n"
    )
    err = await kubectl.fails("create", "-f", str(manifest))
    assert err == (
        f'error: resource mapping not found for name: "typo" namespace: "default" from "{manifest}": '
        'no matches for kind "Flounder" in version "wardle.example.com/v1alpha1"\n'
        "ensure CRDs are installed first\n"
    )
    out = await kubectl("explain", "fischers", "--output=plaintext-openapiv2")
    assert out.startswith("KIND:     Fischer\nVERSION:  wardle.example.com/v1alpha1\n"), out
