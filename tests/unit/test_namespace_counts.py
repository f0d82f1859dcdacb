"""The objects a cache counts per namespace (what the core namespaces are derived from), in memory.

Counted: objects served over REST, by their namespace. Not counted: values that are not JSON objects.
A namespace leaves the count with its last object, whether deleted or overwritten by a non-object,
and a relist starts the count over. The namespaces themselves, over HTTP against a real etcd:
tests/integration/test_namespaces.py.
"""

from __future__ import annotations

from support.memory_etcd import MemoryEtcd

from watchcache.cache.cacher import Cache
from watchcache.cache.settings import CacheSettings
from watchcache.cache.store import Codec
from watchcache.keys import KeyLayout

LAYOUT = KeyLayout("/registry", "wardle.example.com", "flunders", True)
CODEC = Codec(("wardle.example.com/v1alpha1",))


def put(etcd: MemoryEtcd, namespace: str, name: str, value: bytes = b'{"metadata": {}}') -> int:
    return etcd.put_now(LAYOUT.object_key(namespace, name), value)


async def test_objects_are_counted_by_namespace() -> None:
    """Creations count, updates do not, deletions and non-object overwrites uncount; a relist (here:
    the first list) counts what is there, values that are not objects excluded."""
    etcd = MemoryEtcd()
    put(etcd, "a", "x")
    put(etcd, "c", "garbage", b"not json")
    cache = Cache(source=etcd, layout=LAYOUT, codec=CODEC, settings=CacheSettings(), name="flunders")
    cache.start()
    try:
        await cache.wait_ready(5)
        assert cache.state.store.namespaces == {"a": 1}
        put(etcd, "a", "y")
        put(etcd, "b", "x")
        put(etcd, "a", "y", b'{"metadata": {"labels": {"k": "v"}}}')  # an update
        await cache.wait_for(etcd.revision, 5)
        assert cache.state.store.namespaces == {"a": 2, "b": 1}
        etcd.delete_now(LAYOUT.object_key("a", "x"))
        put(etcd, "a", "y", b"[]")  # no longer an object: not served, not counted
        put(etcd, "c", "garbage", b"{}")  # now an object
        await cache.wait_for(etcd.revision, 5)
        assert cache.state.store.namespaces == {"b": 1, "c": 1}
    finally:
        await cache.stop()
