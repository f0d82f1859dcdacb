"""Kubernetes API semantics of one resource, over its cache and etcd: the embedded Python API.

:class:`Resource` is what ``Storage.resource(spec)`` returns. It decides what a call means — through
:mod:`.options` (parameters), :mod:`.reads` (GET, LIST), :mod:`.watch` (WATCH) and :mod:`.writes`
(create, update, patch, delete, dry run) — following kube-apiserver. Reads are served from the cache;
writes go to etcd, one transaction each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..cache.cacher import Cache
from ..cache.settings import CacheStats
from ..etcd.client import EtcdClient
from .context import Context
from .options import ListOptions, WatchOptions, parse_revision
from .pages import ListResult, Page
from .reads import get_raw, list_page
from .spec import ResourceSpec
from .watch import Watch
from .writes import Quota, Writes

__all__ = ["Resource"]


class Resource:
    """Kubernetes-style LIST, GET, WATCH and writes for one resource (see the README)."""

    def __init__(self, spec: ResourceSpec, cache: Cache, etcd: EtcdClient) -> None:
        self.spec = spec
        self.cache = cache
        self._ctx = Context(spec, cache, etcd)
        self._writes = Writes(self._ctx)

    # -- state -------------------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        """Whether the cache's initial list is in."""
        return self.cache.ready

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the cache's initial load (429 TooManyRequests after ``timeout``)."""
        await self._ctx.wait_ready(timeout)

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

    async def list(
        self,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | int | None = None,
        resource_version_match: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        version: str | None = None,
    ) -> ListResult:
        """LIST as Kubernetes defines it, served from the cache.

        resourceVersion unset: consistent (every write etcd acknowledged before the call is in).
        ``0``: any cached state, at once. ``N``: a state at least as new as N (waits up to 3 s, then
        504). ``resource_version_match="Exact"``: the state at exactly N. ``limit``/``continue``:
        pages of one snapshot.
        """
        options = ListOptions.of(
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            resource_version_match=resource_version_match,
            limit=limit,
            continue_token=continue_token,
            version=version,
        )
        return (await self.list_page(options)).result()

    async def list_page(self, options: ListOptions) -> Page:
        """:meth:`list` as a :class:`Page` of cached entries: what a front streams from."""
        return await list_page(self._ctx, options)

    # -- watch -------------------------------------------------------------------------------------

    def watch(
        self,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | int | None = None,
        resource_version_match: str | None = None,
        send_initial_events: bool | None = None,
        allow_bookmarks: bool = False,
        version: str | None = None,
    ) -> Watch:
        """A watch, started on first use: ``async for event in resource.watch(...)`` (see
        :mod:`watchcache.api.watch` for where it starts and what it is sent)."""
        return self.watch_with(
            WatchOptions.of(
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resource_version=resource_version,
                resource_version_match=resource_version_match,
                send_initial_events=send_initial_events,
                allow_bookmarks=allow_bookmarks,
                version=version,
            )
        )

    def watch_with(self, options: WatchOptions) -> Watch:
        """:meth:`watch` with options already parsed (a front's)."""
        return Watch(self._ctx, options)

    # -- writes ------------------------------------------------------------------------------------

    async def create(
        self,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
        version: str | None = None,
        quota: Quota | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Create ``obj`` (409 AlreadyExists if its name is taken); returns it as stored (a dry run:
        as it would be stored, without a resourceVersion)."""
        return await self._writes.create(
            obj, namespace=namespace, version=version, quota=quota, dry_run=dry_run
        )

    async def update(
        self,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
        name: str | None = None,
        version: str | None = None,
        quota: Quota | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace an existing object (404 if absent). A ``metadata.resourceVersion`` in ``obj``
        must equal the current one (409 Conflict); ``uid`` and ``creationTimestamp`` are kept.
        ``name``, when given (the request's URL names the object), must agree with the body's."""
        return await self._writes.update(
            obj, namespace=namespace, name=name, version=version, quota=quota, dry_run=dry_run
        )

    async def patch(
        self,
        name: str,
        patch: object,
        *,
        patch_type: str,
        namespace: str | None = None,
        version: str | None = None,
        quota: Quota | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Apply a merge patch or JSON patch (``patch_type``, the patch as parsed JSON) to the current
        object, bounded as it applies (see :mod:`watchcache.api.patch`), and write the result."""
        return await self._writes.patch(
            name,
            patch,
            patch_type=patch_type,
            namespace=namespace,
            version=version,
            quota=quota,
            dry_run=dry_run,
        )

    async def guaranteed_update(
        self,
        name: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        namespace: str | None = None,
        version: str | None = None,
        resource_version: int | None = None,
        quota: Quota | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Apply ``mutate`` to the current object and write the result with a precondition on the
        revision it was computed from, retrying on conflicts — kube-apiserver's GuaranteedUpdate."""
        return await self._writes.guaranteed_update(
            name,
            mutate,
            namespace=namespace,
            version=version,
            resource_version=resource_version,
            quota=quota,
            dry_run=dry_run,
        )

    async def delete(
        self,
        name: str,
        *,
        namespace: str | None = None,
        resource_version: str | int | None = None,
        uid: str | None = None,
        version: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete an object; returns it with the deletion's resourceVersion (a dry run: as it is).
        ``resource_version`` and ``uid`` are preconditions (409 Conflict when they do not hold)."""
        return await self._writes.delete(
            name,
            namespace=namespace,
            resource_version=resource_version,
            uid=uid,
            version=version,
            dry_run=dry_run,
        )

    def __repr__(self) -> str:
        return f"<Resource {self.spec.qualified}>"
