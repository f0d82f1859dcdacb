"""WATCH of one resource: where it starts, and the typed events its cache watcher's items become.

A watch from ``resourceVersion=N`` gets every change after N; unset or ``0``: the current objects as
ADDED, then changes (unset waits for a consistent state first); with ``sendInitialEvents`` the initial
objects end with a bookmark annotated ``k8s.io/initial-events-end``; a revision older than the cache's
window yields one ERROR event (410 Expired) and the watch ends.

Events made from a change are made once per event type and served version and shared by every watcher
(kept in the change's memo), so a front that encodes an event once (in :attr:`WatchEvent.encoded`)
encodes it once for all of them. The wire format itself is the front's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ..cache.cache_watcher import Bookmark, CacheWatcher, Enter, Initial, Item, Leave, Shared, WatchErrorItem
from ..cache.window import Change, ChangeType
from ..errors import ExpiredError
from .context import Context
from .options import WatchOptions

__all__ = ["INITIAL_EVENTS_END", "EventTypeName", "Shared", "Watch", "WatchEvent", "WatchSink"]

INITIAL_EVENTS_END = "k8s.io/initial-events-end"

EventTypeName = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]


@dataclass(frozen=True, slots=True, eq=False)
class WatchEvent:
    """One watch event: its type, the object's JSON as served through the watch's version, and its
    resourceVersion."""

    type: EventTypeName
    raw: bytes
    """The object's JSON (a ``Status`` for ERROR)."""
    revision: int
    """The event's resourceVersion (0 for ERROR)."""
    encoded: dict[Hashable, bytes] = field(default_factory=dict, repr=False)
    """A front's encodings of this event, made once: an event made from a change is shared by every
    watcher of its type and version."""

    @property
    def object(self) -> dict[str, Any]:
        obj: dict[str, Any] = orjson.loads(self.raw)
        return obj


def _single_keys(api_version: str) -> dict[ChangeType, tuple[str, ChangeType, str]]:
    """The memo keys of a change's one-event lists per type, through ``api_version``: one dict per
    version, shared by every watch of it."""
    keys = _SINGLE_KEYS.get(api_version)
    if keys is None:
        keys = _SINGLE_KEYS[api_version] = {t: ("single", t, api_version) for t in ChangeType}
    return keys


_SINGLE_KEYS: dict[str, dict[ChangeType, tuple[str, ChangeType, str]]] = {}
_NO_EVENTS: Iterator[WatchEvent] = iter(())  # exhausted: shared by every watch not iterated yet

WatchSink = Callable[[list[WatchEvent]], bool]
"""Takes events at once (written straight to a client, say), or returns False when it cannot now. The list
may be shared by many watchers: a sink never changes it. When it is a :class:`Shared` list, every
watcher of the dispatch gets that same object: what a sink makes of it (its encoded bytes) may be kept
in its ``memo`` for the next sink."""


class Watch:
    """An open watch: an async iterator of :class:`WatchEvent`, and an async context manager that
    unregisters it. Fronts read :meth:`next_events` batches (or :meth:`poll_events` when told by
    :meth:`set_notify`), or install a :meth:`set_sink`."""

    __slots__ = (
        "_api_version",
        "_ctx",
        "_done",
        "_events",
        "_opened",
        "_options",
        "_pending",
        "_revision",
        "_single",
        "_sink",
        "_watcher",
    )

    def __init__(self, ctx: Context, options: WatchOptions) -> None:
        self._ctx = ctx
        self._options: WatchOptions | None = options  # until open(): not kept for the watch's life
        self._watcher: CacheWatcher | None = None
        self._pending: Sequence[Item] = ()
        self._sink: WatchSink | None = None
        self._opened = False
        self._done = False
        # Interned: one string per version, not one per watch.
        self._api_version = sys.intern(ctx.api_version(options.version))
        self._events: Iterator[WatchEvent] = _NO_EVENTS
        self._revision = 0
        self._single = _single_keys(self._api_version)

    @property
    def resource_version(self) -> str:
        """The resourceVersion of the last event delivered ("" before one): where a client re-watches
        from."""
        return str(self._revision) if self._revision else ""

    async def open(self) -> Watch:
        """Start the watch; setup errors (bad parameters, 504 for a future resourceVersion) raise."""
        if self._opened:
            return self
        self._opened = True
        ctx, options = self._ctx, self._options
        assert options is not None
        self._options = None
        namespace = ctx.scope(options.namespace)
        if namespace is not None:
            namespace = sys.intern(namespace)  # one string per namespace, not one per watcher
        await ctx.fresh(options.revision)
        since = None if options.initial else (options.revision or ctx.cache.revision)
        try:
            self._watcher = ctx.cache.watch(
                selector=options.selector,
                namespace=namespace,
                since=since,
                allow_bookmarks=options.allow_bookmarks,
                initial_end_bookmark=options.initial_events_end,
            )
        except ExpiredError as err:
            self._pending = [WatchErrorItem(err.status())]
        return self

    def close(self) -> None:
        if self._watcher is not None:
            self._ctx.cache.close_watcher(self._watcher)
        self._done = True

    async def __aenter__(self) -> Watch:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        for event in self._events:
            return event
        events = await self.next_events()
        if not events:
            raise StopAsyncIteration
        self._events = iter(events)
        return next(self._events)

    async def next_events(self, max_bytes: int = 256 * 1024) -> list[WatchEvent]:
        """The next events, about ``max_bytes`` of objects at most (waiting while there are none);
        ``[]`` once the watch has ended."""
        await self.open()
        watcher = self._live()
        if watcher is None:
            return self._last_events()
        return self._batch_events(await watcher.next_batch(max_bytes))

    def poll_events(self, max_bytes: int = 256 * 1024) -> list[WatchEvent] | None:
        """As :meth:`next_events` on an opened watch, without waiting: None when nothing is due now."""
        watcher = self._live()
        if watcher is None:
            return self._last_events()
        items = watcher.take_batch(max_bytes)
        return None if items is None else self._batch_events(items)

    def _live(self) -> CacheWatcher | None:
        """The cache watcher to take batches from; None when the watch has ended or has only its
        pending items (an error) left to give."""
        return None if self._pending or self._done else self._watcher

    def _last_events(self) -> list[WatchEvent]:
        """The pending items, after which the watch is done; ``[]`` once it is."""
        items, self._pending = self._pending, ()
        self._done = True
        return self._to_events(items) if items else []

    def _batch_events(self, items: list[Item]) -> list[WatchEvent]:
        """A batch from the cache watcher as events; an empty batch closes the watch, an error item
        ends it."""
        if not items:
            self.close()
        elif isinstance(items[-1], WatchErrorItem):
            self._done = True
        return self._to_events(items)

    def set_notify(self, notify: Callable[[], None] | None) -> None:
        """Have ``notify`` called (from the cache's dispatch) when events are due for
        :meth:`poll_events` or the watch ends; None stops it."""
        if self._watcher is not None:
            self._watcher.notify = notify

    def set_sink(self, sink: WatchSink) -> None:
        """Deliver live events by calling ``sink`` from the cache's dispatch, while nothing is queued
        ahead of them; what it refuses still comes from :meth:`next_events`."""
        if self._watcher is not None:
            self._sink = sink
            self._watcher.sink = self._deliver

    def _deliver(self, items: list[Item]) -> bool:
        """The cache's dispatch handing ``items`` to the sink; this runs for every watcher of every
        change, so one change on its own (the common case) skips the general conversion."""
        sink = self._sink
        assert sink is not None
        if type(items) is Shared:
            # The same round's changes offered alike to many watchers: their events made once per
            # version, one shared list for every watcher of it.
            shared: Shared[WatchEvent] | None = items.memo.get(self._api_version)  # type: ignore[assignment]
            if shared is None:
                shared = Shared([self._shared(c, c.type) for c in items])
                items.memo[self._api_version] = shared
            if sink(shared):
                self._revision = shared[-1].revision
                return True
            return False
        if len(items) == 1 and type(item := items[0]) is Change:
            # The one-event list itself is shared by every watcher of this type and version.
            key = self._single[item.type]
            events = item.memo.get(key)
            if events is None:
                events = item.memo[key] = [self._shared(item, item.type)]
            if sink(events):
                self._revision = item.revision
                return True
            return False
        events = [self._event(item) for item in items]
        if sink(events):
            self._delivered(events)
            return True
        return False

    def _to_events(self, items: Sequence[Item]) -> list[WatchEvent]:
        events = [self._event(item) for item in items]
        self._delivered(events)
        return events

    def _delivered(self, events: list[WatchEvent]) -> None:
        for event in reversed(events):
            if event.type != "ERROR":
                self._revision = event.revision
                break

    def _event(self, item: Item) -> WatchEvent:
        # A change on its own (the common case) first, by exact type: this runs for every watcher.
        if type(item) is Change:
            return self._shared(item, item.type)
        if type(item) is Enter:
            return self._shared(item.change, ChangeType.ADDED)
        if type(item) is Leave:
            return self._shared(item.change, ChangeType.DELETED)
        if isinstance(item, Initial):
            assert item.entry.served, "a REST watch is sent only objects"
            raw = self._ctx.codec.served(item.entry, self._api_version)
            return WatchEvent("ADDED", raw, item.entry.revision)
        if isinstance(item, Bookmark):
            return WatchEvent("BOOKMARK", orjson.dumps(self._bookmark(item)), item.revision)
        assert isinstance(item, WatchErrorItem)
        return WatchEvent("ERROR", orjson.dumps(item.status), 0)

    def _shared(self, change: Change, event_type: ChangeType) -> WatchEvent:
        """The event ``change`` is for watchers of ``event_type`` through this version: made once."""
        key = (event_type, self._api_version)
        event: WatchEvent | None = change.memo.get(key)
        if event is None:
            # Made once from the entry's pieces, shared by every watcher of this type and version.
            raw = self._ctx.codec.served(change.shown(event_type), self._api_version, change.revision)
            event = change.memo[key] = WatchEvent(event_type.value, raw, change.revision)
        return event

    def _bookmark(self, item: Bookmark) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(item.revision)}
        if item.initial_events_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return {"kind": self._ctx.spec.kind, "apiVersion": self._api_version, "metadata": meta}
