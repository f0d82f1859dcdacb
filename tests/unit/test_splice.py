"""Served JSON spliced from etcd's bytes: it must parse to exactly what re-encoding the object gave.

The reference is the encoder the cache used before splicing (:meth:`Codec.encode`: the object with
``metadata.resourceVersion`` set and the served ``apiVersion``). Values are written the ways they reach
etcd — Go's encoding/json order (kind, apiVersion, metadata), watchcache's own writes (apiVersion,
kind, metadata), pretty-printed, with spaces — with nested ``metadata`` and ``apiVersion`` keys that
must not be taken for the top-level ones; values that cannot be proven must fall back to a re-encoded
copy, and still serve the same. Also the store's blocks against a dict.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchcache.cache import store as store_module
from watchcache.cache.splice import find
from watchcache.cache.store import Codec, Entry, Materialized, Store
from watchcache.etcd.types import KeyValue

VERSIONS = ("wardle.example.com/v1alpha1", "wardle.example.com/v1beta1", "v1")
CODEC = Codec(VERSIONS)
KEY = b"/registry/wardle.example.com/flunders/default/f"

scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["metadata", "apiVersion", "a", "{", "x]"]) | st.text(max_size=4),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)
metadata = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(min_size=1, max_size=8),
        "namespace": st.just("default"),
        "labels": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
        "annotations": st.dictionaries(st.text(max_size=5), st.text(max_size=12), max_size=2),
        "ownerReferences": st.lists(
            st.fixed_dictionaries({"apiVersion": st.sampled_from(VERSIONS), "kind": st.text(max_size=5)}),
            max_size=2,
        ),
        "generation": st.integers(0, 10),
    },
)
rest = st.dictionaries(
    st.sampled_from(["spec", "status", "data", "template"]),
    st.fixed_dictionaries({"metadata": metadata, "apiVersion": st.sampled_from(VERSIONS)}) | json_values,
    max_size=3,
)


def expected(obj: dict[str, Any], api_version: str, revision: int) -> dict[str, Any]:
    """What the encoder before splicing served (as a parsed object)."""
    return orjson.loads(CODEC.for_version(CODEC.encode(copy.deepcopy(obj), revision), api_version))


def go_order(obj: dict[str, Any]) -> bytes:
    first = {k: obj[k] for k in ("kind", "apiVersion", "metadata") if k in obj}
    return json.dumps({**first, **obj}, separators=(",", ":"), ensure_ascii=True).encode()


def ours(obj: dict[str, Any]) -> bytes:
    first = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    return orjson.dumps({**first, **obj})


def pretty(obj: dict[str, Any]) -> bytes:
    first = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    return json.dumps({**first, **obj}, indent=2, ensure_ascii=False).encode()


def spaced(obj: dict[str, Any]) -> bytes:
    first = {k: obj[k] for k in ("kind", "apiVersion", "metadata") if k in obj}
    return b"\n " + json.dumps({**first, **obj}, separators=(" , ", " : ")).encode() + b" \n"


def entry_of(value: bytes, revision: int = 7) -> Entry:
    kv = KeyValue(KEY, value, 3, revision, 2, 0)
    return CODEC.decode(kv, "default")


def check_served(entry: Entry, obj: dict[str, Any]) -> None:
    for version in VERSIONS:
        for revision in (None, 12345):
            want = expected(obj, version, entry.revision if revision is None else revision)
            assert orjson.loads(CODEC.served(entry, version, revision)) == want


@pytest.mark.parametrize("form", [go_order, ours, pretty, spaced])
@given(api_version=st.sampled_from(VERSIONS), meta=metadata, others=rest, kind=st.text(max_size=6))
@settings(max_examples=150, deadline=None)
def test_spliced_bytes_parse_as_the_encoder_made_them(
    form: Any, api_version: str, meta: dict[str, Any], others: dict[str, Any], kind: str
) -> None:
    """Objects as Go, watchcache, a pretty printer or a spaced writer store them are spliced, not
    copied, and every version at any resourceVersion parses as the re-encoded object did."""
    obj = {"apiVersion": api_version, "kind": kind, "metadata": meta, **others}
    entry = entry_of(form(obj))
    check_served(entry, obj)
    if "{" not in kind and "[" not in kind:
        assert not isinstance(entry, Materialized)


def test_empty_metadata_takes_no_comma() -> None:
    """``"metadata":{}`` (also with spaces inside) gets the member alone."""
    compact = b'{"apiVersion":"v1","kind":"K","metadata":{}}'
    assert (
        CODEC.served(entry_of(compact), "v1")
        == b'{"apiVersion":"v1","kind":"K","metadata":{"resourceVersion":"7"}}'
    )
    spaced = b'{"apiVersion":"v1","metadata":{ \n }}'
    assert (
        CODEC.served(entry_of(spaced), "v1") == b'{"apiVersion":"v1","metadata":{"resourceVersion":"7" \n }}'
    )
    for value in (compact, spaced):
        entry = entry_of(value)
        assert not isinstance(entry, Materialized)
        check_served(entry, orjson.loads(value))


def test_the_stored_version_is_served_without_a_swap() -> None:
    """Through the version the value holds, the bytes are the value's with the one member added."""
    value = b'{"kind":"Flunder","apiVersion":"v1","metadata":{"name":"f"},"spec":{"apiVersion":"x"}}'
    entry = entry_of(value)
    assert CODEC.served(entry, "v1") == value.replace(b'{"name"', b'{"resourceVersion":"7","name"')
    assert CODEC.served(entry, VERSIONS[0]).startswith(
        b'{"kind":"Flunder","apiVersion":"wardle.example.com/v1alpha1"'
    )


@pytest.mark.parametrize(
    "value",
    [
        # a nested member before metadata: its key could be anywhere
        b'{"apiVersion":"v1","spec":{"metadata":{}},"metadata":{"name":"f"}}',
        b'{"apiVersion":"v1","list":[1],"metadata":{"name":"f"}}',
        # apiVersion after metadata, or missing, or not a string, or escaped
        b'{"metadata":{"name":"f"},"apiVersion":"v1"}',
        b'{"kind":"K","metadata":{"name":"f"}}',
        b'{"apiVersion":1,"metadata":{"name":"f"}}',
        b'{"apiVersion":"wardle.example.com\\/v1","metadata":{"name":"f"}}',
        # a resourceVersion already stored
        b'{"apiVersion":"v1","metadata":{"name":"f","resourceVersion":"3"}}',
        # duplicate keys: the last one is the object's
        b'{"apiVersion":"v1","metadata":{"name":"f"},"metadata":{"name":"g"}}',
        b'{"apiVersion":"v1","metadata":{"name":"f"},"apiVersion":"v1"}',
        # metadata not an object
        b'{"apiVersion":"v1","metadata":null}',
        b'{"apiVersion":"v1","metadata":"x"}',
        # a key that ends in metadata, escaped quote first
        b'{"apiVersion":"v1","x\\"metadata":{},"metadata":{"name":"f"}}',
        # brackets inside a string before metadata (conservative)
        b'{"apiVersion":"v1","kind":"{[","metadata":{"name":"f"}}',
    ],
)
def test_what_cannot_be_proven_falls_back_and_serves_the_same(value: bytes) -> None:
    """Values whose points cannot be proven top-level keep a re-encoded copy, served exactly as
    before (tombstones too)."""
    obj = orjson.loads(value)
    assert find(value, obj) is None
    entry = entry_of(value)
    assert isinstance(entry, Materialized)
    check_served(entry, obj)
    check_served(CODEC.tombstone(entry, 99), obj)


@pytest.mark.parametrize("value", [b"[1,2]", b'"text"', b"12", b"not json", b""])
def test_non_objects_are_not_served(value: bytes) -> None:
    """A key whose value is not a JSON object stays an etcd key only."""
    entry = entry_of(value)
    assert not entry.served
    assert entry.kv == KeyValue(KEY, value, 3, 7, 2, 0)


def test_tombstone_serves_the_last_state_at_the_deletion() -> None:
    """A deletion's entry serves the deleted object with the deletion's revision; to the etcd
    front it is etcd's deleted key (no value, version 0)."""
    value = ours({"apiVersion": "v1", "kind": "K", "metadata": {"name": "f"}, "spec": {"a": 1}})
    live = entry_of(value)
    dead = CODEC.tombstone(live, 40)
    assert not isinstance(dead, Materialized)
    assert orjson.loads(CODEC.served(dead, "v1")) == expected(orjson.loads(value), "v1", 40)
    assert dead.kv == KeyValue(KEY, b"", 0, 40, 0, 0)
    assert dead.value is live.value  # one copy of the bytes
    assert live.kv == KeyValue(KEY, value, 3, 7, 2, 0)


def test_etcd_fields_are_kept() -> None:
    """The etcd front's KeyValue fields survive the entry's compact form (a lease, a large version)."""
    kv = KeyValue(KEY, b'{"apiVersion":"v1","metadata":{}}', 5, 9, 100_000, 77)
    entry = CODEC.decode(kv, "default")
    assert entry.kv == kv
    assert (entry.version, entry.lease, entry.name, entry.namespace) == (100_000, 77, "f", "default")


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3000)), max_size=300))
@settings(max_examples=60, deadline=None)
def test_store_blocks_agree_with_a_dict(ops: list[tuple[bool, int]]) -> None:
    """Puts and pops in any order (in blocks of 4 here, so that they split and empty): gets, ranges,
    counts and key order are a sorted dict's."""
    block, store_module._BLOCK = store_module._BLOCK, 4
    try:
        check_store(ops)
    finally:
        store_module._BLOCK = block


def check_store(ops: list[tuple[bool, int]]) -> None:
    store, model = Store(), {}
    for put, n in ops:
        key = b"/r/%05d" % n
        if put:
            entry = Entry(key, b"v", create_revision=1, revision=n, version=1, lease=0)
            assert store.put(entry) is model.get(key)
            model[key] = entry
        else:
            assert store.pop(key) is model.pop(key, None)
    keys = sorted(model)
    assert [e.key for e in store.values()] == keys
    assert len(store) == len(keys)
    for lo, hi in ((b"/r/00100", b"/r/02000"), (b"", b"/r/00500"), (b"/r/01000", b"")):
        want = [k for k in keys if k >= lo and (not hi or k < hi)]
        assert [e.key for e in store.values(lo, hi)] == want
        if hi:
            got, count = store.range(lo, hi, 7)
            assert ([e.key for e in got], count) == (want[:7], len(want))
    for k in keys[:5]:
        assert store.get(k) is model[k]
    assert store.get(b"/r/x") is None
