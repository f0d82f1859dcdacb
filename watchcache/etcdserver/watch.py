"""etcd's Watch service: client watches served from the caches, never one etcd watch each.

One Watch RPC is one :class:`WatchStream`: its requests are handled in order (so each create gets
exactly one ``created``, in request order — clientv3 binds them by position, etcd#21881), and all its
responses go through one bounded queue with one writer. A watch whose range lies inside a configured
resource's prefix is a watcher of that resource's cache: it replays from the cache's window (a start
older than the window gets etcd's answer, ``created`` then ``canceled`` with a ``compact_revision``) and
then follows the cache's one etcd watch, however many clients watch; its events are encoded once per
change and shared (:mod:`.events`). Any other watch in the tenant's keyspace gets an etcd watch of its
own, resumed after a broken stream from its last revision without a second ``created``, and with the
caches' progress keys filtered out.

Progress: a watch asking for ``progress_notify`` gets a notification when idle every few seconds, sent
only once every event up to its revision has been sent on the stream. A RequestProgress is answered
with ``watch_id -1`` once the caches have caught up with etcd's revision at the request and every
cached watch of the stream has sent what it owed up to it — the ordering etcd ≥ 3.4.31 gives, and which
kube-apiserver's consistent reads from its own cache rely on — at a revision never behind an event the
stream has already sent (kube-apiserver makes it its cache's resourceVersion). A client that falls
behind its watcher buffer, or stops reading for the write timeout, loses the stream (``UNAVAILABLE``):
clientv3 then resumes every watch from its last revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from aetcd.rpc import rpc_pb2

from ..cache.cacher import Cache
from ..errors import StatusError
from ..selectors import EVERYTHING
from .errors import COMPACTED, Context, EtcdError, passed_on
from .events import response
from .front import Front, unavailable
from .session import Caller
from .watches import CachedWatch, ClientWatch, PassedWatch

__all__ = ["Watch"]

log = logging.getLogger(__name__)

_QUEUE_BYTES = 4 * 1024 * 1024
# Unsent bytes on the HTTP/2 stream past which responses queue (and the writer waits on the client)
# instead of being written at once.
_DIRECT_HIGH_WATER = 64 * 1024
_DUPLICATE = "mvcc: duplicate watch ID provided on the WatchStream"
_EMPTY_RANGE = "mvcc: watcher range is empty"
_PERMISSION = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"


def _encode(message: Any) -> bytes:
    return bytes(message.SerializeToString())


class _Outgoing:
    """A stream's responses in order, bounded in bytes: producers wait while it is full."""

    def __init__(self, capacity: int) -> None:
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._capacity = capacity
        self._size = 0
        #: Responses (or the failure) waiting in the queue.
        self.queued = 0
        self._room = asyncio.Event()
        self._room.set()

    async def put(self, data: bytes) -> None:
        while self._size and self._size + len(data) > self._capacity:
            self._room.clear()
            await self._room.wait()
        self.put_nowait(data)

    def put_nowait(self, data: bytes) -> None:
        """Queue ``data`` whatever the room (for a response of a few bytes that must not wait)."""
        self._size += len(data)
        self.queued += 1
        self._queue.put_nowait(data)

    def fail(self, error: BaseException) -> None:
        self.queued += 1
        self._queue.put_nowait(error)

    async def get(self) -> bytes:
        item = await self._queue.get()
        self.queued -= 1
        if isinstance(item, BaseException):
            raise item
        self._size -= len(item)
        self._room.set()
        return item


class WatchStream:
    """One Watch RPC (see the module docstring)."""

    def __init__(self, front: Front, caller: Caller, context: Context, write_timeout: float) -> None:
        self.front = front
        self.caller = caller
        self.context = context
        self.write_timeout = write_timeout
        #: Responses waiting for the writer (see :meth:`send`).
        self.outgoing = _Outgoing(_QUEUE_BYTES)
        self.watches: dict[int, ClientWatch] = {}
        #: Set whenever a cached watch has finished sending a batch (what progress requests wait on).
        self.moved = asyncio.Event()
        self._next_id = 0
        self._progress: asyncio.Task[None] | None = None
        #: Each watch's place among its tenant's watches, given back when the watch ends.
        self._slots: dict[int, contextlib.AsyncExitStack] = {}

    @property
    def ready(self) -> bool:
        """A response may be written at once: none waits ahead of it, and the client keeps up."""
        http2 = self.context.stream
        return not self.outgoing.queued and http2.unsent <= _DIRECT_HIGH_WATER and not http2.closed

    async def send(self, parts: list[bytes]) -> None:
        """Send a response in order: at once when :attr:`ready`, else through the writer, waiting while
        the stream's queue is full."""
        if self.ready:
            self.context.send_parts(parts)
        else:
            await self.outgoing.put(b"".join(parts))

    def send_ahead(self, parts: list[bytes]) -> None:
        """Send a small response in order now, never waiting for room in the queue (so nothing sent
        after this call can overtake it)."""
        if self.ready:
            self.context.send_parts(parts)
        else:
            self.outgoing.put_nowait(b"".join(parts))

    def fail(self, error: EtcdError) -> None:
        self.outgoing.fail(error)

    def compacted(self, watch_id: int, cache: Cache) -> bytes:
        oldest = cache.state.window.oldest_revision + 1
        return _encode(
            rpc_pb2.WatchResponse(
                header=self.front.header(cache.revision),
                watch_id=watch_id,
                canceled=True,
                compact_revision=oldest,
            )
        )

    async def release(self, watch_id: int) -> None:
        """A watch has ended: its tenant may open another in its place (a client re-watching on one
        stream, as clientv3 does, never runs out of watches)."""
        slot = self._slots.pop(watch_id, None)
        if slot is not None:
            await slot.aclose()

    # -- requests, in order ---------------------------------------------------------------------------

    async def serve(self, requests: AsyncIterator[Any]) -> None:
        try:
            async for request in requests:
                kind = request.WhichOneof("request_union")
                if kind == "create_request":
                    await self._create(request.create_request)
                elif kind == "cancel_request":
                    await self._cancel(request.cancel_request.watch_id)
                elif kind == "progress_request" and (self._progress is None or self._progress.done()):
                    self._progress = asyncio.create_task(self._request_progress(), name="etcd-front-progress")
        except EtcdError as err:
            self.fail(err)
        except grpc.aio.AioRpcError as err:  # etcd unreachable (for its revision): the client resumes
            self.fail(passed_on(err))
        except StatusError as err:
            self.fail(unavailable(err))

    def _refused(self, reason: str) -> bytes:
        return _encode(
            rpc_pb2.WatchResponse(
                header=self.front.header(0), watch_id=-1, created=True, canceled=True, cancel_reason=reason
            )
        )

    async def _create(self, request: Any) -> None:
        front = self.front
        key = request.key or b"\0"
        end = request.range_end
        watch_id = request.watch_id or self._next_id
        if request.watch_id and request.watch_id in self.watches:
            await self.send([self._refused(_DUPLICATE)])
            return
        if end and end != b"\0" and end <= key:
            await self.send([self._refused(_EMPTY_RANGE)])
            return
        try:
            key, end = self.caller.keyspace.check(key, end, write=False)
        except EtcdError:
            await self.send([self._refused(_PERMISSION)])
            return
        if request.start_revision < 0:
            await self.send([self._refused(COMPACTED.message)])
            return
        admission = self.caller.admission
        if admission is not None:
            slot = contextlib.AsyncExitStack()
            try:
                await slot.enter_async_context(admission.watch())
            except StatusError:
                await self.send([self._refused("etcdserver: too many requests")])
                return
            self._slots[watch_id] = slot
        while self._next_id in self.watches or self._next_id == watch_id:
            self._next_id += 1
        cache = front.cache_for(key, end)
        if cache is not None:
            await self._create_cached(request, watch_id, cache, key, end)
        else:
            await self._create_passed(request, watch_id, key, end)

    async def _create_passed(self, request: Any, watch_id: int, key: bytes, end: bytes) -> None:
        watch = PassedWatch(self, watch_id, request, key, end)
        current = await self.front.current_revision()
        if not watch.next_revision:
            # "Created at revision N" promises every change after N, so the etcd watch starts there,
            # not at whatever etcd's revision is when it gets the request: a client may write as soon
            # as it reads "created", before the upstream watch exists.
            watch.next_revision = current + 1
        await self.send([self._created(watch_id, current)])
        self.watches[watch_id] = watch
        watch.task = asyncio.create_task(watch.run(), name=f"etcd-front-watch {watch_id}")

    def _created(self, watch_id: int, revision: int) -> bytes:
        return _encode(
            rpc_pb2.WatchResponse(header=self.front.header(revision), watch_id=watch_id, created=True)
        )

    async def _create_cached(self, request: Any, watch_id: int, cache: Cache, key: bytes, end: bytes) -> None:
        if request.start_revision:
            since = request.start_revision - 1
        else:
            since = await self.front.current_revision()
            await cache.wait_for(since, cache.settings.wait_timeout)
        created = self._created(watch_id, cache.revision)
        if since < cache.state.window.oldest_revision:
            # Older than the cache's window: answered as etcd answers a compacted start revision
            # (created, then canceled with the oldest revision the window replays from), so the
            # client relists; never an etcd watch of its own.
            await self.send([created])
            await self.send([self.compacted(watch_id, cache)])
            await self.release(watch_id)
            return
        watcher = cache.watch(
            selector=EVERYTHING,
            namespace=None,
            since=since,
            allow_bookmarks=bool(request.progress_notify),
            key_range=(key, end if end != b"\0" else b""),
            bookmark_interval=self.front.progress_interval,
        )
        watch = CachedWatch(self, watch_id, request, cache, watcher)
        await self.send([created])
        self.watches[watch_id] = watch
        watch.task = asyncio.create_task(watch.run(), name=f"etcd-front-watch {watch_id}")

    async def _cancel(self, watch_id: int) -> None:
        watch = self.watches.pop(watch_id, None)
        if watch is None:
            return  # etcd answers nothing for an unknown id
        await watch.stop()
        await self.release(watch_id)
        current = await self.front.current_revision()
        await self.send(
            [
                rpc_pb2.WatchResponse(
                    header=self.front.header(current), watch_id=watch_id, canceled=True
                ).SerializeToString()
            ]
        )

    async def _request_progress(self) -> None:
        """``watch_id -1`` at R once every cached watch of the stream has sent every event up to R and
        none after it; R is at least etcd's revision when asked (see the module docstring).

        Never behind an event already sent: while the stream waits for a cache to catch up, its other
        watches go on sending, so R is raised to the last event any of them has sent, and the caches
        must then reach that. kube-apiserver takes the answer as its cache's resourceVersion, which
        must not go back.
        """
        front = self.front
        try:
            revision = await front.current_revision()
            async with asyncio.timeout(self.write_timeout):
                while True:
                    cached = [w for w in self.watches.values() if isinstance(w, CachedWatch)]
                    caches = {w.cache for w in cached}
                    for cache in caches:
                        await cache.wait_for(revision, cache.settings.wait_timeout)
                    # From here to the answer nothing awaits: what each watch has sent stays put.
                    for cache in caches:
                        cache.dispatcher.flush()
                    top = max([revision, *(w.sent for w in cached)])
                    if all(w.covers(top) for w in cached):
                        break
                    if top > revision:
                        revision = top  # the caches must reach it too
                        continue
                    self.moved.clear()
                    await self.moved.wait()
            self.send_ahead([response(front.header(top), -1)])
        except (StatusError, TimeoutError, grpc.aio.AioRpcError) as err:
            log.info("etcd front: a progress request was not answered: %s", err)

    async def close(self) -> None:
        tasks = [w.stop() for w in self.watches.values()]
        self.watches.clear()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._progress is not None:
            self._progress.cancel()
            await asyncio.gather(self._progress, return_exceptions=True)
        for watch_id in list(self._slots):
            await self.release(watch_id)


class Watch:
    """The Watch service's one method; its messages are bytes (see :mod:`.events`)."""

    def __init__(self, front: Front, write_timeout: float) -> None:
        self.front = front
        self.write_timeout = write_timeout

    async def watch(self, requests: AsyncIterator[Any], context: Context) -> None:
        try:
            caller = self.front.sessions.caller(context)
        except EtcdError as err:
            await context.abort(err.code, err.message)
            return
        stream = WatchStream(self.front, caller, context, self.write_timeout)
        reader = asyncio.create_task(stream.serve(requests), name="etcd-front-watch-requests")
        try:
            while True:
                data = await stream.outgoing.get()
                async with asyncio.timeout(self.write_timeout):
                    await context.write(data)
        except EtcdError as err:
            await context.abort(err.code, err.message)
        except TimeoutError:
            log.info("etcd front: dropping a watch stream whose client stopped reading")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "etcdserver: watch stream not read: resume")
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await stream.close()
