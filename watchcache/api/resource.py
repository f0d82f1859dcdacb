"""Kubernetes API semantics of one resource, over its cache and etcd: the embedded Python API.

:class:`Resource` is what ``Storage.resource(spec)`` returns. It decides what a call means — through
:mod:`.options` (parameters), :mod:`.reads` (GET, LIST), :mod:`.watch` (WATCH) and :mod:`.writes`
(create, update, patch, delete, dry run) — following kube-apiserver. Reads are served from the cache;
writes go to etcd, one transaction each.
"""

from __future__ import annotations

from typing import Any, Unpack

import orjson

from ..cache.cacher import Cache
from ..cache.settings import CacheStats
from ..etcd.client import EtcdClient
from .context import Context
from .options import ListArgs, ListOptions, WatchArgs, WatchOptions, parse_revision
from .pages import ListResult, Page
from .reads import get_raw, list_page
from .spec import ResourceSpec
from .watch import Watch
from .writes import Writes

__all__ = ["Resource"]


class Resource(Writes):
    """Kubernetes-style LIST, GET, WATCH and writes for one resource (see the README): the writes
    (create, update, patch, guaranteed_update, delete) are :class:`~.writes.Writes`'."""

    def __init__(self, spec: ResourceSpec, cache: Cache, etcd: EtcdClient) -> None:
        super().__init__(Context(spec, cache, etcd))

    # -- state -------------------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        """Whether the cache's initial list is in."""
        return self.cache.ready

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the cache's initial load; after ``timeout``, 503 ``etcd is unreachable (…)``
        when that is why, else 429 TooManyRequests."""
        await self._ctx.wait_ready(timeout)

    def check_ready(self) -> None:
        """Raise what :meth:`wait_ready` would, at once, unless the cache has loaded."""
        self._ctx.check_ready()

    @property
    def object_count(self) -> int:
        """Objects held in the cache."""
        return len(self.cache.state.store)

    @property
    def stored_bytes(self) -> int:
        """Bytes of the cached objects' values, as etcd holds them."""
        return self.cache.state.store.value_bytes

    @property
    def window_events(self) -> int:
        """Recent changes held for watches from the past."""
        return len(self.cache.state.window)

    @property
    def watcher_count(self) -> int:
        """Open watchers."""
        return self.cache.watcher_count

    @property
    def revision(self) -> int:
        """The etcd revision the cache has reached."""
        return self.cache.revision

    @property
    def stats(self) -> CacheStats:
        """The cache's counters (events, restarts, relists, ...)."""
        return self.cache.stats

    # -- reads -------------------------------------------------------------------------------------

    async def get_raw(
        self,
        name: str,
        *,
        namespace: str | None = None,
        resource_version: str | int | None = None,
        version: str | None = None,
    ) -> bytes:
        """One object's JSON. resourceVersion unset: consistent; ``0``: any cached state; ``N``: at
        least as new as N."""
        revision = parse_revision(resource_version)
        return await get_raw(self._ctx, name, namespace=namespace, revision=revision, version=version)

    async def get(
        self,
        name: str,
        *,
        namespace: str | None = None,
        resource_version: str | int | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """One object (see :meth:`get_raw`)."""
        raw = await self.get_raw(
            name, namespace=namespace, resource_version=resource_version, version=version
        )
        obj: dict[str, Any] = orjson.loads(raw)
        return obj

    async def list(self, **args: Unpack[ListArgs]) -> ListResult:
        """LIST as Kubernetes defines it, served from the cache (see :class:`~.options.ListArgs` for the
        arguments and :mod:`.reads` for what they mean): resourceVersion unset is consistent, ``0``
        any cached state at once, ``N`` at least as new as N (504 after 3 s), ``Exact`` exactly N;
        ``limit``/``continue_token`` page one snapshot."""
        return (await self.list_page(ListOptions.of(**args))).result()

    async def list_page(self, options: ListOptions) -> Page:
        """:meth:`list` as a :class:`Page` of cached entries: what a front streams from."""
        return await list_page(self._ctx, options)

    # -- watch -------------------------------------------------------------------------------------

    def watch(self, **args: Unpack[WatchArgs]) -> Watch:
        """A watch, started on first use: ``async for event in resource.watch(...)`` (see
        :class:`~.options.WatchArgs` for the arguments and :mod:`watchcache.api.watch` for where it
        starts and what it is sent)."""
        return self.watch_with(WatchOptions.of(**args))

    def watch_with(self, options: WatchOptions) -> Watch:
        """:meth:`watch` with options already parsed (a front's)."""
        return Watch(self._ctx, options)

    def __repr__(self) -> str:
        return f"<Resource {self.spec.qualified}>"
