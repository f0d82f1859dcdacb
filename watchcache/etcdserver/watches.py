"""The two kinds of client watch of a Watch stream (:mod:`.watch`): one served from a resource's cache,
one passed to etcd for keys no cache holds.

A :class:`CachedWatch` is a watcher of the cache: the cache's dispatch hands live changes to it and it
writes them to the stream at once when the stream can take them (the fan-out's fast path); what it
cannot take waits in the watcher and goes out in order from its task. A :class:`PassedWatch` is an
etcd watch of its own, resumed from its next revision after a broken stream, with the caches' progress
keys filtered out and keys mapped back into the tenant's view.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

import grpc
from aetcd.rpc import rpc_pb2

from ..cache.cache_watcher import Bookmark, CacheWatcher, Ended, Item, WatchErrorItem
from ..cache.cacher import Cache
from ..cache.window import Change, ChangeType
from .errors import EtcdError
from .events import event_field, response_parts, watch_id_field, watch_message

if TYPE_CHECKING:
    from .watch import WatchStream

__all__ = ["CachedWatch", "ClientWatch", "PassedWatch"]

log = logging.getLogger(__name__)

_BATCH_BYTES = 256 * 1024
_NOPUT, _NODELETE = 0, 1


class ClientWatch:
    """One watch of a stream; subclasses serve it from a cache or from etcd."""

    def __init__(self, stream: WatchStream, watch_id: int, request: Any) -> None:
        self.stream = stream
        self.watch_id = watch_id
        self.prev_kv = bool(request.prev_kv)
        self.filters = frozenset(request.filters)
        self.task: asyncio.Task[None] | None = None
        self.sent = 0
        """The revision up to which every event of this watch has been queued."""

    def wanted(self, deleted: bool) -> bool:
        return (_NODELETE if deleted else _NOPUT) not in self.filters

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class CachedWatch(ClientWatch):
    """A watcher of a resource's cache.

    Live changes take the fast path when they can: the cache's dispatch hands them to :meth:`_direct`,
    which writes the response to the stream at once — no task wakes up per watcher per change. What
    it cannot take (a bookmark, an error, a stream with responses queued ahead, a client behind on its
    window) is buffered by the watcher and sent in order by :meth:`run`.
    """

    def __init__(
        self, stream: WatchStream, watch_id: int, request: Any, cache: Cache, watcher: CacheWatcher
    ) -> None:
        super().__init__(stream, watch_id, request)
        self.cache = cache
        self.watcher = watcher
        self.sent = watcher.after
        self.holding = False
        self.id_field = watch_id_field(watch_id)
        watcher.sink = self._direct

    @property
    def drained(self) -> bool:
        """Nothing owed is left in the watcher nor in hand."""
        return self.watcher.idle and not self.holding

    def covers(self, revision: int) -> bool:
        """Every event of this watch up to ``revision`` is on the stream (written or queued) and
        none is in hand (``run`` advances :attr:`sent` before its batch is queued)."""
        if self.holding:
            return False
        return self.sent >= revision or (self.watcher.idle and self.cache.revision >= revision)

    def _direct(self, items: list[Item]) -> bool:
        """The fast path (called by the cache's dispatch, never awaits): True if ``items`` were sent.

        The cache offers an etcd-protocol watcher either the changes of a dispatch or one bookmark
        (which goes through :meth:`run`)."""
        stream = self.stream
        if self.holding or type(items[0]) is not Change or not stream.ready:
            return False
        changes = cast(list[Change], items)
        self.sent = sent = changes[-1].revision
        front = stream.front
        message = watch_message(
            changes,
            self.watcher.key_range,
            self.prev_kv,
            self.filters,
            header_field=front.header_field(max(sent, self.cache.revision)),
            watch_id=self.id_field,
        )
        if message is not None:
            stream.context.send_message(*message)
        stream.moved.set()
        return True

    async def run(self) -> None:
        front, stream = self.stream.front, self.stream
        while True:
            items = await self.watcher.next_batch(_BATCH_BYTES)
            if not items:
                break
            self.holding = True
            try:
                fields: list[bytes] = []
                for item in items:
                    if isinstance(item, Change):
                        if self.wanted(item.type is ChangeType.DELETED):
                            fields.append(event_field(item, prev_kv=self.prev_kv))
                        self.sent = item.revision
                    elif isinstance(item, Bookmark):
                        if fields:
                            await stream.send(
                                response_parts(front.header_field(self.sent), self.id_field, fields)
                            )
                            fields = []
                        self.sent = max(self.sent, item.revision)
                        await stream.send(response_parts(front.header_field(self.sent), self.id_field, []))
                    elif isinstance(item, WatchErrorItem):
                        # The cache relisted after a compaction: this watch cannot go on exactly.
                        await stream.send([self.stream.compacted(self.watch_id, self.cache)])
                        await stream.release(self.watch_id)
                        return
                if fields:
                    header = front.header_field(max(self.sent, self.cache.revision))
                    await stream.send(response_parts(header, self.id_field, fields))
            finally:
                self.holding = False
                stream.moved.set()
        if self.watcher.ended is Ended.TOO_SLOW:
            stream.fail(EtcdError(grpc.StatusCode.UNAVAILABLE, "etcdserver: watch stream too slow: resume"))

    async def stop(self) -> None:
        self.watcher.sink = None
        self.cache.close_watcher(self.watcher)
        await super().stop()


class PassedWatch(ClientWatch):
    """A watch of keys no cache holds: an etcd watch of its own, resumed across broken streams."""

    def __init__(self, stream: WatchStream, watch_id: int, request: Any, key: bytes, end: bytes) -> None:
        super().__init__(stream, watch_id, request)
        self.key, self.end = key, end
        self.progress_notify = bool(request.progress_notify)
        self.next_revision = request.start_revision

    async def run(self) -> None:
        stream, front, space = self.stream, self.stream.front, self.stream.caller.keyspace
        while True:
            upstream = front.etcd.forward_stream("Watch", "Watch", metadata=(("hasleader", "true"),))
            create = rpc_pb2.WatchCreateRequest(
                key=self.key,
                range_end=self.end,
                start_revision=self.next_revision,
                progress_notify=self.progress_notify,
                prev_kv=self.prev_kv,
                filters=sorted(self.filters),
            )
            try:
                await upstream.write(rpc_pb2.WatchRequest(create_request=create))
                while True:
                    answer = await upstream.read()
                    if answer is grpc.aio.EOF:
                        raise EtcdError(grpc.StatusCode.UNAVAILABLE, "etcd closed the watch stream")
                    front.learn(answer.header)
                    if answer.created and not answer.canceled:
                        continue  # the client has its created already: never a second one
                    if answer.canceled:
                        await stream.send(
                            [
                                rpc_pb2.WatchResponse(
                                    header=front.header(answer.header.revision),
                                    watch_id=self.watch_id,
                                    canceled=True,
                                    compact_revision=answer.compact_revision,
                                    cancel_reason=answer.cancel_reason,
                                ).SerializeToString()
                            ]
                        )
                        await stream.release(self.watch_id)
                        return
                    events = [e for e in answer.events if not space.is_hidden(e.kv.key)]
                    for event in events:
                        event.kv.key = space.to_virtual(event.kv.key)
                        if event.HasField("prev_kv"):
                            event.prev_kv.key = space.to_virtual(event.prev_kv.key)
                    if answer.events:
                        self.next_revision = answer.events[-1].kv.mod_revision + 1
                    if events or not answer.events:
                        out = rpc_pb2.WatchResponse(
                            header=front.header(answer.header.revision), watch_id=self.watch_id, events=events
                        )
                        await stream.send([out.SerializeToString()])
            except grpc.aio.AioRpcError as err:
                log.info("etcd front: a passed-through watch broke (%s); resuming", err.details())
                await asyncio.sleep(0.2)
            finally:
                upstream.cancel()
