"""Cached objects: one :class:`Entry` per object revision, holding etcd's bytes once, and the sorted store.

An entry keeps the value etcd holds — what the etcd front serves verbatim — and no second copy: its
JSON as served over REST is made of pieces of those bytes, with ``"resourceVersion":"N"`` spliced in
first in the top-level ``metadata`` and, through another version of the resource (all versions share
one storage), the top-level ``apiVersion`` string swapped (:mod:`.splice` finds and proves the two
points once, when the object enters the cache). The pieces are joined once per answer
(:meth:`Codec.join`: a LIST piece, a GET, a watch event shared by every watcher). A value whose points
cannot be proven keeps a re-encoded copy instead (:class:`Materialized`): correctness over memory, for
that object only.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from ..etcd.types import KeyValue
from .splice import Points, find, rv_member

__all__ = ["Codec", "Entry", "Materialized", "Snapshot", "Store"]

log = logging.getLogger(__name__)

_NO_LABELS: Mapping[str, str] = {}
_MAX_SHARED_SHAPES = 4096
_BLOCK = 512


class Shape:
    """How the values of one head (everything up to the top-level metadata's insertion point) are
    served: per served version, that head with the version's ``apiVersion`` and the
    ``"resourceVersion":"%d"`` member to format, after a comma (an item of a list follows another:
    one piece less per item), and where the value's rest starts."""

    __slots__ = ("at", "heads")

    def __init__(self, at: int, heads: dict[str, bytes]) -> None:
        self.at = at
        self.heads = heads


class Entry:
    """One key at one revision (or, for a deletion, the key as it was deleted).

    Every key under the resource's prefix has an entry, so that the etcd front can serve the range
    exactly as etcd would (:attr:`kv`); only those that are objects of the resource — a
    ``{namespace}/{name}`` key whose value is a JSON object — are :attr:`served` over REST, as pieces of
    :attr:`value` (:meth:`Codec.join`).

    A tombstone (the entry a deletion leaves) keeps the deleted state's value, to serve its last state,
    and etcd's fields of a deletion: version, create revision and lease 0 (``kv`` has no value).
    """

    # Eight slots (96 bytes with the object's header, against 112 for ten): the splice's
    # :class:`Shape` is shared by every object of the same head (:meth:`Codec.decode`), and version and lease
    # share one slot (the version alone while there is no lease, as for nearly every object). The key
    # is held without the resource's prefix, which every key of the store shares (the class's
    # :attr:`prefix`: :meth:`Codec.decode` makes entries of a class of the resource's own).
    __slots__ = ("_shape", "_tail", "_vl", "create_revision", "labels", "namespace", "revision", "value")

    prefix: ClassVar[bytes] = b""
    """What every key of this class's entries starts with (not held per entry)."""

    def __init__(
        self,
        tail: bytes,
        value: bytes,
        *,
        create_revision: int,
        revision: int,
        version: int,
        lease: int,
        namespace: str = "",
        labels: Mapping[str, str] = _NO_LABELS,
        shape: Shape | None = None,
    ) -> None:
        self._tail = tail
        """The key after :attr:`prefix`."""
        self.value = value
        """etcd's value bytes (a tombstone: the deleted state's)."""
        self.create_revision = create_revision
        self.revision = revision
        """The object's resourceVersion: its mod_revision, or the deletion's revision for a tombstone."""
        self._vl: int | tuple[int, int] = version if not lease else (version, lease)
        self.namespace = namespace
        self.labels = labels
        self._shape = shape
        """How the object is spliced; None for a key that is not an object served over REST (or
        one kept re-encoded)."""

    @property
    def key(self) -> bytes:
        """The etcd key (made on each call: the entry holds its tail only)."""
        return self.prefix + self._tail

    @property
    def served(self) -> bool:
        """Whether the entry is an object served over REST."""
        return self._shape is not None

    @property
    def version(self) -> int:
        vl = self._vl
        return vl if isinstance(vl, int) else vl[0]

    @property
    def lease(self) -> int:
        vl = self._vl
        return 0 if isinstance(vl, int) else vl[1]

    @property
    def deleted(self) -> bool:
        """A tombstone (etcd's version of a live key is at least 1)."""
        return self._vl == 0

    @property
    def name(self) -> str:
        """The object's name: the key's last segment (\"\" for a key that is not an object's)."""
        if not self.served:
            return ""
        tail = self._tail
        return tail[tail.rfind(b"/") + 1 :].decode()

    @property
    def kv(self) -> KeyValue:
        """What etcd holds (value, create/mod revision, version, lease): an etcd-protocol watcher's view."""
        value = b"" if self.deleted else self.value
        return KeyValue(self.key, value, self.create_revision, self.revision, self.version, self.lease)

    @property
    def size(self) -> int:
        """About how many bytes the entry is served as."""
        return len(self.value) + 32

    def tombstone(self, revision: int) -> Entry:
        """The entry a deletion at ``revision`` leaves (use :meth:`Codec.tombstone`)."""
        return self._deleted(type(self), revision, self._shape)

    def _deleted(self, kind: type[Entry], revision: int, shape: Shape | None) -> Entry:
        """This key's last state as deleted at ``revision``, an entry of ``kind``."""
        return kind(
            self._tail,
            self.value,
            create_revision=0,
            revision=revision,
            version=0,
            lease=0,
            namespace=self.namespace,
            labels=self.labels,
            shape=shape,
        )


class Materialized(Entry):
    """An object whose splice points could not be proven: its JSON re-encoded and held (primary
    apiVersion first, resourceVersion set), as every object was before splicing."""

    __slots__ = ("json",)

    def __init__(self, entry: Entry, json: bytes) -> None:
        super().__init__(
            entry.key,  # the whole key: this class has no prefix
            entry.value,
            create_revision=entry.create_revision,
            revision=entry.revision,
            version=entry.version,
            lease=entry.lease,
            namespace=entry.namespace,
            labels=entry.labels,
        )
        self.json = json

    @property
    def served(self) -> bool:
        return True

    @property
    def size(self) -> int:
        return len(self.json)

    def tombstone(self, revision: int) -> Entry:
        """The deleted state without its copy, which :meth:`Codec.tombstone` re-encodes with the
        deletion's revision."""
        return self._deleted(Entry, revision, None)


class Codec:
    """Turns etcd values into entries for one resource, and entries into any served version's bytes."""

    def __init__(self, api_versions: tuple[str, ...], prefix: bytes = b"") -> None:
        """``prefix``: what every key of the resource starts with (its keys are held without it)."""
        if not api_versions:
            raise ValueError("a resource needs at least one version")
        self.prefix = prefix
        self._entry: type[Entry] = type("Entry", (Entry,), {"__slots__": (), "prefix": prefix})
        self.primary = api_versions[0]
        self._head = b'{"apiVersion":' + orjson.dumps(self.primary)
        self._heads = {v: b'{"apiVersion":' + orjson.dumps(v) for v in api_versions}
        self._quoted = {v: orjson.dumps(v) for v in api_versions}
        self._shapes: dict[tuple[bytes, bool], Shape] = {}

    def decode(self, kv: KeyValue, namespace: str) -> Entry:
        """The entry of the object key ``kv``; not :attr:`Entry.served` when its value is not a JSON
        object."""
        entry = self._entry(
            self._tail(kv.key),
            kv.value,
            create_revision=kv.create_revision,
            # One int object for both when equal (an object never updated): one less per entry.
            revision=kv.create_revision if kv.mod_revision == kv.create_revision else kv.mod_revision,
            version=kv.version,
            lease=kv.lease,
            namespace=sys.intern(namespace),
        )
        try:
            obj = orjson.loads(kv.value)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            log.debug("%r: value is not a JSON object; not served over REST", kv.key)
            return entry
        entry.labels = _labels(obj)
        points = find(kv.value, obj)
        if points is None:
            log.debug("%r: kept re-encoded (its value cannot be spliced)", kv.key)
            return Materialized(entry, self.encode(obj, kv.mod_revision))
        entry._shape = self._shape(kv.value, points)
        return entry

    def _shape(self, value: bytes, points: Points) -> Shape:
        """The shape of a value spliced at ``points``: shared by every value of the same head (as
        all objects of a resource written by one server are), from a bounded memo."""
        a, at = points
        empty, at = at < 0, abs(at)
        head = value[:at]
        shape = self._shapes.get((head, empty))
        if shape is None:
            b = value.index(b'"', a + 1) + 1
            member = rv_member(comma=not empty)
            quoted = self._quoted.items()
            heads = {v: b"," + (head[:a] + q + head[b:]).replace(b"%", b"%%") + member for v, q in quoted}
            shape = Shape(at, heads)
            if len(self._shapes) < _MAX_SHARED_SHAPES:
                self._shapes[head, empty] = shape
        return shape

    def raw(self, kv: KeyValue) -> Entry:
        """The entry of a key under the resource's prefix that is not an object key (another shape)."""
        return self._entry(
            self._tail(kv.key),
            kv.value,
            create_revision=kv.create_revision,
            revision=kv.mod_revision,
            version=kv.version,
            lease=kv.lease,
        )

    def _tail(self, key: bytes) -> bytes:
        if not key.startswith(self.prefix):
            raise ValueError(f"{key!r} is not a key of this resource")
        return key[len(self.prefix) :] if self.prefix else key

    def tombstone(self, prev: Entry, revision: int) -> Entry:
        """The entry a deletion at ``revision`` leaves: the last state, with the deletion's revision
        (as the DELETED event and the delete response carry it)."""
        dead = prev.tombstone(revision)
        if isinstance(prev, Materialized):
            return Materialized(dead, self._reencode(prev, revision))
        return dead

    def join(self, entries: Iterable[Entry], api_version: str) -> bytes:
        """The objects of ``entries`` as served through ``api_version``, comma separated: each
        object's pieces — its shape's head for that version (after a comma) with its resourceVersion
        formatted in, and its value's rest — joined at once, the one copy an answer makes.

        This runs for every item of every LIST, so it is one loop over the entries, without a call
        per entry."""
        out: list[bytes] = []
        append = out.append
        for entry in entries:
            shape = entry._shape
            if shape is None:
                assert isinstance(entry, Materialized), "only objects served over REST are joined"
                append(b",")
                append(self._materialized(entry, api_version, entry.revision))
            else:
                append(shape.heads[api_version] % entry.revision)
                append(entry.value[shape.at :])
        if out:
            out[0] = out[0][1:]  # the first item's comma
        return b"".join(out)

    def served(self, entry: Entry, api_version: str, revision: int | None = None) -> bytes:
        """``entry``'s object as served through ``api_version``, with ``revision`` (default: the
        entry's) as its resourceVersion."""
        rev = entry.revision if revision is None else revision
        shape = entry._shape
        if shape is None:
            assert isinstance(entry, Materialized), "only objects served over REST are served"
            return self._materialized(entry, api_version, rev)
        return b"".join(((shape.heads[api_version] % rev)[1:], entry.value[shape.at :]))

    def _materialized(self, entry: Materialized, api_version: str, revision: int) -> bytes:
        json = entry.json if revision == entry.revision else self._reencode(entry, revision)
        return self.for_version(json, api_version)

    def _reencode(self, entry: Entry, revision: int) -> bytes:
        """``entry``'s object with another resourceVersion."""
        obj = orjson.loads(entry.value)
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
    """How many of the entries are not served over REST."""

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
    """The current objects of one resource, by key, in key order (the order lists are served in).

    The entries are held in key order in blocks of at most ``2 * _BLOCK`` (a list of lists, and each
    block's last key), found by bisection: about 9 bytes per entry, where a dict by key beside a
    sorted key list (sortedcontainers' SortedDict) took about 60.
    """

    def __init__(self) -> None:
        self._blocks: list[list[Entry]] = []
        self._maxes: list[bytes] = []
        self._len = 0
        #: Sum of the stored values' sizes (what etcd holds), for quotas and metrics.
        self.value_bytes = 0
        #: Entries not served over REST.
        self.unserved = 0
        #: Objects served over REST per namespace (none for a cluster-scoped resource): which
        #: namespaces hold something, kept as objects come and go so nothing has to scan for it.
        self.namespaces: dict[str, int] = {}

    def __len__(self) -> int:
        return self._len

    def _find(self, key: bytes) -> tuple[int, int]:
        """(block, index in it) of the first entry whose key is ``key`` or after it; the block is
        ``len(self._blocks)`` when every key is before ``key``."""
        b = bisect.bisect_left(self._maxes, key)
        if b == len(self._blocks):
            return b, 0
        return b, bisect.bisect_left(self._blocks[b], key, key=_entry_key)

    def _position(self, key: bytes) -> int:
        """How many entries have keys before ``key``."""
        b, i = self._find(key)
        return sum(map(len, self._blocks[:b])) + i

    def get(self, key: bytes) -> Entry | None:
        b, i = self._find(key)
        if b < len(self._blocks):
            entry = self._blocks[b][i]
            if entry.key == key:
                return entry
        return None

    def put(self, entry: Entry) -> Entry | None:
        """Store ``entry``; returns the entry it replaces."""
        key = entry.key
        b, i = self._find(key)
        blocks = self._blocks
        prev: Entry | None = None
        if b < len(blocks) and blocks[b][i].key == key:
            prev = blocks[b][i]
            blocks[b][i] = entry
        elif not blocks:
            blocks.append([entry])
            self._maxes.append(key)
            self._len += 1
        else:
            if b == len(blocks):  # after every key: the last block grows
                b -= 1
                i = len(blocks[b])
                self._maxes[b] = key
            blocks[b].insert(i, entry)
            self._len += 1
            if len(blocks[b]) > 2 * _BLOCK:
                block = blocks[b]
                blocks[b : b + 1] = [block[:_BLOCK], block[_BLOCK:]]
                self._maxes.insert(b, block[_BLOCK - 1].key)
        self.value_bytes += len(entry.value)
        self.unserved += not entry.served
        if prev is None:
            self._occupy(entry, 1)
        else:
            self.value_bytes -= len(prev.value)
            self.unserved -= not prev.served
            if prev.served is not entry.served:  # a key's namespace never changes
                self._occupy(prev, -1)
                self._occupy(entry, 1)
        return prev

    def pop(self, key: bytes) -> Entry | None:
        b, i = self._find(key)
        blocks = self._blocks
        if b == len(blocks) or blocks[b][i].key != key:
            return None
        block = blocks[b]
        entry = block.pop(i)
        self._len -= 1
        if not block:
            del blocks[b]
            del self._maxes[b]
        elif i == len(block):
            self._maxes[b] = block[-1].key
        self.value_bytes -= len(entry.value)
        self.unserved -= not entry.served
        self._occupy(entry, -1)
        return entry

    def _occupy(self, entry: Entry, delta: int) -> None:
        if not entry.served or not entry.namespace:
            return
        count = self.namespaces.get(entry.namespace, 0) + delta
        if count:
            self.namespaces[entry.namespace] = count
        else:
            del self.namespaces[entry.namespace]

    def values(self, start: bytes = b"", end: bytes = b"") -> Iterator[Entry]:
        """Entries with ``start <= key < end`` (all when unbounded), in key order."""
        if not start and not end:
            return itertools.chain.from_iterable(self._blocks)
        return iter(self._slice(start, end))

    def _slice(self, start: bytes, end: bytes, limit: int = 0) -> list[Entry]:
        """Entries with ``start <= key < end`` (``end`` b"": unbounded), at most ``limit`` (0: all)."""
        blocks = self._blocks
        b, i = self._find(start) if start else (0, 0)
        out: list[Entry] = []
        while b < len(blocks):
            block = blocks[b]
            stop = len(block)
            if end and self._maxes[b] >= end:
                stop = bisect.bisect_left(block, end, lo=i, key=_entry_key)
            out += block[i:stop]
            if stop < len(block) or (limit and len(out) >= limit):
                break
            b, i = b + 1, 0
        return out[:limit] if limit else out

    def range(self, start: bytes, end: bytes, limit: int = 0) -> tuple[list[Entry], int]:
        """Entries with ``start <= key < end`` (the one key ``start`` when ``end`` is b""), at most
        ``limit`` of them (0: all), and how many there are in all."""
        if not end:
            entry = self.get(start)
            return ([entry] if entry is not None else []), int(entry is not None)
        count = max(0, self._position(end) - self._position(start))
        return self._slice(start, end, limit), count

    def snapshot(self, revision: int) -> Snapshot:
        return Snapshot(revision, list(itertools.chain.from_iterable(self._blocks)), self.unserved)

    def replace(self, entries: list[Entry]) -> None:
        """Hold ``entries`` (distinct keys; etcd's ranges give them in key order already)."""
        ordered = sorted(entries, key=_entry_key)
        self._blocks = [ordered[i : i + _BLOCK] for i in range(0, len(ordered), _BLOCK)]
        self._maxes = [block[-1].key for block in self._blocks]
        self._len = len(ordered)
        self.value_bytes = sum(len(e.value) for e in entries)
        self.unserved = sum(not e.served for e in entries)
        self.namespaces = {}
        for entry in entries:
            self._occupy(entry, 1)

    def copy_dict(self) -> dict[bytes, Entry]:
        return {e.key: e for e in itertools.chain.from_iterable(self._blocks)}
