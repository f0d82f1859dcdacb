"""Consistent reads: a LIST or GET without resourceVersion contains every write etcd acknowledged
before it began, whoever wrote it (through watchcache or straight to etcd).

The cache proves it has caught up by writing the resource's progress key (``Cache.sync``) rather than
trusting etcd 3.4.23's RequestProgress notifications, which can overtake events (etcd issue 15220).
These tests write straight to the session etcd, and move etcd's revision with writes outside the
resource, which is exactly when the cache receives nothing and must prove it is current.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aetcd
import orjson
import pytest
from support.wardle import FLUNDERS, flunder, flunder_key

from watchcache import (
    CacheSettings,
    NotFoundError,
    Resource,
    Storage,
    TimedOutError,
)
from watchcache.etcd.client import EtcdClient

pytestmark = pytest.mark.etcd

RV_WAIT = 0.5


@asynccontextmanager
async def opened(
    endpoints: list[str], prefix: str, settings: CacheSettings | None = None
) -> AsyncIterator[Resource]:
    """A started Storage on ``prefix`` serving flunders, with its cache loaded."""
    async with Storage(endpoints, prefix=prefix, settings=settings) as storage:
        resource = storage.resource(FLUNDERS)
        await storage.wait_ready(10)
        yield resource


def by_name(items: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(i["metadata"]["namespace"], i["metadata"]["name"]): i for i in items}


async def test_read_right_after_a_direct_write_sees_it(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """50 alternating puts/deletes straight to etcd: each consistent list and get right after sees it."""
    key = flunder_key(prefix, "f1", "default")
    async with opened(etcd_endpoints, prefix) as flunders:
        for i in range(50):
            if i % 2 == 0:
                put = await etcd_kv.put(key, orjson.dumps(flunder("f1", "default", spec={"i": i})))
                rv = put.header.revision
                listed = await flunders.list(namespace="default")
                assert int(listed.resource_version) >= rv
                assert [(o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in listed.items] == [
                    ("f1", str(rv))
                ], f"iteration {i}: list missed the put at revision {rv}"
                got = await flunders.get("f1", namespace="default")
                assert got["metadata"]["resourceVersion"] == str(rv)
                assert got["spec"] == {"i": i}
            else:
                deleted = await etcd_kv.delete(key)
                assert deleted is not None
                listed = await flunders.list(namespace="default")
                assert int(listed.resource_version) >= deleted.header.revision
                assert listed.items == [], f"iteration {i}: list still shows a deleted object"
                with pytest.raises(NotFoundError):
                    await flunders.get("f1", namespace="default")


@dataclass
class _KeyLog:
    """What a writer did to one key: counters of started and acknowledged writes, and the last ack."""

    started: int = 0
    done: int = 0
    last: tuple[str, int] | None = None  # ("put" | "delete", revision)


@dataclass
class _Acked:
    keys: dict[tuple[str, str], _KeyLog] = field(default_factory=dict)
    max_revision: int = 0  # the highest revision etcd acknowledged to any writer, noise included

    def ack(self, revision: int) -> None:
        self.max_revision = max(self.max_revision, revision)


async def test_consistent_lists_under_concurrent_direct_writes(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """While 3 writers put/delete straight to etcd and a 4th writes outside the resource, every
    consistent list holds every write acknowledged before it began (zero stale answers)."""
    acked = _Acked()
    names = [(ns, f"w{w}-{k}") for w in range(3) for k in range(4) for ns in ("ns-a", "ns-b")]
    for ns_name in names:
        acked.keys[ns_name] = _KeyLog()
    stop = asyncio.Event()
    stale: list[str] = []
    lists_done = 0

    async def writer(index: int, rng: random.Random) -> None:
        mine = [n for n in names if n[1].startswith(f"w{index}-")]
        seq = itertools.count()
        while not stop.is_set():
            ns, name = rng.choice(mine)
            log = acked.keys[(ns, name)]
            log.started += 1
            if rng.random() < 0.65:
                put = await etcd_kv.put(
                    flunder_key(prefix, name, ns), orjson.dumps(flunder(name, ns, spec={"n": next(seq)}))
                )
                log.last = ("put", put.header.revision)
                acked.ack(put.header.revision)
            else:
                deleted = await etcd_kv.delete(flunder_key(prefix, name, ns))
                if deleted is not None:
                    log.last = ("delete", deleted.header.revision)
                    acked.ack(deleted.header.revision)
            log.done += 1

    async def noise() -> None:
        # Outside the resource's range: etcd's revision moves, the cache's watch receives nothing.
        for i in itertools.count():
            if stop.is_set():
                return
            put = await etcd_kv.put(f"{prefix}-noise/k{i % 50}".encode(), b"x")
            acked.ack(put.header.revision)

    async def reader(flunders: Resource) -> None:
        nonlocal lists_done
        while not stop.is_set():
            before = {k: (log.done, log.last) for k, log in acked.keys.items()}
            floor = acked.max_revision
            listed = await flunders.list()
            items = by_name(listed.items)
            lists_done += 1
            if int(listed.resource_version) < floor:
                stale.append(f"list at {listed.resource_version} older than acknowledged revision {floor}")
            for k, (done_before, last) in before.items():
                concurrent = acked.keys[k].started > done_before
                item = items.get(k)
                rv = int(item["metadata"]["resourceVersion"]) if item is not None else None
                if last is None:
                    continue
                kind, revision = last
                if kind == "put":
                    if rv is None and not concurrent:
                        stale.append(f"{k} acknowledged at {revision} is missing")
                    elif rv is not None and (rv < revision or (rv != revision and not concurrent)):
                        stale.append(f"{k} at {rv}, acknowledged at {revision}")
                elif rv is not None and (rv < revision or not concurrent):
                    stale.append(f"{k} deleted at {revision} still listed at {rv}")

    settings = CacheSettings(sync_timeout=10)
    async with opened(etcd_endpoints, prefix, settings) as flunders:
        rngs = [random.Random(i) for i in range(3)]
        tasks = [asyncio.create_task(writer(i, rngs[i]), name=f"writer-{i}") for i in range(3)]
        tasks.append(asyncio.create_task(noise(), name="noise"))
        tasks += [asyncio.create_task(reader(flunders), name=f"reader-{i}") for i in range(4)]
        try:
            done, _ = await asyncio.wait(tasks, timeout=5.0, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a failing task fails the test with its own error
        finally:
            stop.set()
            async with asyncio.timeout(30):
                results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors
        assert stale == [], f"{len(stale)} stale answers in {lists_done} lists: {stale[:10]}"
        assert lists_done > 20, f"only {lists_done} lists in 5 s"
        assert flunders.cache.stats.progress_writes > 0, "the progress-key mechanism was never exercised"


async def test_resource_version_zero_is_served_at_once(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """resourceVersion=0 answers from the cache at once, without catching up with etcd first."""
    key = flunder_key(prefix, "f1", "default")
    async with opened(etcd_endpoints, prefix) as flunders:
        put = await etcd_kv.put(key, orjson.dumps(flunder("f1", "default")))
        await flunders.list()  # the object is in the cache
        stop = asyncio.Event()

        async def noise() -> None:
            for i in itertools.count():
                if stop.is_set():
                    return
                await etcd_kv.put(f"{prefix}-noise/k{i % 10}".encode(), b"x")

        task = asyncio.create_task(noise(), name="noise")
        try:
            for _ in range(20):
                writes = flunders.cache.stats.progress_writes
                started = time.monotonic()
                async with asyncio.timeout(0.5):
                    listed = await flunders.list(resource_version="0")
                    got = await flunders.get("f1", namespace="default", resource_version="0")
                assert time.monotonic() - started < 0.5
                assert [o["metadata"]["resourceVersion"] for o in listed.items] == [str(put.header.revision)]
                assert got["metadata"]["resourceVersion"] == str(put.header.revision)
                assert flunders.cache.stats.progress_writes == writes, "rv=0 waited for a progress write"
                await asyncio.sleep(0.01)  # let the noise writer move etcd between reads
        finally:
            stop.set()
            await task


async def test_not_older_than_returns_a_state_at_least_that_new(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """resourceVersion=N (NotOlderThan) of a write in this resource returns that write, at >= N."""
    async with opened(etcd_endpoints, prefix, CacheSettings(wait_timeout=3)) as flunders:
        for i in range(10):
            put = await etcd_kv.put(
                flunder_key(prefix, f"f{i}", "default"), orjson.dumps(flunder(f"f{i}", "default"))
            )
            n = put.header.revision
            listed = await flunders.list(resource_version=str(n), resource_version_match="NotOlderThan")
            assert int(listed.resource_version) >= n
            assert f"f{i}" in {o["metadata"]["name"] for o in listed.items}
            listed = await flunders.list(resource_version=n)  # NotOlderThan is the default
            assert int(listed.resource_version) >= n
            got = await flunders.get(f"f{i}", namespace="default", resource_version=str(n))
            assert got["metadata"]["resourceVersion"] == str(n)


async def test_not_older_than_an_acknowledged_revision_of_another_resource(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """resourceVersion=N where N is a revision etcd acknowledged (for a write outside this resource)
    is reachable: the list returns a state at >= N within the wait, not 504 (Kubernetes requests
    progress while a read waits for freshness)."""
    async with opened(etcd_endpoints, prefix, CacheSettings(wait_timeout=3)) as flunders:
        await etcd_kv.put(flunder_key(prefix, "f1", "default"), orjson.dumps(flunder("f1", "default")))
        await flunders.list()
        put = await etcd_kv.put(f"{prefix}-other/x".encode(), b"x")  # outside the resource
        n = put.header.revision
        listed = await flunders.list(resource_version=str(n))
        assert int(listed.resource_version) >= n
        assert [o["metadata"]["name"] for o in listed.items] == ["f1"]


async def test_future_resource_version_times_out(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """A resourceVersion 10 000 ahead of the cache gives 504 Timeout after wait_timeout (0.5 s)."""
    async with opened(etcd_endpoints, prefix, CacheSettings(wait_timeout=RV_WAIT)) as flunders:
        await etcd_kv.put(flunder_key(prefix, "f1", "default"), orjson.dumps(flunder("f1", "default")))
        await flunders.list()
        future = flunders.cache.revision + 10_000
        started = time.monotonic()
        with pytest.raises(TimedOutError) as raised:
            await flunders.list(resource_version=str(future))
        elapsed = time.monotonic() - started
        assert RV_WAIT * 0.9 <= elapsed < RV_WAIT + 1.5, elapsed
        status = raised.value.status()
        assert (status["code"], status["reason"]) == (504, "Timeout")
        with pytest.raises(TimedOutError):
            await flunders.get("f1", namespace="default", resource_version=str(future))


async def test_progress_key_is_never_served(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """The progress key the cache writes shows up in no list and in no watch event."""
    progress_key = f"{prefix}/wardle.example.com/flunders".encode()
    async with opened(etcd_endpoints, prefix) as flunders:
        assert flunders.cache.layout.progress_key == progress_key
        start = await flunders.list()
        async with flunders.watch(resource_version=start.resource_version) as watch:
            written: list[tuple[str, int]] = []
            for i in range(5):
                put = await etcd_kv.put(
                    flunder_key(prefix, f"f{i}", "default"), orjson.dumps(flunder(f"f{i}", "default"))
                )
                written.append((f"f{i}", put.header.revision))
                await etcd_kv.put(f"{prefix}-noise/x".encode(), b"x")  # forces a progress write
                listed = await flunders.list()
                assert sorted(o["metadata"]["name"] for o in listed.items) == [f"f{j}" for j in range(i + 1)]
            assert flunders.cache.stats.progress_writes > 0
            assert await etcd_kv.get(progress_key) is not None, "the progress key was never written"
            for namespace in (None, "default"):
                listed = await flunders.list(namespace=namespace, resource_version="0")
                assert all(o["metadata"]["name"].startswith("f") for o in listed.items)
            seen: list[tuple[str, int]] = []
            async with asyncio.timeout(10):
                while len(seen) < len(written):
                    for event in await watch.next_events():
                        assert event.type == "ADDED", event
                        seen.append((event.object["metadata"]["name"], event.revision))
            assert seen == written
            # A last progress write, then nothing else may arrive: everything dispatched is buffered.
            await etcd_kv.put(f"{prefix}-noise/x".encode(), b"x")
            await flunders.list()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    extra = await watch.next_events()
                    pytest.fail(f"unexpected events: {extra}")


async def test_existing_data_is_served_as_stored(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """Objects written straight to etcd before the Storage starts are listed and got with
    resourceVersion = mod_revision and every other field (uid included) untouched."""
    stored: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
    for ns in ("alpha", "beta"):
        for i in range(3):
            obj = {
                "apiVersion": "wardle.example.com/v1alpha1",
                "kind": "Flunder",
                "metadata": {
                    "name": f"old-{i}",
                    "namespace": ns,
                    "uid": f"uid-{ns}-{i}",
                    "creationTimestamp": "2020-01-02T03:04:05Z",
                    "labels": {"app": "legacy", "i": str(i)},
                },
                "spec": {"reference": f"{ns}/{i}", "nested": {"list": [1, 2, 3]}},
            }
            put = await etcd_kv.put(flunder_key(prefix, f"old-{i}", ns), orjson.dumps(obj))
            stored[(ns, f"old-{i}")] = (obj, put.header.revision)

    def served(obj: dict[str, Any], revision: int) -> dict[str, Any]:
        expected = orjson.loads(orjson.dumps(obj))
        expected["metadata"]["resourceVersion"] = str(revision)
        return expected

    async with opened(etcd_endpoints, prefix) as flunders:
        listed = await flunders.list()
        items = by_name(listed.items)
        assert set(items) == set(stored)
        for k, (obj, revision) in stored.items():
            assert items[k] == served(obj, revision)
        got = await flunders.get("old-1", namespace="beta")
        assert got == served(*stored[("beta", "old-1")])
        selected = await flunders.list(namespace="alpha", label_selector="app=legacy,i in (0,2)")
        assert sorted(o["metadata"]["name"] for o in selected.items) == ["old-0", "old-2"]
        async with flunders.watch(resource_version="0") as watch:
            initial: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                while len(initial) < len(stored):
                    initial += [e.object for e in await watch.next_events()]
        assert by_name(initial) == items


async def test_consistent_list_equals_a_linearizable_range(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """After a burst of direct writes, a consistent list equals etcd's own range exactly."""
    rng = random.Random(7)
    async with opened(etcd_endpoints, prefix) as flunders, EtcdClient(etcd_endpoints) as direct:
        for round_ in range(5):
            for _ in range(20):
                ns, name = rng.choice(["a", "b"]), f"f{rng.randrange(8)}"
                if rng.random() < 0.7:
                    await etcd_kv.put(
                        flunder_key(prefix, name, ns), orjson.dumps(flunder(name, ns, r=round_))
                    )
                else:
                    await etcd_kv.delete(flunder_key(prefix, name, ns))
            listed = await flunders.list()
            start, end = flunders.cache.layout.list_range()
            truth = await direct.range(start, end)
            assert [
                (o["metadata"]["namespace"], o["metadata"]["name"], o["metadata"]["resourceVersion"])
                for o in listed.items
            ] == [(*kv.key.decode().rsplit("/", 2)[1:], str(kv.mod_revision)) for kv in truth.kvs]
            assert int(listed.resource_version) <= truth.revision


async def test_update_right_after_a_direct_write_is_applied(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """An update through the API right after another client changed the object straight in etcd is
    really written: its answer and a consistent get afterwards both show the update's content (a
    stale cached copy that happens to equal the new content must not short-circuit the write)."""
    async with opened(etcd_endpoints, prefix) as flunders:
        for i in range(50):
            name = f"f{i}"
            created = await flunders.create(flunder(name, "default", spec={"v": "mine"}))
            await flunders.list()  # the cache holds the created state
            # Another client changes the object (keeping uid and creationTimestamp).
            theirs = orjson.loads(orjson.dumps(created))
            del theirs["metadata"]["resourceVersion"]
            theirs["spec"] = {"v": "theirs"}
            await etcd_kv.put(flunder_key(prefix, name, "default"), orjson.dumps(theirs))
            # An unconditional update back to the created content.
            mine = orjson.loads(orjson.dumps(created))
            del mine["metadata"]["resourceVersion"]
            updated = await flunders.update(mine)
            assert updated["spec"] == {"v": "mine"}
            answered = updated["metadata"]["resourceVersion"]
            got = await flunders.get(name, namespace="default")
            assert (got["spec"], got["metadata"]["resourceVersion"]) == ({"v": "mine"}, answered), (
                f"iteration {i}: the update answered {answered} but was not written"
            )
            assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
