"""Kubernetes API semantics of one resource, over its cache and etcd: the embedded Python API.

This module decides what a request means — resourceVersion and resourceVersionMatch rules, selectors,
pages and continue tokens, watch start points and bookmarks, and the writes with their preconditions —
following kube-apiserver. Reads are served from the cache; writes go to etcd, one transaction each.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import dataclasses
import datetime
import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol

import orjson

from ._cacher import Cache
from ._errors import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    ExpiredError,
    InternalError,
    InvalidError,
    NotFoundError,
    RequestEntityTooLargeError,
    StatusError,
)
from ._etcd import KeyValue
from ._history import _WIRE_HEAD, Change, ChangeType, wire_object
from ._patch import PatchLimits, parse_patch
from ._selectors import Selector
from ._store import Codec, Entry, Snapshot
from ._watchers import Bookmark, CacheWatcher, Enter, Initial, Item, Leave, WatchErrorItem, item_size

__all__ = [
    "DEFAULT_MAX_OBJECT_BYTES",
    "ListResult",
    "Page",
    "Quota",
    "Resource",
    "ResourceSpec",
    "Watch",
    "WatchEvent",
]

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
DEFAULT_MAX_OBJECT_BYTES = 1_572_864
"""Largest object written (etcd's default request limit, 1.5 MiB), unless a quota says otherwise."""
_DEFAULT_MAX_DEPTH = 64
_MAX_WRITE_ATTEMPTS = 16
_CONTINUE_VERSION = "watchcache/v1"
# Kubernetes' generateName alphabet: no vowels (no words), no look-alikes.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class Quota(Protocol):
    """A writer's limits (the HTTP layer's per-tenant quotas): ``reserve`` raises when there is no
    room for a write, and is held until the cache has seen it; objects larger than
    ``max_object_bytes`` are refused (413) before anything is written."""

    @property
    def max_object_bytes(self) -> int: ...

    @property
    def max_json_depth(self) -> int: ...

    def reserve(self, *, objects: int, size: int) -> AbstractAsyncContextManager[None]: ...


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """A served resource: all ``versions`` share one storage (no conversion)."""

    group: str
    """API group, e.g. ``wardle.example.com``."""
    resource: str
    """Plural, lower-case resource name, e.g. ``flunders``."""
    kind: str
    """Kind of one object, e.g. ``Flunder``; lists are ``{kind}List``."""
    namespaced: bool = True
    """Whether objects live in namespaces."""
    versions: tuple[str, ...] = ("v1",)
    """Served versions; the first is the default of the Python API."""

    @property
    def qualified(self) -> str:
        """``resource.group``, as Kubernetes names a resource in messages."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


@dataclass(frozen=True, slots=True)
class ListResult:
    """One LIST answer: raw items are the objects' JSON, serialized once when they entered the cache."""

    resource_version: str
    continue_token: str | None
    remaining_item_count: int | None
    raw_items: list[bytes]

    @property
    def items(self) -> list[dict[str, Any]]:
        """The items as dicts (parsed on each access)."""
        return [orjson.loads(raw) for raw in self.raw_items]


@dataclass(frozen=True, slots=True)
class Page:
    """One LIST answer as references to the cache's entries, whose bytes every reader shares.

    Nothing is copied until a reader asks: :meth:`item` gives one item's bytes as served through
    the page's version (the cached bytes themselves for the primary version, a copy with another
    ``apiVersion`` head otherwise), so a front can write a large answer piece by piece without ever
    holding a second copy of it.
    """

    revision: int
    continue_token: str | None
    remaining_item_count: int | None
    entries: Sequence[Entry]
    api_version: str
    codec: Codec

    def item(self, entry: Entry) -> bytes:
        return self.codec.for_version(entry.json, self.api_version)

    def result(self) -> ListResult:
        return ListResult(
            str(self.revision),
            self.continue_token,
            self.remaining_item_count,
            [self.item(entry) for entry in self.entries],
        )


EventTypeName = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event, as it goes on the wire: ``type`` and the object's JSON."""

    type: EventTypeName
    raw: bytes
    """The object's JSON (a ``Status`` for ERROR)."""
    revision: int
    """The event's resourceVersion (0 for ERROR)."""

    @property
    def object(self) -> dict[str, Any]:
        obj: dict[str, Any] = orjson.loads(self.raw)
        return obj


def _parse_revision(value: str | int | None, what: str = "resourceVersion") -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        revision = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        revision = int(value)
    else:
        raise BadRequestError(f"invalid {what}: {str(value)[:64]!r}: must be a non-negative integer")
    if revision < 0:
        raise BadRequestError(f"invalid {what}: {revision}: must be a non-negative integer")
    return revision


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class _Cut:
    """What part of a state a LIST answers with."""

    start: bytes
    end: bytes
    selector: Selector
    limit: int
    api_version: str


class Resource:
    """Kubernetes-style LIST, GET, WATCH and writes for one resource (see the README)."""

    def __init__(self, spec: ResourceSpec, cache: Cache) -> None:
        self.spec = spec
        self.cache = cache
        self._layout = cache.layout
        self._codec = cache.codec
        self._default_version = spec.versions[0]

    # -- helpers -----------------------------------------------------------------------------------

    def _api_version(self, version: str | None) -> str:
        version = version or self._default_version
        if version not in self.spec.versions:
            raise NotFoundError(f"version {version!r} of {self.spec.qualified} is not served")
        return self.spec.api_version(version)

    @property
    def is_ready(self) -> bool:
        return self.cache.ready.is_set()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the cache's initial load (429 TooManyRequests after ``timeout``)."""
        await self.cache.wait_ready(self.cache.settings.ready_timeout if timeout is None else timeout)

    async def _fresh(self, revision: int | None) -> int:
        """Bring the cache to a state a read at ``revision`` may see; None means consistent."""
        await self.wait_ready()
        if revision is None:
            return await self.cache.sync()
        if revision > 0:
            await self.cache.wait_for(revision, self.cache.settings.wait_timeout)
        return revision

    def _scope(self, namespace: str | None) -> str | None:
        """The namespace a collection request is restricted to (validated), or None for all."""
        if namespace is None or namespace == "":
            return None
        if not self.spec.namespaced:
            raise BadRequestError(f"{self.spec.qualified} is not namespaced")
        self._layout.list_range(namespace)  # validates
        return namespace

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
        api_version = self._api_version(version)
        key = self._layout.object_key(namespace, name)
        await self._fresh(_parse_revision(resource_version))
        entry = self.cache.store.get(key)
        if entry is None:
            raise NotFoundError.for_object(self.spec.qualified, name)
        return self._codec.for_version(entry.json, api_version)

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
        page = await self.list_page(
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            resource_version_match=resource_version_match,
            limit=limit,
            continue_token=continue_token,
            version=version,
        )
        return page.result()

    async def list_page(
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
    ) -> Page:
        """:meth:`list` as a :class:`Page` of cached entries: what a front streams from."""
        api_version = self._api_version(version)
        scope = self._scope(namespace)
        selector = Selector.parse(label_selector, field_selector)
        if limit is not None and limit < 0:
            raise BadRequestError(f"invalid limit: {limit}: must be a non-negative integer")
        limit = limit or 0
        revision = _parse_revision(resource_version)
        start, end = self._layout.list_range(scope)
        cut = _Cut(start=start, end=end, selector=selector, limit=limit, api_version=api_version)

        if continue_token:
            if revision is not None:
                raise BadRequestError("specifying resource version is not allowed when using continue")
            if resource_version_match:
                raise BadRequestError("resourceVersionMatch is forbidden when using continue")
            at, after = self._decode_continue(continue_token)
            await self.wait_ready()
            if at > self.cache.revision:
                # Another replica's token may be a little ahead of this cache; a revision etcd has
                # never reached is not one any server handed out.
                if at > await self.cache.etcd.current_revision(self._layout.progress_key):
                    raise BadRequestError(
                        f"invalid continue token: its resourceVersion {at} is newer than the storage's"
                    )
                await self.cache.wait_for(at, self.cache.settings.wait_timeout)
            return await self._page_at(at, dataclasses.replace(cut, start=max(after, start)))

        exact = self._match(resource_version_match, revision)
        await self._fresh(revision)
        if exact:
            assert revision is not None
            if revision > self.cache.revision:
                await self.cache.wait_for(revision, self.cache.settings.wait_timeout)
            return await self._page_at(revision, cut)
        if limit:
            return self._page(self.cache.snapshot(), cut)
        entries = self.cache.store.values(start, end)
        if not selector.empty:
            matches = selector.matches
            entries = (e for e in entries if matches(e.name, e.namespace, e.labels))
        return Page(self.cache.revision, None, None, builtins.list(entries), api_version, self._codec)

    @staticmethod
    def _match(match: str | None, revision: int | None) -> bool:
        """Whether the list is Exact; validates resourceVersionMatch as Kubernetes does."""
        if not match:
            return False
        if match not in ("NotOlderThan", "Exact"):
            raise BadRequestError(
                f"unsupported resourceVersionMatch {match[:64]!r}: want NotOlderThan or Exact"
            )
        if revision is None:
            raise BadRequestError("resourceVersionMatch is forbidden unless resourceVersion is set")
        if match == "Exact" and revision == 0:
            raise BadRequestError('resourceVersionMatch "Exact" is forbidden for resourceVersion 0')
        return match == "Exact"

    async def _page_at(self, revision: int, cut: _Cut) -> Page:
        snap = self.cache.state_at(revision)
        if snap is not None:
            return self._page(snap, cut)
        if revision > self.cache.revision:
            raise InternalError(f"revision {revision} is ahead of the cache")
        # Older than the window: etcd still has it unless it was compacted.
        try:
            entries, more = await self.cache.read_at(revision, cut.start, cut.end, cut.limit)
        except ExpiredError:
            raise ExpiredError(
                f"too old resource version: {revision}: the state there was compacted; "
                "start a new list without resourceVersion or continue"
            ) from None
        return self._page(Snapshot(revision, entries), cut, more_in_etcd=more)

    def _page(self, snap: Snapshot, cut: _Cut, *, more_in_etcd: bool = False) -> Page:
        entries = snap.entries
        i = snap.position(cut.start)
        stop = snap.position(cut.end) if cut.end else len(entries)
        selector, limit = cut.selector, cut.limit
        items: builtins.list[Entry] = []
        last: Entry | None = None
        while i < stop and (not limit or len(items) < limit):
            entry = entries[i]
            i += 1
            last = entry
            if selector.empty or selector.matches(entry.name, entry.namespace, entry.labels):
                items.append(entry)
        more = i < stop or more_in_etcd
        token = None
        remaining = None
        if more and last is not None:
            token = self._encode_continue(snap.revision, last.key)
            if selector.empty and not more_in_etcd:
                remaining = stop - i
        return Page(snap.revision, token, remaining, items, cut.api_version, self._codec)

    def _encode_continue(self, revision: int, last_key: bytes) -> str:
        suffix = last_key[len(self._layout.resource_prefix) :].decode()
        raw = orjson.dumps({"v": _CONTINUE_VERSION, "rv": revision, "start": suffix + "\0"})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _decode_continue(self, token: str) -> tuple[int, bytes]:
        """(revision, first key to return) of a continue token; 400 for anything not ours."""
        try:
            padded = token + "=" * (-len(token) % 4)
            data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            if not isinstance(data, dict) or data.get("v") != _CONTINUE_VERSION:
                raise ValueError("not a watchcache continue token")
            revision, start = data["rv"], data["start"]
            if not isinstance(revision, int) or isinstance(revision, bool) or revision <= 0:
                raise ValueError("bad revision")
            # The start key only bounds a range inside the list's own range, so any string is
            # harmless; the length bound keeps keys sane.
            if not isinstance(start, str) or not start or len(start) > 1024:
                raise ValueError("bad start key")
        except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error) as err:
            raise BadRequestError(f"invalid continue token: {err}") from None
        return revision, self._layout.resource_prefix + start.encode()

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
        """A watch, started on first use: ``async for event in resource.watch(...)``.

        From ``resource_version=N``: every change after N, in order. Unset or ``0``: ADDED for every
        current object, then changes (unset waits for a consistent state first). With
        ``send_initial_events=True`` (and ``allow_bookmarks``), the initial ADDEDs end with a
        BOOKMARK annotated ``k8s.io/initial-events-end``. A resourceVersion older than the cache's
        window yields one ERROR event (410 Expired) and the watch ends.
        """
        return Watch(
            self,
            dict(
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resource_version=resource_version,
                resource_version_match=resource_version_match,
                send_initial_events=send_initial_events,
                allow_bookmarks=allow_bookmarks,
                version=version,
            ),
        )

    async def _open_watch(
        self,
        *,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        resource_version: str | int | None,
        resource_version_match: str | None,
        send_initial_events: bool | None,
        allow_bookmarks: bool,
        version: str | None,
    ) -> tuple[CacheWatcher | None, Item | None, str]:
        api_version = self._api_version(version)
        scope = self._scope(namespace)
        selector = Selector.parse(label_selector, field_selector)
        revision = _parse_revision(resource_version)
        if send_initial_events is not None:
            if resource_version_match != "NotOlderThan":
                raise BadRequestError("sendInitialEvents requires resourceVersionMatch=NotOlderThan")
            if send_initial_events and not allow_bookmarks:
                raise BadRequestError("sendInitialEvents requires allowWatchBookmarks=true")
        elif resource_version_match:
            raise BadRequestError(
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is set"
            )
        await self._fresh(revision)
        initial = (revision in (None, 0)) if send_initial_events is None else send_initial_events
        since = None if initial else (revision or self.cache.revision)
        try:
            watcher = self.cache.watch(
                selector=selector,
                namespace=scope,
                since=since,
                allow_bookmarks=allow_bookmarks,
                initial_end_bookmark=bool(send_initial_events),
            )
        except ExpiredError as err:
            return None, WatchErrorItem(err.status()), api_version
        return watcher, None, api_version

    # -- writes ------------------------------------------------------------------------------------
    #
    # Every write takes ``dry_run``: as Kubernetes does it, the request is validated, admitted
    # (quotas included) and computed against etcd's current state, and the would-be result is
    # returned; nothing is written. ``quota`` carries a writer's limits (see :class:`Quota`).

    def _served(self, obj: dict[str, Any], revision: int | None, api_version: str) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if revision is None:
            meta.pop("resourceVersion", None)  # a dry-run create: nothing was stored
        else:
            meta["resourceVersion"] = str(revision)
        obj["apiVersion"] = api_version
        obj.setdefault("kind", self.spec.kind)
        return obj

    def _metadata(self, obj: object) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise BadRequestError("the object must be a JSON object")
        meta = obj.get("metadata", {})
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise BadRequestError("metadata must be a JSON object")
        return dict(meta)

    def _identity(self, obj: object, api_version: str, name: str | None = None) -> dict[str, Any]:
        """A copy of ``obj``'s metadata, once its apiVersion, kind and (when the request names the
        object) name agree with the request: 400 otherwise, as kube-apiserver answers."""
        meta = self._metadata(obj)
        assert isinstance(obj, dict)
        body_version = obj.get("apiVersion")
        if body_version is not None and body_version != api_version:
            raise BadRequestError(
                f"the API version in the data ({str(body_version)[:100]}) does not match the expected "
                f"API version ({api_version})"
            )
        kind = obj.get("kind")
        if kind is not None and kind != self.spec.kind:
            raise BadRequestError(
                f"the kind in the data ({str(kind)[:100]}) does not match the expected kind "
                f"({self.spec.kind})"
            )
        if name is not None:
            body_name = meta.get("name")
            if body_name is not None and body_name != name:
                raise BadRequestError(
                    f"the name of the object ({str(body_name)[:100]}) does not match the name on the URL "
                    f"({name[:100]})"
                )
            meta["name"] = name
        return meta

    def _namespace_of(self, meta: dict[str, Any], namespace: str | None) -> str | None:
        body_ns = meta.get("namespace")
        if body_ns is not None and not isinstance(body_ns, str):
            raise BadRequestError("metadata.namespace must be a string")
        if not self.spec.namespaced:
            if namespace:
                raise BadRequestError(f"{self.spec.qualified} is not namespaced")
            meta.pop("namespace", None)
            return None
        if namespace and body_ns and body_ns != namespace:
            raise BadRequestError(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        ns = namespace or body_ns
        if not ns:
            raise BadRequestError(f"a namespace is required for {self.spec.qualified}")
        meta["namespace"] = ns
        return str(ns)

    def _encode(self, stored: dict[str, Any], name: str, quota: Quota | None) -> bytes:
        """The value written to etcd; 413 when larger than the writer may store."""
        try:
            value = orjson.dumps(stored)
        except (orjson.JSONEncodeError, TypeError) as err:
            raise BadRequestError(f"the object cannot be encoded as JSON: {err}") from None
        limit = quota.max_object_bytes if quota is not None else DEFAULT_MAX_OBJECT_BYTES
        if len(value) > limit:
            raise RequestEntityTooLargeError(
                f'{self.spec.kind} "{name[:100]}" would be {len(value)} bytes, more than the {limit} '
                "allowed; nothing was written"
            )
        return value

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
        api_version = self._api_version(version)
        meta = self._identity(obj, api_version)
        ns = self._namespace_of(meta, namespace)
        name = meta.get("name")
        if not name:
            generate = meta.get("generateName")
            if not generate or not isinstance(generate, str):
                raise InvalidError(
                    "metadata.name: Required value: name or generateName is required",
                    details={"kind": self.spec.kind, "causes": [{"field": "metadata.name"}]},
                )
            name = generate + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
        if not isinstance(name, str):
            raise BadRequestError("metadata.name must be a string")
        key = self._layout.object_key(ns, name)
        meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=_now())
        meta.pop("resourceVersion", None)
        stored = {**obj, "apiVersion": api_version, "metadata": meta}
        stored.setdefault("kind", self.spec.kind)
        value = self._encode(stored, name, quota)
        if dry_run:
            async with self._reserve(quota, objects=1, size=len(value)):
                _, existing = await self.cache.etcd.get(key)
            if existing is not None:
                raise AlreadyExistsError.for_object(self.spec.qualified, name)
            return self._served(stored, None, api_version)
        async with self._reserve(quota, objects=1, size=len(value)):
            result = await self.cache.etcd.create(key, value)
            if not result.succeeded:
                raise AlreadyExistsError.for_object(self.spec.qualified, name)
            await self._settle(quota, result.revision)
        return self._served(stored, result.revision, api_version)

    def _reserve(self, quota: Quota | None, *, objects: int, size: int) -> AbstractAsyncContextManager[None]:
        return quota.reserve(objects=objects, size=size) if quota is not None else nullcontext()

    async def _settle(self, quota: Quota | None, revision: int) -> None:
        """With a quota, hold the reservation until the cache counts the write."""
        if quota is not None:
            # The write is done either way; counting it late only delays the next quota check.
            with suppress(StatusError):
                await self.cache.wait_for(revision, self.cache.settings.wait_timeout)

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
        meta = self._identity(obj, self._api_version(version), name)
        ns = self._namespace_of(meta, namespace)
        name = meta.get("name")
        if not name or not isinstance(name, str):
            raise BadRequestError("metadata.name is required for an update")
        precondition = _parse_revision(meta.get("resourceVersion"), "metadata.resourceVersion")
        body = {**obj, "metadata": meta}
        return await self.guaranteed_update(
            name,
            lambda _current: body,
            namespace=ns,
            version=version,
            resource_version=precondition,
            quota=quota,
            dry_run=dry_run,
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
        """Apply a patch (``patch_type`` ``application/merge-patch+json`` or
        ``application/json-patch+json``, as parsed JSON) to the current object and write the result
        with a revision precondition, retrying on conflicts. The patch is bounded as it applies:
        413 when the result would exceed the object size limit, 422 when it is too deep or does not
        apply, 400 when it is malformed, 415 for another patch type."""
        api_version = self._api_version(version)
        limits = PatchLimits(
            max_bytes=quota.max_object_bytes if quota is not None else DEFAULT_MAX_OBJECT_BYTES,
            max_depth=quota.max_json_depth if quota is not None else _DEFAULT_MAX_DEPTH,
        )
        mutation = parse_patch(patch_type, patch, limits)

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            patched = mutation(current)
            meta = self._identity(patched, api_version, name)
            if self.spec.namespaced:
                self._namespace_of(meta, namespace)
            patched["metadata"] = meta
            return patched

        return await self.guaranteed_update(
            name, mutate, namespace=namespace, version=version, quota=quota, dry_run=dry_run
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
        revision it was computed from, retrying on conflicts — kube-apiserver's GuaranteedUpdate.

        ``resource_version`` (or a ``metadata.resourceVersion`` that ``mutate`` returns) must match
        the current one, else 409 Conflict.
        """
        api_version = self._api_version(version)
        key = self._layout.object_key(namespace, name)
        # A dry run has no write to fail on a stale cached copy: it starts from etcd's own state.
        current, fresh = await (self._from_etcd(key) if dry_run else self._suggested(key))
        for _ in range(_MAX_WRITE_ATTEMPTS):
            if current is None:
                raise NotFoundError.for_object(self.spec.qualified, name)
            if resource_version is not None and resource_version != current.mod_revision:
                if not fresh:  # the cache may lag: only etcd's answer can refuse
                    current, fresh = await self._from_etcd(key)
                    continue
                raise self._conflict(name)
            obj = self._decode_stored(current, name)
            uid, created = obj["metadata"].get("uid"), obj["metadata"].get("creationTimestamp")
            self._served(obj, current.mod_revision, api_version)
            new = mutate(obj)
            meta = self._metadata(new)
            wanted = _parse_revision(meta.pop("resourceVersion", None), "metadata.resourceVersion")
            if wanted is not None and wanted != current.mod_revision:
                if not fresh:
                    current, fresh = await self._from_etcd(key)
                    continue
                raise self._conflict(name)
            # Identity is the key's, whatever the mutation says.
            meta.update(name=name, uid=uid, creationTimestamp=created)
            if self.spec.namespaced:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            stored = {**new, "apiVersion": api_version, "metadata": meta}
            stored.setdefault("kind", self.spec.kind)
            value = self._encode(stored, name, quota)
            if value == current.value:
                # A no-op is only a no-op against etcd's state, not against a cached copy.
                if not fresh:
                    current, fresh = await self._from_etcd(key)
                    continue
                return self._served(stored, current.mod_revision, api_version)
            growth = len(value) - len(current.value)
            if dry_run:
                async with self._reserve(quota, objects=0, size=growth):
                    return self._served(stored, current.mod_revision, api_version)
            async with self._reserve(quota, objects=0, size=growth):
                result = await self.cache.etcd.replace(key, value, mod_revision=current.mod_revision)
                if result.succeeded:
                    await self._settle(quota, result.revision)
                    return self._served(stored, result.revision, api_version)
            current, fresh = result.current, True
        raise ConflictError.for_object(self.spec.qualified, name, "too many concurrent writers; try again")

    async def _suggested(self, key: bytes) -> tuple[KeyValue | None, bool]:
        """The state a write starts from, and whether it is etcd's own (fresh) answer.

        The cached copy saves a read, as kube-apiserver's GuaranteedUpdate does; it may lag, so a
        verdict against it (a failed precondition, a no-op) is only final after :meth:`_from_etcd`.
        """
        cached = self.cache.store.get(key)
        if cached is not None:
            return cached.kv, False
        return await self._from_etcd(key)

    async def _from_etcd(self, key: bytes) -> tuple[KeyValue | None, bool]:
        _, current = await self.cache.etcd.get(key)
        return current, True

    def _conflict(self, name: str) -> ConflictError:
        return ConflictError.for_object(
            self.spec.qualified,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )

    def _decode_stored(self, kv: KeyValue, name: str) -> dict[str, Any]:
        try:
            obj = orjson.loads(kv.value)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            raise InternalError(f'{self.spec.qualified} "{name}": stored value is not a JSON object')
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        return obj

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
        ``resource_version`` and ``uid`` are preconditions (409 Conflict when they do not hold);
        404 if absent."""
        api_version = self._api_version(version)
        key = self._layout.object_key(namespace, name)
        precondition = _parse_revision(resource_version, "preconditions.resourceVersion")
        current, fresh = await (self._from_etcd(key) if dry_run else self._suggested(key))
        for _ in range(_MAX_WRITE_ATTEMPTS):
            if current is None:
                raise NotFoundError.for_object(self.spec.qualified, name)
            obj = self._decode_stored(current, name)
            problem = None
            if precondition is not None and precondition != current.mod_revision:
                problem = (
                    f"Precondition failed: ResourceVersion in precondition: {precondition}, "
                    f"ResourceVersion in object meta: {current.mod_revision}"
                )
            elif uid is not None and uid != obj["metadata"].get("uid"):
                problem = (
                    f"Precondition failed: UID in precondition: {uid}, "
                    f"UID in object meta: {obj['metadata'].get('uid')}"
                )
            if problem is not None:
                if not fresh:
                    current, fresh = await self._from_etcd(key)
                    continue
                raise ConflictError.for_object(self.spec.qualified, name, problem)
            if dry_run:
                return self._served(obj, current.mod_revision, api_version)
            result = await self.cache.etcd.delete(key, mod_revision=current.mod_revision)
            if result.succeeded:
                return self._served(obj, result.revision, api_version)
            current, fresh = result.current, True
        raise ConflictError.for_object(self.spec.qualified, name, "too many concurrent writers; try again")


class Watch:
    """An open watch: an async iterator of :class:`WatchEvent`, and an async context manager that
    unregisters it. The HTTP layer reads :meth:`next_items` and writes their :meth:`chunk` instead."""

    def __init__(self, resource: Resource, options: dict[str, Any]) -> None:
        self._resource = resource
        self._options = options
        self._watcher: CacheWatcher | None = None
        self._pending: list[Item] = []
        self._opened = False
        self._done = False
        self._api_version = ""
        self._events: Iterator[WatchEvent] = iter(())
        #: The resourceVersion of the last event returned: where a client re-watches from.
        self.resource_version = ""

    async def open(self) -> Watch:
        """Start the watch; setup errors (bad parameters, 504 for a future resourceVersion) raise."""
        if self._opened:
            return self
        self._opened = True
        watcher, error, self._api_version = await self._resource._open_watch(**self._options)
        self._watcher = watcher
        if error is not None:
            self._pending = [error]
        return self

    def close(self) -> None:
        if self._watcher is not None:
            self._resource.cache.close_watcher(self._watcher)
        self._done = True

    async def __aenter__(self) -> Watch:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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

    async def next_items(self, max_bytes: int = 256 * 1024) -> builtins.list[Item]:
        """The next items, about ``max_bytes`` of objects at most (waiting while there are none);
        ``[]`` once the watch has ended. :meth:`chunk` makes them wire bytes."""
        await self.open()
        if self._pending:
            items, self._pending = self._pending, []
            self._done = True
            return items
        if self._done or self._watcher is None:
            return []
        items = await self._watcher.next_batch(max_bytes)
        if not items:
            self.close()
        elif isinstance(items[-1], WatchErrorItem):
            self._done = True
        return items

    async def next_events(self) -> builtins.list[WatchEvent]:
        """The next events (waiting while there are none); ``[]`` once the watch has ended."""
        return [self._event(item) for item in await self.next_items()]

    @staticmethod
    def size(items: builtins.list[Item]) -> int:
        """About how many bytes :meth:`chunk` makes of ``items``."""
        return sum(item_size(item) for item in items)

    def chunk(self, items: builtins.list[Item]) -> bytes:
        """``items`` as watch-stream lines, ready to write."""
        return b"".join([self.wire(item) for item in items])

    async def next_chunk(self) -> bytes:
        """The next events as watch-stream lines, ready to write; ``b""`` once ended."""
        return self.chunk(await self.next_items())

    def set_sink(self, sink: Callable[[builtins.list[Item]], bool]) -> None:
        """Deliver live changes by calling ``sink`` from the dispatcher, while nothing is queued
        (see :attr:`CacheWatcher.sink`); what it refuses still comes from :meth:`next_items`."""
        if self._watcher is not None:
            self._watcher.sink = sink

    def _event(self, item: Item) -> WatchEvent:
        codec, av = self._resource._codec, self._api_version
        if isinstance(item, Change):
            event = WatchEvent(item.type.value, codec.for_version(item.entry.json, av), item.revision)
        elif isinstance(item, Enter):
            event = WatchEvent("ADDED", codec.for_version(item.change.entry.json, av), item.change.revision)
        elif isinstance(item, Leave):
            raw = item.change.object_json(ChangeType.DELETED, codec)
            event = WatchEvent("DELETED", codec.for_version(raw, av), item.change.revision)
        elif isinstance(item, Initial):
            event = WatchEvent("ADDED", codec.for_version(item.entry.json, av), item.entry.revision)
        elif isinstance(item, Bookmark):
            event = WatchEvent("BOOKMARK", orjson.dumps(self._bookmark(item)), item.revision)
        else:
            return WatchEvent("ERROR", orjson.dumps(item.status), 0)
        self.resource_version = str(event.revision)
        return event

    def wire(self, item: Item) -> bytes:
        """``item`` as a watch-stream line (shared bytes for a change; built for the rest)."""
        codec, av = self._resource._codec, self._api_version
        if isinstance(item, Change):
            self.resource_version = str(item.revision)
            return item.wire(item.type, codec, av)
        if isinstance(item, Enter):
            self.resource_version = str(item.change.revision)
            return item.change.wire(ChangeType.ADDED, codec, av)
        if isinstance(item, Leave):
            self.resource_version = str(item.change.revision)
            return item.change.wire(ChangeType.DELETED, codec, av)
        if isinstance(item, Initial):
            self.resource_version = str(item.entry.revision)
            return _WIRE_HEAD[ChangeType.ADDED] + codec.for_version(item.entry.json, av) + b"}\n"
        if isinstance(item, Bookmark):
            self.resource_version = str(item.revision)
            return wire_object("BOOKMARK", self._bookmark(item))
        return wire_object("ERROR", item.status)

    def _bookmark(self, item: Bookmark) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(item.revision)}
        if item.initial_events_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return {"kind": self._resource.spec.kind, "apiVersion": self._api_version, "metadata": meta}
