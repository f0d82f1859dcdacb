"""``/openapi/v2`` as client-go asks for it (gnostic protobuf) and as others do (JSON), negotiated as
kube-openapi does, for each tenant's view. What kubectl makes of it is
tests/clients/test_kubectl_output.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from support.rest import Api, assert_status
from support.tenants import TOKENS, serve

from watchcache.http.gnostic import OpenAPIv2_pb2 as pb
from watchcache.service import Service

CLIENT_GO = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def kinds(body: bytes) -> set[str]:
    """The kinds an encoded ``openapi.v2.Document`` defines."""
    document = pb.Document()
    document.ParseFromString(body)
    return {named.name.rsplit(".", 1)[-1] for named in document.definitions.additional_properties}


async def test_protobuf_is_served_as_kube_apiserver_serves_it(
    service: Service, session: aiohttp.ClientSession
) -> None:
    """client-go's Accept gets gnostic's Document under kube-openapi's current content type; JSON
    stays the default; a type that is neither gets 406."""
    api = Api(session, service.url)
    reply = await api.call("GET", "/openapi/v2", headers={"Accept": CLIENT_GO})
    assert (reply.status, reply.headers["Content-Type"]) == (200, PROTOBUF)
    assert {"Flunder", "FlunderList", "Fischer", "FischerList"} <= kinds(reply.raw)
    again = await api.call("GET", "/openapi/v2", headers={"Accept": f"application/json;q=0.5, {PROTOBUF}"})
    assert (again.status, again.headers["Content-Type"], again.raw) == (200, PROTOBUF, reply.raw)
    for accept in (None, "*/*", "application/json", f"application/json, {CLIENT_GO}"):
        plain = await api.call("GET", "/openapi/v2", headers={"Accept": accept} if accept else None)
        assert (plain.status, plain.headers["Content-Type"]) == (200, "application/json"), accept
        assert plain.body["swagger"] == "2.0"
    assert_status(
        await api.call("GET", "/openapi/v2", headers={"Accept": "application/yaml"}), 406, "NotAcceptable"
    )


async def test_a_tenant_sees_only_its_groups_in_protobuf_too(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """Each tenant's protobuf document holds the kinds of the groups it may read, no other; without
    credentials, 401."""
    async with serve(etcd_endpoints, prefix) as svc:
        seen = {}
        for tenant in ("wardle", "acme", "auditor"):
            reply = await Api(session, svc.url, token=TOKENS[tenant]).call(
                "GET", "/openapi/v2", headers={"Accept": CLIENT_GO}
            )
            assert reply.status == 200
            seen[tenant] = kinds(reply.raw)
        anonymous = await Api(session, svc.url).call("GET", "/openapi/v2", headers={"Accept": CLIENT_GO})
    assert {"Flunder", "Fischer", "Gadget"} <= seen["wardle"] and "Widget" not in seen["wardle"]
    assert {"Widget", "Gadget"} <= seen["acme"] and "Flunder" not in seen["acme"]
    assert {"Flunder", "Fischer"} <= seen["auditor"] and not {"Widget", "Gadget"} & seen["auditor"]
    assert_status(anonymous, 401, "Unauthorized")
