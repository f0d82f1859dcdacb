"""The window of recent changes of one resource: what watches from a past resourceVersion replay.

A :class:`Change` is one etcd event after it entered the cache: the object's new entry (a tombstone for
a deletion), its previous entry, and a memo where the layers above keep what they make of it once for
every watcher (an event per type and version, its encodings).
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .store import Entry

__all__ = ["Change", "ChangeType", "Window"]


class ChangeType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(slots=True, eq=False)
class Change:
    type: ChangeType
    entry: Entry
    """The new state; for a deletion the last state, with the deletion's resourceVersion."""
    prev: Entry | None
    """The state before this change (None for a creation): an etcd-protocol watcher's ``prev_kv``."""
    plain: bool = field(init=False)
    """Both states are objects served over REST: a REST watcher without a selector takes the change
    as it is."""
    memo: dict[Hashable, Any] = field(default_factory=dict)
    """What the layers above make of this change once and share among every watcher that needs it
    (the API layer's event per type and version, a front's encodings of it)."""
    revision: int = field(init=False)
    """The change's revision (its entry's): a plain attribute, read for every watcher of it."""
    key: bytes = field(init=False)
    """The key changed, made once (an entry holds its key without the resource's prefix) for the
    etcd-protocol watchers that each compare it with their range."""

    def __post_init__(self) -> None:
        self.key = self.entry.key
        self.plain = self.entry.served and (self.prev is None or self.prev.served)
        self.revision = self.entry.revision

    def shown(self, event_type: ChangeType) -> Entry:
        """The state whose object is sent with ``event_type``, at this change's resourceVersion.

        An object leaving a watcher's selector is sent, as Kubernetes does, as DELETED carrying its
        previous content with this change's resourceVersion.
        """
        if event_type is ChangeType.DELETED and self.type is not ChangeType.DELETED:
            assert self.prev is not None, "only an update can leave a selector"
            return self.prev
        assert self.entry.served, "only objects served over REST are sent as events"
        return self.entry


class Window:
    """The most recent changes, in revision order, bounded by ``capacity``.

    Invariant: every change with ``revision > oldest_revision`` is held, so a watch from any
    resourceVersion ``>= oldest_revision`` can be replayed exactly.
    """

    def __init__(self, capacity: int, start_revision: int) -> None:
        if capacity < 1:
            raise ValueError("the window needs room for at least one change")
        self.capacity = capacity
        self.oldest_revision = start_revision
        self._changes: list[Change] = []
        self._head = 0  # index of the oldest retained change; the list is trimmed in amortized O(1)

    def __len__(self) -> int:
        return len(self._changes) - self._head

    def append(self, change: Change) -> None:
        self._changes.append(change)
        if len(self) > self.capacity:
            dropped = self._changes[self._head]
            self._head += 1
            # Changes sharing a revision (one transaction) must go together, or replay would be
            # partial; the next change with the same revision is dropped on the following append.
            self.oldest_revision = dropped.revision
            if self._head >= self.capacity:
                del self._changes[: self._head]
                self._head = 0

    def since(self, revision: int) -> list[Change]:
        """Every change with a revision greater than ``revision``, oldest first.

        The caller checks ``revision >= oldest_revision`` first.
        """
        i = bisect.bisect_right(self._changes, revision, lo=self._head, key=lambda c: c.revision)
        return self._changes[i:]

    def reset(self, start_revision: int) -> None:
        """Forget every change: after a relist, only watches from ``start_revision`` on are exact."""
        self._changes = []
        self._head = 0
        self.oldest_revision = start_revision
