"""Cached objects: one :class:`Entry` per object revision, serialized once, and the sorted store.

An entry's JSON is produced exactly once, when it enters the cache, with ``metadata.resourceVersion``
set to the etcd mod_revision; every list and every watcher reuses those bytes. All versions of a
resource share one storage, so the JSON is encoded with the first (primary) version's ``apiVersion``
placed first, and another version's bytes are made by swapping that leading field — a slice, not a
re-encode.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sortedcontainers import SortedDict

from ..etcd.types import KeyValue

__all__ = ["Codec", "Entry", "Snapshot", "Store"]

log = logging.getLogger(__name__)

_NO_LABELS: Mapping[str, str] = {}


@dataclass(slots=True, eq=False)
class Entry:
    """One key at one revision (or, for a deletion, the key as it was deleted).

    Every key under the resource's prefix has an entry, so that the etcd front can serve the range
    exactly as etcd would; only those that are objects of the resource — a ``{namespace}/{name}``
    key whose value is a JSON object — have :attr:`json` and are served over REST.
    """

    key: bytes
    namespace: str
    name: str
    labels: Mapping[str, str]
    kv: KeyValue
    """What etcd holds (value, create/mod revision, version, lease): what an etcd-protocol watcher needs."""
    revision: int
    """The object's resourceVersion: its mod_revision, or the deletion's revision for a tombstone."""
    json: bytes | None
    """The object's JSON with ``metadata.resourceVersion`` set, encoded with the primary apiVersion;
    None for a key that is not an object of the resource (not served over REST)."""

    @property
    def size(self) -> int:
        """About how many bytes the entry is served as."""
        return len(self.json) if self.json is not None else len(self.kv.value)


class Codec:
    """Turns etcd values into entries for one resource, and entries into any served version's bytes."""

    def __init__(self, api_versions: tuple[str, ...]) -> None:
        if not api_versions:
            raise ValueError("a resource needs at least one version")
        self.primary = api_versions[0]
        self._head = b'{"apiVersion":' + orjson.dumps(self.primary)
        self._heads = {v: b'{"apiVersion":' + orjson.dumps(v) for v in api_versions}

    def decode(self, kv: KeyValue, namespace: str, name: str) -> Entry:
        """The entry of the object key ``kv``; without :attr:`Entry.json` when its value is not a
        JSON object (it is then not served over REST)."""
        try:
            obj = orjson.loads(kv.value)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            log.debug("%r: value is not a JSON object; not served over REST", kv.key)
            return Entry(kv.key, namespace, name, _NO_LABELS, kv, kv.mod_revision, None)
        rev = kv.mod_revision
        return Entry(
            key=kv.key,
            namespace=namespace,
            name=name,
            labels=_labels(obj),
            kv=kv,
            revision=rev,
            json=self.encode(obj, rev),
        )

    @staticmethod
    def raw(kv: KeyValue) -> Entry:
        """The entry of a key under the resource's prefix that is not an object key (another shape)."""
        return Entry(kv.key, "", "", _NO_LABELS, kv, kv.mod_revision, None)

    def tombstone(self, prev: Entry, revision: int) -> Entry:
        """The entry a deletion at ``revision`` leaves: the last state, with the deletion's revision
        (as the DELETED event and the delete response carry it)."""
        return Entry(
            key=prev.key,
            namespace=prev.namespace,
            name=prev.name,
            labels=prev.labels,
            kv=KeyValue(prev.key, b"", 0, revision, 0, 0),
            revision=revision,
            json=self.reencode(prev, revision) if prev.json is not None else None,
        )

    def reencode(self, entry: Entry, revision: int) -> bytes:
        """``entry``'s object with another resourceVersion."""
        obj = orjson.loads(entry.kv.value)
        return self.encode(obj, revision)

    def encode(self, obj: dict[str, Any], revision: int) -> bytes:
        """``obj`` as served: primary apiVersion first, resourceVersion set. Mutates ``obj``."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        meta["resourceVersion"] = str(revision)
        obj.pop("apiVersion", None)
        # orjson's result keeps the spare capacity of its output buffer (about 8 KiB for a 1 KiB
        # object); an exact-size copy is what the cache should hold for as long as the object lives.
        return bytes(memoryview(orjson.dumps({"apiVersion": self.primary, **obj})))

    def for_version(self, json: bytes, api_version: str) -> bytes:
        """``json`` (as made by :meth:`encode`) as served through ``api_version``."""
        if api_version == self.primary:
            return json
        return self._heads[api_version] + json[len(self._head) :]


def _labels(obj: dict[str, Any]) -> Mapping[str, str]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not labels or not isinstance(labels, dict):
        return _NO_LABELS
    # Malformed labels (non-string values) would not pass Kubernetes validation; match none of them.
    return {k: v for k, v in labels.items() if isinstance(v, str)}


def _entry_key(entry: Entry) -> bytes:
    return entry.key


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The entries of one resource at one revision, sorted by key: what paged lists are cut from."""

    revision: int
    entries: list[Entry]
    unserved: int = 0
    """How many of the entries have no JSON (are not served over REST)."""

    def position(self, key: bytes) -> int:
        """Index of the first entry whose key is ``key`` or after it."""
        return bisect.bisect_left(self.entries, key, key=_entry_key)

    def range(self, start: bytes, end: bytes, limit: int = 0) -> tuple[list[Entry], int]:
        """As :meth:`Store.range`, at the snapshot's revision."""
        first = self.position(start)
        stop = self.position(end if end else start + b"\0")
        count = max(0, stop - first)
        if limit:
            stop = min(stop, first + limit)
        return self.entries[first:stop], count


class Store:
    """The current objects of one resource, by key, in key order (the order lists are served in)."""

    def __init__(self) -> None:
        self._items: Any = SortedDict()
        #: Sum of the stored values' sizes (what etcd holds), for quotas and metrics.
        self.value_bytes = 0
        #: Entries without JSON (not served over REST).
        self.unserved = 0
        #: Objects served over REST per namespace (none for a cluster-scoped resource): which
        #: namespaces hold something, kept as objects come and go so nothing has to scan for it.
        self.namespaces: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: bytes) -> Entry | None:
        entry: Entry | None = self._items.get(key)
        return entry

    def put(self, entry: Entry) -> Entry | None:
        """Store ``entry``; returns the entry it replaces."""
        prev: Entry | None = self._items.get(entry.key)
        self._items[entry.key] = entry
        self.value_bytes += len(entry.kv.value)
        self.unserved += entry.json is None
        if prev is None:
            self._occupy(entry, 1)
        else:
            self.value_bytes -= len(prev.kv.value)
            self.unserved -= prev.json is None
            if (prev.json is None) is not (entry.json is None):  # a key's namespace never changes
                self._occupy(prev, -1)
                self._occupy(entry, 1)
        return prev

    def pop(self, key: bytes) -> Entry | None:
        entry: Entry | None = self._items.pop(key, None)
        if entry is not None:
            self.value_bytes -= len(entry.kv.value)
            self.unserved -= entry.json is None
            self._occupy(entry, -1)
        return entry

    def _occupy(self, entry: Entry, delta: int) -> None:
        if entry.json is None or not entry.namespace:
            return
        count = self.namespaces.get(entry.namespace, 0) + delta
        if count:
            self.namespaces[entry.namespace] = count
        else:
            del self.namespaces[entry.namespace]

    def values(self, start: bytes = b"", end: bytes = b"") -> Iterator[Entry]:
        """Entries with ``start <= key < end`` (all when unbounded), in key order."""
        if not start and not end:
            yield from self._items.values()
            return
        for key in self._items.irange(start or None, end or None, inclusive=(True, False)):
            yield self._items[key]

    def range(self, start: bytes, end: bytes, limit: int = 0) -> tuple[list[Entry], int]:
        """Entries with ``start <= key < end`` (the one key ``start`` when ``end`` is b""), at most
        ``limit`` of them (0: all), and how many there are in all."""
        items = self._items
        if not end:
            entry = items.get(start)
            return ([entry] if entry is not None else []), int(entry is not None)
        first, stop = items.bisect_left(start), items.bisect_left(end)
        count = max(0, stop - first)
        if limit:
            stop = min(stop, first + limit)
        return list(items.values()[first:stop]), count

    def snapshot(self, revision: int) -> Snapshot:
        return Snapshot(revision, list(self._items.values()), self.unserved)

    def replace(self, entries: list[Entry]) -> None:
        self._items = SortedDict((e.key, e) for e in entries)
        self.value_bytes = sum(len(e.kv.value) for e in entries)
        self.unserved = sum(e.json is None for e in entries)
        self.namespaces = {}
        for entry in entries:
            self._occupy(entry, 1)

    def copy_dict(self) -> dict[bytes, Entry]:
        return dict(self._items)
