"""List-then-watch of one resource from etcd, after kubernetes' reflector.

The feed lists the resource in pages at one revision, then holds ONE etcd watch from the next
revision, handing every batch to the cache. A broken stream is resumed from the last revision seen,
so nothing is lost or repeated; a compacted one forces a relist (after which the cache's watchers,
who can no longer be served exactly, are ended with 410 Expired by the cache). The paged read is
also what exact lists older than the cache's window use.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from ..errors import ExpiredError, StatusError
from ..etcd.types import KeyValue, WatchBatch
from .ready import Readiness
from .settings import CacheSettings, CacheStats
from .source import KVSource
from .watch_cache import WatchCache

__all__ = ["Reflector"]

log = logging.getLogger(__name__)


class Reflector:
    """Feeds one :class:`WatchCache` from etcd (see the module docstring)."""

    def __init__(
        self,
        *,
        source: KVSource,
        state: WatchCache,
        readiness: Readiness,
        settings: CacheSettings,
        stats: CacheStats,
        on_list: Callable[[list[KeyValue], int], None],
        on_batch: Callable[[WatchBatch], None],
    ) -> None:
        self._source = source
        self._state = state
        self._readiness = readiness
        self._settings = settings
        self._stats = stats
        self._on_list = on_list
        self._on_batch = on_batch
        self._name = readiness.name

    async def read(
        self, start: bytes, end: bytes, *, revision: int = 0, limit: int = 0
    ) -> tuple[list[KeyValue], bool, int]:
        """Keys in ``[start, end)`` at ``revision`` (0: now, at one revision throughout), in pages;
        ``limit`` 0: all of them. Returns the key-values, whether more remain, and the revision
        read at. A compacted revision raises ExpiredError."""
        kvs: list[KeyValue] = []
        key = start
        while True:
            page_size = self._settings.list_page_size
            if limit:
                page_size = min(page_size, limit - len(kvs) + 1)
            page = await self._source.range(key, end, revision=revision, limit=page_size)
            if revision == 0:
                revision = page.revision
            kvs.extend(page.kvs)
            if limit and len(kvs) > limit:
                return kvs[:limit], True, revision
            if not page.more or not page.kvs:
                return kvs, False, revision
            key = page.kvs[-1].key + b"\0"

    async def run(self) -> None:
        """The feed (a task of the cache): list, then watch, for as long as the cache runs."""
        need_list = True
        backoff = 0.05
        start, end = self._state.layout.watch_range()
        while True:
            try:
                if need_list:
                    kvs, _, revision = await self.read(*self._state.layout.list_range())
                    self._on_list(kvs, revision)
                    need_list = False
                from_revision = self._state.revision + 1
                async with self._source.watch(start, end, start_revision=from_revision) as watch:
                    self._readiness.connected = True
                    backoff = 0.05
                    async for batch in watch:
                        self._on_batch(batch)
            except ExpiredError as err:
                log.warning("%s: watch history compacted (%s); relisting", self._name, err)
                need_list = True
            except StatusError as err:
                log.warning("%s: etcd watch broke (%s); resuming", self._name, err)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug must not silently stop the resource's feed: relisting rebuilds every state.
                log.exception("%s: unexpected error in the feed; relisting", self._name)
                need_list = True
            finally:
                self._readiness.connected = False
            self._stats.watch_restarts += 1
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self._settings.retry_backoff_max)
