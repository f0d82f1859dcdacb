"""The state of one resource's cache: its objects, its recent changes, and states at past revisions.

After kubernetes' ``watch_cache.go``: the store (current objects, each held once), the window of
recent changes, the revision everything up to which has been applied, and the snapshots that paged
and exact lists are cut from. Etcd events go in through :meth:`WatchCache.apply`, which turns them
into :class:`~.window.Change`\\ s for dispatch; nothing here awaits or knows of watchers.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from ..errors import ExpiredError
from ..etcd.types import EventType, KeyValue, WatchBatch
from ..keys import KeyLayout
from .settings import CacheSettings, CacheStats
from .store import Codec, Entry, Snapshot, Store
from .window import Change, ChangeType, Window

__all__ = ["WatchCache"]


class WatchCache:
    """Objects, recent changes and snapshots of one resource (see the module docstring)."""

    def __init__(
        self, *, layout: KeyLayout, codec: Codec, settings: CacheSettings, stats: CacheStats
    ) -> None:
        self.layout = layout
        self.codec = codec
        self.settings = settings
        self.stats = stats
        self.store = Store()
        self.window = Window(settings.window_events, 0)
        #: Every change up to this revision is in the store (and handed on for dispatch).
        self.revision = 0
        self._snapshots: OrderedDict[int, tuple[Snapshot, float]] = OrderedDict()

    def entry(self, kv: KeyValue) -> Entry | None:
        """The entry of a key under the resource's prefix; None for other keys of the watched range
        (the progress key, keys of other resources whose names extend this one's)."""
        if not kv.key.startswith(self.layout.resource_prefix):
            return None
        parsed = self.layout.parse_key(kv.key)
        if parsed is None:
            return self.codec.raw(kv)
        return self.codec.decode(kv, parsed[0])

    def decode(self, kvs: Iterable[KeyValue]) -> Iterator[Entry]:
        """The entries of the keys under the resource's prefix."""
        for kv in kvs:
            entry = self.entry(kv)
            if entry is not None:
                yield entry

    def reset(self, entries: list[Entry], revision: int) -> None:
        """Replace everything with a fresh list at ``revision``: only watches from there on are exact."""
        self.store.replace(entries)
        self.window.reset(revision)
        self._snapshots.clear()
        self.revision = revision

    def apply(self, batch: WatchBatch) -> list[Change]:
        """One etcd watch response: update the store and window; the changes, for dispatch."""
        if not batch.events:
            # A progress notification. etcd sends the periodic ones only to a watcher that has been
            # sent every event up to ``batch.revision``; requested ones are never asked for.
            self.advance(batch.revision)
            return []
        base = self.revision
        changes: list[Change] = []
        for event in batch.events:
            kv = event.kv
            if kv.mod_revision <= base:
                continue  # already seen (never expected: the feed resumes from base + 1)
            self.stats.events_received += 1
            if not kv.key.startswith(self.layout.resource_prefix):
                continue  # the progress key, or a key of another resource sharing the range
            if event.type is EventType.PUT:
                entry = self.entry(kv)
                assert entry is not None
                prev = self.store.put(entry)
                kind = ChangeType.ADDED if prev is None else ChangeType.MODIFIED
                changes.append(Change(kind, entry, prev))
                continue
            prev = self.store.pop(kv.key)
            if prev is not None:
                changes.append(Change(ChangeType.DELETED, self.codec.tombstone(prev, kv.mod_revision), prev))
        for change in changes:
            self.window.append(change)
        self.revision = max(base, batch.events[-1].kv.mod_revision)
        return changes

    def advance(self, revision: int) -> bool:
        """Everything up to ``revision`` is known (no change in between); whether that is news."""
        if revision > self.revision:
            self.revision = revision
            return True
        return False

    # -- replay and states at a revision -----------------------------------------------------------

    def too_old(self, revision: int) -> ExpiredError:
        return ExpiredError(
            f"too old resource version: {revision} ({self.window.oldest_revision})",
            oldest_revision=self.window.oldest_revision,
        )

    def changes_since(self, revision: int) -> list[Change]:
        """Every change after ``revision``; 410 Expired when the window no longer holds them all."""
        if revision < self.window.oldest_revision:
            raise self.too_old(revision)
        return self.window.since(revision)

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
                    state.pop(change.key, None)
                else:
                    state[change.key] = change.prev
            snap = Snapshot(revision, sorted(state.values(), key=lambda e: e.key))
            self._remember(snap)
            return snap
        return None
