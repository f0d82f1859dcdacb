"""Parked REST watches (``watchcache/http/watch.py``): once its headers are out, a resource's watch owns
its connection (HTTP/1.1) or its stream (HTTP/2) and holds no task while nothing is queued; events, the
timeout, the write timeout with the tenant's byte budget, a client's reset, and shutdown all still reach
it. Raw sockets (and a raw HTTP/2 client), so that what is on the wire (chunks, the last chunk, the
server closing, END_STREAM) is what is checked."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aetcd
import orjson
import pytest
import yaml
from support.h2client import H2Client
from support.tenants import service
from support.waiting import wait_until

from watchcache.http.settings import ServerSettings
from watchcache.service import Service

pytestmark = pytest.mark.etcd

GROUP = "wardle.example.com"
TOKEN = "wardle-token"
PIECE = 256 * 1024


def flunders(namespace: str) -> str:
    return f"/apis/{GROUP}/v1alpha1/namespaces/{namespace}/flunders"


@asynccontextmanager
async def serve(
    endpoints: list[str], prefix: str, *, limits: Mapping[str, float] | None = None, **server: Any
) -> AsyncIterator[Service]:
    """The service with one tenant (``wardle``, bearer ``TOKEN``), or none when ``limits`` is None."""
    resources = [{"group": GROUP, "versions": ["v1alpha1"], "resource": "flunders", "kind": "Flunder"}]
    document: dict[str, Any] = {"resources": resources}
    if limits is not None:
        document["tenants"] = [
            {"name": "wardle", "groups": [GROUP], "tokens": [TOKEN], "limits": dict(limits)}
        ]
    async with service(yaml.safe_dump(document), endpoints, prefix, server=ServerSettings(**server)) as svc:
        yield svc


class RawWatch:
    """A watch over a raw socket: the response head, then the chunked body's event lines."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.head = b""
        self._buffer = b""
        self.ended = False  # the last chunk arrived
        self.closed = False  # the server closed the connection

    @classmethod
    async def open(
        cls, url: str, path: str, *, token: str | None = None, receive_buffer: int | None = None
    ) -> RawWatch:
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (parts.hostname, parts.port))
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
        return cls(sock)

    async def _fill(self) -> bool:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 1 << 16)
        if not data:
            self.closed = True
            return False
        self._buffer += data
        return True

    async def read_head(self) -> bytes:
        async with asyncio.timeout(10):
            while b"\r\n\r\n" not in self._buffer:
                assert await self._fill(), "closed before the response head"
        self.head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        return self.head

    async def events(self, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        """The next ``count`` events (fewer if the stream ends first)."""
        out: list[dict[str, Any]] = []
        async with asyncio.timeout(within):
            while len(out) < count and not self.ended:
                line = await self._chunk()
                if line is None:
                    break
                out.extend(orjson.loads(piece) for piece in line.splitlines() if piece)
        return out

    async def _chunk(self) -> bytes | None:
        """One chunk's data; None at the last chunk or when the connection closes."""
        while b"\r\n" not in self._buffer:
            if not await self._fill():
                return None
        size_line, _, rest = self._buffer.partition(b"\r\n")
        size = int(size_line, 16)
        while len(rest) < size + 2:
            if not await self._fill():
                return None
            size_line, _, rest = self._buffer.partition(b"\r\n")
        self._buffer = rest[size + 2 :]
        if size == 0:
            self.ended = True
            return None
        return rest[:size]

    async def until_closed(self, within: float = 10.0) -> None:
        """Read to the end: the last chunk, then the server closing the connection."""
        async with asyncio.timeout(within):
            while not self.ended and await self._chunk() is not None:
                pass
            while not self.closed:
                try:
                    await self._fill()
                except ConnectionResetError:
                    self.closed = True
        self.sock.close()


def head_fields(head: bytes) -> dict[str, str]:
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200"), lines[0]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}


async def put(kv: aetcd.Client, prefix: str, namespace: str, name: str, pad: int = 0) -> None:
    obj = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Flunder",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"pad": "x" * pad},
    }
    await kv.put(f"{prefix}/{GROUP}/flunders/{namespace}/{name}".encode(), orjson.dumps(obj))


def connection_tasks() -> list[asyncio.Task[Any]]:
    """The tasks serving connections: aiohttp's per connection and per request, an HTTP/2 stream's,
    and a parked watch's drain."""
    handlers = {"RequestHandler.start", "RequestHandler._handle_request"}
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "watchcache-watch-drain"
        or task.get_name().startswith("h2-stream")
        or getattr(task.get_coro(), "__qualname__", "") in handlers
    ]


def names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


async def test_idle_watches_hold_no_task_and_get_every_event_in_order(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """30 idle watches add no task to the loop once their headers are out (their responses say
    Connection: close); writes then reach every one of them, each change once and in order."""
    async with serve(etcd_endpoints, prefix) as svc:
        assert svc.storage is not None and svc.api is not None
        tasks = len(asyncio.all_tasks())
        path = flunders("parked") + "?watch=true&resourceVersion=0"
        watches = [await RawWatch.open(svc.url, path) for _ in range(30)]
        for watch in watches:
            fields = head_fields(await watch.read_head())
            assert fields["transfer-encoding"] == "chunked"
            assert fields["connection"] == "close"
        resource = svc.storage.resource(svc.options.config.resources[0])
        await wait_until(lambda: resource.cache.watcher_count == 30, message="30 watchers registered")
        await wait_until(lambda: not connection_tasks(), message="no task left per watch")
        assert len(asyncio.all_tasks()) < tasks + 5  # the service's own tasks, not one per watch
        for i in range(20):
            await put(etcd_kv, prefix, "parked", f"f-{i:02d}")
        expected = [("ADDED", f"f-{i:02d}") for i in range(20)]
        for watch in watches:
            assert names(await watch.events(20)) == expected
        await wait_until(lambda: not connection_tasks(), message="parked again")
        for watch in watches:
            watch.sock.close()
        await wait_until(lambda: resource.cache.watcher_count == 0, message="closed watches unregistered")
        await wait_until(lambda: svc.api is not None and svc.api.connections.open == 0, message="none open")


async def test_a_parked_watch_that_falls_behind_catches_up_in_order_and_parks_again(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """A client that stops reading while 40 changes of 200 KB arrive: past 64 KiB unsent its events
    queue and are drained by a task; once it reads again it gets all of them in order, the task ends,
    and later changes are written by the dispatch again."""
    async with serve(etcd_endpoints, prefix) as svc:
        assert svc.storage is not None
        resource = svc.storage.resource(svc.options.config.resources[0])
        path = flunders("behind") + "?watch=true&resourceVersion=0"
        watch = await RawWatch.open(svc.url, path, receive_buffer=4096)
        await watch.read_head()
        await wait_until(lambda: resource.cache.watcher_count == 1, message="the watcher registered")
        for i in range(40):
            await put(etcd_kv, prefix, "behind", f"b-{i:02d}", pad=200_000)
        await wait_until(connection_tasks, message="a drain task while behind")
        assert names(await watch.events(40)) == [("ADDED", f"b-{i:02d}") for i in range(40)]
        await wait_until(lambda: not connection_tasks(), message="parked again")
        for i in range(40, 45):
            await put(etcd_kv, prefix, "behind", f"b-{i:02d}")
        assert names(await watch.events(5)) == [("ADDED", f"b-{i:02d}") for i in range(40, 45)]
        watch.sock.close()


async def test_timeout_seconds_ends_a_parked_watch_and_closes_its_connection(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """timeoutSeconds=1: each parked watch gets the last chunk after about a second and the server
    closes the connection; its watcher and connection are forgotten."""
    async with serve(etcd_endpoints, prefix) as svc:
        assert svc.storage is not None and svc.api is not None
        resource = svc.storage.resource(svc.options.config.resources[0])
        path = flunders("timeout") + "?watch=true&timeoutSeconds=1"
        watches = [await RawWatch.open(svc.url, path) for _ in range(5)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        for watch in watches:
            await watch.read_head()
        for watch in watches:
            await watch.until_closed(within=5)
            assert watch.ended and watch.closed
        assert 0.8 <= loop.time() - started <= 3.0
        await wait_until(lambda: resource.cache.watcher_count == 0, message="watchers unregistered")
        await wait_until(lambda: svc.api is not None and svc.api.connections.open == 0, message="none open")


async def test_a_parked_watch_whose_client_stops_reading_is_dropped_within_its_budget(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """A parked watch whose client never reads while 48 changes of 256 KiB arrive: what is queued is
    drained one bounded batch at a time, held in the tenant's byte budget; after the write timeout
    the connection is dropped, and the watch slot, the budget and the connection are given back."""
    async with serve(etcd_endpoints, prefix, limits={}, write_timeout=1.0) as svc:
        assert svc.api is not None
        admission = svc.api.admission("wardle")
        path = flunders("stalled") + "?watch=true&resourceVersion=0"
        watch = await RawWatch.open(svc.url, path, token=TOKEN, receive_buffer=4096)
        await watch.read_head()
        await wait_until(lambda: admission.watches == 1, message="the watch is counted")
        peak = 0

        async def writes() -> None:
            for i in range(48):
                await put(etcd_kv, prefix, "stalled", f"s-{i:02d}", pad=256 * 1024)

        writer = asyncio.ensure_future(writes())
        try:

            def dropped() -> bool:
                nonlocal peak
                peak = max(peak, admission.bytes.used)
                return admission.watches == 0

            await wait_until(dropped, within=30, interval=0.01, message="the watch is dropped")
        finally:
            await writer
        assert admission.bytes.used == 0
        assert svc.api.connections.owned_by("wardle") == 0
        assert peak <= PIECE + 256 * 1024 + 1024, peak
        watch.sock.close()


async def test_shutdown_ends_parked_watches_cleanly(etcd_endpoints: list[str], prefix: str) -> None:
    """Stopping the service ends every parked watch with the last chunk and closes its connection,
    within a few seconds."""
    async with serve(etcd_endpoints, prefix) as svc:
        path = flunders("shutdown") + "?watch=true"
        watches = [await RawWatch.open(svc.url, path) for _ in range(10)]
        for watch in watches:
            await watch.read_head()
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(10):
            await svc.stop()
        assert loop.time() - started < 5
        for watch in watches:
            await watch.until_closed(within=5)
            assert watch.ended and watch.closed


# -- HTTP/2: a watch parks its stream, and the connection serves on ------------------------------------


def h2_address(svc: Service) -> tuple[str, int]:
    parts = urlsplit(svc.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def h2_events(client: H2Client, stream_id: int) -> list[tuple[str, str]]:
    return names([orjson.loads(line) for line in client.responses[stream_id].lines])


async def test_idle_http2_watches_hold_no_task_and_a_reset_frees_only_its_stream(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """30 watches on one HTTP/2 connection hold no task once their headers are out, and each gets
    every change once and in order; a client's RST_STREAM on ten of them lets go of their cache
    watchers and the tenant's watch slots, while the other twenty, and new requests on the same
    connection, go on."""
    async with serve(etcd_endpoints, prefix, limits={}) as svc:
        assert svc.storage is not None and svc.api is not None
        admission = svc.api.admission("wardle")
        resource = svc.storage.resource(svc.options.config.resources[0])
        client = await H2Client.connect(*h2_address(svc))
        try:
            auth = [("authorization", f"Bearer {TOKEN}")]
            path = flunders("h2parked") + "?watch=true&resourceVersion=0"
            streams = [client.request("GET", path, headers=auth) for _ in range(30)]
            for stream in streams:
                assert (await client.until(stream, lambda r: r.headers)).status == 200
            await wait_until(lambda: resource.cache.watcher_count == 30, message="30 watchers registered")
            await wait_until(lambda: not connection_tasks(), message="no task left per watch")
            assert admission.watches == 30
            for i in range(10):
                await put(etcd_kv, prefix, "h2parked", f"f-{i:02d}")
            first = [("ADDED", f"f-{i:02d}") for i in range(10)]
            for stream in streams:
                await client.until(stream, lambda r: len(r.lines) >= 10)
                assert h2_events(client, stream) == first
            await wait_until(lambda: not connection_tasks(), message="parked again")

            reset, kept = streams[:10], streams[10:]
            for stream in reset:
                client.h2.reset_stream(stream)
            client.flush()
            await wait_until(lambda: resource.cache.watcher_count == 20, message="reset watchers let go")
            await wait_until(lambda: admission.watches == 20, message="reset watch slots given back")
            for i in range(10, 15):
                await put(etcd_kv, prefix, "h2parked", f"f-{i:02d}")
            everything = [("ADDED", f"f-{i:02d}") for i in range(15)]
            for stream in kept:
                await client.until(stream, lambda r: len(r.lines) >= 15)
                assert h2_events(client, stream) == everything
                assert client.responses[stream].reset is None
            listed = await client.response(client.request("GET", flunders("h2parked"), headers=auth))
            assert listed.status == 200 and len(orjson.loads(listed.body)["items"]) == 15
        finally:
            await client.close()
        await wait_until(lambda: resource.cache.watcher_count == 0, message="closed watches unregistered")
        await wait_until(lambda: admission.watches == 0, message="every watch slot given back")
        await wait_until(lambda: svc.api is not None and svc.api.connections.open == 0, message="none open")


async def test_timeout_and_shutdown_end_parked_http2_watches_cleanly(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """timeoutSeconds=1 ends a parked HTTP/2 watch with END_STREAM (no reset) while the connection
    lives on; stopping the service ends the other parked watches the same way, within seconds."""
    async with serve(etcd_endpoints, prefix) as svc:
        assert svc.storage is not None
        resource = svc.storage.resource(svc.options.config.resources[0])
        client = await H2Client.connect(*h2_address(svc))
        try:
            short = client.request("GET", flunders("h2end") + "?watch=true&timeoutSeconds=1")
            long = [client.request("GET", flunders("h2end") + "?watch=true") for _ in range(5)]
            loop = asyncio.get_running_loop()
            started = loop.time()
            ended = await client.response(short)
            assert ended.status == 200 and ended.end_stream and ended.reset is None
            assert 0.8 <= loop.time() - started <= 3.0
            await wait_until(lambda: resource.cache.watcher_count == 5, message="the short one let go")
            assert not client.closed.is_set()
            started = loop.time()
            async with asyncio.timeout(10):
                await svc.stop()
            assert loop.time() - started < 5
            for stream in long:
                response = await client.response(stream)
                assert response.status == 200 and response.end_stream and response.reset is None
        finally:
            await client.close()
