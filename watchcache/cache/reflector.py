"""List-then-watch of one resource from etcd, after kubernetes' reflector.

The feed lists the resource in pages at one revision, then holds ONE etcd watch from the next
revision, handing every batch to the cache. A broken stream is resumed from the last revision seen,
so nothing is lost or repeated; a compacted one forces a relist (after which the cache's watchers,
who can no longer be served exactly, are ended with 410 Expired by the cache). The paged read is
also what exact lists older than the cache's window use.

Failed attempts are retried after a capped exponential backoff (:mod:`.backoff`). Only the first
failure of a series is logged, and the recovery once: at info when etcd could not serve the attempt
(the etcd client's health warns of an outage once, not once per cache), as a warning otherwise. While
the first list has not come in because etcd cannot be reached, requests are told so (503, see
:meth:`.ready.Readiness.not_ready`) rather than that the cache is still loading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..errors import EtcdUnreachableError, ExpiredError, StatusError
from ..etcd.types import WatchBatch
from .backoff import Backoff
from .ready import Readiness
from .settings import CacheSettings, CacheStats
from .source import KVSource
from .store import Entry
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
        on_list: Callable[[list[Entry], int], None],
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
    ) -> tuple[list[Entry], bool, int]:
        """The entries of the keys in ``[start, end)`` (a range inside the resource's prefix) at
        ``revision`` (0: now, at one revision throughout), read in pages; ``limit`` 0: all of them.
        Returns the entries, whether more remain, and the revision read at. A compacted revision
        raises ExpiredError.

        Each page is decoded as it comes, so that etcd's key-values of one page only are alive at a
        time: the memory they take is reused by the next page's, not left behind between entries."""
        entries: list[Entry] = []
        key = start
        while True:
            page_size = self._settings.list_page_size
            if limit:
                page_size = min(page_size, limit - len(entries) + 1)
            page = await self._source.range(key, end, revision=revision, limit=page_size)
            if revision == 0:
                revision = page.revision
            entries.extend(self._state.decode(page.kvs))
            if limit and len(entries) > limit:
                return entries[:limit], True, revision
            if not page.more or not page.kvs:
                return entries, False, revision
            key = page.kvs[-1].key + b"\0"

    async def run(self) -> None:
        """The feed (a task of the cache): list, then watch, for as long as the cache runs."""
        need_list = True
        backoff = Backoff(first=0.05, cap=self._settings.retry_backoff_max)
        failures = 0
        start, end = self._state.layout.watch_range()
        while True:
            try:
                if need_list:
                    kvs, _, revision = await self.read(*self._state.layout.list_range())
                    self._readiness.etcd_failure = None
                    self._on_list(kvs, revision)
                    need_list = False
                from_revision = self._state.revision + 1
                async with self._source.watch(start, end, start_revision=from_revision) as watch:
                    self._readiness.connected = True
                    self._readiness.etcd_failure = None
                    if failures:
                        log.info(
                            "%s: etcd watch established from revision %d after %d failed attempts",
                            self._name,
                            from_revision,
                            failures,
                        )
                    failures = 0
                    backoff.reset()
                    async for batch in watch:
                        self._on_batch(batch)
            except ExpiredError as err:
                log.warning("%s: watch history compacted (%s); relisting", self._name, err)
                need_list = True
            except StatusError as err:
                failures += 1
                self._failed(err, first=failures == 1)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug must not silently stop the resource's feed: relisting rebuilds every state.
                log.exception("%s: unexpected error in the feed; relisting", self._name)
                need_list = True
            finally:
                self._readiness.connected = False
            self._stats.watch_restarts += 1
            await asyncio.sleep(backoff.delay())

    def _failed(self, err: StatusError, *, first: bool) -> None:
        etcd_failure = EtcdUnreachableError.of(err)
        self._readiness.etcd_failure = etcd_failure
        what = "etcd watch" if self._readiness.loaded.is_set() else "initial list"
        if not first:
            level = logging.DEBUG
        elif etcd_failure is not None:
            level = logging.INFO
        else:
            level = logging.WARNING
        log.log(
            level,
            "%s: %s failed (%s); retrying with backoff (at most %g s apart)",
            self._name,
            what,
            etcd_failure or err,
            self._settings.retry_backoff_max,
        )
