"""An in-memory keyspace with etcd's MVCC semantics, to feed a cache in pure unit tests.

It keeps what the cache relies on: one revision counter for all keys, create/mod revisions and
versions, ranges at a past revision (until compacted), and watches that deliver every event after a
start revision, in order, in batches, with progress notifications on request. It is a test double of
:class:`watchcache.cache.source.KVSource`, not of etcd: the storage behaviour itself is tested
against a real etcd elsewhere.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from watchcache.errors import EtcdUnavailableError, ExpiredError
from watchcache.etcd.types import EventType, KeyValue, RangeResult, RawEvent, WatchBatch

__all__ = ["MemoryEtcd"]


@dataclass
class _Watch:
    start: bytes
    end: bytes
    queue: asyncio.Queue[WatchBatch | BaseException]


def _in_range(key: bytes, start: bytes, end: bytes) -> bool:
    if not end:
        return key == start
    return start <= key and (end == b"\0" or key < end)


class MemoryEtcd:
    """The keyspace (see the module docstring)."""

    def __init__(self) -> None:
        self.revision = 1
        self.compacted = 0
        self._events: list[tuple[int, RawEvent]] = []
        self._current: dict[bytes, KeyValue] = {}
        self._base: dict[bytes, KeyValue] = {}  # the state at the compacted revision
        self._watches: list[_Watch] = []
        #: Calls the cache made, by name (for tests of what it asks etcd).
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    # -- writes (a test's, or the cache's progress key) -----------------------------------------------

    async def put(self, key: bytes, value: bytes) -> int:
        self._count("put")
        return self.put_now(key, value)

    def put_now(self, key: bytes, value: bytes) -> int:
        self.revision += 1
        prev = self._current.get(key)
        kv = KeyValue(
            key=key,
            value=value,
            create_revision=prev.create_revision if prev else self.revision,
            mod_revision=self.revision,
            version=(prev.version + 1) if prev else 1,
            lease=0,
        )
        self._current[key] = kv
        self._emit([RawEvent(EventType.PUT, kv)])
        return self.revision

    def delete_now(self, key: bytes) -> int:
        if key not in self._current:
            return self.revision
        self.revision += 1
        del self._current[key]
        self._emit([RawEvent(EventType.DELETE, KeyValue(key, b"", 0, self.revision, 0, 0))])
        return self.revision

    def _emit(self, events: list[RawEvent]) -> None:
        for event in events:
            self._events.append((self.revision, event))
        for watch in self._watches:
            mine = tuple(e for e in events if _in_range(e.kv.key, watch.start, watch.end))
            if mine:
                watch.queue.put_nowait(WatchBatch(self.revision, mine))

    def compact(self, revision: int) -> None:
        """Forget the history up to ``revision``: reads and watches from before it are Expired."""
        self.compacted = max(self.compacted, revision)
        i = bisect.bisect_right(self._events, revision, key=lambda e: e[0])
        for _, event in self._events[:i]:
            self._apply(self._base, event)
        del self._events[:i]

    def notify_progress(self) -> None:
        """A progress notification (no events, the current revision) to every watch."""
        for watch in self._watches:
            watch.queue.put_nowait(WatchBatch(self.revision, ()))

    def break_watches(self) -> None:
        """Every open watch stream fails, as when etcd restarts."""
        for watch in self._watches:
            watch.queue.put_nowait(EtcdUnavailableError("the test broke the watch stream"))

    # -- reads -------------------------------------------------------------------------------------------

    @staticmethod
    def _apply(state: dict[bytes, KeyValue], event: RawEvent) -> None:
        if event.type is EventType.PUT:
            state[event.kv.key] = event.kv
        else:
            state.pop(event.kv.key, None)

    def _state_at(self, revision: int) -> dict[bytes, KeyValue]:
        if revision == 0 or revision >= self.revision:
            return dict(self._current)
        if revision < self.compacted:
            raise ExpiredError(f"etcdserver: mvcc: required revision has been compacted ({self.compacted})")
        state = dict(self._base)
        for rev, event in self._events:
            if rev > revision:
                break
            self._apply(state, event)
        return state

    async def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
        serializable: bool = False,
    ) -> RangeResult:
        self._count("range")
        state = self._state_at(revision)
        kvs = sorted((kv for k, kv in state.items() if _in_range(k, key, range_end)), key=lambda kv: kv.key)
        count = len(kvs)
        more = bool(limit) and count > limit
        if limit:
            kvs = kvs[:limit]
        return RangeResult(
            revision=self.revision, kvs=() if count_only else tuple(kvs), more=more, count=count
        )

    async def current_revision(self, key: bytes) -> int:
        self._count("current_revision")
        return self.revision

    @asynccontextmanager
    async def watch(
        self, key: bytes, range_end: bytes, *, start_revision: int
    ) -> AsyncIterator[AsyncIterator[WatchBatch]]:
        self._count("watch")
        if start_revision <= self.compacted:
            raise ExpiredError("watched history compacted", oldest_revision=self.compacted)
        watch = _Watch(key, range_end, asyncio.Queue())
        backlog = tuple(
            e for rev, e in self._events if rev >= start_revision and _in_range(e.kv.key, key, range_end)
        )
        # One batch per revision, as etcd sends them.
        by_revision: dict[int, list[RawEvent]] = {}
        for event in backlog:
            by_revision.setdefault(event.kv.mod_revision, []).append(event)
        for rev, events in sorted(by_revision.items()):
            watch.queue.put_nowait(WatchBatch(rev, tuple(events)))
        self._watches.append(watch)

        async def batches() -> AsyncIterator[WatchBatch]:
            while True:
                item = await watch.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item

        try:
            yield batches()
        finally:
            self._watches.remove(watch)
