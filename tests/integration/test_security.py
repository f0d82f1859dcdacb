"""The security model, end to end over real HTTP and a real etcd: authentication (tokens from the config
and from a kube-apiserver token file, client certificates), authorization by API group, tenant
isolation of watches and etcd keys, per-tenant limits, secrets kept out of logs, and TLS towards etcd.

Every test starts its own service on a fresh etcd prefix, with three tenants: ``wardle`` (owns
wardle.example.com, reads shared.example.com), ``acme`` (owns acme.example.com and shared.example.com)
and ``auditor`` (reads wardle.example.com, writes nothing).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aetcd
import aiohttp
import orjson
import pytest
from support.certs import TestCA
from support.etcd import EtcdServer, EtcdServerTLS, etcd_client
from support.rest import JSON, Api, next_event
from support.tenants import (
    ALL_VERBS,
    FISCHERS,
    FLUNDERS,
    GADGETS,
    GROUPS,
    MERGE_PATCH,
    READ_VERBS,
    RESOURCES,
    TOKENS,
    WIDGETS,
    WRITE_VERBS,
    Res,
    call_verb,
    client_ssl,
    config_text,
    keyspace,
    serve,
    stored,
)
from support.waiting import wait_until

from watchcache.cache.settings import CacheSettings
from watchcache.config import parse_config
from watchcache.errors import ConfigError, EtcdUnavailableError
from watchcache.etcd.member import EtcdStartError
from watchcache.etcd.types import EtcdTLS
from watchcache.service import Service, ServiceOptions

pytestmark = pytest.mark.etcd

# -- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture
async def svc(etcd_endpoints: list[str], prefix: str) -> AsyncIterator[Service]:
    """The three-tenant service over plain HTTP."""
    async with serve(etcd_endpoints, prefix) as service:
        yield service


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def wardle(svc: Service, session: aiohttp.ClientSession) -> Api:
    return Api(session, svc.url, token=TOKENS["wardle"])


@pytest.fixture
def acme(svc: Service, session: aiohttp.ClientSession) -> Api:
    return Api(session, svc.url, token=TOKENS["acme"])


@pytest.fixture
def auditor(svc: Service, session: aiohttp.ClientSession) -> Api:
    return Api(session, svc.url, token=TOKENS["auditor"])


@pytest.fixture
def anonymous(svc: Service, session: aiohttp.ClientSession) -> Api:
    return Api(session, svc.url)


@pytest.fixture
async def seeded(wardle: Api, acme: Api) -> dict[Res, str]:
    """One object named "seed" in every resource, created by its owner."""
    for api, res in ((wardle, FLUNDERS), (wardle, FISCHERS), (acme, WIDGETS), (acme, GADGETS)):
        reply = await api.call("POST", res.collection(), body=res.obj("seed", spec="original"))
        assert reply.status == 201, reply
    return {res: "seed" for res in RESOURCES}


# -- authentication ----------------------------------------------------------------------------------------


async def test_no_credentials_is_401_on_every_verb_and_discovery(
    anonymous: Api, wardle: Api, etcd_kv: aetcd.Client, prefix: str
) -> None:
    """No credentials: 401 Unauthorized on every verb, discovery and OpenAPI document, and /metrics."""
    await wardle.call("POST", FLUNDERS.collection(), body=FLUNDERS.obj("seed"))
    before = await keyspace(etcd_kv)
    failures = []
    for verb in ALL_VERBS:
        reply = await call_verb(anonymous, verb, FLUNDERS, "seed")
        if not reply.is_status(401, "Unauthorized"):
            failures.append((verb, reply.status, reply.body))
    for path in (
        "/apis",
        "/apis/wardle.example.com",
        "/apis/wardle.example.com/v1alpha1",
        "/api",
        "/openapi/v2",
        "/openapi/v3",
        "/openapi/v3/apis/wardle.example.com/v1alpha1",
        "/metrics",
    ):
        reply = await anonymous.call("GET", path)
        if not reply.is_status(401, "Unauthorized"):
            failures.append((path, reply.status, reply.body))
    assert failures == []
    assert await keyspace(etcd_kv) == before


async def test_health_and_version_are_open_without_credentials(anonymous: Api) -> None:
    """/healthz, /livez, /readyz and /version answer 200 without credentials (as in Kubernetes)."""
    for path in ("/healthz", "/livez", "/readyz", "/version"):
        reply = await anonymous.call("GET", path)
        assert reply.status == 200, (path, reply)
    version = await anonymous.call("GET", "/version")
    assert isinstance(version.body, dict) and "gitVersion" in version.body


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-token",
        "Bearer wardle-token-x",
        "Bearer WARDLE-TOKEN",
        "Bearer ",
        "Bearer",
        "Token wardle-token",
        "wardle-token",
    ],
)
async def test_unknown_token_is_401(svc: Service, session: aiohttp.ClientSession, authorization: str) -> None:
    """An unknown or malformed bearer token is 401 Unauthorized, on resources and on discovery."""
    api = Api(session, svc.url, authorization=authorization)
    for reply in (await call_verb(api, "LIST", FLUNDERS, "x"), await api.call("GET", "/apis")):
        assert reply.is_status(401, "Unauthorized"), reply


async def test_basic_auth_is_401(svc: Service, session: aiohttp.ClientSession) -> None:
    """HTTP Basic credentials are never accepted, even when they carry a valid token: 401."""
    for secret in ("wardle:wardle-token", "wardle-token:", "wardle-token"):
        api = Api(session, svc.url, authorization="Basic " + base64.b64encode(secret.encode()).decode())
        reply = await call_verb(api, "LIST", FLUNDERS, "x")
        assert reply.is_status(401, "Unauthorized"), (secret, reply)


async def test_config_token_authenticates_as_its_tenant(wardle: Api) -> None:
    """A token from the config authenticates as its tenant: its own groups answer, another's are 403."""
    assert (await call_verb(wardle, "LIST", FLUNDERS, "x")).status == 200
    assert (await wardle.call("GET", "/metrics")).status == 200
    assert (await call_verb(wardle, "LIST", WIDGETS, "x")).is_status(403, "Forbidden")


async def test_token_auth_file_token_authenticates(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A --token-auth-file token (CSV token,user,uid,"groups") authenticates as the tenant named by user."""
    token_file = tmp_path / "tokens.csv"
    token_file.write_text('# comment\nfile-acme-token,acme,1001,"system:masters,wardle"\n')
    async with serve(etcd_endpoints, prefix, token_auth_file=str(token_file)) as service:
        api = Api(session, service.url, token="file-acme-token")
        assert (await call_verb(api, "LIST", WIDGETS, "x")).status == 200
        # The CSV's groups give nothing: the tenant is "acme", whatever groups the file lists.
        assert (await call_verb(api, "LIST", FLUNDERS, "x")).is_status(403, "Forbidden")
        # The config's tokens still work beside the file's.
        assert (
            await call_verb(Api(session, service.url, token=TOKENS["wardle"]), "LIST", FLUNDERS, "x")
        ).status == 200


async def test_token_auth_file_with_unknown_user_fails_start(
    etcd_endpoints: list[str], prefix: str, tmp_path: Path
) -> None:
    """A token file naming a user that is not a tenant makes Service.start fail with ConfigError."""
    token_file = tmp_path / "tokens.csv"
    token_file.write_text("stray-token,mallory,1002\n")
    options = ServiceOptions(
        config=parse_config(config_text()),
        etcd_servers=tuple(etcd_endpoints),
        etcd_prefix=prefix,
        port=0,
        token_auth_file=str(token_file),
    )
    service = Service(options)
    try:
        with pytest.raises(ConfigError, match="mallory"):
            await service.start()
    finally:
        await service.stop()


async def test_client_certificate_cn_is_the_tenant(tls_svc: Service, test_ca: TestCA) -> None:
    """A client certificate signed by --client-ca-file with CN=acme authenticates as tenant acme."""
    cert = test_ca.issue("acme")
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=client_ssl(test_ca, cert))
    ) as session:
        api = Api(session, tls_svc.url)
        assert (await call_verb(api, "LIST", WIDGETS, "x")).status == 200
        assert (await call_verb(api, "CREATE", GADGETS, "by-cert")).status == 201
        assert (await call_verb(api, "LIST", FLUNDERS, "x")).is_status(403, "Forbidden")
        apis = await api.call("GET", "/apis")
        assert {g["name"] for g in apis.body["groups"]} == {"acme.example.com", "shared.example.com"}


async def test_token_over_https_and_no_credentials_over_https(tls_svc: Service, test_ca: TestCA) -> None:
    """Over HTTPS a bearer token works, and a request with neither token nor certificate is 401."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(test_ca))) as session:
        assert (
            await call_verb(Api(session, tls_svc.url, token=TOKENS["wardle"]), "LIST", FLUNDERS, "x")
        ).status == 200
        assert (await call_verb(Api(session, tls_svc.url), "LIST", FLUNDERS, "x")).is_status(
            401, "Unauthorized"
        )


async def test_certificate_without_client_auth_usage_is_rejected(tls_svc: Service, test_ca: TestCA) -> None:
    """A CN=acme certificate from the client CA but without the clientAuth key usage is refused."""
    server_only = test_ca.issue("acme", server=True)
    context = client_ssl(test_ca, server_only)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        try:
            reply = await call_verb(Api(session, tls_svc.url), "LIST", WIDGETS, "x")
        except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
            return  # the handshake failed
        assert reply.is_status(401, "Unauthorized"), reply


async def test_client_certificate_with_unknown_cn_is_401(tls_svc: Service, test_ca: TestCA) -> None:
    """A valid client certificate whose CN is not a tenant is 401 Unauthorized."""
    cert = test_ca.issue("mallory")
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=client_ssl(test_ca, cert))
    ) as session:
        api = Api(session, tls_svc.url)
        assert (await call_verb(api, "LIST", WIDGETS, "x")).is_status(401, "Unauthorized")
        assert (await api.call("GET", "/apis")).is_status(401, "Unauthorized")


async def test_client_certificate_from_another_ca_is_rejected(
    tls_svc: Service, test_ca: TestCA, tmp_path: Path
) -> None:
    """A CN=acme client certificate from another CA than --client-ca-file fails the handshake or is 401."""
    rogue = TestCA(tmp_path, name="rogue-ca").issue("acme")
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=client_ssl(test_ca, rogue))
    ) as session:
        api = Api(session, tls_svc.url)
        for verb in ("LIST", "CREATE"):
            try:
                reply = await call_verb(api, verb, WIDGETS, "rogue")
            except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
                continue  # the handshake (or the first read after a TLS 1.3 handshake) failed
            assert reply.is_status(401, "Unauthorized"), reply


async def test_tokens_are_never_logged(
    svc: Service, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, seeded: dict[Res, str]
) -> None:
    """No log record (message, args, extra fields), even at DEBUG, contains a token, right or wrong."""
    wrong = "wrong-token-7c1f0e9d"
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    wardle = Api(session, svc.url, token=TOKENS["wardle"])
    for verb in ALL_VERBS:
        await call_verb(wardle, verb, FLUNDERS, "seed")
    await call_verb(wardle, "GET", FLUNDERS, "absent")
    await call_verb(wardle, "LIST", WIDGETS, "seed")  # 403
    await wardle.call("GET", FLUNDERS.collection(), query={"labelSelector": "!!!"})  # 400
    assert (await call_verb(Api(session, svc.url, token=wrong), "LIST", FLUNDERS, "x")).status == 401
    assert (await Api(session, svc.url, token=wrong).call("GET", "/apis")).status == 401
    basic = "Basic " + base64.b64encode(f"wardle:{TOKENS['acme']}".encode()).decode()
    assert (
        await call_verb(Api(session, svc.url, authorization=basic), "CREATE", FLUNDERS, "x")
    ).status == 401
    assert any(r.getMessage() == "request" for r in caplog.records), (
        "the per-request debug line was not logged"
    )
    secrets = [*TOKENS.values(), wrong, basic.split()[1]]
    for record in caplog.records:
        text = " ".join([record.getMessage(), repr(record.args), repr(vars(record)), caplog.text])
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{leaked} in log record {vars(record)}"


# -- authorization -----------------------------------------------------------------------------------------


async def test_another_tenants_group_is_forbidden_on_every_verb(
    wardle: Api, acme: Api, seeded: dict[Res, str], etcd_kv: aetcd.Client, prefix: str
) -> None:
    """Every verb on another tenant's group is 403 Forbidden, and nothing is written."""
    before = await keyspace(etcd_kv)
    failures = []
    for api, res in ((wardle, WIDGETS), (acme, FLUNDERS), (acme, FISCHERS)):
        for verb in ALL_VERBS:
            reply = await call_verb(api, verb, res, "seed")
            if not reply.is_status(403, "Forbidden"):
                failures.append((res.resource, verb, reply.status, reply.body))
    assert failures == []
    assert await keyspace(etcd_kv) == before


async def test_read_groups_are_read_only(wardle: Api, seeded: dict[Res, str], etcd_kv: aetcd.Client) -> None:
    """In a readGroups group a tenant may list, get and watch (200) but every write is 403 Forbidden."""
    before = await keyspace(etcd_kv)
    for verb in READ_VERBS:
        assert (await call_verb(wardle, verb, GADGETS, "seed")).status == 200, verb
    for verb in WRITE_VERBS:
        assert (await call_verb(wardle, verb, GADGETS, "seed")).is_status(403, "Forbidden"), verb
    assert await keyspace(etcd_kv) == before


async def test_read_only_tenant_can_only_read(
    auditor: Api, seeded: dict[Res, str], etcd_kv: aetcd.Client
) -> None:
    """A readGroups-only tenant reads them (200), writes nothing (403), and is 403 on other groups."""
    before = await keyspace(etcd_kv)
    failures = []
    for res in (FLUNDERS, FISCHERS):
        for verb in ALL_VERBS:
            reply = await call_verb(auditor, verb, res, "seed")
            ok = reply.status == 200 if verb in READ_VERBS else reply.is_status(403, "Forbidden")
            if not ok:
                failures.append((res.resource, verb, reply.status))
    for res in (WIDGETS, GADGETS):
        for verb in ALL_VERBS:
            reply = await call_verb(auditor, verb, res, "seed")
            if not reply.is_status(403, "Forbidden"):
                failures.append((res.resource, verb, reply.status))
    assert failures == []
    assert await keyspace(etcd_kv) == before


async def test_unknown_group_version_or_resource_is_404_for_everyone(
    wardle: Api, acme: Api, auditor: Api
) -> None:
    """An unknown group, version or resource is 404 NotFound for every tenant, on every verb."""
    unknown = (
        Res("nope.example.com", "v1", "things", "Thing", True),
        Res("wardle.example.com", "v9", "flunders", "Flunder", True),
        Res("wardle.example.com", "v1alpha1", "widgets", "Widget", True),
        Res("acme.example.com", "v1alpha1", "widgets", "Widget", True),
    )
    failures = []
    for api in (wardle, acme, auditor):
        for res in unknown:
            for verb in ALL_VERBS:
                reply = await call_verb(api, verb, res, "x")
                if not reply.is_status(404, "NotFound"):
                    failures.append((api.authorization, res, verb, reply.status))
    assert failures == []


async def test_discovery_shows_only_readable_groups(wardle: Api, acme: Api, auditor: Api) -> None:
    """Discovery and OpenAPI documents show a tenant only the groups it may read; the others are 404."""
    visible = {
        wardle: {"wardle.example.com", "shared.example.com"},
        acme: {"acme.example.com", "shared.example.com"},
        auditor: {"wardle.example.com"},
    }
    versions = {r.group: r.version for r in RESOURCES}
    for api, groups in visible.items():
        apis = await api.call("GET", "/apis")
        assert apis.status == 200
        assert {g["name"] for g in apis.body["groups"]} == groups
        index = await api.call("GET", "/openapi/v3")
        assert set(index.body["paths"]) == {f"apis/{g}/{versions[g]}" for g in groups}
        v2 = await api.call("GET", "/openapi/v2")
        assert v2.status == 200
        v2_groups = {path.split("/")[2] for path in v2.body["paths"] if path.startswith("/apis/")}
        assert v2_groups == groups
        for group in GROUPS:
            paths = (
                f"/apis/{group}",
                f"/apis/{group}/{versions[group]}",
                f"/openapi/v3/apis/{group}/{versions[group]}",
            )
            for path in paths:
                reply = await api.call("GET", path)
                if group in groups:
                    assert reply.status == 200, (api.authorization, path, reply.status)
                else:
                    assert reply.is_status(404, "NotFound"), (api.authorization, path, reply)


# -- isolation of watches and keys --------------------------------------------------------------------------


async def test_watch_stream_never_carries_other_groups(wardle: Api, acme: Api) -> None:
    """A tenant's watch stream carries only events of the watched resource, never another tenant's writes."""
    async with wardle.watch("/apis/wardle.example.com/v1alpha1/flunders") as stream:
        assert stream.status == 200
        events = []
        for step in ("1", "2"):
            assert (await call_verb(acme, "CREATE", WIDGETS, f"w{step}")).status == 201
            assert (await call_verb(acme, "CREATE", GADGETS, f"g{step}")).status == 201
            assert (await call_verb(acme, "CREATE", WIDGETS, f"w{step}", namespace="other")).status == 201
            assert (
                await wardle.call("POST", FLUNDERS.collection(), body=FLUNDERS.obj(f"f{step}"))
            ).status == 201
            while True:
                event = await next_event(stream)
                events.append(event)
                if event["type"] != "BOOKMARK" and event["object"]["metadata"]["name"] == f"f{step}":
                    break
    seen = [
        (e["type"], e["object"]["apiVersion"], e["object"]["kind"], e["object"]["metadata"]["name"])
        for e in events
    ]
    assert seen == [
        ("ADDED", "wardle.example.com/v1alpha1", "Flunder", "f1"),
        ("ADDED", "wardle.example.com/v1alpha1", "Flunder", "f2"),
    ]


W = "/apis/wardle.example.com/v1alpha1"
PATH_TRICKS: list[tuple[str, str, Any]] = [
    # (method, path, body); "obj:NAME" is a wardle.example.com/v1alpha1 object named NAME
    ("POST", W + "/namespaces/..%2F..%2Facme.example.com%2Fwidgets/flunders", "obj:x"),
    ("POST", W + "/namespaces/%2e%2e/flunders", "obj:x"),
    ("POST", W + "/namespaces/../flunders", "obj:x"),
    ("POST", W + "/namespaces/default/flunders", "obj:../../../acme.example.com/widgets/default/x"),
    ("POST", W + "/namespaces/default/flunders", "obj:..%2Fx"),
    ("POST", W + "/namespaces/default/flunders", "obj:a/b"),
    ("POST", W + "/namespaces/default/flunders", "obj:.."),
    ("POST", W + "/namespaces/default/flunders", "obj:a\u0000b"),
    ("POST", W + "/namespaces/default/flunders", "obj:" + "a" * 254),
    ("POST", W + "/namespaces/" + "n" * 64 + "/flunders", "obj:x"),
    ("POST", W + "/namespaces/Default/flunders", "obj:x"),
    ("POST", W + "/namespaces/default/flunders", "obj:Upper"),
    ("POST", W + "/namespaces/default/flunders", "obj:caf\u00e9"),
    ("POST", W + "/namespaces/d%C3%A9faut/flunders", "obj:x"),
    ("POST", W + "/namespaces/default%00/flunders", "obj:x"),
    ("POST", W + "/namespaces/default/flunders", {"metadata": {"name": "x", "namespace": "kube-system"}}),
    (
        "POST",
        W + "/namespaces/default/flunders",
        {"apiVersion": "acme.example.com/v1", "kind": "Widget", "metadata": {"name": "x"}},
    ),
    ("POST", W + "/fischers", "obj:..%2F..%2Facme.example.com"),
    ("POST", W + "/fischers", {"metadata": {"name": "x/y"}}),
    ("PUT", W + "/namespaces/default/flunders/..%2F..%2Facme.example.com%2Fwidgets%2Fdefault%2Fx", "obj:"),
    ("PUT", W + "/namespaces/default/flunders/%2e%2e", "obj:"),
    ("PUT", W + "/namespaces/default/flunders/a%2Fb", "obj:"),
    ("PUT", W + "/namespaces/default/flunders/a%00b", "obj:"),
    ("PUT", W + "/namespaces/default/flunders/" + "a" * 254, "obj:"),
    ("PUT", W + "/namespaces/" + "n" * 64 + "/flunders/x", "obj:"),
    ("PUT", W + "/namespaces/default/flunders/X", "obj:"),
    ("PUT", W + "/namespaces/default/flunders/%E2%98%83", "obj:"),
    ("PUT", W + "/fischers/..%2Fflunders%2Fdefault%2Fx", "obj:"),
    (
        "PATCH",
        W + "/namespaces/default/flunders/..%2F..%2Facme.example.com%2Fwidgets%2Fdefault%2Fx",
        {"spec": {}},
    ),
    ("PATCH", W + "/namespaces/default/flunders/seed", {"metadata": {"name": "../x"}}),
    ("PATCH", W + "/namespaces/default/flunders/seed", {"metadata": {"namespace": "other"}}),
    ("PATCH", W + "/namespaces/default/flunders/seed", {"apiVersion": "acme.example.com/v1"}),
    (
        "DELETE",
        W + "/namespaces/default/flunders/..%2F..%2Facme.example.com%2Fwidgets%2Fdefault%2Fseed",
        None,
    ),
    (
        "DELETE",
        W + "/namespaces/default/flunders/..%2F..%2F..%2Facme.example.com%2Fwidgets%2Fdefault%2Fseed",
        None,
    ),
    ("DELETE", W + "/namespaces/%2e%2e%2F%2e%2e%2Facme.example.com%2Fwidgets%2Fdefault/flunders/seed", None),
    ("DELETE", W + "/namespaces/default/flunders/seed%00", None),
    ("DELETE", W + "/namespaces/default/flunders/seed/extra", None),
    ("GET", W + "/namespaces/..%2F..%2Facme.example.com%2Fwidgets%2Fdefault/flunders/seed", None),
    ("GET", W + "/namespaces/default/flunders/..%2F..%2Facme.example.com%2Fwidgets%2Fdefault%2Fseed", None),
    ("GET", W + "/namespaces/%2e%2e/flunders", None),
    ("GET", W + "/flunders/..%2F..%2Facme.example.com%2Fwidgets%2Fdefault%2Fseed", None),
    ("POST", W + "/namespaces/default/flunders", "obj:..%252Fx"),
    ("POST", W + "/namespaces/default/flunders", "obj:..\\x"),
    ("POST", W + "/namespaces/default/flunders", {"metadata": {"generateName": "../../"}}),
    ("POST", W + "/namespaces//flunders", "obj:x"),
    ("POST", W + "/namespaces/default/fischers", "obj:x"),
    ("POST", W + "/namespaces/..%5C..%5Cacme.example.com/flunders", "obj:x"),
    ("POST", "/apis/wardle.example.com%2F..%2Facme.example.com/v1/namespaces/default/widgets", "obj:x"),
    (
        "POST",
        "/apis/wardle.example.com/v1alpha1%2F..%2F..%2Facme.example.com%2Fv1/namespaces/default/widgets",
        "obj:x",
    ),
    ("POST", "/apis/wardle.example.com/../acme.example.com/v1/namespaces/default/widgets", "obj:x"),
    ("DELETE", "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders/..%252F..%252Fseed", None),
]


async def test_path_tricks_never_reach_keys_outside_the_resource(
    wardle: Api, acme: Api, seeded: dict[Res, str], etcd_kv: aetcd.Client, prefix: str
) -> None:
    """Path and name tricks are 400/403/404/422, never 2xx, and no key changes outside the resource."""
    outside = await keyspace(etcd_kv, outside=[f"{prefix}/wardle.example.com/"])
    own = await stored(etcd_kv, prefix, "wardle.example.com")
    failures = []
    for method, tail, body in PATH_TRICKS:
        if isinstance(body, str) and body.startswith("obj:"):
            name = body[4:]
            payload: Any = {
                "apiVersion": "wardle.example.com/v1alpha1",
                "metadata": {"name": name} if name else {},
            }
        else:
            payload = body
        content_type = MERGE_PATCH if method == "PATCH" else JSON
        reply = await wardle.call(method, tail, body=payload, content_type=content_type)
        # 403: a dot segment that the HTTP stack resolved into another tenant's group.
        if reply.status not in (400, 403, 404, 422) or not reply.is_status(reply.status):
            failures.append((method, tail, body, reply.status, reply.body))
    assert failures == []
    assert await keyspace(etcd_kv, outside=[f"{prefix}/wardle.example.com/"]) == outside
    assert await stored(etcd_kv, prefix, "wardle.example.com") == own
    assert (await call_verb(acme, "GET", WIDGETS, "seed")).status == 200


async def test_cluster_scoped_objects_never_store_a_namespace(
    wardle: Api, seeded: dict[Res, str], etcd_kv: aetcd.Client, prefix: str
) -> None:
    """A cluster-scoped object never stores a namespace, whether written by create, update or patch."""
    attempts = [
        (
            "POST",
            FISCHERS.collection(),
            {**FISCHERS.obj("ns-post"), "metadata": {"name": "ns-post", "namespace": "kube-system"}},
            JSON,
        ),
        (
            "PUT",
            FISCHERS.item("seed"),
            {**FISCHERS.obj("seed"), "metadata": {"name": "seed", "namespace": "kube-system"}},
            JSON,
        ),
        ("PATCH", FISCHERS.item("seed"), {"metadata": {"namespace": "kube-system"}}, MERGE_PATCH),
        (
            "PATCH",
            FISCHERS.item("seed"),
            [{"op": "add", "path": "/metadata/namespace", "value": "kube-system"}],
            "application/json-patch+json",
        ),
    ]
    for method, path, body, content_type in attempts:
        reply = await wardle.call(method, path, body=body, content_type=content_type)
        if reply.status < 300:  # accepted: the namespace must be dropped, as Kubernetes does
            assert "namespace" not in reply.body["metadata"], (method, content_type, reply.body)
        else:
            assert reply.is_status(400, "BadRequest"), (method, content_type, reply)
    for name in ("seed", "ns-post"):
        got = await etcd_kv.get(f"{prefix}/wardle.example.com/fischers/{name}".encode())
        if got is not None:
            assert "namespace" not in orjson.loads(got.value)["metadata"], (name, got.value)


# -- limits --------------------------------------------------------------------------------------------------


async def test_rate_limit_is_per_tenant(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """Over its rate/burst a tenant gets 429 with Retry-After >= 1; another tenant still gets 200."""
    limits = {"wardle": {"requestsPerSecond": 5, "burst": 5}}
    async with serve(etcd_endpoints, prefix, limits=limits) as service:
        wardle = Api(session, service.url, token=TOKENS["wardle"])
        acme = Api(session, service.url, token=TOKENS["acme"])
        # Eight quick wardle requests and, at the same moment, three of acme's.
        replies = await asyncio.gather(
            *(call_verb(wardle, "LIST", FLUNDERS, "x") for _ in range(8)),
            *(call_verb(acme, "LIST", WIDGETS, "x") for _ in range(3)),
        )
        mine, theirs = replies[:8], replies[8:]
        statuses = [r.status for r in mine]
        assert set(statuses) <= {200, 429}, statuses
        # The burst of 5 (plus at most one token refilled meanwhile), then 429s.
        assert 5 <= statuses.count(200) <= 6, statuses
        for reply in mine:
            if reply.status == 429:
                assert reply.is_status(429, "TooManyRequests")
                assert int(reply.headers["Retry-After"]) >= 1
        assert [r.status for r in theirs] == [200, 200, 200]


async def test_max_watches_per_tenant(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """Beyond maxWatches a tenant's next watch is 429, others unaffected; closing one frees its slot."""
    async with serve(etcd_endpoints, prefix, limits={"wardle": {"maxWatches": 2}}) as service:
        wardle = Api(session, service.url, token=TOKENS["wardle"])
        acme = Api(session, service.url, token=TOKENS["acme"])
        async with (
            wardle.watch(FLUNDERS.collection()) as first,
            wardle.watch(FLUNDERS.collection(None)) as second,
        ):
            assert (first.status, second.status) == (200, 200)
            third = await wardle.watch_status(FISCHERS.collection())
            assert third.is_status(429, "TooManyRequests") and int(third.headers["Retry-After"]) >= 1
            assert (await acme.watch_status(WIDGETS.collection())).status == 200
            assert (await call_verb(wardle, "LIST", FLUNDERS, "x")).status == 200  # only watches are capped
        # Both streams are closed: the slots come back once the server notices.
        await wait_until(lambda: _watch_ok(wardle), message="a watch slot freed")


async def _watch_ok(api: Api) -> bool:
    return (await api.watch_status(FISCHERS.collection())).status == 200


async def test_max_objects_quota(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession, etcd_kv: aetcd.Client
) -> None:
    """Beyond maxObjects a create is 403 Forbidden with a message naming the quota, and nothing is written."""
    async with serve(etcd_endpoints, prefix, limits={"wardle": {"maxObjects": 3}}) as service:
        wardle = Api(session, service.url, token=TOKENS["wardle"])
        for name in ("a", "b"):
            assert (await call_verb(wardle, "CREATE", FLUNDERS, name)).status == 201
        assert (await wardle.call("POST", FISCHERS.collection(), body=FISCHERS.obj("c"))).status == 201
        before = await keyspace(etcd_kv)
        for res in (FLUNDERS, FISCHERS):
            reply = await wardle.call("POST", res.collection(), body=res.obj("d"))
            assert reply.is_status(403, "Forbidden"), reply
            assert "quota" in reply.body["message"] and "3" in reply.body["message"]
        assert await keyspace(etcd_kv) == before
        assert len(await stored(etcd_kv, prefix, "wardle.example.com")) == 3
        # Another tenant's quota is its own.
        assert (
            await call_verb(Api(session, service.url, token=TOKENS["acme"]), "CREATE", WIDGETS, "w")
        ).status == 201


async def test_max_objects_quota_holds_under_concurrent_creates(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession, etcd_kv: aetcd.Client
) -> None:
    """Ten concurrent creates against maxObjects 3 store exactly 3 objects; the rest are 403."""
    async with serve(etcd_endpoints, prefix, limits={"wardle": {"maxObjects": 3}}) as service:
        wardle = Api(session, service.url, token=TOKENS["wardle"])
        replies = await asyncio.gather(
            *(wardle.call("POST", FLUNDERS.collection(), body=FLUNDERS.obj(f"c{i}")) for i in range(10))
        )
        created = [r for r in replies if r.status == 201]
        assert all(r.status == 201 or r.is_status(403, "Forbidden") for r in replies), [
            r.status for r in replies
        ]
        keys = await stored(etcd_kv, prefix, "wardle.example.com")
        assert len(created) == len(keys) <= 3
        assert len(created) == 3  # and the quota is not under-used either


async def test_max_bytes_quota(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession, etcd_kv: aetcd.Client
) -> None:
    """A create, update or patch taking a tenant over maxBytes is 403 Forbidden and writes nothing."""
    async with serve(etcd_endpoints, prefix, limits={"wardle": {"maxBytes": 2000}}) as service:
        wardle = Api(session, service.url, token=TOKENS["wardle"])
        assert (
            await wardle.call("POST", FLUNDERS.collection(), body=FLUNDERS.obj("big", data="x" * 1200))
        ).status == 201
        assert (await wardle.call("POST", FLUNDERS.collection(), body=FLUNDERS.obj("small"))).status == 201
        before = await keyspace(etcd_kv)
        attempts = [
            ("POST", FLUNDERS.collection(), FLUNDERS.obj("more", data="y" * 700), JSON),
            ("PUT", FLUNDERS.item("small"), FLUNDERS.obj("small", data="z" * 900), JSON),
            ("PATCH", FLUNDERS.item("big"), {"spec": {"more": "w" * 900}}, MERGE_PATCH),
        ]
        for method, path, body, content_type in attempts:
            reply = await wardle.call(method, path, body=body, content_type=content_type)
            assert reply.is_status(403, "Forbidden"), (method, reply)
            assert "quota" in reply.body["message"]
        assert await keyspace(etcd_kv) == before
        # Shrinking is always allowed.
        shrink = await wardle.call(
            "PATCH", FLUNDERS.item("big"), body={"spec": {"data": "x"}}, content_type=MERGE_PATCH
        )
        assert shrink.status == 200


async def test_max_request_bytes(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession, etcd_kv: aetcd.Client
) -> None:
    """A request body over the tenant's maxRequestBytes is 413 RequestEntityTooLarge and writes nothing."""
    async with serve(etcd_endpoints, prefix, limits={"wardle": {"maxRequestBytes": 1000}}) as service:
        wardle = Api(session, service.url, token=TOKENS["wardle"])
        assert (
            await wardle.call("POST", FLUNDERS.collection(), body=FLUNDERS.obj("ok", data="x" * 500))
        ).status == 201
        before = await keyspace(etcd_kv)
        attempts = [
            ("POST", FLUNDERS.collection(), FLUNDERS.obj("big", data="x" * 1500), JSON),
            ("PUT", FLUNDERS.item("ok"), FLUNDERS.obj("ok", data="x" * 1500), JSON),
            ("PATCH", FLUNDERS.item("ok"), {"spec": {"data": "x" * 1500}}, MERGE_PATCH),
        ]
        for method, path, body, content_type in attempts:
            reply = await wardle.call(method, path, body=body, content_type=content_type)
            assert reply.is_status(413, "RequestEntityTooLarge"), (method, reply)
        assert await keyspace(etcd_kv) == before
        acme = Api(session, service.url, token=TOKENS["acme"])
        assert (
            await acme.call("POST", WIDGETS.collection(), body=WIDGETS.obj("big", data="x" * 1500))
        ).status == 201


def nested(depth: int) -> Any:
    """A JSON value ``depth`` levels deep (a scalar is 0, ``{"a": 1}`` is 1)."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_max_json_depth(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession, etcd_kv: aetcd.Client
) -> None:
    """A body nested deeper than maxJSONDepth is 400 and writes nothing; at the limit it is accepted."""
    async with serve(etcd_endpoints, prefix, limits={"wardle": {"maxJSONDepth": 10}}) as service:
        wardle = Api(session, service.url, token=TOKENS["wardle"])
        # The body is 1 level, spec one more: spec holding a value 9 deep makes the body 10 deep.
        at_limit = {**FLUNDERS.obj("deep10"), "spec": nested(9)}
        too_deep = {**FLUNDERS.obj("deep11"), "spec": nested(10)}
        before = await keyspace(etcd_kv)
        reply = await wardle.call("POST", FLUNDERS.collection(), body=too_deep)
        assert reply.is_status(400, "BadRequest"), reply
        patch = await wardle.call(
            "PATCH", FLUNDERS.item("x"), body={"spec": nested(10)}, content_type=MERGE_PATCH
        )
        assert patch.is_status(400, "BadRequest"), patch
        assert await keyspace(etcd_kv) == before
        assert (await wardle.call("POST", FLUNDERS.collection(), body=at_limit)).status == 201


async def test_in_flight_limit_queues_then_429_per_tenant(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """Over maxInFlight + maxQueued a tenant gets 429, its queued request is served, others unaffected."""
    limits = {"wardle": {"maxInFlight": 1, "maxQueued": 1}}
    async with serve(etcd_endpoints, prefix, limits=limits, cache=CacheSettings(wait_timeout=2.0)) as service:
        wardle = Api(session, service.url, token=TOKENS["wardle"])
        acme = Api(session, service.url, token=TOKENS["acme"])
        listed = await call_verb(wardle, "LIST", FLUNDERS, "x")
        future = str(int(listed.body["metadata"]["resourceVersion"]) + 1_000_000)
        # Each of these waits (up to wait_timeout) for a resourceVersion etcd has not reached.
        slow = [
            asyncio.ensure_future(
                wardle.call("GET", FLUNDERS.collection(), query={"resourceVersion": future})
            )
            for _ in range(4)
        ]
        try:
            # Two get answers at once; the other two are held until wait_timeout (2 s) at the earliest.
            await wait_until(lambda: sum(t.done() for t in slow) >= 2, within=1.9, interval=0.01)
            rejected = [t.result() for t in slow if t.done()]
            pending = [t for t in slow if not t.done()]
            assert len(rejected) == 2 and len(pending) == 2, [r.status for r in rejected]
            for reply in rejected:
                assert reply.is_status(429, "TooManyRequests") and int(reply.headers["Retry-After"]) >= 1
            # wardle's slot and queue are full; acme goes straight in.
            assert (await call_verb(acme, "LIST", WIDGETS, "x")).status == 200
            assert not all(t.done() for t in pending)
            finished = await asyncio.gather(*pending)
            assert [r.status for r in finished] == [504, 504]  # served in turn, not rejected
        finally:
            for task in slow:
                task.cancel()
            await asyncio.gather(*slow, return_exceptions=True)
        assert (await call_verb(wardle, "LIST", FLUNDERS, "x")).status == 200  # slots are all back


async def test_one_tenant_flooding_does_not_starve_another(
    wardle: Api, acme: Api, seeded: dict[Res, str], svc: Service
) -> None:
    """While one tenant floods with 200 concurrent LISTs, another's sequential GETs all get 200."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as flood_session:
        flooder = Api(flood_session, svc.url, token=TOKENS["acme"])
        flood = asyncio.gather(*(call_verb(flooder, "LIST", WIDGETS, "x") for _ in range(200)))
        gets = []
        try:
            # Bounded well under wardle's own burst (200): only the flood may exhaust anything.
            while (not flood.done() and len(gets) < 100) or len(gets) < 5:
                gets.append(await call_verb(wardle, "GET", FLUNDERS, "seed"))
        finally:
            flood_replies = await flood
    assert [r.status for r in gets if r.status != 200] == []
    assert {r.status for r in flood_replies} <= {200, 429}


# -- TLS towards etcd -----------------------------------------------------------------------------------


@pytest.fixture
async def tls_etcd(test_ca: TestCA) -> AsyncIterator[EtcdServer]:
    """A private etcd serving clients over HTTPS only, requiring client certificates from ``test_ca``."""
    server = test_ca.issue("etcd-tls-server", server=True)
    probe = test_ca.issue("etcd-tls-probe")
    tls = EtcdServerTLS(
        server.cert, server.key, test_ca.cert_file, probe_cert_file=probe.cert, probe_key_file=probe.key
    )
    async with EtcdServer(client_tls=tls) as etcd:
        yield etcd


async def test_etcd_over_tls_with_client_certificate(
    tls_etcd: EtcdServer, test_ca: TestCA, session: aiohttp.ClientSession
) -> None:
    """Against etcd requiring TLS client certificates, EtcdTLS(ca, cert, key) serves create/list/watch."""
    assert tls_etcd.endpoints[0].startswith("https://127.0.0.1:")
    client = test_ca.issue("watchcache-etcd-client")
    etcd_tls = EtcdTLS(cafile=test_ca.cert_file, certfile=client.cert, keyfile=client.key)
    async with asyncio.timeout(60), serve(tls_etcd.endpoints, "/registry", etcd_tls=etcd_tls) as service:
        wardle = Api(session, service.url, token=TOKENS["wardle"])
        async with wardle.watch(FLUNDERS.collection()) as stream:
            assert stream.status == 200
            assert (await call_verb(wardle, "CREATE", FLUNDERS, "over-tls")).status == 201
            event = await next_event(stream)
            assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "over-tls-new")
        listed = await call_verb(wardle, "LIST", FLUNDERS, "x")
        assert [i["metadata"]["name"] for i in listed.body["items"]] == ["over-tls-new"]


async def test_etcd_over_tls_without_client_certificate_never_serves(
    tls_etcd: EtcdServer, test_ca: TestCA, session: aiohttp.ClientSession
) -> None:
    """Without a client certificate caches never get ready, requests fail (429/503/504), nothing hangs."""
    etcd_tls = EtcdTLS(cafile=test_ca.cert_file)
    options = ServiceOptions(
        config=parse_config(config_text()),
        etcd_servers=tuple(tls_etcd.endpoints),
        port=0,
        etcd_tls=etcd_tls,
        request_timeout=1.0,
    )
    async with asyncio.timeout(60), Service(options) as service:
        assert service.storage is not None
        with pytest.raises(EtcdUnavailableError):  # no TLS session: etcd is unreachable
            await service.storage.wait_ready(2)
        wardle = Api(session, service.url, token=TOKENS["wardle"])
        for verb in ("LIST", "CREATE", "GET"):
            reply = await call_verb(wardle, verb, FLUNDERS, "x")
            assert reply.status in (429, 503, 504) and reply.is_status(reply.status), (verb, reply)
        ready = await Api(session, service.url).call("GET", "/readyz")
        assert ready.status == 503


async def test_embedded_etcd_tls_probe_needs_a_client_certificate(test_ca: TestCA) -> None:
    """Probes without a client certificate never judge a client-cert-auth etcd healthy (EtcdStartError)."""
    server = test_ca.issue("etcd-tls-server", server=True)
    tls = EtcdServerTLS(server.cert, server.key, test_ca.cert_file)
    etcd = EtcdServer(client_tls=tls, start_timeout=3)
    async with asyncio.timeout(30):
        with pytest.raises(EtcdStartError, match="not healthy"):
            await etcd.start()
    assert not etcd.started


def test_keyspace_helper_sees_every_key(etcd_endpoints: list[str]) -> None:
    """The keyspace snapshot used as evidence reads the whole etcd, keys outside any prefix included."""

    async def check() -> None:
        async with etcd_client(etcd_endpoints[0]) as kv:
            await kv.put(b"zz-no-slash-key", b"1")
            try:
                assert b"zz-no-slash-key" in await keyspace(kv)
            finally:
                await kv.delete(b"zz-no-slash-key")

    asyncio.run(check())
