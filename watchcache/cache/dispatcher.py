"""Offering changes to a cache's watchers: the watcher index, coalescing, and bookmarks.

Dispatch offers each watcher the changes it selects without ever waiting (see
:mod:`.cache_watcher` for what a watcher does with them). REST watchers are indexed by namespace, so a
change is only offered to the watchers of its namespace and to those of all namespaces; the watchers
of a group that take its changes as they are (no selector) are all offered one shared list, so that
what is made of it for one (events, encoded lines) serves them all. etcd-protocol
watchers are grouped by key range: a dispatch selects a range's changes once and offers every watcher
of the range the same list (the fan-out of the etcd front costs one range test per change, not one per
watcher per change). While
dispatch is busy (the last round ended less than its own duration ago, the writes it queued for
connections that write once per turn included), changes are held for up to 20 ms so that those arriving
meanwhile go out together: one write per watcher for several changes.
Anything that depends on what watchers have been offered (registering a watcher, a bookmark) flushes
first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar, cast

from ..errors import Status
from .cache_watcher import Bookmark, CacheWatcher, Ended, Item, Shared
from .settings import CacheSettings, CacheStats
from .window import Change

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

# Longest a change waits to be dispatched together with the next ones while dispatch is busy.
_MAX_COALESCE = 0.02

K = TypeVar("K")


class Dispatcher:
    """The watchers of one cache and what they are offered (see the module docstring)."""

    def __init__(self, *, settings: CacheSettings, stats: CacheStats, name: str) -> None:
        self._settings = settings
        self._stats = stats
        self._name = name
        self._watchers: dict[CacheWatcher, None] = {}
        self._all_namespaces: dict[CacheWatcher, None] = {}
        self._by_namespace: dict[str, dict[CacheWatcher, None]] = {}
        self._by_range: dict[tuple[bytes, bytes], dict[CacheWatcher, None]] = {}
        # Changes applied to the state but not yet offered to the watchers (see queue()).
        self._undispatched: list[Change] = []
        self._flush_handle: asyncio.Handle | None = None
        self._dispatch_cost = 0.0
        self._dispatched_at = 0.0

    def __len__(self) -> int:
        return len(self._watchers)

    # -- changes -------------------------------------------------------------------------------------

    def queue(self, changes: list[Change]) -> None:
        """Offer ``changes`` soon: at once when dispatch is idle, after about its own last duration
        (at most 20 ms) while it is busy."""
        self._undispatched.extend(changes)
        if self._flush_handle is not None:
            return
        loop = asyncio.get_running_loop()
        cost = self._dispatch_cost
        if loop.time() - self._dispatched_at < cost:
            self._flush_handle = loop.call_later(min(cost, _MAX_COALESCE), self.flush)
        else:
            self._flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Offer every queued change now."""
        self._cancel_flush()
        changes, self._undispatched = self._undispatched, []
        if not changes:
            return
        started = time.perf_counter()
        self._dispatch(changes)
        self._measure(started)
        # What the round handed to connections that write once per turn (HTTP/2, the etcd front) is
        # written by callbacks queued meanwhile: the round's cost includes them (measured again once
        # they ran).
        asyncio.get_running_loop().call_soon(self._measure, started)

    def _measure(self, started: float) -> None:
        """The round that began at ``started`` (perf_counter) cost this long, and ended now."""
        self._dispatch_cost = time.perf_counter() - started
        self._dispatched_at = asyncio.get_running_loop().time()

    def discard_queued(self) -> None:
        """Forget the changes not yet offered (after a relist every watcher is ended anyway)."""
        self._cancel_flush()
        self._undispatched = []

    def _cancel_flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _dispatch(self, changes: list[Change]) -> None:
        if not self._watchers:
            return
        plain = all(change.plain for change in changes)
        if self._all_namespaces:
            self._dispatch_group(self._all_namespaces, changes, plain)
        if self._by_namespace:
            by_namespace = self._by_namespace
            if len(changes) == 1:
                group = by_namespace.get(changes[0].entry.namespace)
                if group:
                    self._dispatch_group(group, changes, plain)
            else:
                selected: dict[str, list[Change]] = {}
                for change in changes:
                    namespace = change.entry.namespace
                    if namespace is not None and namespace in by_namespace:
                        selected.setdefault(namespace, []).append(change)
                for namespace, its in selected.items():
                    self._dispatch_group(by_namespace[namespace], its, plain)
        if self._by_range:
            self._dispatch_ranges(changes)

    def _dispatch_group(self, group: dict[CacheWatcher, None], changes: list[Change], plain: bool) -> None:
        """Offer one group's watchers (all namespaces', or one namespace's) their changes: every watcher
        that takes plain changes as they are gets one shared list (see :class:`Shared`); the others
        select change by change."""
        shared: Shared[Item] | None = Shared(changes) if plain else None
        ended: list[tuple[CacheWatcher, list[Item]]] = []
        dispatched = 0
        for watcher in group:
            if watcher.simple and shared is not None:
                items: list[Item] = shared
            else:
                items = []
                for change in changes:
                    item = change if watcher.simple and change.plain else watcher.select(change)
                    if item is not None:
                        items.append(item)
                if not items:
                    continue
            if watcher.offer(items):
                dispatched += len(items)
            else:
                ended.append((watcher, items))
        self._settle(dispatched, ended)

    def _dispatch_ranges(self, changes: list[Change]) -> None:
        """Offer each etcd-protocol watcher its range's changes: selected once per range, one shared
        list for every watcher of the range (offer never keeps or changes the list it is given)."""
        ended: list[tuple[CacheWatcher, list[Item]]] = []
        dispatched = 0
        for (start, end), group in self._by_range.items():
            if end:
                selected = [c for c in changes if start <= c.entry.key < end]
            else:
                selected = [c for c in changes if c.entry.key == start]
            if not selected:
                continue
            shared = cast(list[Item], selected)
            first = selected[0].revision
            for watcher in group:
                items = shared
                if watcher.after >= first:  # it started ahead of some of these changes
                    after = watcher.after
                    items = [c for c in selected if c.revision > after]
                    if not items:
                        continue
                if watcher.offer(items):
                    dispatched += len(items)
                else:
                    ended.append((watcher, items))
        self._settle(dispatched, ended)

    def _settle(self, dispatched: int, ended: list[tuple[CacheWatcher, list[Item]]]) -> None:
        """Count what a dispatch handed out, and end the watchers whose buffers it would overflow (after
        the loop over a group, which ending a watcher changes)."""
        self._stats.events_dispatched += dispatched
        for watcher, items in ended:
            self._ended_slow(watcher, items)

    def _ended_slow(self, watcher: CacheWatcher, items: list[Item]) -> None:
        self._stats.watchers_ended_slow += 1
        log.info("%s: ended a watcher that fell %d events behind", self._name, len(items))
        self.unregister(watcher)

    # -- watchers ------------------------------------------------------------------------------------

    def register(self, watcher: CacheWatcher) -> None:
        self._watchers[watcher] = None
        if watcher.key_range is not None:
            self._by_range.setdefault(watcher.key_range, {})[watcher] = None
        elif watcher.namespace is None:
            self._all_namespaces[watcher] = None
        else:
            self._by_namespace.setdefault(watcher.namespace, {})[watcher] = None
        interval = watcher.bookmark_interval
        watcher.next_bookmark = asyncio.get_running_loop().time() + interval * (0.9 + 0.1 * random.random())

    def unregister(self, watcher: CacheWatcher) -> None:
        self._watchers.pop(watcher, None)
        if watcher.key_range is not None:
            _leave(self._by_range, watcher.key_range, watcher)
        elif watcher.namespace is None:
            self._all_namespaces.pop(watcher, None)
        else:
            _leave(self._by_namespace, watcher.namespace, watcher)

    def end_all(self, why: Ended, error: Status | None = None) -> None:
        """End every watcher (with ``error`` delivered last, when given) and forget them."""
        for watcher in list(self._watchers):
            watcher.end(why, error)
        self._watchers.clear()
        self._all_namespaces.clear()
        self._by_namespace.clear()
        self._by_range.clear()

    async def bookmarks(self, revision: Callable[[], int]) -> None:
        """Send idle watchers that allow bookmarks one at least every interval (a task of the cache)."""
        interval = self._settings.bookmark_interval
        tick = max(0.05, min(1.0, interval / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            self.flush()  # a bookmark's revision must not pass changes not yet offered
            now = loop.time()
            for watcher in list(self._watchers):
                if watcher.allow_bookmarks and now >= watcher.next_bookmark:
                    watcher.next_bookmark = now + watcher.bookmark_interval
                    # Every change up to the revision has been offered to the watcher, in order.
                    if watcher.idle and not watcher.offer([Bookmark(revision())]):
                        self.unregister(watcher)


def _leave(index: dict[K, dict[CacheWatcher, None]], key: K, watcher: CacheWatcher) -> None:
    group = index.get(key)
    if group is not None:
        group.pop(watcher, None)
        if not group:
            del index[key]
