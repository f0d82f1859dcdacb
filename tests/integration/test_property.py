"""Model-based property test of the cache against etcd's own history.

Hypothesis draws a sequence of operations — writes through the API and straight to etcd, watchers
(with label selectors and namespaces, from a list's resourceVersion, from 0 or unset) and consistent
lists — and runs it, one at a time, against a fresh Storage on the session etcd. Then:

- every write's outcome agrees with a model of what etcd holds (create fails iff the object exists,
  update/delete fail iff it does not), and etcd holds what the model says;
- every consistent list equals etcd's linearizable range right after it (no write is in flight);
- every watcher received exactly the events that etcd's history (read with a direct etcd watch) and
  Kubernetes' selector semantics call for: ADDED when an object starts matching, MODIFIED while it
  matches, DELETED when it stops matching or is deleted; ADDED for the initial state when it started
  from 0 or unset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.etcd import etcd_client, unique_prefix
from support.wardle import FLUNDERS, flunder_key

from watchcache import (
    AlreadyExistsError,
    EmbeddedEtcd,
    NotFoundError,
    Resource,
    Storage,
    Watch,
)
from watchcache.etcd.client import EtcdClient
from watchcache.etcd.types import EventType, KeyValue

pytestmark = pytest.mark.etcd

NAMESPACES = ("ns-1", "ns-2")
NAMES = ("a", "b", "c")
LABEL_SETS: tuple[dict[str, str], ...] = (
    {},
    {"app": "x"},
    {"app": "y"},
    {"app": "x", "tier": "t"},
    {"tier": "t"},
)
Labels = dict[str, str]
SELECTORS: tuple[tuple[str | None, Callable[[Labels], bool]], ...] = (
    (None, lambda labels: True),
    ("app=x", lambda labels: labels.get("app") == "x"),
    ("app!=x", lambda labels: labels.get("app") != "x"),
    ("app in (x,y)", lambda labels: labels.get("app") in ("x", "y")),
    ("tier", lambda labels: "tier" in labels),
    ("!tier", lambda labels: "tier" not in labels),
    ("app=x,tier", lambda labels: labels.get("app") == "x" and "tier" in labels),
)

Op = tuple[Any, ...]
objects = st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(NAMES))
labels = st.integers(0, len(LABEL_SETS) - 1)
selectors = st.integers(0, len(SELECTORS) - 1)
scopes = st.sampled_from((None, *NAMESPACES))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("api_create"), objects, labels),
        st.tuples(st.just("api_update"), objects, labels),
        st.tuples(st.just("api_delete"), objects),
        st.tuples(st.just("etcd_put"), objects, labels),
        st.tuples(st.just("etcd_delete"), objects),
        st.tuples(st.just("watch"), selectors, scopes, st.sampled_from(("list", "zero", "unset"))),
        st.tuples(st.just("list"), selectors, scopes),
    ),
    min_size=10,
    max_size=40,
)

Seen = tuple[str, str, str, int]  # (type, namespace, name, resourceVersion)


def body(namespace: str, name: str, label_set: int) -> dict[str, Any]:
    # The content depends on the labels only, so that an update may rewrite identical content.
    return {
        "apiVersion": "wardle.example.com/v1alpha1",
        "kind": "Flunder",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(LABEL_SETS[label_set])},
        "spec": {"shape": label_set},
    }


def labels_of(kv: KeyValue) -> Labels:
    labels: Labels = orjson.loads(kv.value)["metadata"].get("labels") or {}
    return labels


def ns_name(key: bytes) -> tuple[str, str]:
    namespace, name = key.decode().rsplit("/", 2)[1:]
    return namespace, name


@dataclass
class Watcher:
    watch: Watch
    selector: int
    scope: str | None
    since: int
    """The revision the watch's changes start after."""
    initial: list[Seen]
    """The initial ADDED events it must send first."""


class Scenario:
    def __init__(self, flunders: Resource, direct: EtcdClient, kv: Any, prefix: str) -> None:
        self.flunders = flunders
        self.direct = direct
        self.kv = kv
        self.prefix = prefix
        self.model: dict[tuple[str, str], Labels] = {}
        self.last_write = 0
        self.watchers: list[Watcher] = []

    def key(self, namespace: str, name: str) -> bytes:
        return flunder_key(self.prefix, name, namespace)

    def matches(self, selector: int, scope: str | None, namespace: str, label_set: Labels) -> bool:
        return (scope is None or scope == namespace) and SELECTORS[selector][1](label_set)

    async def truth(self, scope: str | None = None) -> tuple[int, tuple[KeyValue, ...]]:
        start, end = self.flunders.cache.layout.list_range(scope)
        result = await self.direct.range(start, end)
        return result.revision, result.kvs

    def wrote(self, revision: int) -> None:
        self.last_write = max(self.last_write, revision)

    async def run(self, op: Op) -> None:
        kind = op[0]
        if kind in ("api_create", "api_update", "etcd_put"):
            (namespace, name), label_set = op[1], op[2]
            exists = (namespace, name) in self.model
            if kind == "etcd_put":
                put = await self.kv.put(
                    self.key(namespace, name), orjson.dumps(body(namespace, name, label_set))
                )
                self.wrote(put.header.revision)
            elif kind == "api_create":
                try:
                    created = await self.flunders.create(body(namespace, name, label_set))
                except AlreadyExistsError:
                    assert exists, f"create {namespace}/{name}: AlreadyExists, but etcd has no such object"
                    return
                assert not exists, f"create {namespace}/{name} succeeded over an existing object"
                self.wrote(int(created["metadata"]["resourceVersion"]))
            else:
                try:
                    updated = await self.flunders.update(body(namespace, name, label_set))
                except NotFoundError:
                    assert not exists, f"update {namespace}/{name}: NotFound, but etcd has it"
                    return
                assert exists, f"update {namespace}/{name} succeeded on an absent object"
                assert updated["metadata"]["labels"] == LABEL_SETS[label_set]
                self.wrote(int(updated["metadata"]["resourceVersion"]))
            self.model[(namespace, name)] = dict(LABEL_SETS[label_set])
        elif kind in ("api_delete", "etcd_delete"):
            namespace, name = op[1]
            exists = (namespace, name) in self.model
            if kind == "etcd_delete":
                deleted = await self.kv.delete(self.key(namespace, name))
                assert (deleted is not None) == exists
                if deleted is not None:
                    self.wrote(deleted.header.revision)
            else:
                try:
                    gone = await self.flunders.delete(name, namespace=namespace)
                except NotFoundError:
                    assert not exists, f"delete {namespace}/{name}: NotFound, but etcd has it"
                    return
                assert exists, f"delete {namespace}/{name} succeeded on an absent object"
                self.wrote(int(gone["metadata"]["resourceVersion"]))
            self.model.pop((namespace, name), None)
        elif kind == "list":
            await self.check_list(op[1], op[2])
        else:
            await self.start_watch(op[1], op[2], op[3])

    async def check_list(self, selector: int, scope: str | None) -> None:
        """A consistent list equals etcd's range taken right after it; etcd holds the model."""
        listed = await self.flunders.list(namespace=scope, label_selector=SELECTORS[selector][0])
        revision, kvs = await self.truth(scope)
        assert self.last_write <= int(listed.resource_version) <= revision
        got = [
            (
                o["metadata"]["namespace"],
                o["metadata"]["name"],
                o["metadata"]["resourceVersion"],
                o["metadata"].get("labels") or {},
            )
            for o in listed.items
        ]
        want = [
            (*ns_name(kv.key), str(kv.mod_revision), labels_of(kv))
            for kv in kvs
            if self.matches(selector, scope, ns_name(kv.key)[0], labels_of(kv))
        ]
        assert got == want, f"consistent list {SELECTORS[selector][0]!r} in {scope}"
        in_etcd = {ns_name(kv.key): labels_of(kv) for kv in kvs}
        in_model = {k: v for k, v in self.model.items() if scope is None or k[0] == scope}
        assert in_etcd == in_model, "etcd does not hold what the acknowledged writes say"

    async def start_watch(self, selector: int, scope: str | None, start: str) -> None:
        label_selector = SELECTORS[selector][0]
        initial: list[Seen] = []
        if start == "list":
            listed = await self.flunders.list(namespace=scope, label_selector=label_selector)
            since = int(listed.resource_version)
            watch = self.flunders.watch(
                namespace=scope, label_selector=label_selector, resource_version=listed.resource_version
            )
        else:
            if start == "zero":
                await self.flunders.list()  # caught up: "any recent state" is then the current one
            since, kvs = await self.truth(scope)  # no write in flight: what the watch must start with
            initial = [
                ("ADDED", *ns_name(kv.key), kv.mod_revision)
                for kv in kvs
                if self.matches(selector, scope, ns_name(kv.key)[0], labels_of(kv))
            ]
            watch = self.flunders.watch(
                namespace=scope,
                label_selector=label_selector,
                resource_version="0" if start == "zero" else None,
            )
        await watch.open()
        self.watchers.append(Watcher(watch, selector, scope, since, initial))

    async def history(self, since: int) -> list[tuple[EventType, KeyValue]]:
        """etcd's own events of the resource after ``since``, up to the last write."""
        if self.last_write <= since:
            return []
        start, end = self.flunders.cache.layout.list_range()
        events: list[tuple[EventType, KeyValue]] = []
        async with asyncio.timeout(10), self.direct.watch(start, end, start_revision=since + 1) as stream:
            async for batch in stream:
                events += [(e.type, e.kv) for e in batch.events]
                if events and events[-1][1].mod_revision >= self.last_write:
                    return events
        raise AssertionError("etcd's watch ended early")

    async def expected(self, watcher: Watcher) -> list[Seen]:
        """Kubernetes' selector transitions over etcd's history from the watcher's start."""
        start, end = self.flunders.cache.layout.list_range()
        state = {
            kv.key: labels_of(kv) for kv in (await self.direct.range(start, end, revision=watcher.since)).kvs
        }
        seen = list(watcher.initial)
        for event_type, kv in await self.history(watcher.since):
            namespace, name = ns_name(kv.key)
            prev = state.get(kv.key)
            was = prev is not None and self.matches(watcher.selector, watcher.scope, namespace, prev)
            if event_type is EventType.DELETE:
                state.pop(kv.key, None)
                if was:
                    seen.append(("DELETED", namespace, name, kv.mod_revision))
                continue
            now_labels = state[kv.key] = labels_of(kv)
            now = self.matches(watcher.selector, watcher.scope, namespace, now_labels)
            if now:
                seen.append(("MODIFIED" if was else "ADDED", namespace, name, kv.mod_revision))
            elif was:
                seen.append(("DELETED", namespace, name, kv.mod_revision))
        return seen

    async def received(self, watcher: Watcher, count: int) -> list[Seen]:
        """What the watcher sent: ``count`` events if it sends that many (within a deadline: all of
        them are queued already), plus any it has queued beyond, for the caller to compare."""
        seen: list[Seen] = []
        try:
            async with asyncio.timeout(5):
                while len(seen) < count:
                    events = await watcher.watch.next_events()
                    if not events:
                        seen.append(("(watch ended)", "", "", 0))
                        return seen
                    for event in events:
                        if event.type == "ERROR":
                            seen.append(("ERROR", str(event.object), "", 0))
                            continue
                        meta = event.object["metadata"]
                        assert meta["resourceVersion"] == str(event.revision)
                        seen.append((event.type, meta["namespace"], meta["name"], event.revision))
        except TimeoutError:
            return seen  # fewer than expected: the comparison shows which are missing
        # Every change is already dispatched (a consistent list came first): anything more is queued.
        try:
            async with asyncio.timeout(0.05):
                extra = await watcher.watch.next_events()
        except TimeoutError:
            extra = []
        return seen + [(e.type, str(e.object.get("metadata")), "(extra)", e.revision) for e in extra]

    async def finish(self) -> None:
        await self.check_list(0, None)  # also brings the cache (and so every watcher) up to date
        for watcher in self.watchers:
            want = await self.expected(watcher)
            got = await self.received(watcher, len(want))
            assert got == want, (
                f"watcher {SELECTORS[watcher.selector][0]!r} in {watcher.scope} from {watcher.since}"
            )


async def scenario(endpoint: str, ops: list[Op]) -> None:
    prefix = unique_prefix()
    async with (
        Storage([endpoint], prefix=prefix) as storage,
        EtcdClient([endpoint]) as direct,
        etcd_client(endpoint) as kv,
    ):
        flunders = storage.resource(FLUNDERS)
        await storage.wait_ready(10)
        run = Scenario(flunders, direct, kv, prefix)
        try:
            for op in ops:
                await run.run(op)
            await run.finish()
        finally:
            for watcher in run.watchers:
                watcher.watch.close()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
    # No shrinking: each example runs real etcd I/O, and shrinking one could outlast the test's
    # timeout; the failing example is printed as drawn.
    phases=[Phase.explicit, Phase.generate],
)
@given(ops=operations)
def test_cache_agrees_with_etcd_history(etcd: EmbeddedEtcd, ops: list[Op]) -> None:
    """Writes agree with a model of etcd, consistent lists equal etcd's range, and every watcher
    receives exactly the events etcd's history and Kubernetes' selector semantics call for."""
    asyncio.run(scenario(etcd.endpoints[0], ops))
