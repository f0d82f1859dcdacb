"""The watch cache of one resource: one etcd watch feeding a state, a window and many watchers.

After kubernetes' ``cacher.go``, :class:`Cache` composes the parts and owns their three background
tasks (named, cancelled and awaited by :meth:`Cache.stop`):

- the *feed* (:mod:`.reflector`): list, then one etcd watch; its batches update the state
  (:mod:`.watch_cache`) and go to the dispatcher (:mod:`.dispatcher`);
- the *progress writer* (:mod:`.ready`): what consistent reads wait on when etcd sends nothing;
- the *bookmarker* (:mod:`.dispatcher`): bookmarks for idle watchers that asked for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from ..errors import ExpiredError
from ..etcd.types import WatchBatch
from ..keys import KeyLayout
from ..selectors import Selector
from .cache_watcher import Bookmark, CacheWatcher, Ended
from .dispatcher import Dispatcher
from .ready import Progress, Readiness
from .reflector import Reflector
from .settings import CacheSettings, CacheStats
from .source import KVSource
from .store import Codec, Entry, Snapshot
from .watch_cache import WatchCache

__all__ = ["Cache"]

log = logging.getLogger(__name__)


class Cache:
    """The watch cache of one resource (see the module docstring)."""

    def __init__(
        self,
        *,
        source: KVSource,
        layout: KeyLayout,
        codec: Codec,
        settings: CacheSettings,
        name: str,
    ) -> None:
        self.layout = layout
        self.codec = codec
        self.settings = settings
        self.name = name
        self.stats = CacheStats()
        self.state = WatchCache(layout=layout, codec=codec, settings=settings, stats=self.stats)
        self.readiness = Readiness(name)
        self.progress = Progress(
            source=source,
            progress_key=layout.progress_key,
            revision=lambda: self.state.revision,
            readiness=self.readiness,
            settings=settings,
            stats=self.stats,
        )
        self.dispatcher = Dispatcher(settings=settings, stats=self.stats, name=name)
        self.reflector = Reflector(
            source=source,
            state=self.state,
            readiness=self.readiness,
            settings=settings,
            stats=self.stats,
            on_list=self._listed,
            on_batch=self._batch,
        )
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self.reflector.run(), name=f"watchcache-feed {self.name}"),
            asyncio.create_task(self.progress.run(), name=f"watchcache-progress {self.name}"),
            asyncio.create_task(
                self.dispatcher.bookmarks(lambda: self.state.revision),
                name=f"watchcache-bookmarks {self.name}",
            ),
        ]

    async def stop(self) -> None:
        """Stop the tasks and end every watcher (their clients see the stream close)."""
        self.readiness.stopped = True
        self.dispatcher.discard_queued()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.dispatcher.end_all(Ended.CLOSED)
        self.progress.fail_all(self.readiness.stopped_error())

    @property
    def ready(self) -> bool:
        """Whether the first list is in."""
        return self.readiness.loaded.is_set()

    @property
    def revision(self) -> int:
        """Every change up to this revision is in the cache and has been dispatched."""
        return self.state.revision

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the initial list is in; after ``timeout`` seconds 503 if etcd cannot be
        reached, else 429 TooManyRequests (see :meth:`.ready.Readiness.not_ready`)."""
        await self.readiness.wait(timeout)

    def check_ready(self) -> None:
        """Raise what :meth:`wait_ready` would, at once, unless the initial list is in."""
        self.readiness.check_ready()

    # -- the feed ----------------------------------------------------------------------------------

    def _listed(self, entries: list[Entry], revision: int) -> None:
        """A (re)list at ``revision``: the state starts over, and watchers of the old one end."""
        relisted = self.ready
        # Changes of the old history that were not offered yet are moot: every watcher gets 410.
        self.dispatcher.discard_queued()
        self.state.reset(entries, revision)
        if relisted:
            self.stats.relists += 1
            expired = ExpiredError(
                f"the cache of {self.name} was reloaded at revision {revision}; "
                "the watch cannot continue exactly: relist and watch again",
                oldest_revision=revision,
            )
            self.dispatcher.end_all(Ended.ERROR, expired.status())
        self.readiness.loaded.set()
        self.progress.wake()
        log.info("%s: loaded %d objects at revision %d", self.name, len(entries), revision)

    def _batch(self, batch: WatchBatch) -> None:
        changes = self.state.apply(batch)
        if changes:
            self.dispatcher.queue(changes)
        self.progress.wake()

    # -- reads -------------------------------------------------------------------------------------

    def get(self, key: bytes) -> Entry | None:
        """The cached object at ``key``."""
        return self.state.store.get(key)

    def values(self, start: bytes = b"", end: bytes = b"") -> Iterator[Entry]:
        """Cached objects with ``start <= key < end``, in key order."""
        return self.state.store.values(start, end)

    def objects(self, start: bytes = b"", end: bytes = b"") -> Iterator[Entry]:
        """As :meth:`values`, only the objects served over REST (no test at all while every key is
        one, as nearly always)."""
        store = self.state.store
        values = store.values(start, end)
        return (e for e in values if e.served) if store.unserved else values

    def snapshot(self) -> Snapshot:
        return self.state.snapshot()

    def range_at(
        self, start: bytes, end: bytes, *, revision: int, limit: int = 0
    ) -> tuple[list[Entry], int] | None:
        """Entries with ``start <= key < end`` (the one key ``start`` when ``end`` is b"") at
        ``revision`` (0: the cache's own), at most ``limit`` (0: all), and how many in all; None when
        the cache cannot know that revision (older than its window)."""
        if revision in (0, self.state.revision):
            return self.state.store.range(start, end, limit)
        snap = self.state.state_at(revision)
        return None if snap is None else snap.range(start, end, limit)

    def state_at(self, revision: int) -> Snapshot | None:
        return self.state.state_at(revision)

    async def read_at(
        self, revision: int, start: bytes, end: bytes, limit: int = 0
    ) -> tuple[list[Entry], bool]:
        """Objects in ``[start, end)`` at ``revision`` straight from etcd (``limit`` 0: all), and
        whether more remain. A compacted revision raises ExpiredError."""
        entries, more, _ = await self.reflector.read(start, end, revision=revision, limit=limit)
        return entries, more

    async def sync(self) -> int:
        """Catch up with etcd (see :meth:`.ready.Progress.sync`); etcd's revision at the call."""
        return await self.progress.sync()

    async def wait_for(self, revision: int, timeout: float) -> None:
        """Wait until the cache has reached ``revision`` (504 Timeout after ``timeout`` seconds)."""
        await self.progress.wait_for(revision, timeout)

    def reached(self, revision: int) -> asyncio.Future[None]:
        """A future done once the cache has reached ``revision``, requesting nothing of etcd (see
        :meth:`.ready.Progress.reached`)."""
        return self.progress.reached(revision)

    # -- watchers ----------------------------------------------------------------------------------

    def watch(
        self,
        *,
        selector: Selector,
        namespace: str | None,
        since: int | None,
        allow_bookmarks: bool,
        initial_end_bookmark: bool = False,
        key_range: tuple[bytes, bytes] | None = None,
        bookmark_interval: float | None = None,
    ) -> CacheWatcher:
        """Register a watcher now.

        ``since=None``: the watcher first gets the current state as ADDED events (then, if asked, the
        ``initial-events-end`` bookmark). ``since=N``: it gets every change after N; N older than the
        window raises :class:`ExpiredError`. The caller has made sure the cache is at or past N.
        ``key_range``: an etcd-protocol watcher of ``[start, end)`` (see :class:`CacheWatcher`);
        ``bookmark_interval``: its own, instead of the settings'.
        """
        self.readiness.check_running()
        self.dispatcher.flush()  # the new watcher's backlog must not overlap what is still to be offered
        watcher = CacheWatcher(
            selector=selector,
            namespace=namespace,
            capacity=self.settings.watcher_buffer,
            allow_bookmarks=allow_bookmarks,
            key_range=key_range,
            bookmark_interval=bookmark_interval or self.settings.bookmark_interval,
        )
        if since is None:
            start, end = self.layout.list_range(namespace) if namespace else (b"", b"")
            entries = list(self.values(start, end))
            end_mark = Bookmark(self.revision, initial_events_end=True)
            watcher.set_backlog(
                watcher.initial_state(iter(entries)), end_mark if initial_end_bookmark else None
            )
        else:
            watcher.after = since
            watcher.set_backlog(watcher.replay(self.state.changes_since(min(since, self.revision))))
        self.dispatcher.register(watcher)
        return watcher

    def close_watcher(self, watcher: CacheWatcher) -> None:
        """The client is gone: forget the watcher."""
        watcher.end(Ended.CLOSED)
        self.dispatcher.unregister(watcher)

    @property
    def watcher_count(self) -> int:
        return len(self.dispatcher)
