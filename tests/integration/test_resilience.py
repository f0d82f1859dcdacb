"""The cache across etcd failures: restarts mid-stream, compaction while it is cut off, the window's
limits, readiness, and answers while etcd is down.

Every test here runs its own etcd (``own_etcd``): they stop, kill and compact it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aetcd
import orjson
import pytest
from support.etcd import EtcdServer, etcd_client
from support.waiting import retry, wait_until
from support.wardle import FLUNDERS, flunder_key, flunder_value, flunders_layout

from watchcache import (
    CacheSettings,
    EtcdUnavailableError,
    EtcdUnreachableError,
    ExpiredError,
    Resource,
    Storage,
    TimedOutError,
    Watch,
    WatchEvent,
)
from watchcache.etcd.client import EtcdClient

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

PREFIX = "/registry"


@asynccontextmanager
async def opened(
    endpoints: list[str], settings: CacheSettings | None = None, request_timeout: float = 5.0
) -> AsyncIterator[tuple[Storage, Resource]]:
    async with Storage(
        endpoints, prefix=PREFIX, settings=settings, request_timeout=request_timeout
    ) as storage:
        resource = storage.resource(FLUNDERS)
        await storage.wait_ready(10)
        yield storage, resource


def summary(event: WatchEvent) -> tuple[str, str, str, int]:
    meta = event.object["metadata"]
    assert meta["resourceVersion"] == str(event.revision)
    return event.type, meta["namespace"], meta["name"], event.revision


async def collect(watch: Watch, into: list[WatchEvent]) -> None:
    """Append every event of ``watch`` to ``into`` until it ends."""
    while events := await watch.next_events():
        into.extend(events)


async def list_state(resource: Resource) -> list[tuple[str, str, str, bytes]]:
    """A consistent list as (namespace, name, resourceVersion, spec JSON)."""
    listed = await resource.list()
    return [
        (
            o["metadata"]["namespace"],
            o["metadata"]["name"],
            o["metadata"]["resourceVersion"],
            orjson.dumps(o.get("spec")),
        )
        for o in listed.items
    ]


async def etcd_state(direct: EtcdClient, revision: int = 0) -> list[tuple[str, str, str, bytes]]:
    """etcd's own (linearizable) range of the flunders, in the same form as :func:`list_state`."""
    start, end = flunders_layout(PREFIX).list_range()
    result = await direct.range(start, end, revision=revision)
    out = []
    for kv in result.kvs:
        obj = orjson.loads(kv.value)
        out.append(
            (
                obj["metadata"]["namespace"],
                obj["metadata"]["name"],
                str(kv.mod_revision),
                orjson.dumps(obj.get("spec")),
            )
        )
    return out


class Expected:
    """The watch events direct writes must produce, built from the revisions etcd acknowledged."""

    def __init__(self, kv: aetcd.Client) -> None:
        self.kv = kv
        self.events: list[tuple[str, str, str, int]] = []
        self.live: set[tuple[str, str]] = set()

    async def put(self, namespace: str, name: str, **spec: Any) -> int:
        result = await self.kv.put(
            flunder_key(PREFIX, name, namespace), flunder_value(name, namespace, spec=spec)
        )
        kind = "MODIFIED" if (namespace, name) in self.live else "ADDED"
        self.live.add((namespace, name))
        self.events.append((kind, namespace, name, result.header.revision))
        return int(result.header.revision)

    async def delete(self, namespace: str, name: str) -> int:
        result = await self.kv.delete(flunder_key(PREFIX, name, namespace))
        assert result is not None
        self.live.discard((namespace, name))
        self.events.append(("DELETED", namespace, name, result.header.revision))
        return int(result.header.revision)

    async def burst(self, tag: str, count: int) -> None:
        """``count`` writes: creations, updates and a deletion, over two namespaces."""
        for i in range(count):
            ns = "ns-a" if i % 2 else "ns-b"
            if i % 5 == 4 and self.live:
                await self.delete(*sorted(self.live)[0])
            else:
                await self.put(ns, f"{tag}-{i % 3}", step=i)


async def wait_events(received: list[WatchEvent], count: int, within: float = 20.0) -> None:
    """Wait until ``received`` holds ``count`` events; fail at once if the watch ended with an ERROR."""
    await wait_until(
        lambda: len(received) >= count or any(e.type == "ERROR" for e in received),
        within=within,
        message=f"{count} watch events",
    )
    errors = [e.object for e in received if e.type == "ERROR"]
    assert not errors, f"the watch ended with an ERROR after {len(received) - 1} of {count} events: {errors}"


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_watch_survives_an_etcd_restart(own_etcd: EtcdServer, how: str) -> None:
    """etcd stopped (gracefully or SIGKILL) and restarted mid-stream: the watcher gets every event
    exactly once, in revision order, no ERROR; the cache resumed its etcd watch (no relist)."""
    member = own_etcd.member
    settings = CacheSettings(retry_backoff_max=0.5)
    async with (
        opened(own_etcd.endpoints, settings) as (_, flunders),
        etcd_client(member.client_url, timeout=2) as kv,
        EtcdClient(own_etcd.endpoints) as direct,
    ):
        expected = Expected(kv)
        await expected.burst("pre", 3)
        start = await flunders.list()
        expected.events.clear()
        received: list[WatchEvent] = []
        async with flunders.watch(resource_version=start.resource_version) as watch:
            reader = asyncio.create_task(collect(watch, received), name="watch reader")
            try:
                await expected.burst("before", 10)
                await wait_events(received, len(expected.events))
                if how == "stop":
                    await member.stop()
                else:
                    member.kill()
                await wait_until(
                    lambda: not flunders.cache.readiness.connected, message="the cache noticed etcd is gone"
                )
                # Let the cache try (and fail) to re-establish its watch while etcd is down, as it
                # would during any outage longer than its backoff.
                restarts = flunders.cache.stats.watch_restarts
                await wait_until(
                    lambda: flunders.cache.stats.watch_restarts >= restarts + 2,
                    message="reconnection attempts while etcd is down",
                )
                await member.restart()
                await retry(lambda: kv.get(b"/ping"), within=15)
                await expected.burst("after", 10)
                await wait_events(received, len(expected.events))
                # Every event written is in; a consistent list proves nothing further is on its way.
                assert await list_state(flunders) == await etcd_state(direct)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        assert [summary(e) for e in received] == expected.events
        assert flunders.cache.stats.watch_restarts >= 1
        assert flunders.cache.stats.relists == 0, "a restart of etcd without compaction needs no relist"


class TcpProxy:
    """A loopback TCP forwarder that the test can cut (close every connection, refuse new ones) and
    restore: a deterministic way to keep one client away from etcd while others still write."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.blocked = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        self.blocked = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.blocked = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst), name="proxy pipe")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)


async def test_compaction_while_cut_off_forces_a_relist(own_etcd: EtcdServer) -> None:
    """The cache is cut off from etcd (through a proxy) while etcd changes and is compacted past the
    cache's revision: on reconnecting it relists, the open watcher gets one 410 Expired ERROR and
    ends, a new list equals etcd's state, and a watch from that list works."""
    async with (
        TcpProxy(own_etcd.member.client_port) as proxy,
        opened([proxy.endpoint], CacheSettings(retry_backoff_max=0.5)) as (_, flunders),
        etcd_client(own_etcd.endpoints[0]) as kv,
        EtcdClient(own_etcd.endpoints) as direct,
    ):
        expected = Expected(kv)
        await expected.burst("old", 6)
        start = await flunders.list()
        received: list[WatchEvent] = []
        async with flunders.watch(resource_version=start.resource_version) as watch:
            reader = asyncio.create_task(collect(watch, received), name="watch reader")
            try:
                expected.events.clear()
                await expected.burst("seen", 4)
                await wait_events(received, 4)
                cache_revision = flunders.cache.revision

                proxy.cut()
                await wait_until(
                    lambda: not flunders.cache.readiness.connected, message="the cache lost etcd"
                )
                await expected.burst("unseen", 10)
                current = (await direct.range(b"/", b"\0", count_only=True)).revision
                assert current > cache_revision
                await direct.compact(current)
                proxy.restore()

                await wait_until(lambda: flunders.cache.stats.relists >= 1, within=20, message="a relist")
                async with asyncio.timeout(10):
                    await reader  # the watch ends by itself after its ERROR event
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        assert [summary(e) for e in received[:-1]] == expected.events[:4]
        error = received[-1]
        assert error.type == "ERROR"
        assert (error.object["code"], error.object["reason"]) == (410, "Expired")

        relisted = await flunders.list()
        assert await list_state(flunders) == await etcd_state(direct)
        assert int(relisted.resource_version) >= current
        names = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in relisted.items}
        assert names == expected.live

        async with flunders.watch(resource_version=relisted.resource_version) as watch:
            revision = await expected.put("ns-a", "fresh", step=99)
            async with asyncio.timeout(10):
                events = await watch.next_events()
            assert [summary(e) for e in events] == [("ADDED", "ns-a", "fresh", revision)]


async def test_window_limits_and_exact_lists(own_etcd: EtcdServer) -> None:
    """With a 5-change window: Exact lists inside the window and before it (uncompacted) equal
    etcd's range at that revision; after compaction, Exact before the window is 410 and a watch
    from there gets one 410 ERROR event, while Exact inside the window is still served."""
    async with (
        opened(own_etcd.endpoints, CacheSettings(window_events=5)) as (_, flunders),
        etcd_client(own_etcd.endpoints[0]) as kv,
        EtcdClient(own_etcd.endpoints) as direct,
    ):
        expected = Expected(kv)
        revisions = []
        for i in range(12):
            ns = "ns-a" if i % 2 else "ns-b"
            if i in (5, 9):
                revisions.append(await expected.delete(*sorted(expected.live)[0]))
            else:
                revisions.append(await expected.put(ns, f"f{i % 4}", step=i))
        await flunders.list()
        oldest = flunders.cache.state.window.oldest_revision
        assert revisions[0] < oldest <= revisions[-5], "the window holds the last 5 changes only"

        async def exact(revision: int, namespace: str | None = None) -> list[tuple[str, str, str, bytes]]:
            listed = await flunders.list(
                namespace=namespace, resource_version=str(revision), resource_version_match="Exact"
            )
            assert listed.resource_version == str(revision)
            return [
                (
                    o["metadata"]["namespace"],
                    o["metadata"]["name"],
                    o["metadata"]["resourceVersion"],
                    orjson.dumps(o.get("spec")),
                )
                for o in listed.items
            ]

        inside = {r: await etcd_state(direct, r) for r in revisions[-4:]}
        for revision, truth in inside.items():
            assert await exact(revision) == truth, f"Exact at {revision} (inside the window)"
        before = revisions[2]
        truth_before = await etcd_state(direct, before)
        assert await exact(before) == truth_before, f"Exact at {before} (before the window, from etcd)"
        assert await exact(before, "ns-a") == [s for s in truth_before if s[0] == "ns-a"]

        current = (await direct.range(b"/", b"\0", count_only=True)).revision
        await direct.compact(current)
        with pytest.raises(ExpiredError) as raised:
            await exact(before)
        assert (raised.value.status()["code"], raised.value.status()["reason"]) == (410, "Expired")
        for revision, truth in inside.items():
            assert await exact(revision) == truth, f"Exact at {revision} after compaction"

        async with flunders.watch(resource_version=str(before)) as watch:
            async with asyncio.timeout(5):
                events = await watch.next_events()
                assert [e.type for e in events] == ["ERROR"]
                assert (events[0].object["code"], events[0].object["reason"]) == (410, "Expired")
                assert await watch.next_events() == [], "the watch ends after its ERROR"
        # A watch from inside the window replays exactly the changes after it.
        async with flunders.watch(resource_version=str(revisions[-3])) as watch:
            replay: list[WatchEvent] = []
            async with asyncio.timeout(5):
                while len(replay) < 2:
                    replay += await watch.next_events()
        assert [summary(e) for e in replay] == expected.events[-2:]


async def test_readiness(own_etcd: EtcdServer) -> None:
    """A new resource is not ready until its first list is in; then it and the Storage are ready.
    While etcd is down from the start the cache stays unready and, once its first list has failed,
    calls get 503 ``etcd is unreachable (…)`` (tests/integration/test_etcd_unreachable.py has more)."""
    async with Storage(own_etcd.endpoints, prefix=PREFIX) as storage:
        flunders = storage.resource(FLUNDERS)
        assert not flunders.is_ready  # its feed has not run yet
        assert not storage.ready
        await storage.wait_ready(10)
        assert flunders.is_ready and storage.ready

    own_etcd.member.kill()
    settings = CacheSettings(ready_timeout=0.5, retry_backoff_max=0.5)
    async with Storage(own_etcd.endpoints, prefix=PREFIX, settings=settings, request_timeout=1) as storage:
        flunders = storage.resource(FLUNDERS)
        await wait_until(lambda: flunders.cache.readiness.etcd_failure is not None, message="a failed list")
        with pytest.raises(EtcdUnreachableError) as raised:
            await flunders.list(resource_version="0")
        assert raised.value.status()["code"] == 503
        with pytest.raises(EtcdUnreachableError):
            await storage.wait_ready(0.5)
        assert not storage.ready
        await own_etcd.member.restart()
        await storage.wait_ready(20)
        assert storage.ready
        assert (await flunders.list()).items == []


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.monotonic()
    try:
        result: Any = await call()
    except Exception as err:  # returned for the caller to check
        result = err
    return time.monotonic() - started, result


async def test_etcd_down_fails_consistent_reads_fast_and_serves_rv0(own_etcd: EtcdServer) -> None:
    """With etcd down, a consistent list/get fails fast (503 or 504 within request_timeout +
    sync_timeout), while resourceVersion=0 reads are still served from the cache at once."""
    settings = CacheSettings(sync_timeout=1, retry_backoff_max=0.5)
    async with (
        opened(own_etcd.endpoints, settings, request_timeout=1) as (_, flunders),
        etcd_client(own_etcd.endpoints[0]) as kv,
    ):
        expected = Expected(kv)
        await expected.burst("f", 4)
        cached = await flunders.list()
        assert len(cached.items) == len(expected.live)

        own_etcd.member.kill()
        budget = 1 + 1 + 1.0  # request_timeout + sync_timeout + slack
        for call in (
            flunders.list,
            lambda: flunders.get("f-0", namespace="ns-b"),
            lambda: flunders.list(namespace="ns-a", label_selector="x=y"),
        ):
            elapsed, result = await timed(call)
            assert isinstance(result, EtcdUnavailableError | TimedOutError), result
            assert result.status()["code"] in (503, 504)
            assert elapsed < budget, f"took {elapsed:.2f} s"

        elapsed, result = await timed(lambda: flunders.list(resource_version="0"))
        assert elapsed < 0.5
        assert result.items == cached.items
        elapsed, result = await timed(lambda: flunders.get("f-0", namespace="ns-b", resource_version="0"))
        assert elapsed < 0.5
        assert result == next(
            o for o in cached.items if (o["metadata"]["namespace"], o["metadata"]["name"]) == ("ns-b", "f-0")
        )

        elapsed, result = await timed(
            lambda: flunders.create({"metadata": {"name": "new"}}, namespace="ns-a")
        )
        assert isinstance(result, EtcdUnavailableError | TimedOutError), result
        assert elapsed < budget
