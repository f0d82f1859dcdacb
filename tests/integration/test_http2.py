"""REST over HTTP/2: the same API as HTTP/1.1 on the same listener, over real sockets against a real
etcd — prior-knowledge h2c in plain text, ALPN ``h2`` over TLS, many watches on one connection, a
stream whose client stops reading, and malformed input.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import h2.errors
import httpx
import orjson
import pytest
from support.certs import TestCA
from support.h2client import SETTINGS_MAX_CONCURRENT_STREAMS, H2Client
from support.tenants import FLUNDERS, TOKENS, client_ssl, service
from support.waiting import wait_until
from support.wardle import flunder, flunder_path, flunders_path

from watchcache import CacheSettings
from watchcache.config import parse_config
from watchcache.http.settings import ServerSettings
from watchcache.service import Service, ServiceOptions

pytestmark = pytest.mark.etcd

JSON = {"Content-Type": "application/json"}


def address(service: Service) -> tuple[str, int]:
    url = urlsplit(service.url)
    assert url.hostname is not None and url.port is not None
    return url.hostname, url.port


def connections(service: Service, protocol: str) -> float:
    """How many connections of ``protocol`` the service has accepted (its metric)."""
    assert service.api is not None
    for line in service.api.metrics.render().decode().splitlines():
        if line.startswith(f'watchcache_http_connections_total{{protocol="{protocol}"}}'):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
async def h2c(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """httpx speaking HTTP/2 with prior knowledge to the plain listener."""
    async with httpx.AsyncClient(base_url=service.url, http1=False, http2=True, timeout=30) as client:
        yield client


async def test_h2c_serves_reads_writes_and_errors(service: Service, h2c: httpx.AsyncClient) -> None:
    """Over prior-knowledge h2c: create, get, list, update, patch, delete, each error as a Status, the
    discovery and health endpoints — as over HTTP/1.1, on one connection counted as h2."""
    created = await h2c.post(flunders_path("default"), json=flunder("a"))
    assert created.http_version == "HTTP/2"
    assert created.status_code == 201, created.text
    rv = created.json()["metadata"]["resourceVersion"]
    again = await h2c.post(flunders_path("default"), json=flunder("a"))
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"
    got = await h2c.get(flunder_path("default", "a"))
    assert got.status_code == 200 and got.json()["metadata"]["resourceVersion"] == rv
    listed = await h2c.get(flunders_path("default"))
    assert [i["metadata"]["name"] for i in listed.json()["items"]] == ["a"]
    changed = flunder("a", size=5)
    changed["metadata"]["resourceVersion"] = rv
    updated = await h2c.put(flunder_path("default", "a"), json=changed)
    assert updated.status_code == 200 and updated.json()["spec"]["size"] == 5
    stale = await h2c.put(flunder_path("default", "a"), json=changed)
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    patched = await h2c.patch(
        flunder_path("default", "a"),
        content=b'{"spec":{"size":7}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200 and patched.json()["spec"]["size"] == 7
    bad = await h2c.post(flunders_path("default"), content=b"{not json", headers=JSON)
    assert bad.status_code == 400 and bad.json()["reason"] == "BadRequest"
    unsupported = await h2c.patch(flunder_path("default", "a"), content=b"{}", headers=JSON)
    assert unsupported.status_code == 415
    deleted = await h2c.delete(flunder_path("default", "a"))
    assert deleted.status_code == 200 and deleted.json()["metadata"]["name"] == "a"
    missing = await h2c.get(flunder_path("default", "a"))
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"
    assert (await h2c.get("/nowhere")).status_code == 404
    assert (await h2c.get("/healthz")).text == "ok"
    assert (await h2c.get("/apis")).json()["kind"] == "APIGroupList"
    assert (await h2c.get("/openapi/v3")).status_code == 200
    assert b"watchcache_requests_total" in (await h2c.get("/metrics")).content
    assert connections(service, "h2") == 1


async def test_request_body_over_the_limit_is_413(etcd_endpoints: list[str], prefix: str) -> None:
    """A request body over ``max_body_bytes`` gets 413 RequestEntityTooLarge over HTTP/2 too, and the
    connection goes on taking bodies."""
    async with (
        service(_example(), etcd_endpoints, prefix, server=ServerSettings(max_body_bytes=64 * 1024)) as svc,
        httpx.AsyncClient(http1=False, http2=True, timeout=30) as client,
    ):
        big = flunder("big", spec={"blob": "x" * 100_000})
        for _ in range(3):
            reply = await client.post(svc.url + flunders_path("default"), json=big)
            assert reply.status_code == 413 and reply.json()["reason"] == "RequestEntityTooLarge"
        # What the client sent of the refused body does not stay counted against the connection's
        # window: more bodies than one window's worth still go through on the same connection.
        for i in range(4):
            medium = flunder(f"medium{i}", spec={"blob": "y" * 40_000})
            reply = await client.post(svc.url + flunders_path("default"), json=medium)
            assert reply.status_code == 201 and reply.http_version == "HTTP/2"


def _example() -> str:
    from support.wardle import EXAMPLE_CONFIG  # noqa: PLC0415

    return EXAMPLE_CONFIG


async def test_many_watches_on_one_connection_each_get_every_event_in_order(
    service: Service, h2c: httpx.AsyncClient
) -> None:
    """Twenty watches multiplexed on one connection (some filtered by name) each receive every
    change they select, in revision order, while the writes go over another HTTP/2 connection."""
    start = (await h2c.get(flunders_path("default"))).json()["metadata"]["resourceVersion"]
    client = await H2Client.connect(*address(service))
    try:
        everything = [
            client.request("GET", f"{flunders_path('default')}?watch=true&resourceVersion={start}")
            for _ in range(16)
        ]
        one = [
            client.request(
                "GET",
                f"{flunders_path('default')}?watch=true&resourceVersion={start}"
                "&fieldSelector=metadata.name%3Df3",
            )
            for _ in range(4)
        ]
        writes = []
        for i in range(10):
            reply = await h2c.post(flunders_path("default"), json=flunder(f"f{i}"))
            writes.append(reply.json()["metadata"]["resourceVersion"])
        for i in range(10):
            reply = await h2c.patch(
                flunder_path("default", f"f{i}"),
                content=b'{"spec":{"size":2}}',
                headers={"Content-Type": "application/merge-patch+json"},
            )
            writes.append(reply.json()["metadata"]["resourceVersion"])
        for stream in everything:
            response = await client.until(stream, lambda r: len(r.lines) >= 20)
            assert response.status == 200
            events = [orjson.loads(line) for line in response.lines]
            assert [e["object"]["metadata"]["resourceVersion"] for e in events] == writes
            assert [e["type"] for e in events] == ["ADDED"] * 10 + ["MODIFIED"] * 10
        for stream in one:
            response = await client.until(stream, lambda r: len(r.lines) >= 2)
            events = [orjson.loads(line) for line in response.lines]
            assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
                ("ADDED", "f3"),
                ("MODIFIED", "f3"),
            ]
    finally:
        await client.close()


async def test_initial_events_bookmark_and_timeout_end_the_stream(
    service: Service, h2c: httpx.AsyncClient
) -> None:
    """sendInitialEvents with bookmarks gives the ADDEDs then the initial-events-end BOOKMARK, as on
    HTTP/1.1, and timeoutSeconds ends the stream cleanly (END_STREAM, no reset)."""
    for i in range(3):
        await h2c.post(flunders_path("default"), json=flunder(f"t{i}"))
    client = await H2Client.connect(*address(service))
    try:
        initial = client.request(
            "GET",
            f"{flunders_path('default')}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
            "&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
        )
        response = await client.response(initial)
        assert response.reset is None and response.status == 200
        events = [orjson.loads(line) for line in response.lines]
        assert [e["type"] for e in events[:4]] == ["ADDED", "ADDED", "ADDED", "BOOKMARK"]
        annotations = events[3]["object"]["metadata"]["annotations"]
        assert annotations["k8s.io/initial-events-end"] == "true"
    finally:
        await client.close()


async def test_a_watch_older_than_the_window_gets_410_over_http2(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """A watch from a resourceVersion older than the cache's window gets one ERROR event with a 410
    Expired Status, then its stream ends."""
    async with (
        service(_example(), etcd_endpoints, prefix, cache=CacheSettings(window_events=3)) as svc,
        httpx.AsyncClient(http1=False, http2=True, timeout=30) as client,
    ):
        first = await client.post(svc.url + flunders_path("default"), json=flunder("w0"))
        for i in range(1, 7):
            await client.post(svc.url + flunders_path("default"), json=flunder(f"w{i}"))
        old = first.json()["metadata"]["resourceVersion"]
        h2 = await H2Client.connect(*address(svc))
        try:
            stream = h2.request("GET", f"{flunders_path('default')}?watch=true&resourceVersion={old}")
            response = await h2.response(stream)
            assert response.reset is None and response.status == 200
            [event] = [orjson.loads(line) for line in response.lines]
            assert event["type"] == "ERROR"
            assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
        finally:
            await h2.close()


async def test_tls_negotiates_h2_by_alpn_and_keeps_http11(tls_svc: Service, test_ca: TestCA) -> None:
    """Over TLS, ALPN picks h2 for a client offering it and HTTP/1.1 for one that does not, on the
    same port; over h2 a tenant is known by its bearer token or its client certificate, and is held
    to its groups."""
    acme = test_ca.issue("acme")
    headers = {"Authorization": f"Bearer {TOKENS['wardle']}"}
    async with httpx.AsyncClient(http2=True, verify=client_ssl(test_ca), timeout=30) as client:
        created = await client.post(
            tls_svc.url + FLUNDERS.collection(), json=FLUNDERS.obj("tls"), headers=headers
        )
        assert created.http_version == "HTTP/2" and created.status_code == 201, created.text
        anonymous = await client.get(tls_svc.url + FLUNDERS.collection())
        assert anonymous.status_code == 401 and anonymous.json()["reason"] == "Unauthorized"
    async with httpx.AsyncClient(http2=True, verify=client_ssl(test_ca, acme), timeout=30) as client:
        forbidden = await client.get(tls_svc.url + FLUNDERS.collection())
        assert forbidden.http_version == "HTTP/2"
        assert forbidden.status_code == 403 and forbidden.json()["reason"] == "Forbidden"
    assert connections(tls_svc, "h2") == 2
    async with (
        aiohttp.ClientSession() as session,
        session.get(tls_svc.url + FLUNDERS.collection(), headers=headers, ssl=client_ssl(test_ca)) as reply,
    ):
        assert reply.version == aiohttp.HttpVersion11 and reply.status == 200
        assert [i["metadata"]["name"] for i in (await reply.json())["items"]] == ["tls"]
    assert connections(tls_svc, "http/1.1") == 1


async def test_a_stream_whose_client_stops_reading_does_not_stall_the_others(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """One watch of a connection is never read (its window never reopened): the other watch on the
    same connection gets every event at once, and the stalled stream is reset after the write
    timeout while the connection lives on."""
    async with (
        service(_example(), etcd_endpoints, prefix, server=ServerSettings(write_timeout=2.0)) as svc,
        httpx.AsyncClient(http1=False, http2=True, timeout=30) as writer,
    ):
        start = (await writer.get(svc.url + flunders_path("default"))).json()["metadata"]["resourceVersion"]
        client = await H2Client.connect(*address(svc))
        try:
            watch = f"{flunders_path('default')}?watch=true&resourceVersion={start}"
            stalled = client.request("GET", watch)
            client.stalled.add(stalled)
            live = client.request("GET", watch)
            blob = "x" * 30_000
            count = 20  # 600 KB: far more than the stalled stream's 64 KiB window and queue
            loop = asyncio.get_running_loop()
            began = loop.time()
            for i in range(count):
                reply = await writer.post(
                    svc.url + flunders_path("default"), json=flunder(f"s{i}", spec={"blob": blob})
                )
                assert reply.status_code == 201
            response = await client.until(live, lambda r: len(r.lines) >= count)
            assert len(response.lines) == count and response.reset is None
            assert loop.time() - began < 2.0 + 5.0  # not held back by the stalled stream's timeout
            reset = await client.until(stalled, lambda r: r.reset is not None)
            assert reset.reset == h2.errors.ErrorCodes.CANCEL
            # The connection is still good for new requests.
            again = client.request("GET", flunders_path("default"))
            listed = await client.response(again)
            assert listed.status == 200 and len(orjson.loads(listed.body)["items"]) == count
        finally:
            await client.close()


async def test_malformed_input_gets_a_clean_error_and_spares_other_connections(
    service: Service, h2c: httpx.AsyncClient
) -> None:
    """A bad preface is answered as HTTP/1.1 (400); a garbage frame, a header list over the limit
    and more streams than allowed each end that connection with GOAWAY; a request without a valid
    :path gets a 400 Status on its stream. Other connections go on being served."""
    host, port = address(service)
    # A preface that goes wrong half-way is not HTTP/2: aiohttp's HTTP/1.1 answers 400.
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    async with asyncio.timeout(10):
        first = await reader.readline()
    assert first.startswith(b"HTTP/1.") and b" 400 " in first, first
    writer.close()

    # A frame header announcing a frame bigger than the maximum frame size.
    client = await H2Client.connect(host, port)
    client.send_raw(b"\x00\xff\xff" + b"\x00\x00" + b"\x00\x00\x00\x01" + b"x" * 0xFFFF)
    await asyncio.wait_for(client.closed.wait(), 10)
    assert (
        client.terminated is not None
        and client.terminated.error_code == h2.errors.ErrorCodes.FRAME_SIZE_ERROR
    )
    await client.close()

    # A header list over the limit (64 KiB).
    client = await H2Client.connect(host, port)
    client.request("GET", flunders_path("default"), headers=[("x-big", "y" * 70_000)])
    await asyncio.wait_for(client.closed.wait(), 10)
    assert client.terminated is not None
    await client.close()

    # More concurrent streams than the 250 allowed (watches stay open).
    client = await H2Client.connect(host, port)
    await client.response(client.request("GET", "/healthz"))  # SETTINGS exchanged
    # The client library keeps to the server's limit: make it believe in a higher one.
    client.h2.remote_settings[SETTINGS_MAX_CONCURRENT_STREAMS] = 1000
    client.h2.remote_settings.acknowledge()
    for _ in range(251):
        client.request("GET", f"{flunders_path('default')}?watch=true")
    await asyncio.wait_for(client.closed.wait(), 10)
    assert client.terminated is not None
    await client.close()

    # A :path that is not a path.
    client = await H2Client.connect(host, port)
    response = await client.response(client.request("GET", "*"))
    assert response.status == 400
    assert orjson.loads(response.body)["reason"] == "BadRequest"
    await client.close()

    assert (await h2c.get("/healthz")).text == "ok"
    assert (await h2c.get(flunders_path("default"))).status_code == 200


async def test_an_idle_connection_without_a_request_is_closed_by_the_header_timeout(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """A connection that sends the preface and nothing else is closed after the header timeout, as an
    HTTP/1.1 one is; so is one that never finishes the preface."""
    from watchcache.http.connections import ConnectionSettings  # noqa: PLC0415

    options = ServiceOptions(
        config=parse_config(_example()),
        etcd_servers=tuple(etcd_endpoints),
        etcd_prefix=prefix,
        port=0,
        server=ServerSettings(connections=ConnectionSettings(header_timeout=1.0)),
    )
    async with Service(options) as svc:
        host, port = address(svc)
        client = await H2Client.connect(host, port)
        await asyncio.wait_for(client.closed.wait(), 10)
        await client.close()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"PRI * HTTP/2.0\r\n")
        async with asyncio.timeout(10):
            assert await reader.read() == b""
        writer.close()
        assert svc.api is not None
        await wait_until(lambda: svc.api is not None and svc.api.connections.open == 0)
