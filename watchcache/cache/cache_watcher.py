"""One watcher of a cache: its selection, its bounded buffer and its termination.

The cache's dispatcher offers each watcher the changes it selects, synchronously and without ever
waiting: a watcher whose buffer is full is ended on the spot (its client re-watches from the last
resourceVersion it saw), so one slow client never delays the others. The consumer side drains the
buffer in batches, which lets the HTTP layer write and flush once per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from ..errors import Status
from ..selectors import Selector
from .store import Entry
from .window import Change, ChangeType

__all__ = ["Bookmark", "CacheWatcher", "Ended", "Item", "Shared", "WatchErrorItem", "item_size"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Bookmark:
    revision: int
    initial_events_end: bool = False


@dataclass(frozen=True, slots=True)
class WatchErrorItem:
    status: Status


@dataclass(frozen=True, slots=True)
class Leave:
    """An object that stopped matching the watcher's selector: sent as DELETED."""

    change: Change


@dataclass(frozen=True, slots=True)
class Enter:
    """An object that started matching the watcher's selector: sent as ADDED."""

    change: Change


@dataclass(frozen=True, slots=True)
class Initial:
    """An object of the initial state: sent as ADDED."""

    entry: Entry


# A Change on its own is delivered with its own type: the common case costs no allocation.
Item = Change | Enter | Leave | Initial | Bookmark | WatchErrorItem


class Shared(list[T]):
    """A list offered alike to many watchers in one dispatch (a round's changes of a namespace, to
    every watcher that takes them as they are): the same object reaches each of them, so what is made
    of it (their events, the events' encoded lines) is made once and kept in :attr:`memo` by whoever
    makes it. Nobody changes the list. It lives as long as the dispatch (nobody keeps it)."""

    __slots__ = ("memo",)

    def __init__(self, items: Iterable[T] = ()) -> None:
        super().__init__(items)
        self.memo: dict[object, object] = {}


def item_size(item: Item) -> int:
    """About how many bytes ``item`` puts on the wire (its object's cached bytes)."""
    if isinstance(item, Change | Initial):
        return item.entry.size
    if isinstance(item, Enter | Leave):
        return item.change.entry.size
    return 128


class Ended(Enum):
    NOT = "not ended"
    TOO_SLOW = "the watcher fell too far behind"
    CLOSED = "the watch was closed"
    ERROR = "the watch ended with an error"


class CacheWatcher:
    """A watcher registered with one cache."""

    __slots__ = (
        "_buffer",
        "_initial",
        "_initial_end",
        "_wakeup",
        "after",
        "allow_bookmarks",
        "bookmark_interval",
        "capacity",
        "ended",
        "key_range",
        "namespace",
        "next_bookmark",
        "notify",
        "selector",
        "simple",
        "sink",
    )

    def __init__(
        self,
        *,
        selector: Selector,
        namespace: str | None,
        capacity: int,
        allow_bookmarks: bool,
        key_range: tuple[bytes, bytes] | None = None,
        bookmark_interval: float = 60.0,
    ) -> None:
        self.selector = selector
        self.namespace = namespace
        self.capacity = capacity
        self.allow_bookmarks = allow_bookmarks
        #: Seconds between bookmarks when idle (with ``allow_bookmarks``).
        self.bookmark_interval = bookmark_interval
        #: An etcd-protocol watcher's ``[start, end)`` (end b"": the one key): it is sent every
        #: change of a key in range as it is, objects or not, with no selection. None: a REST
        #: watcher, sent the objects its namespace and selector select.
        self.key_range = key_range
        #: An etcd-protocol watcher is sent only changes after this revision (its start may lie
        #: ahead of the cache).
        self.after = 0
        self.next_bookmark = 0.0
        self.ended = Ended.NOT
        #: A REST watcher that takes every plain change it is offered as it is (no selector; the
        #: dispatcher's index did the namespace).
        self.simple = selector.empty and key_range is None
        #: Optional fast path: called with items to deliver them at once (e.g. written straight to a
        #: socket); returns False when it cannot take them now, and they are buffered instead.
        self.sink: Callable[[list[Item]], bool] | None = None
        #: Optional: called (from the dispatch, never awaiting) when items are queued or the watcher
        #: ends, for a consumer that does not wait in :meth:`next_batch` (it takes them with
        #: :meth:`take_batch`).
        self.notify: Callable[[], None] | None = None
        # What the watcher owes its client before live changes: the initial state or a replay from
        # the window, produced lazily so a large one costs no memory per watcher. Live changes that
        # arrive meanwhile wait in the (bounded) buffer.
        self._initial: Iterator[Item] | None = None
        self._initial_end: Bookmark | None = None
        self._buffer: list[Item] = []
        self._wakeup: asyncio.Future[None] | None = None

    # -- producer side (the dispatcher; never awaits) ---------------------------------------------

    def initial_state(self, entries: Iterator[Entry]) -> Iterator[Item]:
        """ADDED items for the entries this watcher selects (a lazy backlog)."""
        for entry in entries:
            if self.selects_entry(entry):
                yield Initial(entry)

    def replay(self, changes: list[Change]) -> Iterator[Item]:
        """The items this watcher is sent for past ``changes`` (a lazy backlog)."""
        for change in changes:
            item = self.select(change)
            if item is not None:
                yield item

    def _in_range(self, key: bytes) -> bool:
        assert self.key_range is not None
        start, end = self.key_range
        return key == start if not end else start <= key < end

    def selects_entry(self, entry: Entry) -> bool:
        if self.key_range is not None:
            return self._in_range(entry.key)
        return self._selects(entry)

    def _selects(self, entry: Entry) -> bool:
        """A REST watcher's choice: an object of its namespace that its selector matches."""
        return (
            entry.served
            and (self.namespace is None or entry.namespace == self.namespace)
            and (self.selector.empty or self.selector.matches(entry.name, entry.namespace, entry.labels))
        )

    def select(self, change: Change) -> Item | None:
        """What this watcher is sent for ``change``, if anything: for a REST watcher, Kubernetes'
        selector transitions (an object that starts being selected is ADDED, one that stops DELETED)."""
        key_range = self.key_range
        if key_range is not None:  # an etcd-protocol watcher: every change in its range (inlined: hot)
            if change.revision <= self.after:
                return None
            start, end = key_range
            key = change.key
            return change if (start <= key < end if end else key == start) else None
        if self.namespace is not None and change.entry.namespace != self.namespace:
            return None
        if change.plain and self.selector.empty:
            return change
        matches = self._selects(change.entry)
        if change.type is ChangeType.DELETED:
            return change if matches else None
        prev = change.prev
        prev_matches = prev is not None and self._selects(prev)
        if matches:
            if prev_matches or change.type is ChangeType.ADDED:
                return change
            return Enter(change)
        return Leave(change) if prev_matches else None

    def offer(self, items: list[Item]) -> bool:
        """Queue ``items``; False (and the watcher is ended) when that would overflow its buffer."""
        if self.ended is not Ended.NOT:
            return False
        # Straight to the sink while nothing is queued ahead of these items (order is kept).
        sink = self.sink
        if (
            sink is not None
            and not self._buffer
            and self._initial is None
            and self._initial_end is None
            and sink(items)
        ):
            return True
        if len(self._buffer) + len(items) > self.capacity:
            self.end(Ended.TOO_SLOW)
            return False
        self._buffer.extend(items)
        self._wake()
        return True

    @property
    def idle(self) -> bool:
        """Nothing queued and the initial state sent: a bookmark would tell the client something."""
        return not self._buffer and self._initial is None and self._initial_end is None

    def end(self, why: Ended, error: Status | None = None) -> None:
        """Stop the watcher. Queued changes are dropped (the client resumes from the last it saw);
        an error, when given, is still delivered."""
        if self.ended is not Ended.NOT:
            return
        self.ended = why
        self._initial = None
        self._initial_end = None
        self._buffer = [WatchErrorItem(error)] if error is not None else []
        self._wake()

    def _wake(self) -> None:
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.notify is not None:
            self.notify()

    # -- consumer side ----------------------------------------------------------------------------

    def set_backlog(self, backlog: Iterator[Item], end: Bookmark | None = None) -> None:
        """Items owed before live ones (see :meth:`initial_state`, :meth:`replay`), then ``end``."""
        self._initial = backlog
        self._initial_end = end

    async def next_batch(self, max_bytes: int = 256 * 1024) -> list[Item]:
        """The next items in order, waiting while there are none; ``[]`` once the watch has ended.

        A batch holds about ``max_bytes`` of objects (at least one item), so what a consumer builds
        from it is bounded in bytes whatever the objects' sizes and however far behind it is.
        """
        while True:
            batch = self.take_batch(max_bytes)
            if batch is not None:
                return batch
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None

    def take_batch(self, max_bytes: int = 256 * 1024) -> list[Item] | None:
        """As :meth:`next_batch`, without waiting: None when nothing is due now."""
        if self._initial is not None:
            batch: list[Item] = []
            size = 0
            for item in self._initial:
                batch.append(item)
                size += item_size(item)
                if size >= max_bytes:
                    return batch
            self._initial = None
            if batch:
                return batch
        if self._initial_end is not None:
            end, self._initial_end = self._initial_end, None
            return [end]
        buffer = self._buffer
        if buffer:
            size = 0
            taken = 0
            for item in buffer:
                taken += 1
                size += item_size(item)
                if size >= max_bytes:
                    break
            if taken == len(buffer):
                self._buffer = []
                return buffer
            batch = buffer[:taken]
            del buffer[:taken]
            return batch
        if self.ended is not Ended.NOT:
            return []
        return None
