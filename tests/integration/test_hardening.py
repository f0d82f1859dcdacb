"""No tenant can exhaust the service, and a dry run never writes: each attack of the hardening issue,
end to end over real sockets against a real etcd.

A tenant with a valid token tries to take the memory, CPU or sockets of the others (patch
amplification, LISTs and watches whose clients never read, connections that never send a request),
and each test shows the bound that stops it: a budget in bytes, a write timeout, a header timeout, a
cap. What a client is owed is checked on the server side too (the tenant's byte budget, its slots,
its connections), not only what the client happened to receive.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aetcd
import aiohttp
import orjson
import pytest
import yaml
from support.patches import doubling_patch
from support.rest import Api
from support.tenants import keyspace, service
from support.waiting import wait_until

from watchcache.config import parse_config
from watchcache.etcd.process import free_port
from watchcache.http.connections import ConnectionSettings
from watchcache.http.settings import ServerSettings
from watchcache.service import Service, ServiceOptions

pytestmark = pytest.mark.etcd

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
TOKENS = {"wardle": "wardle-token", "acme": "acme-token"}
GROUP = "wardle.example.com"
# The primary version is v1alpha1: serving v1beta1 makes a copy of every object it sends.
FLUNDERS = f"/apis/{GROUP}/v1beta1/namespaces/default/flunders"
WIDGETS = "/apis/acme.example.com/v1/namespaces/default/widgets"
PIECE = 256 * 1024
OBJECT = 256 * 1024


def config(limits: Mapping[str, Mapping[str, float]] | None = None) -> str:
    tenants: list[dict[str, Any]] = [
        {"name": "wardle", "groups": [GROUP], "tokens": [TOKENS["wardle"]]},
        {"name": "acme", "groups": ["acme.example.com"], "tokens": [TOKENS["acme"]]},
    ]
    for tenant in tenants:
        if limits and tenant["name"] in limits:
            tenant["limits"] = dict(limits[tenant["name"]])
    resources = [
        {"group": GROUP, "versions": ["v1alpha1", "v1beta1"], "resource": "flunders", "kind": "Flunder"},
        {"group": "acme.example.com", "versions": ["v1"], "resource": "widgets", "kind": "Widget"},
    ]
    return yaml.safe_dump({"resources": resources, "tenants": tenants})


@asynccontextmanager
async def serve(
    endpoints: list[str],
    prefix: str,
    *,
    limits: Mapping[str, Mapping[str, float]] | None = None,
    **server: Any,
) -> AsyncIterator[Service]:
    async with service(config(limits), endpoints, prefix, server=ServerSettings(**server)) as svc:
        yield svc


async def load(kv: aetcd.Client, prefix: str, *, count: int, size: int) -> int:
    """``count`` flunders of about ``size`` bytes each, written straight to etcd; their total size."""
    total = 0
    for i in range(count):
        obj = {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "Flunder",
            "metadata": {"name": f"big-{i}", "namespace": "default"},
            "spec": {"pad": "x" * size},
        }
        value = orjson.dumps(obj)
        total += len(value)
        await kv.put(f"{prefix}/{GROUP}/flunders/default/big-{i}".encode(), value)
    return total


# -- raw sockets: clients that do not behave ----------------------------------------------------------


async def connect(url: str, *, receive_buffer: int | None = 4096) -> socket.socket:
    """A raw TCP connection to the service; a small receive buffer makes a non-reading client stall
    the server early."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    return sock


def request_bytes(path: str, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()


async def closed_by_server(sock: socket.socket, within: float = 10.0) -> tuple[bool, int]:
    """Read what is there until the server closes the connection: (closed, bytes read). Reading lets
    a server that did not drop the client finish its answer, so a cut answer shows in the count."""
    loop = asyncio.get_running_loop()
    got = 0
    try:
        async with asyncio.timeout(within):
            while True:
                data = await loop.sock_recv(sock, 1 << 16)
                if not data:
                    return True, got
                got += len(data)
    except (ConnectionResetError, BrokenPipeError):
        return True, got
    except TimeoutError:
        return False, got
    finally:
        sock.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


# -- memory: LISTs and watches whose clients never read --------------------------------------------------


async def test_list_whose_client_never_reads_holds_one_piece_and_is_dropped(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client, session: aiohttp.ClientSession
) -> None:
    """A LIST of a large resource through its non-primary version, never read: the server holds at
    most one piece of the answer (from the tenant's byte budget), drops the connection after the write
    timeout, and gives back the tenant's only in-flight slot."""
    total = await load(etcd_kv, prefix, count=48, size=OBJECT)
    limits = {"wardle": {"maxInFlight": 1, "maxQueued": 1}}
    async with serve(etcd_endpoints, prefix, limits=limits, write_timeout=1.0) as svc:
        assert svc.api is not None
        budget = svc.api.admission("wardle").bytes
        wardle = Api(session, svc.url, token=TOKENS["wardle"])
        sock = await connect(svc.url)
        await asyncio.get_running_loop().sock_sendall(sock, request_bytes(FLUNDERS, TOKENS["wardle"]))
        await wait_until(lambda: budget.used > 0, message="the LIST stalls on its client")
        peak = budget.used
        # Not a byte read yet: the server must give up on its own.
        guard = svc.api.connections
        await wait_until(lambda: guard.owned_by("wardle") == 0, message="the connection is dropped")
        assert budget.used == 0
        closed, got = await closed_by_server(sock, within=10)
        assert closed and got < total, (closed, got, total)
        assert peak <= PIECE + OBJECT + 1024, peak
        assert (await wardle.call("GET", FLUNDERS, query={"limit": "1"})).status == 200


async def test_watch_whose_client_never_reads_its_initial_state_holds_one_piece_and_is_dropped(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """A watch from resourceVersion 0 (every object as ADDED) through the non-primary version, never
    read: the server builds one bounded batch at a time (not 500 objects), holds it in the tenant's
    budget, and drops the connection after the write timeout, freeing the watch slot."""
    await load(etcd_kv, prefix, count=48, size=OBJECT)
    async with serve(etcd_endpoints, prefix, write_timeout=1.0) as svc:
        assert svc.api is not None
        admission = svc.api.admission("wardle")
        sock = await connect(svc.url)
        path = FLUNDERS + "?watch=true&resourceVersion=0"
        await asyncio.get_running_loop().sock_sendall(sock, request_bytes(path, TOKENS["wardle"]))
        await wait_until(lambda: admission.bytes.used > 0, message="the watch stalls on its client")
        peak = admission.bytes.used
        # Not a byte read yet: the server must give up on its own.
        await wait_until(lambda: admission.watches == 0, message="the watch is dropped")
        assert admission.bytes.used == 0
        closed, _ = await closed_by_server(sock, within=10)
        assert closed
        assert peak <= PIECE + OBJECT + 1024, peak


async def test_bytes_in_flight_are_budgeted_per_tenant(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client, session: aiohttp.ClientSession
) -> None:
    """Non-reading LISTs of one tenant share its maxBytesInFlight: together they never hold more
    than it, the extra ones wait; another tenant's LIST does not wait at all."""
    await load(etcd_kv, prefix, count=48, size=OBJECT)
    limits = {"wardle": {"maxBytesInFlight": 700_000}}
    async with serve(etcd_endpoints, prefix, limits=limits, write_timeout=3.0) as svc:
        assert svc.api is not None
        budget = svc.api.admission("wardle").bytes
        acme = Api(session, svc.url, token=TOKENS["acme"])
        socks = [await connect(svc.url) for _ in range(4)]
        for sock in socks:
            await asyncio.get_running_loop().sock_sendall(sock, request_bytes(FLUNDERS, TOKENS["wardle"]))
        await wait_until(lambda: budget.used > PIECE, message="two LISTs hold pieces")
        for _ in range(10):
            assert budget.used <= 700_000
            reply = await acme.call("GET", WIDGETS)
            assert reply.status == 200, reply
        guard = svc.api.connections
        await wait_until(lambda: guard.owned_by("wardle") == 0, message="every stalled LIST is dropped")
        results = await asyncio.gather(*(closed_by_server(sock) for sock in socks))
        assert all(closed for closed, _ in results), results
        assert budget.used == 0


# -- CPU: patches that grow without bound ------------------------------------------------------------------


def grpc_poller_noise(record: logging.LogRecord) -> bool:
    """grpcio's asyncio poller thread is process-wide: a gRPC call of an earlier test, bound to that
    test's event loop (closed since), can still complete and make the poller call into the closed loop,
    which asyncio logs as an ERROR through whichever loop runs now. That is the test process's, not the
    service's."""
    return record.name == "asyncio" and "PollerCompletionQueue" in record.getMessage()


async def test_patch_amplification_is_refused_before_the_work(
    etcd_endpoints: list[str],
    prefix: str,
    etcd_kv: aetcd.Client,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 4 KB JSON patch doubling the object twenty times is 413 (the result would pass the object
    size limit); copying a node into its own child is 422 (too deep), not a 500 RecursionError;
    another tenant is answered meanwhile; nothing is written and nothing is logged at ERROR."""
    caplog.set_level(logging.WARNING)
    async with serve(etcd_endpoints, prefix) as svc:
        wardle = Api(session, svc.url, token=TOKENS["wardle"])
        acme = Api(session, svc.url, token=TOKENS["acme"])
        item = FLUNDERS + "/victim"
        created = await wardle.call("POST", FLUNDERS, body={"metadata": {"name": "victim"}, "spec": {}})
        assert created.status == 201, created
        before = await keyspace(etcd_kv)
        bomb = orjson.dumps(doubling_patch(20))
        assert len(bomb) < 5000
        other = asyncio.ensure_future(acme.call("GET", WIDGETS))
        reply = await wardle.call("PATCH", item, raw=bomb, content_type=JSON_PATCH)
        assert reply.is_status(413, "RequestEntityTooLarge"), reply
        assert "larger than" in reply.body["message"]
        assert (await other).status == 200

        deeper = [{"op": "add", "path": "/spec/a", "value": {}}]
        deeper += [{"op": "copy", "from": "/spec", "path": "/spec/a/b"} for _ in range(80)]
        reply = await wardle.call("PATCH", item, body=deeper, content_type=JSON_PATCH)
        assert reply.is_status(422, "Invalid"), reply
        assert "deeper" in reply.body["message"]

        many = [{"op": "test", "path": "/metadata/name", "value": "victim"}] * 10_001
        reply = await wardle.call("PATCH", item, body=many, content_type=JSON_PATCH)
        assert reply.is_status(413, "RequestEntityTooLarge"), reply
        assert await keyspace(etcd_kv) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and not grpc_poller_noise(r)]


async def test_objects_over_max_object_bytes_are_413_before_anything_is_written(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client, session: aiohttp.ClientSession
) -> None:
    """maxObjectBytes bounds what a create, an update or a patch would store: 413, nothing written."""
    async with serve(etcd_endpoints, prefix, limits={"wardle": {"maxObjectBytes": 20_000}}) as svc:
        wardle = Api(session, svc.url, token=TOKENS["wardle"])
        small = {"metadata": {"name": "small"}, "spec": {"pad": "x" * 1000}}
        assert (await wardle.call("POST", FLUNDERS, body=small)).status == 201
        before = await keyspace(etcd_kv)
        big = {"metadata": {"name": "big"}, "spec": {"pad": "x" * 30_000}}
        attempts = [
            ("POST", FLUNDERS, big, JSON),
            ("PUT", FLUNDERS + "/small", {**small, "spec": {"pad": "y" * 30_000}}, JSON),
            ("PATCH", FLUNDERS + "/small", {"spec": {"more": "z" * 30_000}}, MERGE_PATCH),
            (
                "PATCH",
                FLUNDERS + "/small",
                [{"op": "add", "path": "/spec/m", "value": "w" * 30_000}],
                JSON_PATCH,
            ),
        ]
        for method, path, body, content_type in attempts:
            reply = await wardle.call(method, path, body=body, content_type=content_type)
            assert reply.is_status(413, "RequestEntityTooLarge"), (method, content_type, reply)
        assert await keyspace(etcd_kv) == before


# -- sockets: connections that never send a request ------------------------------------------------------


async def test_connection_without_a_request_is_closed_after_the_header_timeout(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """A connection that sends nothing, and one that trickles a header a byte at a time, are both
    closed once the header timeout has passed since they opened."""
    settings = ConnectionSettings(header_timeout=0.5)
    async with serve(etcd_endpoints, prefix, connections=settings) as svc:
        assert svc.api is not None
        idle = await connect(svc.url, receive_buffer=None)
        trickle = await connect(svc.url, receive_buffer=None)
        loop = asyncio.get_running_loop()

        async def dribble() -> None:
            for byte in b"GET /version HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                try:
                    await loop.sock_sendall(trickle, bytes([byte]))
                except OSError:
                    return
                await asyncio.sleep(0.05)

        sender = asyncio.ensure_future(dribble())
        try:
            assert await closed_by_server(idle, within=5) == (True, 0)
            closed, got = await closed_by_server(trickle, within=5)
            assert closed and got == 0
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        assert svc.api.connections.timed_out >= 2


async def test_unauthenticated_connections_are_capped_oldest_first(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """Past max_unauthenticated, each new connection closes the oldest one that has not made an
    authenticated request; a tenant's request, which arrives at once, still gets in."""
    settings = ConnectionSettings(max_unauthenticated=3, header_timeout=30)
    async with serve(etcd_endpoints, prefix, connections=settings) as svc:
        assert svc.api is not None
        guard = svc.api.connections
        held = []
        for i in range(6):
            held.append(await connect(svc.url, receive_buffer=None))
            await wait_until(lambda n=i: guard.open >= min(n + 1, 3) and guard.evicted >= max(0, n - 2))
        oldest = await asyncio.gather(*(closed_by_server(sock, within=5) for sock in held[:3]))
        assert all(closed for closed, _ in oldest), oldest
        # The tenant's new connection takes the slot of the oldest one left, and gets its answer.
        wardle = Api(session, svc.url, token=TOKENS["wardle"])
        assert (await wardle.call("GET", FLUNDERS)).status == 200
        assert guard.evicted == 4
        newest = await asyncio.gather(*(closed_by_server(sock, within=0.3) for sock in held[3:]))
        assert [closed for closed, _ in newest] == [True, False, False]


async def test_requests_without_credentials_are_rate_limited_per_address(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """Past the per-address rate, requests without valid credentials get 429 and their connection
    is closed; a tenant's requests are unaffected."""
    settings = ConnectionSettings(anonymous_requests_per_second=1, anonymous_burst=5)
    async with (
        serve(etcd_endpoints, prefix, connections=settings) as svc,
        aiohttp.ClientSession() as session,
    ):
        anonymous = Api(session, svc.url)
        wardle = Api(session, svc.url, token=TOKENS["wardle"])
        replies = [await anonymous.call("GET", FLUNDERS) for _ in range(10)]
        codes = [r.status for r in replies]
        assert codes[:5] == [401] * 5 and 429 in codes[5:], codes
        refused = next(r for r in replies if r.status == 429)
        assert refused.is_status(429, "TooManyRequests")
        assert refused.headers.get("Connection", "").lower() == "close"
        assert (await anonymous.call("GET", "/healthz")).status == 429
        assert (await wardle.call("GET", FLUNDERS)).status == 200


async def test_a_tenants_connections_are_capped(etcd_endpoints: list[str], prefix: str) -> None:
    """One connection more than maxConnections is answered 429 and closed; closing one makes room."""
    async with serve(etcd_endpoints, prefix, limits={"wardle": {"maxConnections": 2}}) as svc:
        sessions = [aiohttp.ClientSession() for _ in range(3)]
        try:
            apis = [Api(s, svc.url, token=TOKENS["wardle"]) for s in sessions]
            assert (await apis[0].call("GET", FLUNDERS)).status == 200
            assert (await apis[1].call("GET", FLUNDERS)).status == 200
            third = await apis[2].call("GET", FLUNDERS)
            assert third.is_status(429, "TooManyRequests"), third
            assert "connections" in third.body["message"]
            await sessions[0].close()
            assert svc.api is not None
            await wait_until(lambda: svc.api is not None and svc.api.connections.owned_by("wardle") < 2)
            assert (await apis[2].call("GET", FLUNDERS)).status == 200
        finally:
            for s in sessions:
                await s.close()


# -- client mistakes are 4xx ---------------------------------------------------------------------------------


def token(data: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


async def test_forged_continue_tokens_are_400(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """A continue token for a revision etcd never reached is 400 (not 500), as is any token that is
    not one of ours; a real one still pages."""
    async with serve(etcd_endpoints, prefix) as svc:
        wardle = Api(session, svc.url, token=TOKENS["wardle"])
        for name in ("a", "b", "c"):
            body = {"metadata": {"name": name}, "spec": {}}
            assert (await wardle.call("POST", FLUNDERS, body=body)).status == 201
        first = await wardle.call("GET", FLUNDERS, query={"limit": "1"})
        real = first.body["metadata"]["continue"]
        data = orjson.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
        for forged in (
            token({**data, "rv": data["rv"] + 10**9}),
            token({**data, "rv": 2**63 - 1}),
            token({**data, "rv": "7"}),
            token({**data, "start": ""}),
            "bm90LWpzb24",
        ):
            reply = await wardle.call("GET", FLUNDERS, query={"limit": "1", "continue": forged})
            assert reply.is_status(400, "BadRequest"), (forged, reply)
        second = await wardle.call("GET", FLUNDERS, query={"limit": "1", "continue": real})
        assert [i["metadata"]["name"] for i in second.body["items"]] == ["b"]


async def test_readyz_names_no_resource_to_anyone(prefix: str) -> None:
    """While caches load, /readyz?verbose (open to anyone) says how many are loading, not which: it
    would otherwise tell strangers every tenant's API."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    options = ServiceOptions(
        config=parse_config(config()),
        etcd_servers=(nowhere,),
        etcd_prefix=prefix,
        port=0,
        request_timeout=1.0,
    )
    async with Service(options) as svc, aiohttp.ClientSession() as session:
        async with session.get(svc.url + "/readyz?verbose") as resp:
            text = await resp.text()
        assert resp.status == 503, text
        assert "2 caches loading" in text
        for secret in ("flunders", "widgets", GROUP, "acme"):
            assert secret not in text, text


# -- dry run ------------------------------------------------------------------------------------------------


async def test_dry_run_computes_the_result_and_writes_nothing(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client, session: aiohttp.ClientSession
) -> None:
    """dryRun=All on create, update, patch and delete (and DeleteOptions.dryRun in a DELETE body, as
    kubectl sends it) answers what the write would give — validated, admitted, computed against
    etcd's state — and changes nothing."""
    async with serve(etcd_endpoints, prefix, limits={"wardle": {"maxObjects": 2}}) as svc:
        wardle = Api(session, svc.url, token=TOKENS["wardle"])
        created = await wardle.call("POST", FLUNDERS, body={"metadata": {"name": "real"}, "spec": {"n": 1}})
        assert created.status == 201
        rv = created.body["metadata"]["resourceVersion"]
        item = FLUNDERS + "/real"
        before = await keyspace(etcd_kv)
        dry = {"dryRun": "All"}

        new = await wardle.call("POST", FLUNDERS, query=dry, body={"metadata": {"name": "new"}, "spec": {}})
        assert new.status == 201 and new.body["metadata"]["name"] == "new"
        assert "resourceVersion" not in new.body["metadata"] and new.body["metadata"]["uid"]
        assert new.body["apiVersion"] == f"{GROUP}/v1beta1"

        put = await wardle.call("PUT", item, query=dry, body={"metadata": {"name": "real"}, "spec": {"n": 2}})
        assert put.status == 200 and put.body["spec"] == {"n": 2}
        assert put.body["metadata"]["resourceVersion"] == rv

        patched = await wardle.call(
            "PATCH", item, query=dry, body={"spec": {"n": 3}}, content_type=MERGE_PATCH
        )
        assert patched.status == 200 and patched.body["spec"] == {"n": 3}

        for options in ({"query": dry}, {"body": {"kind": "DeleteOptions", "dryRun": ["All"]}}):
            deleted = await wardle.call("DELETE", item, **options)
            assert deleted.status == 200 and deleted.body["metadata"]["name"] == "real", deleted

        assert await keyspace(etcd_kv) == before
        got = await wardle.call("GET", item)
        assert got.body["spec"] == {"n": 1} and got.body["metadata"]["resourceVersion"] == rv

        # Refusals are the real write's: a taken name, a quota, a bad dryRun value.
        taken = await wardle.call("POST", FLUNDERS, query=dry, body={"metadata": {"name": "real"}})
        assert taken.is_status(409, "AlreadyExists"), taken
        assert (await wardle.call("POST", FLUNDERS, body={"metadata": {"name": "second"}})).status == 201
        over = await wardle.call("POST", FLUNDERS, query=dry, body={"metadata": {"name": "third"}})
        assert over.is_status(403, "Forbidden"), over
        bad = await wardle.call("DELETE", item, query={"dryRun": "Everything"})
        assert bad.is_status(400, "BadRequest"), bad
        bad = await wardle.call("DELETE", item, body={"dryRun": "All"})
        assert bad.is_status(400, "BadRequest"), bad
        assert (await wardle.call("GET", item)).status == 200


async def test_malformed_metadata_is_refused_as_kubernetes_refuses_it(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client, session: aiohttp.ClientSession
) -> None:
    """Metadata of the wrong JSON type is 400, a label Kubernetes would not accept is 422 (with a
    cause per field), on create and on patch alike; a DeleteOptions whose preconditions are not an
    object is 400 rather than an unconditional delete. Nothing is written."""
    async with serve(etcd_endpoints, prefix) as svc:
        wardle = Api(session, svc.url, token=TOKENS["wardle"])
        ok = await wardle.call("POST", FLUNDERS, body={"metadata": {"name": "ok"}, "spec": {}})
        assert ok.status == 201
        before = await keyspace(etcd_kv)
        for meta in (
            {"labels": ["a"]},
            {"labels": {"a": 1}},
            {"annotations": 5},
            {"finalizers": 3},
            {"generation": "1"},
            {"deletionTimestamp": {}},
            {"ownerReferences": "x"},
        ):
            reply = await wardle.call("POST", FLUNDERS, body={"metadata": {"name": "bad", **meta}})
            assert reply.is_status(400, "BadRequest"), (meta, reply)
            reply = await wardle.call(
                "PATCH", FLUNDERS + "/ok", body={"metadata": meta}, content_type=MERGE_PATCH
            )
            assert reply.is_status(400, "BadRequest"), (meta, reply)
        reply = await wardle.call(
            "POST", FLUNDERS, body={"metadata": {"name": "bad", "labels": {"-x-": "ok", "y": "a" * 64}}}
        )
        assert reply.is_status(422, "Invalid"), reply
        fields = [cause["field"] for cause in reply.body["details"]["causes"]]
        assert fields == ["metadata.labels", "metadata.labels"], fields  # kube names the map, not the key
        reply = await wardle.call("DELETE", FLUNDERS + "/ok", body={"preconditions": []})
        assert reply.is_status(400, "BadRequest"), reply
        assert await keyspace(etcd_kv) == before
