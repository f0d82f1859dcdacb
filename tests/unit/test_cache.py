"""The watch cache's own logic, fed by an in-memory keyspace instead of etcd: milliseconds per test.

Each behaviour here is also tested against a real etcd (tests/integration); these pin down the cache's
decisions — what a watcher is owed, in which order, when it is cut off or told 410 — without processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from support.memory_etcd import MemoryEtcd
from support.waiting import wait_until

from watchcache.cache.cache_watcher import (
    Bookmark,
    CacheWatcher,
    Ended,
    Enter,
    Initial,
    Leave,
    Shared,
    WatchErrorItem,
)
from watchcache.cache.cacher import Cache
from watchcache.cache.settings import CacheSettings
from watchcache.cache.store import Codec
from watchcache.cache.window import Change
from watchcache.keys import KeyLayout
from watchcache.selectors import EVERYTHING, Selector

LAYOUT = KeyLayout("/registry", "wardle.example.com", "flunders", True)
CODEC = Codec(("wardle.example.com/v1alpha1", "wardle.example.com/v1beta1"))


def key(name: str, namespace: str = "default") -> bytes:
    return LAYOUT.object_key(namespace, name)


def value(name: str, namespace: str = "default", **labels: str) -> bytes:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return orjson.dumps({"kind": "Flunder", "metadata": meta, "spec": {}})


def put(etcd: MemoryEtcd, name: str, namespace: str = "default", **labels: str) -> int:
    return etcd.put_now(key(name, namespace), value(name, namespace, **labels))


async def running(etcd: MemoryEtcd, **settings: Any) -> Cache:
    cache = Cache(
        source=etcd, layout=LAYOUT, codec=CODEC, settings=CacheSettings(**settings), name="flunders"
    )
    cache.start()
    await cache.wait_ready(5)
    return cache


@pytest.fixture
async def etcd() -> MemoryEtcd:
    return MemoryEtcd()


@pytest.fixture
async def cache(etcd: MemoryEtcd) -> AsyncIterator[Cache]:
    put(etcd, "a")
    put(etcd, "b", "other")
    cache = await running(etcd)
    try:
        yield cache
    finally:
        await cache.stop()


async def caught_up(cache: Cache, etcd: MemoryEtcd) -> None:
    """Let the feed apply every event etcd has sent (and dispatch them)."""
    await wait_until(lambda: cache.revision >= etcd.revision, within=5, interval=0.001)
    cache.dispatcher.flush()


def watch(
    cache: Cache, *, since: int | None = None, selector: Selector = EVERYTHING, **kw: Any
) -> CacheWatcher:
    return cache.watch(
        selector=selector,
        namespace=kw.get("namespace"),
        since=since,
        allow_bookmarks=kw.get("bookmarks", False),
    )


async def drain(watcher: CacheWatcher, max_bytes: int = 1 << 20) -> list[Any]:
    """Every item the watcher holds now (without waiting for more)."""
    items: list[Any] = []
    while True:
        try:
            async with asyncio.timeout(0.05):
                batch = await watcher.next_batch(max_bytes)
        except TimeoutError:
            return items
        if not batch:
            return items
        items += batch


def names(items: list[Any]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if isinstance(item, Change):
            out.append((item.type.value, item.entry.name))
        elif isinstance(item, Initial):
            out.append(("ADDED", item.entry.name))
        elif isinstance(item, Enter):
            out.append(("ADDED", item.change.entry.name))
        elif isinstance(item, Leave):
            out.append(("DELETED", item.change.entry.name))
    return out


async def test_a_watcher_gets_the_initial_state_then_every_change_in_order(
    cache: Cache, etcd: MemoryEtcd
) -> None:
    """From no revision: every current object as ADDED, then each change once, in revision order."""
    watcher = watch(cache)
    put(etcd, "c")
    put(etcd, "a", app="x")
    etcd.delete_now(key("c"))
    await caught_up(cache, etcd)
    assert names(await drain(watcher)) == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("ADDED", "c"),
        ("MODIFIED", "a"),
        ("DELETED", "c"),
    ]


async def test_a_watch_from_a_revision_replays_the_window_and_older_is_410(etcd: MemoryEtcd) -> None:
    """A watch from N gets exactly the changes after N; one from before the window is refused with
    Expired (410) — the caller turns it into an ERROR event."""
    cache = await running(etcd, window_events=3)
    try:
        revisions = [put(etcd, f"o{i}") for i in range(5)]
        await caught_up(cache, etcd)
        replay = watch(cache, since=revisions[2])
        assert names(await drain(replay)) == [("ADDED", "o3"), ("ADDED", "o4")]
        with pytest.raises(Exception) as refused:
            watch(cache, since=revisions[0])
        assert getattr(refused.value, "code", None) == 410
    finally:
        await cache.stop()


async def test_a_broken_stream_resumes_without_losing_or_repeating_a_change(
    cache: Cache, etcd: MemoryEtcd
) -> None:
    """etcd's stream breaks between two writes: the feed resumes from the last revision it applied."""
    watcher = watch(cache, since=cache.revision)
    put(etcd, "c")
    await caught_up(cache, etcd)
    etcd.break_watches()
    put(etcd, "d")
    put(etcd, "e")
    await caught_up(cache, etcd)
    assert names(await drain(watcher)) == [("ADDED", "c"), ("ADDED", "d"), ("ADDED", "e")]
    assert cache.stats.watch_restarts >= 1 and cache.stats.relists == 0


async def test_compaction_past_a_broken_stream_relists_and_ends_watchers_with_410(
    cache: Cache, etcd: MemoryEtcd
) -> None:
    """The history the cache would resume from was compacted: it relists, and its watchers — who can
    no longer be served exactly — end with a 410 ERROR (their clients relist)."""
    watcher = watch(cache, since=cache.revision)
    put(etcd, "c")
    await caught_up(cache, etcd)
    assert names(await drain(watcher)) == [("ADDED", "c")]
    etcd.break_watches()
    put(etcd, "d")
    etcd.compact(etcd.revision)
    put(etcd, "e")
    await wait_until(lambda: cache.stats.relists == 1 and cache.revision >= etcd.revision, within=5)
    items = await drain(watcher)
    assert len(items) == 1 and isinstance(items[0], WatchErrorItem) and items[0].status["code"] == 410
    assert {e.name for e in cache.values()} == {"a", "b", "c", "d", "e"}


async def test_selector_transitions_are_sent_as_added_and_deleted(cache: Cache, etcd: MemoryEtcd) -> None:
    """An object that starts matching a label selector is ADDED; one that stops matching is DELETED
    (with its previous content); changes that never match are not sent."""
    watcher = watch(cache, since=cache.revision, selector=Selector.parse("app=x", None))
    put(etcd, "a", app="x")
    put(etcd, "a", app="x", tier="y")
    put(etcd, "a", app="z")
    put(etcd, "b", "other", app="w")
    await caught_up(cache, etcd)
    assert names(await drain(watcher)) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


async def test_a_watcher_that_falls_behind_its_buffer_is_ended(etcd: MemoryEtcd) -> None:
    """More queued changes than the watcher buffer: the watcher is ended (its client re-watches);
    another watcher that keeps reading is not."""
    cache = await running(etcd, watcher_buffer=5)
    try:
        slow = watch(cache, since=cache.revision)
        fast = watch(cache, since=cache.revision)
        seen: list[Any] = []
        for i in range(20):
            put(etcd, f"o{i}")
            await caught_up(cache, etcd)
            seen += await drain(fast)
        assert slow.ended is Ended.TOO_SLOW
        assert len(names(seen)) == 20
        assert cache.stats.watchers_ended_slow == 1
    finally:
        await cache.stop()


async def test_batches_are_bounded_in_bytes(etcd: MemoryEtcd) -> None:
    """However far behind a watcher is, one batch holds about max_bytes of objects (at least one)."""
    for i in range(40):
        etcd.put_now(key(f"o{i}"), orjson.dumps({"metadata": {"name": f"o{i}"}, "spec": {"pad": "x" * 1000}}))
    cache = await running(etcd)
    try:
        watcher = watch(cache)
        batch = await watcher.next_batch(max_bytes=5000)
        assert 4 <= len(batch) <= 5
        assert len(await watcher.next_batch(max_bytes=1)) == 1
    finally:
        await cache.stop()


async def test_a_consistent_read_waits_for_every_earlier_write_even_when_etcd_sends_nothing(
    cache: Cache, etcd: MemoryEtcd
) -> None:
    """sync() returns only once the cache has every write etcd acknowledged before it; when the
    writes were to other keys (so the cache's watch hears nothing), a progress-key write gets it there."""
    etcd.put_now(b"/registry/wardle.example.com/other/x", b"{}")  # outside the watched range
    target = etcd.revision
    assert cache.revision < target
    assert await cache.sync() == target
    assert cache.revision >= target
    assert etcd.calls.get("put", 0) >= 1 and cache.stats.progress_writes >= 1


async def test_bookmarks_go_to_idle_watchers_that_allow_them_at_the_cache_revision(etcd: MemoryEtcd) -> None:
    """An idle watcher that allows bookmarks gets one carrying the cache's revision (never ahead of
    what it was sent); one that does not allow them gets none."""
    cache = await running(etcd, bookmark_interval=0.1)
    try:
        allowed = watch(cache, since=cache.revision, bookmarks=True)
        plain = watch(cache, since=cache.revision)
        put(etcd, "c")
        await caught_up(cache, etcd)
        async with asyncio.timeout(5):
            items = await allowed.next_batch()
            while not any(isinstance(i, Bookmark) for i in items):
                items += await allowed.next_batch()
        bookmark = next(i for i in items if isinstance(i, Bookmark))
        assert bookmark.revision == cache.revision == etcd.revision
        assert all(not isinstance(i, Bookmark) for i in await drain(plain))
    finally:
        await cache.stop()


async def test_etcd_protocol_watchers_of_one_range_share_its_selection_and_each_gets_its_own_part(
    cache: Cache, etcd: MemoryEtcd
) -> None:
    """etcd-protocol watchers are grouped by key range (one selection per range per dispatch): each is
    still sent exactly the changes of its range after its own start, in order, whether its sink takes
    them at once or they wait in its buffer."""
    start, end = LAYOUT.list_range("default")
    now = cache.revision

    def ranged(key_range: tuple[bytes, bytes], since: int) -> CacheWatcher:
        return cache.watch(
            selector=EVERYTHING, namespace=None, since=since, allow_bookmarks=False, key_range=key_range
        )

    whole, ahead, one_key, buffered = (
        ranged((start, end), now),
        ranged((start, end), now + 2),  # starts after the first two changes below
        ranged((key("x"), b""), now),
        ranged((start, end), now),
    )
    taken: dict[CacheWatcher, list[tuple[int, str]]] = {whole: [], ahead: [], one_key: []}
    for watcher, seen in taken.items():
        assert await drain(watcher) == []  # the (empty) replay: live changes may now take the sink

        def sink(items: list[Any], seen: list[tuple[int, str]] = seen) -> bool:
            seen.extend((item.revision, item.entry.name) for item in items)
            return True

        watcher.sink = sink
    revisions = [put(etcd, "x"), put(etcd, "y"), put(etcd, "x"), put(etcd, "z", "other"), put(etcd, "w")]
    await caught_up(cache, etcd)
    x1, y, x2, _, w = revisions
    assert taken[whole] == [(x1, "x"), (y, "y"), (x2, "x"), (w, "w")]
    assert taken[ahead] == [(x2, "x"), (w, "w")]
    assert taken[one_key] == [(x1, "x"), (x2, "x")]
    assert [(c.revision, c.entry.name) for c in await drain(buffered)] == taken[whole]


async def test_rest_watchers_without_selector_share_one_list_per_round_and_each_gets_its_own_part(
    cache: Cache, etcd: MemoryEtcd
) -> None:
    """The REST watchers of a namespace that take its changes as they are are all offered the same
    Shared list in a round (so their events and encoded lines are made once); a watcher with a
    selector, one of all namespaces and one of another namespace each still get exactly their own
    changes, in order."""
    now = cache.revision
    plain_a, plain_b = (
        watch(cache, since=now, namespace="default"),
        watch(cache, since=now, namespace="default"),
    )
    labelled = watch(cache, since=now, namespace="default", selector=Selector.parse("app=web", None))
    everywhere, other = watch(cache, since=now, namespace=None), watch(cache, since=now, namespace="other")
    offered: dict[CacheWatcher, list[list[Any]]] = {
        w: [] for w in (plain_a, plain_b, labelled, everywhere, other)
    }
    for watcher, lists in offered.items():
        assert await drain(watcher) == []

        def sink(items: list[Any], lists: list[list[Any]] = lists) -> bool:
            lists.append(items)
            return True

        watcher.sink = sink
    x = put(etcd, "x", app="web")
    y = put(etcd, "y")
    z = put(etcd, "z", "other")
    w = put(etcd, "w", app="web")
    await caught_up(cache, etcd)

    def seen(watcher: CacheWatcher) -> list[tuple[int, str]]:
        return [(item.revision, item.entry.name) for items in offered[watcher] for item in items]

    assert seen(plain_a) == seen(plain_b) == [(x, "x"), (y, "y"), (w, "w")]
    assert seen(labelled) == [(x, "x"), (w, "w")]
    assert seen(everywhere) == [(x, "x"), (y, "y"), (z, "z"), (w, "w")]
    assert seen(other) == [(z, "z")]
    # Round by round, the two plain watchers were handed the very same Shared list.
    assert len(offered[plain_a]) == len(offered[plain_b])
    for mine, theirs in zip(offered[plain_a], offered[plain_b], strict=True):
        assert mine is theirs and isinstance(mine, Shared)
    assert not any(isinstance(items, Shared) for items in offered[labelled])
