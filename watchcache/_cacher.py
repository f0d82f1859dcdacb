"""The watch cache of one resource: one etcd watch feeding a store, a window and many watchers.

The cache owns three background tasks (named, cancelled and awaited by :meth:`Cache.stop`):

- the *feed*: a paged list of the resource at one revision, then ONE etcd watch from the next revision;
  every batch updates the store and the window and is dispatched to the watchers. A broken stream is
  resumed from the last revision seen; a compacted one forces a relist, after which the watchers, who
  can no longer be served exactly, get a 410 ``Expired`` error event.
- the *progress requester*: consistent reads wait until the cache has caught up with etcd's current
  revision. When nothing in this resource changes, etcd sends this watch nothing, so the requester
  writes the resource's progress key (inside the watched range, outside every object key): its event
  arrives in order on the same watch and proves that every earlier event has arrived. See
  ``docs/consistent-reads.md`` for why this, and not etcd's RequestProgress, on etcd 3.4.23.
- the *bookmarker*: sends idle watchers that asked for bookmarks one at least every interval.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from ._errors import (
    EtcdUnavailableError,
    ExpiredError,
    StatusError,
    TimedOutError,
    TooManyRequestsError,
)
from ._etcd import EtcdClient, EventType, KeyValue, WatchBatch
from ._history import Change, ChangeType, Window
from ._keys import KeyLayout
from ._selectors import Selector
from ._store import Codec, Entry, Snapshot, Store
from ._watchers import Bookmark, CacheWatcher, Ended, Item

__all__ = ["Cache", "CacheSettings", "CacheStats"]

log = logging.getLogger(__name__)

# Longest a change waits to be dispatched together with the next ones while dispatch is busy.
_MAX_COALESCE = 0.005


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """Tuning of every resource's cache. The defaults suit a cluster's main etcd."""

    window_events: int = 10_000
    """Recent changes kept per resource; a watch from an older resourceVersion gets 410 Expired."""
    watcher_buffer: int = 1_000
    """Changes queued per watcher; a watcher that falls further behind is ended (it re-watches)."""
    bookmark_interval: float = 50.0
    """Seconds between bookmarks to an idle watcher that allows them (Kubernetes: about a minute)."""
    wait_timeout: float = 3.0
    """Seconds a request for a resourceVersion newer than the cache waits before 504 Timeout."""
    sync_timeout: float = 5.0
    """Seconds a consistent read waits for the cache to catch up with etcd before 504 Timeout."""
    ready_timeout: float = 10.0
    """Seconds an embedded call waits for a cache that is still loading before 429."""
    list_page_size: int = 500
    """Keys per etcd range request when (re)loading a resource."""
    snapshot_ttl: float = 300.0
    """Seconds a paged list's snapshot is kept for its continue tokens."""
    max_snapshots: int = 16
    """Paged-list snapshots kept per resource (the oldest is dropped first)."""
    retry_backoff_max: float = 2.0
    """Upper bound, in seconds, of the pause between attempts to re-establish the etcd watch."""
    health_interval: float = 1.0
    """Seconds between etcd health probes; after two failures in a row requests to etcd get a 1 s
    deadline (fail fast with 503/504) and /readyz reports etcd, until a request succeeds."""


@dataclass
class CacheStats:
    """Counters of one cache, read by the metrics endpoint."""

    events_received: int = 0
    events_dispatched: int = 0
    watchers_ended_slow: int = 0
    watch_restarts: int = 0
    relists: int = 0
    progress_writes: int = 0


@dataclass(order=True)
class _Waiter:
    revision: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class Cache:
    """The watch cache of one resource (see the module docstring)."""

    def __init__(
        self,
        *,
        etcd: EtcdClient,
        layout: KeyLayout,
        codec: Codec,
        settings: CacheSettings,
        name: str,
    ) -> None:
        self.etcd = etcd
        self.layout = layout
        self.codec = codec
        self.settings = settings
        self.name = name
        self.store = Store()
        self.window = Window(settings.window_events, 0)
        self.stats = CacheStats()
        #: Every change up to this revision is in the store and has been dispatched.
        self.revision = 0
        self.ready = asyncio.Event()
        #: Whether the etcd watch is established right now (readiness of a running cache).
        self.connected = False
        self._watchers: dict[CacheWatcher, None] = {}
        self._all_namespaces: dict[CacheWatcher, None] = {}
        self._by_namespace: dict[str, dict[CacheWatcher, None]] = {}
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._progress_wanted = asyncio.Event()
        self._snapshots: OrderedDict[int, tuple[Snapshot, float]] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        # Changes applied to the store but not yet offered to the watchers (see _queue_dispatch).
        self._undispatched: list[Change] = []
        self._flush_handle: asyncio.Handle | None = None
        self._dispatch_cost = 0.0
        self._dispatched_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._feed(), name=f"watchcache-feed {self.name}"),
            asyncio.create_task(self._request_progress(), name=f"watchcache-progress {self.name}"),
            asyncio.create_task(self._bookmark(), name=f"watchcache-bookmarks {self.name}"),
        ]

    async def stop(self) -> None:
        """Stop the tasks and end every watcher (their clients see the stream close)."""
        self._stopped = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watcher in list(self._watchers):
            watcher.end(Ended.CLOSED)
        self._watchers.clear()
        self._all_namespaces.clear()
        self._by_namespace.clear()
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(self._stopped_error())
        self._waiters.clear()

    def _stopped_error(self) -> EtcdUnavailableError:
        return EtcdUnavailableError(f"the cache of {self.name} is stopped", retry_after=1)

    def _check_running(self) -> None:
        if self._stopped:
            raise self._stopped_error()

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the initial list is in; 429 TooManyRequests after ``timeout`` seconds."""
        self._check_running()
        if self.ready.is_set():
            return
        try:
            async with asyncio.timeout(timeout):
                await self.ready.wait()
        except TimeoutError:
            raise TooManyRequestsError(f"the cache of {self.name} is not ready yet", retry_after=1) from None

    # -- the feed ----------------------------------------------------------------------------------

    async def _feed(self) -> None:
        need_list = True
        backoff = 0.05
        start, end = self.layout.watch_range()
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                async with self.etcd.watch(start, end, start_revision=self.revision + 1) as watch:
                    self.connected = True
                    backoff = 0.05
                    async for batch in watch:
                        self._apply(batch)
            except ExpiredError as err:
                log.warning("%s: watch history compacted (%s); relisting", self.name, err)
                need_list = True
            except StatusError as err:
                log.warning("%s: etcd watch broke (%s); resuming", self.name, err)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug must not silently stop the resource's feed: relisting rebuilds every state.
                log.exception("%s: unexpected error in the feed; relisting", self.name)
                need_list = True
            finally:
                self.connected = False
            self.stats.watch_restarts += 1
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self.settings.retry_backoff_max)

    async def _relist(self) -> None:
        """Load every object at one revision, in pages; then watchers resume from it or get 410."""
        start, end = self.layout.list_range()
        entries: list[Entry] = []
        revision = 0
        key = start
        while True:
            page = await self.etcd.range(key, end, revision=revision, limit=self.settings.list_page_size)
            if revision == 0:
                revision = page.revision
            entries.extend(self._decode(page.kvs))
            if not page.more or not page.kvs:
                break
            key = page.kvs[-1].key + b"\0"
        relisted = self.ready.is_set()
        # Changes of the old history that were not offered yet are moot: every watcher gets 410.
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._undispatched = []
        self.store.replace(entries)
        self.window.reset(revision)
        self._snapshots.clear()
        if relisted:
            self.stats.relists += 1
            expired = ExpiredError(
                f"the cache of {self.name} was reloaded at revision {revision}; "
                "the watch cannot continue exactly: relist and watch again",
                oldest_revision=revision,
            )
            for watcher in list(self._watchers):
                watcher.end(Ended.ERROR, expired.status())
                self._unregister(watcher)
        self.revision = revision
        self.ready.set()
        self._wake_waiters()
        log.info("%s: loaded %d objects at revision %d", self.name, len(entries), revision)

    def _decode(self, kvs: tuple[KeyValue, ...]) -> Iterator[Entry]:
        for kv in kvs:
            parsed = self.layout.parse_key(kv.key)
            if parsed is None:
                continue
            entry = self.codec.decode(kv, parsed[0], parsed[1])
            if entry is not None:
                yield entry

    def _apply(self, batch: WatchBatch) -> None:
        """One etcd watch response: update the store and window, then dispatch."""
        if not batch.events:
            # A progress notification. etcd sends the periodic ones only to a watcher that has been
            # sent every event up to ``batch.revision``; requested ones are never asked for.
            self._advance(batch.revision)
            return
        base = self.revision
        changes: list[Change] = []
        for event in batch.events:
            kv = event.kv
            if kv.mod_revision <= base:
                continue  # already seen (never expected: we resume from base + 1)
            self.stats.events_received += 1
            parsed = self.layout.parse_key(kv.key)
            if parsed is None:
                continue  # the progress key, or a key of another resource sharing the range
            if event.type is EventType.PUT:
                entry = self.codec.decode(kv, parsed[0], parsed[1])
                if entry is not None:
                    prev = self.store.put(entry)
                    kind = ChangeType.ADDED if prev is None else ChangeType.MODIFIED
                    changes.append(Change(kind, entry, prev))
                    continue
            # A deletion, or a value that is no longer an object: either way it leaves the cache.
            prev = self.store.pop(kv.key)
            if prev is not None:
                changes.append(Change(ChangeType.DELETED, self.codec.tombstone(prev, kv.mod_revision), prev))
        for change in changes:
            self.window.append(change)
        self.revision = max(base, batch.events[-1].kv.mod_revision)
        if changes:
            self._queue_dispatch(changes)
        self._wake_waiters()

    def _advance(self, revision: int) -> None:
        if revision > self.revision:
            self.revision = revision
            self._wake_waiters()

    # -- watchers ----------------------------------------------------------------------------------

    def _queue_dispatch(self, changes: list[Change]) -> None:
        """Offer ``changes`` to the watchers soon: at once when dispatch is idle; while it is busy
        (the last dispatch ended less than its own duration ago), after about that long (at most
        5 ms), so that the changes arriving meanwhile go out together — one write per watcher for
        several changes instead of one per change. Anything that depends on what watchers have
        been offered (registering a watcher, a bookmark) flushes first."""
        self._undispatched.extend(changes)
        if self._flush_handle is not None:
            return
        loop = asyncio.get_running_loop()
        cost = self._dispatch_cost
        if loop.time() - self._dispatched_at < cost:
            self._flush_handle = loop.call_later(min(cost, _MAX_COALESCE), self._flush)
        else:
            self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        changes, self._undispatched = self._undispatched, []
        if not changes:
            return
        started = time.perf_counter()
        self._dispatch(changes)
        self._dispatch_cost = time.perf_counter() - started
        self._dispatched_at = asyncio.get_running_loop().time()

    def _dispatch(self, changes: list[Change]) -> None:
        if not self._watchers:
            return
        pending: dict[CacheWatcher, list[Item]] = {}
        by_namespace = self._by_namespace
        for change in changes:
            for group in (self._all_namespaces, by_namespace.get(change.entry.namespace)):
                if not group:
                    continue
                for watcher in group:
                    item = change if watcher.simple else watcher.select(change)
                    if item is not None:
                        items = pending.get(watcher)
                        if items is None:
                            pending[watcher] = [item]
                        else:
                            items.append(item)
        for watcher, items in pending.items():
            if watcher.offer(items):
                self.stats.events_dispatched += len(items)
            else:
                self.stats.watchers_ended_slow += 1
                log.info("%s: ended a watcher that fell %d events behind", self.name, len(items))
                self._unregister(watcher)

    def watch(
        self,
        *,
        selector: Selector,
        namespace: str | None,
        since: int | None,
        allow_bookmarks: bool,
        initial_end_bookmark: bool = False,
    ) -> CacheWatcher:
        """Register a watcher now.

        ``since=None``: the watcher first gets the current state as ADDED events (then, if asked, the
        ``initial-events-end`` bookmark). ``since=N``: it gets every change after N; N older than the
        window raises :class:`ExpiredError`. The caller has made sure the cache is at or past N.
        """
        self._check_running()
        self._flush()  # the new watcher's backlog must not overlap what is still to be dispatched
        watcher = CacheWatcher(
            selector=selector,
            namespace=namespace,
            capacity=self.settings.watcher_buffer,
            allow_bookmarks=allow_bookmarks,
        )
        if since is None:
            start, end = self.layout.list_range(namespace) if namespace else (b"", b"")
            entries = list(self.store.values(start, end))
            end_mark = Bookmark(self.revision, initial_events_end=True)
            watcher.set_backlog(
                watcher.initial_state(iter(entries)), end_mark if initial_end_bookmark else None
            )
        else:
            if since < self.window.oldest_revision:
                raise self.too_old(since)
            watcher.set_backlog(watcher.replay(self.window.since(since)))
        self._register(watcher)
        return watcher

    def too_old(self, revision: int) -> ExpiredError:
        return ExpiredError(
            f"too old resource version: {revision} ({self.window.oldest_revision})",
            oldest_revision=self.window.oldest_revision,
        )

    def _register(self, watcher: CacheWatcher) -> None:
        self._watchers[watcher] = None
        if watcher.namespace is None:
            self._all_namespaces[watcher] = None
        else:
            self._by_namespace.setdefault(watcher.namespace, {})[watcher] = None
        interval = self.settings.bookmark_interval
        watcher.next_bookmark = asyncio.get_running_loop().time() + interval * (0.9 + 0.1 * random.random())

    def _unregister(self, watcher: CacheWatcher) -> None:
        self._watchers.pop(watcher, None)
        if watcher.namespace is None:
            self._all_namespaces.pop(watcher, None)
        else:
            group = self._by_namespace.get(watcher.namespace)
            if group is not None:
                group.pop(watcher, None)
                if not group:
                    del self._by_namespace[watcher.namespace]

    def close_watcher(self, watcher: CacheWatcher) -> None:
        """The client is gone: forget the watcher."""
        watcher.end(Ended.CLOSED)
        self._unregister(watcher)

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    async def _bookmark(self) -> None:
        interval = self.settings.bookmark_interval
        tick = max(0.05, min(1.0, interval / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            self._flush()  # a bookmark's revision must not pass changes not yet offered
            now = loop.time()
            for watcher in list(self._watchers):
                if watcher.allow_bookmarks and now >= watcher.next_bookmark:
                    watcher.next_bookmark = now + interval
                    # Every change up to self.revision has been offered to the watcher, in order.
                    if watcher.idle and not watcher.offer([Bookmark(self.revision)]):
                        self._unregister(watcher)

    # -- waiting for revisions (consistent and NotOlderThan reads) ---------------------------------

    async def wait_for(self, revision: int, timeout: float) -> None:
        """Wait until the cache has every change up to ``revision``; 504 Timeout otherwise.

        When etcd has already reached ``revision`` (through writes to other keys, say), progress is
        requested as for a consistent read; a revision etcd has not reached yet is only waited for,
        so a far-future resourceVersion never makes the cache write.
        """
        self._check_running()
        if self.revision >= revision:
            return
        if revision <= await self.etcd.current_revision(self.layout.progress_key):
            self._progress_wanted.set()
        await self._wait(revision, timeout)

    async def _wait(self, revision: int, timeout: float) -> None:
        if self.revision >= revision:
            return
        waiter = _Waiter(revision, next(self._seq), asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiters, waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        except TimeoutError:
            raise TimedOutError(
                f"Too large resource version: {revision}, current: {self.revision}",
                retry_after=1,
            ) from None
        finally:
            if not waiter.future.done():
                waiter.future.cancel()

    def _wake_waiters(self) -> None:
        waiters = self._waiters
        while waiters and waiters[0].revision <= self.revision:
            waiter = heapq.heappop(waiters)
            if not waiter.future.done():
                waiter.future.set_result(None)

    async def sync(self) -> int:
        """Catch up with etcd: afterwards the cache holds every write etcd acknowledged before the
        call. Returns etcd's revision at the call."""
        self._check_running()
        target = await self.etcd.current_revision(self.layout.progress_key)
        if self.revision < target:
            self._progress_wanted.set()
            await self._wait(target, self.settings.sync_timeout)
        return target

    async def _request_progress(self) -> None:
        while True:
            await self._progress_wanted.wait()
            # Cleared before writing: a sync() that reads its target after this point sets it again
            # and gets a write of its own; one that read its target before is covered by this write,
            # whose revision is necessarily greater.
            self._progress_wanted.clear()
            if not any(not w.future.done() for w in self._waiters):
                continue
            try:
                await self.etcd.put(self.layout.progress_key, b"")
                self.stats.progress_writes += 1
            except (EtcdUnavailableError, TimedOutError, StatusError) as err:
                log.warning("%s: progress write failed: %s", self.name, err)
                await asyncio.sleep(0.1)
                if self._waiters:
                    self._progress_wanted.set()

    # -- states at a revision (exact and paged lists) ----------------------------------------------

    def snapshot(self) -> Snapshot:
        """The current state as a snapshot, kept for the continue tokens of a paged list."""
        snap = self.store.snapshot(self.revision)
        self._remember(snap)
        return snap

    def _remember(self, snap: Snapshot) -> None:
        loop = asyncio.get_running_loop()
        self._snapshots[snap.revision] = (snap, loop.time() + self.settings.snapshot_ttl)
        self._snapshots.move_to_end(snap.revision)
        while len(self._snapshots) > self.settings.max_snapshots:
            self._snapshots.popitem(last=False)

    def state_at(self, revision: int) -> Snapshot | None:
        """The state at ``revision`` from memory (a kept snapshot, or rebuilt from the window), or
        None when the cache cannot know it (then etcd can, unless compacted)."""
        kept = self._snapshots.get(revision)
        if kept is not None and kept[1] >= asyncio.get_running_loop().time():
            return kept[0]
        if revision == self.revision:
            return self.snapshot()
        if self.window.oldest_revision <= revision < self.revision:
            state = self.store.copy_dict()
            for change in reversed(self.window.since(revision)):
                if change.prev is None:
                    state.pop(change.entry.key, None)
                else:
                    state[change.entry.key] = change.prev
            snap = Snapshot(revision, sorted(state.values(), key=lambda e: e.key))
            self._remember(snap)
            return snap
        return None

    async def read_at(
        self, revision: int, start: bytes, end: bytes, limit: int = 0
    ) -> tuple[list[Entry], bool]:
        """Objects in ``[start, end)`` at ``revision`` straight from etcd (``limit`` 0: all), and
        whether more remain. A compacted revision raises ExpiredError."""
        entries: list[Entry] = []
        key = start
        while True:
            page_size = self.settings.list_page_size
            if limit:
                page_size = min(page_size, limit - len(entries) + 1)
            page = await self.etcd.range(key, end, revision=revision, limit=page_size)
            entries.extend(self._decode(page.kvs))
            if limit and len(entries) > limit:
                return entries[:limit], True
            if not page.more or not page.kvs:
                return entries, False
            key = page.kvs[-1].key + b"\0"
