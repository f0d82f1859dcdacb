"""When a cache may answer: readiness (its first list is in), and waiting for revisions.

A consistent read waits until the cache holds every write etcd acknowledged before the read began
(:meth:`Progress.sync`); a read at resourceVersion N until it has reached N (:meth:`Progress.wait_for`).
When nothing in the resource changes, etcd sends its watch nothing, so the cache writes the resource's
*progress key* (inside the watched range, outside every object key): its event arrives in order on the
same watch and proves every earlier event has arrived. See ``docs/consistent-reads.md`` for why this,
and not etcd's RequestProgress, on etcd 3.4.23. Writes requested while one is in flight are coalesced.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import (
    EtcdUnavailableError,
    EtcdUnreachableError,
    StatusError,
    TimedOutError,
    TooManyRequestsError,
)
from .backoff import Backoff
from .settings import CacheSettings, CacheStats
from .source import KVSource

__all__ = ["Progress", "Readiness"]

log = logging.getLogger(__name__)


class Readiness:
    """Whether one cache can serve: loaded (its first list is in) and connected (its watch is up)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loaded = asyncio.Event()
        #: Whether the etcd watch is established right now (readiness of a running cache).
        self.connected = False
        self.stopped = False
        #: Why the feed's last attempt failed when etcd could not serve it (None once one succeeds):
        #: what a request to a cache that has not loaded gets instead of "still loading".
        self.etcd_failure: EtcdUnavailableError | None = None

    def stopped_error(self) -> EtcdUnavailableError:
        return EtcdUnavailableError(f"the cache of {self.name} is stopped", retry_after=1)

    def check_running(self) -> None:
        if self.stopped:
            raise self.stopped_error()

    def not_ready(self) -> StatusError:
        """Why the cache cannot answer before its first list is in: 503 while its feed cannot reach
        etcd (``etcd is unreachable (<cause>)``), else 429 TooManyRequests (still loading)."""
        if self.stopped:
            return self.stopped_error()
        if self.etcd_failure is not None:
            return self.etcd_failure.fresh()
        loading = f"the cache of {self.name} is still loading; retry shortly"
        return TooManyRequestsError(loading, retry_after=1)

    def check_ready(self) -> None:
        """Raise :meth:`not_ready` unless the first list is in."""
        self.check_running()
        if not self.loaded.is_set():
            raise self.not_ready()

    async def wait(self, timeout: float) -> None:
        """Wait until the first list is in; after ``timeout`` seconds raise :meth:`not_ready`."""
        self.check_running()
        if self.loaded.is_set():
            return
        try:
            async with asyncio.timeout(timeout):
                await self.loaded.wait()
        except TimeoutError:
            raise self.not_ready() from None


@dataclass(order=True)
class _Waiter:
    revision: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class Progress:
    """Requests waiting for the cache to reach a revision, and the progress-key writer that makes
    sure it does (see the module docstring)."""

    def __init__(
        self,
        *,
        source: KVSource,
        progress_key: bytes,
        revision: Callable[[], int],
        readiness: Readiness,
        settings: CacheSettings,
        stats: CacheStats,
    ) -> None:
        self._source = source
        self._key = progress_key
        self._revision = revision
        self._readiness = readiness
        self._settings = settings
        self._stats = stats
        self._waiters: list[_Waiter] = []
        self._watchers: list[_Waiter] = []  # see reached()
        self._prune_at = 64
        self._seq = itertools.count()
        self._wanted = asyncio.Event()

    async def wait_for(self, revision: int, timeout: float) -> None:
        """Wait until the cache has every change up to ``revision``; 504 Timeout otherwise.

        When etcd has already reached ``revision`` (through writes to other keys, say), progress is
        requested as for a consistent read; a revision etcd has not reached yet is only waited for,
        so a far-future resourceVersion never makes the cache write.
        """
        self._readiness.check_running()
        if self._revision() >= revision:
            return
        if revision <= await self._source.current_revision(self._key):
            self._wanted.set()
        await self._wait(revision, timeout)

    async def sync(self) -> int:
        """Catch up with etcd: afterwards the cache holds every write etcd acknowledged before the
        call. Returns etcd's revision at the call."""
        self._readiness.check_running()
        target = await self._source.current_revision(self._key)
        if self._revision() < target:
            self._wanted.set()
            await self._wait(target, self._settings.sync_timeout)
        return target

    def reached(self, revision: int) -> asyncio.Future[None]:
        """A future done once the cache has every change up to ``revision`` (failed with the stop
        error when the cache stops). Nothing is asked of etcd: it is what a merge of several caches
        waits on for news. Cancel it when no longer wanted."""
        future = asyncio.get_running_loop().create_future()
        if self._readiness.stopped:
            future.set_exception(self._readiness.stopped_error())
        elif self._revision() >= revision:
            future.set_result(None)
        else:
            # Apart from the requests' waiters: they do not make the progress writer write.
            watchers = self._watchers
            if len(watchers) >= self._prune_at:  # futures cancelled by their owners, amortized
                watchers[:] = [w for w in watchers if not w.future.done()]
                heapq.heapify(watchers)
                self._prune_at = max(64, 2 * len(watchers))
            heapq.heappush(watchers, _Waiter(revision, next(self._seq), future))
        return future

    async def _wait(self, revision: int, timeout: float) -> None:
        if self._revision() >= revision:
            return
        waiter = _Waiter(revision, next(self._seq), asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiters, waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        except TimeoutError:
            raise TimedOutError(
                f"Too large resource version: {revision}, current: {self._revision()}",
                retry_after=1,
            ) from None
        finally:
            if not waiter.future.done():
                waiter.future.cancel()

    @property
    def waiting(self) -> int:
        """Requests waiting for a revision right now."""
        return sum(1 for w in self._waiters if not w.future.done())

    def wake(self) -> None:
        """The cache's revision advanced: release the waiters it satisfies."""
        revision = self._revision()
        for waiters in (self._waiters, self._watchers):
            while waiters and waiters[0].revision <= revision:
                waiter = heapq.heappop(waiters)
                if not waiter.future.done():
                    waiter.future.set_result(None)

    def fail_all(self, error: StatusError) -> None:
        for waiters in (self._waiters, self._watchers):
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
            waiters.clear()

    async def run(self) -> None:
        """The progress-key writer (a task of the cache). A failed write is retried after a capped
        exponential backoff while requests still wait (their own deadline bounds it); an etcd outage
        is logged once, by the etcd client's health, not here for every attempt."""
        backoff = Backoff(first=0.1, cap=1.0)
        failures = 0
        while True:
            await self._wanted.wait()
            # Cleared before writing: a sync() that reads its target after this point sets it again
            # and gets a write of its own; one that read its target before is covered by this write,
            # whose revision is necessarily greater.
            self._wanted.clear()
            if not any(not w.future.done() for w in self._waiters):
                continue
            try:
                await self._source.put(self._key, b"")
                self._stats.progress_writes += 1
                backoff.reset()
                failures = 0
            except StatusError as err:
                failures += 1
                # etcd being down is the health's to report; anything else once per series.
                quiet = failures > 1 or EtcdUnreachableError.of(err) is not None
                log.log(
                    logging.DEBUG if quiet else logging.WARNING,
                    "%s: progress write failed: %s",
                    self._readiness.name,
                    err,
                )
                await asyncio.sleep(backoff.delay())
                if self._waiters:
                    self._wanted.set()
