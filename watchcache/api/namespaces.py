"""The core v1 ``namespaces`` a caller may see, derived from the caches: read-only.

watchcache stores no Namespace objects (they belong to the cluster, not to the aggregated API servers
it serves), yet namespace-aware clients — kopf, informers scoped to namespaces — list and watch them
before anything else. So a namespace is served while at least one object of a namespaced resource the
caller may read lives in it, plus ``default`` always, as in every cluster. Only the resources the caller
may read count: a namespace holding nothing but another tenant's objects would tell of that tenant
(and of the names it chose), so it is not shown.

Each cache counts the objects of each namespace as they come and go (``Store.namespaces``) and keeps
its recent changes (the window); the state at revision N is the counts with every change after N
undone. All caches are fed from one etcd, so their changes have one order. A LIST is answered at one
revision that every cache has reached (consistent, as any LIST, when ``resourceVersion`` is unset). A
WATCH merges the caches' changes in revision order, first bringing every cache up to the newest change
among them (a progress write for those behind, as a consistent read does), so that no earlier change of
another cache can still be on its way: what it sends at resourceVersion N is the state at N, a
namespace appears (ADDED) with the first object in it and goes (DELETED) with the last, and a watch
resumed from any resourceVersion it was sent continues exactly. A resourceVersion older than a cache's
window is 410 Expired, as for any watch.
"""

from __future__ import annotations

import asyncio
import heapq
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..cache.cacher import Cache
from ..cache.window import Change, ChangeType
from ..errors import ExpiredError, NotFoundError, StatusError
from .options import ListOptions, WatchOptions, parse_revision
from .pages import decode_continue, encode_continue
from .resource import Resource
from .spec import PrinterColumn, ResourceSpec
from .storage import Storage
from .watch import INITIAL_EVENTS_END, EventTypeName, WatchEvent

__all__ = ["DEFAULT_NAMESPACE", "NAMESPACES", "NamespaceList", "NamespaceWatch", "Namespaces"]

NAMESPACES = ResourceSpec(
    group="",
    resource="namespaces",
    kind="Namespace",
    namespaced=False,
    versions=("v1",),
    printer_columns=(
        PrinterColumn(
            name="Status",
            type="string",
            json_path=".status.phase",
            description="The phase of the namespace (always Active here)",
        ),
    ),
)
"""The core resource served (for discovery, Tables, metrics and messages)."""

DEFAULT_NAMESPACE = "default"
"""The namespace every cluster has: always listed."""

NAME_LABEL = "kubernetes.io/metadata.name"
"""The label Kubernetes puts on every namespace (its name), so label selectors can pick namespaces."""

_UIDS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # RFC 4122's URL namespace


def namespace_object(name: str, revision: int) -> dict[str, Any]:
    """A Namespace as Kubernetes serves it; its uid is derived from its name, so every replica (and
    every restart) gives the same one."""
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": str(uuid.uuid5(_UIDS, f"watchcache:namespaces/{name}")),
            "resourceVersion": str(revision),
            "labels": {NAME_LABEL: name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _encode(name: str, revision: int) -> bytes:
    return orjson.dumps(namespace_object(name, revision))


def _moves(change: Change) -> Iterator[tuple[str, int]]:
    """How ``change`` moves the object counts of namespaces: (namespace, +1 or -1)."""
    if change.type is not ChangeType.DELETED and change.entry.served and change.entry.namespace:
        yield change.entry.namespace, 1
    prev = change.prev
    if prev is not None and prev.served and prev.namespace:
        yield prev.namespace, -1


def _count(counts: dict[str, int], change: Change, sign: int) -> None:
    """Apply ``change`` to ``counts`` (``sign`` -1: undo it)."""
    for namespace, delta in _moves(change):
        count = counts.get(namespace, 0) + sign * delta
        if count:
            counts[namespace] = count
        else:
            counts.pop(namespace, None)


@dataclass(frozen=True, slots=True)
class NamespaceList:
    """One LIST answer: the namespaces' JSON at one revision, and the token of the next page."""

    revision: int
    raw_items: list[bytes]
    continue_token: str | None = None
    remaining_item_count: int | None = None


class Namespaces:
    """The namespaces one caller may see: those of the namespaced ``resources`` it may read (see the
    module docstring)."""

    def __init__(self, storage: Storage, resources: Iterable[Resource]) -> None:
        self._storage = storage
        self._resources = [r for r in resources if r.spec.namespaced]
        #: The caches whose objects make the namespaces.
        self.caches: list[Cache] = [r.cache for r in self._resources]
        #: What a watch listens to for news, revisions and shutdown: those caches, or, when there are
        #: none (only ``default`` is served), every cache (their objects are never looked at).
        self.clocks: list[Cache] = self.caches or [r.cache for r in storage.resources]

    # -- the state at a revision --------------------------------------------------------------------

    async def at(self, revision: int | None, *, exact: bool = False) -> int:
        """The revision a read asking for ``revision`` is answered at, once every cache has reached it:
        None, consistent (every write etcd acknowledged before the call); 0, what the caches hold now;
        N, N itself when ``exact``, else the newest state every cache has, not older than N."""
        if not self._resources:  # nothing to count: only "default", at etcd's revision
            if revision:
                return revision
            return await self._storage.etcd.current_revision(self._storage.prefix.encode())
        for resource in self._resources:
            await resource.wait_ready()
        caches = self.caches
        if revision is None:
            targets = await asyncio.gather(*(cache.sync() for cache in caches))
            revision, exact = max(targets), True
        if revision:
            settings = caches[0].settings
            await asyncio.gather(*(cache.wait_for(revision, settings.wait_timeout) for cache in caches))
        if revision and exact:
            return revision
        return min(cache.revision for cache in caches)

    def counts(self, revision: int) -> dict[str, int]:
        """Objects per namespace at ``revision``, which every cache has reached; ExpiredError when a
        cache's window no longer reaches back to it."""
        total: dict[str, int] = {}
        for cache in self.caches:
            counts = dict(cache.state.store.namespaces)
            for change in reversed(cache.state.changes_since(revision)):
                _count(counts, change, -1)
            for namespace, count in counts.items():
                total[namespace] = total.get(namespace, 0) + count
        return total

    @staticmethod
    def names(counts: dict[str, int]) -> list[str]:
        """The namespaces served for ``counts``, sorted."""
        return sorted({namespace for namespace, count in counts.items() if count > 0} | {DEFAULT_NAMESPACE})

    # -- reads --------------------------------------------------------------------------------------

    async def list(self, options: ListOptions) -> NamespaceList:
        """A LIST of namespaces, as for any resource: selectors (``metadata.name``; the label
        ``kubernetes.io/metadata.name``), ``resourceVersion`` and ``resourceVersionMatch``, and
        ``limit``/``continue`` paging one revision."""
        if options.namespace:
            raise NotFoundError("the server could not find the requested resource")
        after = b""
        if options.continue_token:
            revision, after = decode_continue(options.continue_token, b"")
            revision = await self.at(revision, exact=True)
        else:
            revision = await self.at(options.revision, exact=options.exact)
        try:
            names = self.names(self.counts(revision))
        except ExpiredError:
            raise ExpiredError(
                f"too old resource version: {revision}: start a new list without resourceVersion or continue"
            ) from None
        selector = options.selector
        chosen = [
            name
            for name in names
            if name.encode() >= after and selector.matches(name, "", {NAME_LABEL: name})
        ]
        token = remaining = None
        if options.limit and len(chosen) > options.limit:
            remaining = len(chosen) - options.limit
            chosen = chosen[: options.limit]
            token = encode_continue(revision, chosen[-1].encode(), b"")
        return NamespaceList(revision, [_encode(name, revision) for name in chosen], token, remaining)

    async def get(self, name: str, *, resource_version: str | None = None) -> bytes:
        """One namespace's JSON; 404 NotFound when it is not served to this caller."""
        revision = await self.at(parse_revision(resource_version))
        if name not in self.names(self.counts(revision)):
            raise NotFoundError.for_object(NAMESPACES.resource, name)
        return _encode(name, revision)

    def watch(self, options: WatchOptions, *, bookmark_interval: float) -> NamespaceWatch:
        """A watch of the namespaces (see :class:`NamespaceWatch`)."""
        if options.namespace:
            raise NotFoundError("the server could not find the requested resource")
        return NamespaceWatch(self, options, bookmark_interval)


class NamespaceWatch:
    """A WATCH of the namespaces: the caches' changes merged in revision order (see the module
    docstring). ``next_events`` gives the next events; ``[]`` once the watch has ended (the cache
    stopped, etcd could not bring a cache up to date in time: the client watches again)."""

    def __init__(self, view: Namespaces, options: WatchOptions, bookmark_interval: float) -> None:
        self._view = view
        self._options = options
        self._bookmark_interval = bookmark_interval
        self._present: set[str] = set()
        self._counts: dict[str, int] = {}
        #: Every change up to this revision is merged.
        self._done = 0
        self._seen: list[int] = []
        self._bells: list[asyncio.Future[None] | None] = []
        self._pending: list[WatchEvent] = []
        self._opened = False
        self._ended = False
        self._next_bookmark = 0.0

    async def open(self) -> NamespaceWatch:
        """Start the watch; setup errors (bad parameters, 504 for a future resourceVersion) raise."""
        if self._opened:
            return self
        self._opened = True
        view, options = self._view, self._options
        start = await view.at(options.revision, exact=bool(options.revision))
        self._done = start
        # Every cache is at ``start`` or past it; whatever it holds after is for the first round.
        self._seen = [start] * len(view.clocks)
        self._bells = [None] * len(view.clocks)
        self._next_bookmark = asyncio.get_running_loop().time() + self._bookmark_interval
        try:
            self._counts = view.counts(start)
        except ExpiredError:
            self._end_with(ExpiredError(f"too old resource version: {start}"))
            return self
        self._present = set(view.names(self._counts))
        if options.initial:
            chosen = [name for name in sorted(self._present) if self._selected(name)]
            self._pending = [self._event("ADDED", name, start) for name in chosen]
            if options.initial_events_end:
                self._pending.append(self._bookmark(start, initial_events_end=True))
        return self

    def set_sink(self, sink: object) -> None:
        """No direct writes: namespace events are few, and made per watch."""

    def close(self) -> None:
        self._ended = True
        for bell in self._bells:
            if bell is None:
                continue
            if bell.done() and not bell.cancelled():
                bell.exception()  # the cache stopped: seen, nothing to report
            bell.cancel()
        self._bells = [None] * len(self._bells)

    async def next_events(self, max_bytes: int = 256 * 1024) -> list[WatchEvent]:
        """The next events (few and small: ``max_bytes`` does not matter); ``[]`` once ended."""
        await self.open()
        while True:
            if self._pending:
                events, self._pending = self._pending, []
                return events
            if self._ended:
                return []
            await self._round()

    # -- the merge ---------------------------------------------------------------------------------

    async def _round(self) -> None:
        """Wait for news from a cache (or a bookmark's time), then merge what is new."""
        loop = asyncio.get_running_loop()
        for i, cache in enumerate(self._view.clocks):
            bell = self._bells[i]
            if bell is None or bell.done():
                self._bells[i] = cache.reached(self._seen[i] + 1)
        bells = [bell for bell in self._bells if bell is not None]
        wait = max(0.0, self._next_bookmark - loop.time())
        if bells:
            await asyncio.wait(bells, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(wait)
        if any(bell.done() and not bell.cancelled() and bell.exception() for bell in bells):
            self._ended = True  # a cache stopped: the service is shutting down
            return
        try:
            await self._merge()
        except ExpiredError as err:
            self._end_with(err)
            return
        except StatusError:
            self._ended = True  # etcd could not bring a cache up to date: the client watches again
            return
        if self._options.allow_bookmarks and loop.time() >= self._next_bookmark:
            self._pending.append(self._bookmark(self._done))
        if loop.time() >= self._next_bookmark:
            self._next_bookmark = loop.time() + self._bookmark_interval

    async def _merge(self) -> None:
        caches = self._view.caches
        newest = 0
        for cache in caches:
            changes = cache.state.changes_since(self._done)
            if changes:
                newest = max(newest, changes[-1].revision)
        if not newest:
            # Nothing changed anywhere after what was merged, up to every cache's revision.
            self._seen = [cache.revision for cache in self._view.clocks]
            if self._seen:
                self._done = max(self._done, min(self._seen))
            return
        # A cache behind the newest change may still receive an earlier change of its own.
        settings = caches[0].settings
        await asyncio.gather(
            *(cache.wait_for(newest, settings.sync_timeout) for cache in caches if cache.revision < newest)
        )
        runs = [
            [c for c in cache.state.changes_since(self._done) if c.revision <= newest] for cache in caches
        ]
        # A cache past ``newest`` rings again at once: its later changes are the next round's.
        self._seen = [min(cache.revision, newest) for cache in caches]
        revision, touched = 0, set[str]()
        for change in heapq.merge(*runs, key=lambda c: c.revision):
            if change.revision != revision:
                self._flips(touched, revision)
                revision, touched = change.revision, set()
            _count(self._counts, change, 1)
            touched.update(namespace for namespace, _ in _moves(change))
        self._flips(touched, revision)
        self._done = newest

    def _flips(self, touched: set[str], revision: int) -> None:
        """Events for the namespaces among ``touched`` that appeared or went at ``revision``."""
        for name in sorted(touched):
            now = name == DEFAULT_NAMESPACE or self._counts.get(name, 0) > 0
            if now == (name in self._present):
                continue
            if now:
                self._present.add(name)
            else:
                self._present.discard(name)
            if self._selected(name):
                self._pending.append(self._event("ADDED" if now else "DELETED", name, revision))

    # -- events ------------------------------------------------------------------------------------

    def _selected(self, name: str) -> bool:
        return self._options.selector.matches(name, "", {NAME_LABEL: name})

    @staticmethod
    def _event(kind: EventTypeName, name: str, revision: int) -> WatchEvent:
        return WatchEvent(kind, _encode(name, revision), revision)

    @staticmethod
    def _bookmark(revision: int, *, initial_events_end: bool = False) -> WatchEvent:
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_events_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return WatchEvent(
            "BOOKMARK", orjson.dumps({"kind": "Namespace", "apiVersion": "v1", "metadata": meta}), revision
        )

    def _end_with(self, err: StatusError) -> None:
        self._pending.append(WatchEvent("ERROR", orjson.dumps(err.status()), 0))
        self._ended = True
