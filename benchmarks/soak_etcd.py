"""Direct etcd access for the soak: the writers that bypass watchcache, and the history recorder.

Deliberately independent of ``watchcache._etcd``: the truth the checker trusts must not come through
the code under test. One gRPC channel per member (aetcd's generated stubs); reads rotate to the next
member on failure; writes are tried once (an unknown outcome is the writer's to handle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import grpc
from aetcd import rpc

log = logging.getLogger("soak.etcd")

_OPTIONS = [
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 5_000),
    ("grpc.keepalive_timeout_ms", 3_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


class DirectEtcd:
    """Plain etcd calls over one channel per member."""

    def __init__(self, endpoints: list[str]) -> None:
        self.targets = []
        for endpoint in endpoints:
            url = urlsplit(endpoint)
            self.targets.append(f"{url.hostname}:{url.port}")
        self.channels = [grpc.aio.insecure_channel(t, options=_OPTIONS) for t in self.targets]
        self.kv = [rpc.KVStub(c) for c in self.channels]
        self.watch = [rpc.WatchStub(c) for c in self.channels]
        self._next = 0

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    def rotate(self) -> int:
        self._next = (self._next + 1) % len(self.kv)
        return self._next

    async def _read(self, method: str, request: Any, timeout: float = 2.0, within: float = 30.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            stub = self.kv[self._next]
            try:
                return await getattr(stub, method)(request, timeout=timeout)
            except grpc.aio.AioRpcError:
                if time.monotonic() >= deadline:
                    raise
                self.rotate()
                await asyncio.sleep(0.1)

    async def revision(self, key: bytes = b"/") -> int:
        resp = await self._read("Range", rpc.RangeRequest(key=key, count_only=True))
        return int(resp.header.revision)

    async def range_prefix(self, prefix: bytes, revision: int = 0) -> tuple[int, list[Any]]:
        """Every key under ``prefix`` at ``revision`` (0: now), in pages of one revision."""
        end = prefix_end(prefix)
        key, kvs = prefix, []
        while True:
            resp = await self._read(
                "Range", rpc.RangeRequest(key=key, range_end=end, revision=revision, limit=500)
            )
            if revision == 0:
                revision = int(resp.header.revision)
            kvs.extend(resp.kvs)
            if not resp.more or not resp.kvs:
                return revision, kvs
            key = resp.kvs[-1].key + b"\0"

    async def put(self, key: bytes, value: bytes, timeout: float = 2.0) -> int:
        """One attempt; returns the put's revision."""
        stub = self.kv[self._next]
        try:
            resp = await stub.Put(rpc.PutRequest(key=key, value=value), timeout=timeout)
        except grpc.aio.AioRpcError:
            self.rotate()
            raise
        return int(resp.header.revision)

    async def delete(self, key: bytes, timeout: float = 2.0) -> int | None:
        """One attempt; the deletion's revision, or None when there was nothing to delete."""
        stub = self.kv[self._next]
        try:
            resp = await stub.DeleteRange(rpc.DeleteRangeRequest(key=key), timeout=timeout)
        except grpc.aio.AioRpcError:
            self.rotate()
            raise
        return int(resp.header.revision) if resp.deleted else None

    async def compact(self, revision: int) -> None:
        await self._read("Compact", rpc.CompactionRequest(revision=revision, physical=True), timeout=10.0)


class Recorder:
    """A direct etcd watch of ``prefix`` for the whole soak: etcd's history, as it happens.

    It resumes from the revision after the last one it recorded on any error (rotating members; the
    ``hasleader`` metadata makes a member without a leader end the stream), so the history has no gap
    as long as etcd is never compacted past it — the soak compacts only up to :attr:`last_rev`. If a
    gap happens anyway, :attr:`gap` says where, and the soak fails.
    """

    def __init__(
        self, etcd: DirectEtcd, prefix: bytes, start_rev: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.etcd = etcd
        self.prefix = prefix
        self.start_rev = start_rev
        self.last_rev = start_rev
        self.clock = clock
        self.events: list[tuple[int, str, str, str | None]] = []
        self.times: list[float] = []
        """When each event was received (``clock``): no later than etcd committed it, plus a lag."""
        self.blind: list[tuple[float, float]] = []
        """Spans when the recorder did not see etcd live: from the last response of a stream that
        ended to the first events of the stream that resumed it. An event received at a span's end
        may have been committed anywhere in it (``times`` says only "no later than")."""
        self.gap: str | None = None
        self.restarts = 0
        self._advanced = asyncio.Event()
        self._call: Any = None

    async def run(self) -> None:
        member = 0
        last_heard: float | None = None  # the last response of a stream that has since ended
        while True:
            stub = self.etcd.watch[member]
            call = self._call = stub.Watch(metadata=(("hasleader", "true"),))
            try:
                request = rpc.WatchRequest(
                    create_request=rpc.WatchCreateRequest(
                        key=self.prefix,
                        range_end=prefix_end(self.prefix),
                        start_revision=self.last_rev + 1,
                        progress_notify=True,
                    )
                )
                await call.write(request)
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        break
                    if resp.compact_revision:
                        self.gap = (
                            f"compacted at {resp.compact_revision} while resuming from {self.last_rev + 1}"
                        )
                        log.error("history recorder: %s", self.gap)
                        return
                    if resp.canceled:
                        break
                    received = self.clock()
                    if last_heard is not None and resp.events:
                        self.blind.append((last_heard, received))
                        last_heard = None
                    for ev in resp.events:
                        kind = "DELETE" if ev.type == 1 else "PUT"
                        value = None if kind == "DELETE" else ev.kv.value.decode("utf-8", "replace")
                        self.events.append((int(ev.kv.mod_revision), kind, ev.kv.key.decode(), value))
                        self.times.append(received)
                        self.last_rev = max(self.last_rev, int(ev.kv.mod_revision))
                    if resp.events:
                        self._advanced.set()
            except (grpc.aio.AioRpcError, grpc.aio.UsageError):
                pass
            finally:
                call.cancel()
            if last_heard is None:
                last_heard = self.times[-1] if self.times else self.clock()
            self.restarts += 1
            member = (member + 1) % len(self.etcd.watch)
            await asyncio.sleep(0.1)

    def kick(self) -> None:
        """End the current stream (a stalled one resumes on the next member)."""
        if self._call is not None:
            self._call.cancel()

    async def wait_for(self, revision: int, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        last_progress = time.monotonic()
        seen = self.last_rev
        while self.last_rev < revision:
            if self.gap is not None:
                raise RuntimeError(f"history recorder has a gap: {self.gap}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"history recorder stuck at {self.last_rev}, want {revision}")
            self._advanced.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._advanced.wait()
            if self.last_rev != seen:
                seen, last_progress = self.last_rev, time.monotonic()
            elif time.monotonic() - last_progress > 3.0:
                self.kick()
                last_progress = time.monotonic()
