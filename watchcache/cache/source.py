"""What a cache needs of etcd, as a Protocol: ranges, one watch stream, the current revision, a put.

:class:`watchcache.etcd.EtcdClient` is the real source. Anything that keeps etcd's MVCC semantics
(revisions, ordered watch batches, progress notifications) can feed a cache instead, which lets the
cache's own logic be tested without processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ..etcd.types import RangeResult, WatchBatch

__all__ = ["KVSource"]


class KVSource(Protocol):
    """The etcd calls a cache makes (see :class:`watchcache.etcd.EtcdClient` for their contracts)."""

    async def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
        serializable: bool = False,
    ) -> RangeResult:
        """A range read, linearizable unless ``serializable``; a compacted revision raises Expired."""
        ...

    def watch(
        self, key: bytes, range_end: bytes, *, start_revision: int
    ) -> AbstractAsyncContextManager[AsyncIterator[WatchBatch]]:
        """One watch stream of ``[key, range_end)`` from ``start_revision`` with periodic progress
        notifications; a compacted start raises Expired, a broken stream EtcdUnavailable."""
        ...

    async def current_revision(self, key: bytes) -> int:
        """etcd's revision, by a linearizable read of ``key``."""
        ...

    async def put(self, key: bytes, value: bytes) -> int:
        """An unconditional put; its revision."""
        ...
