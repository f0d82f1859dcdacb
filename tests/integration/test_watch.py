"""WATCH through the embedded API, against the real (session) etcd.

Every event is read against a deadline and every condition is polled against one: no test sleeps a
fixed time and hopes. Writes go through the API or straight to etcd (as another etcd user would).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aetcd
import orjson
import pytest
from support.waiting import wait_until
from support.wardle import FLUNDERS, flunder, flunder_key, rv

from watchcache import (
    BadRequestError,
    CacheSettings,
    NotFoundError,
    Resource,
    StatusError,
    Storage,
    TimedOutError,
    Watch,
    WatchEvent,
)
from watchcache.http.wire import event_line

GROUP = "wardle.example.com"
V1ALPHA1 = f"{GROUP}/v1alpha1"
V1BETA1 = f"{GROUP}/v1beta1"

EVENT_WAIT = 5.0
"""Seconds any single expected event may take to arrive (it normally takes milliseconds)."""


async def next_chunk(w: Watch) -> bytes:
    """The next events of ``w`` as the REST front writes them (JSON lines); b"" once ended."""
    return b"".join(event_line(event) for event in await w.next_events())


# -- helpers -----------------------------------------------------------------------------------------


@asynccontextmanager
async def serving(endpoints: list[str], prefix: str, **settings: Any) -> AsyncIterator[Resource]:
    """A started Storage serving flunders under ``prefix``; yields the ready resource."""
    async with Storage(endpoints, prefix=prefix, settings=CacheSettings(**settings)) as storage:
        res = storage.resource(FLUNDERS)
        await res.wait_ready()
        yield res


def changed(obj: dict[str, Any], **edits: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A guaranteed_update mutation: ``labels=`` replaces the labels, ``size=`` the spec size."""

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        if "labels" in edits:
            current["metadata"]["labels"] = edits["labels"]
        if "size" in edits:
            current["spec"] = {"size": edits["size"]}
        return current

    return mutate


async def update(res: Resource, obj: dict[str, Any], **edits: Any) -> dict[str, Any]:
    meta = obj["metadata"]
    return await res.guaranteed_update(meta["name"], changed(obj, **edits), namespace=meta["namespace"])


async def next_event(w: Watch, within: float = EVENT_WAIT) -> WatchEvent:
    async with asyncio.timeout(within):
        return await anext(w)


async def take(w: Watch, count: int, within: float = EVENT_WAIT) -> list[WatchEvent]:
    """Exactly the next ``count`` events (fails if the watch ends first)."""
    async with asyncio.timeout(within):
        return [await anext(w) for _ in range(count)]


async def assert_ends(w: Watch, within: float = EVENT_WAIT) -> None:
    """The watch yields nothing more: its iteration ends."""
    async with asyncio.timeout(within):
        with pytest.raises(StopAsyncIteration):
            event = await anext(w)
            raise AssertionError(f"expected the end of the watch, got {event.type} {event.raw!r}")


async def collect_for(w: Watch, seconds: float) -> list[WatchEvent]:
    """Every event the watch yields within ``seconds`` (an assertion over a time span)."""
    events: list[WatchEvent] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for event in w:
                events.append(event)
    return events


def summary(events: list[WatchEvent]) -> list[tuple[str, str, int]]:
    """(type, name, resourceVersion) of object events; checks revision = metadata.resourceVersion."""
    out: list[tuple[str, str, int]] = []
    for event in events:
        obj = event.object
        assert event.revision == rv(obj), event
        out.append((event.type, obj["metadata"]["name"], event.revision))
    return out


def assert_increasing(events: list[WatchEvent]) -> None:
    revisions = [rv(e.object) for e in events]
    assert revisions == sorted(set(revisions)), f"resourceVersions not strictly increasing: {revisions}"


# -- 1. live events ----------------------------------------------------------------------------------


async def test_watch_sees_api_writes_in_order(etcd_endpoints: list[str], prefix: str) -> None:
    """From a list's resourceVersion: ADDED, MODIFIED, DELETED (at the deletion's rv), rv increasing."""
    async with serving(etcd_endpoints, prefix) as res:
        start = (await res.list()).resource_version
        async with res.watch(resource_version=start) as w:
            created = await res.create(flunder("a", labels={"app": "x"}))
            updated = await update(res, created, size=2)
            deleted = await res.delete("a", namespace="default")
            events = await take(w, 3)
        assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
        assert_increasing(events)
        assert int(start) < events[0].revision
        assert events[0].object == created
        assert events[1].object == updated
        assert events[1].object["spec"] == {"size": 2}
        assert events[2].object == deleted
        assert rv(deleted) > rv(updated)
        assert events[2].revision == rv(deleted)
        assert w.resource_version == str(rv(deleted))
        assert res.cache.watcher_count == 0


async def test_watch_sees_writes_made_straight_to_etcd(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """Puts and deletes of JSON under the SPEC layout are ADDED/MODIFIED/DELETED at their mod_revision."""
    async with serving(etcd_endpoints, prefix) as res:
        start = (await res.list()).resource_version
        async with res.watch(resource_version=start) as w:
            obj = flunder("direct")
            # A stale stored resourceVersion and another served apiVersion are both overridden on read.
            obj["metadata"]["resourceVersion"] = "1"
            obj["apiVersion"] = V1BETA1
            put1 = await etcd_kv.put(flunder_key(prefix, "direct"), orjson.dumps(obj))
            obj["spec"] = {"size": 7}
            put2 = await etcd_kv.put(flunder_key(prefix, "direct"), orjson.dumps(obj))
            gone = await etcd_kv.delete(flunder_key(prefix, "direct"))
            events = await take(w, 3)
        assert summary(events) == [
            ("ADDED", "direct", put1.header.revision),
            ("MODIFIED", "direct", put2.header.revision),
            ("DELETED", "direct", gone.header.revision),
        ]
        for event in events:
            assert event.object["apiVersion"] == V1ALPHA1
            assert event.object["metadata"]["namespace"] == "default"
        assert events[0].object["spec"] == {"size": 1}
        assert events[1].object["spec"] == {"size": 7}
        assert events[2].object["spec"] == {"size": 7}  # the last state, at the deletion's revision


async def test_list_then_watch_has_no_gap_and_no_duplicate(etcd_endpoints: list[str], prefix: str) -> None:
    """Creates racing a list+watch appear exactly once: in the list or as a watch event after it."""
    names = [f"o{i:02d}" for i in range(30)]
    async with serving(etcd_endpoints, prefix) as res:

        async def writer() -> dict[str, int]:
            return {n: rv(await res.create(flunder(n))) for n in names}

        task = asyncio.create_task(writer())
        await wait_until(lambda: res.object_count >= 5, within=EVENT_WAIT, message="first creates")
        page = await res.list()
        seen = {i["metadata"]["name"]: rv(i) for i in page.items}
        async with res.watch(resource_version=page.resource_version) as w:
            written = await task
            async with asyncio.timeout(EVENT_WAIT):
                while len(seen) < len(names):
                    event = await anext(w)
                    name = event.object["metadata"]["name"]
                    assert event.type == "ADDED" and name not in seen, (event.type, name)
                    assert event.revision > int(page.resource_version)
                    seen[name] = event.revision
        assert seen == written


# -- 2. replay, resourceVersion 0 and unset ------------------------------------------------------------


async def test_watch_from_old_resource_version_replays_exactly_what_followed(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """A watch from a past rv replays exactly the later changes, in order, then continues live."""
    async with serving(etcd_endpoints, prefix) as res:
        start = (await res.list()).resource_version
        a = await res.create(flunder("a"))
        b = await res.create(flunder("b"))
        a2 = await update(res, a, size=5)
        b_gone = await res.delete("b", namespace="default")
        c_put = await etcd_kv.put(flunder_key(prefix, "c"), orjson.dumps(flunder("c")))
        expected = [
            ("ADDED", "a", rv(a)),
            ("ADDED", "b", rv(b)),
            ("MODIFIED", "a", rv(a2)),
            ("DELETED", "b", rv(b_gone)),
            ("ADDED", "c", c_put.header.revision),
        ]
        await res.list()  # consistent: the cache has every change above
        async with res.watch(resource_version=start) as w:
            replayed = await take(w, len(expected))
            assert summary(replayed) == expected
            assert replayed[2].object == a2
            assert replayed[3].object == b_gone
            # Nothing else was owed: the next event is a live one.
            d = await res.create(flunder("d"))
            assert summary([await next_event(w)]) == [("ADDED", "d", rv(d))]
        # From the middle of the history: only what came after that point.
        async with res.watch(resource_version=rv(a2)) as w:
            assert summary(await take(w, 3)) == [*expected[3:], ("ADDED", "d", rv(d))]
        # From the latest change: nothing but live changes.
        async with res.watch(resource_version=rv(d)) as w:
            e = await res.create(flunder("e"))
            assert summary([await next_event(w)]) == [("ADDED", "e", rv(e))]


@pytest.mark.parametrize("resource_version", [None, "0", 0])
async def test_watch_without_resource_version_starts_with_current_objects(
    etcd_endpoints: list[str], prefix: str, resource_version: str | int | None
) -> None:
    """resourceVersion unset or 0: ADDED for every current object (at its rv), then live changes."""
    async with serving(etcd_endpoints, prefix) as res:
        a = await res.create(flunder("a"))
        b = await res.create(flunder("b", namespace="other"))
        c = await res.create(flunder("c"))
        c = await update(res, c, size=3)
        gone = await res.create(flunder("gone"))
        await res.delete("gone", namespace="default")
        if resource_version is not None:
            await res.list()  # rv=0 is "any recent state": make that state include the writes
        async with res.watch(resource_version=resource_version) as w:
            initial = await take(w, 3)
            assert sorted(summary(initial)) == sorted(
                [("ADDED", "a", rv(a)), ("ADDED", "b", rv(b)), ("ADDED", "c", rv(c))]
            )
            assert {e.object["metadata"]["uid"] for e in initial} == {o["metadata"]["uid"] for o in (a, b, c)}
            assert gone["metadata"]["uid"] not in {e.object["metadata"]["uid"] for e in initial}
            a2 = await update(res, a, size=9)
            assert summary([await next_event(w)]) == [("MODIFIED", "a", rv(a2))]


async def test_unset_resource_version_is_consistent(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """resourceVersion unset: an object written straight to etcd just before the watch is ADDED."""
    async with serving(etcd_endpoints, prefix) as res:
        put = await etcd_kv.put(flunder_key(prefix, "fresh"), orjson.dumps(flunder("fresh")))
        async with res.watch() as w:
            assert summary([await next_event(w)]) == [("ADDED", "fresh", put.header.revision)]


# -- 3. too old -----------------------------------------------------------------------------------------


async def test_watch_from_before_the_window_is_expired(etcd_endpoints: list[str], prefix: str) -> None:
    """Past window_events changes, a watch from the first rv gets one ERROR (410 Expired) and ends."""
    async with serving(etcd_endpoints, prefix, window_events=5) as res:
        obj = await res.create(flunder("a"))
        first = rv(obj)
        revisions = [first]
        for size in range(2, 9):  # 8 changes in all: 3 more than the window holds
            obj = await update(res, obj, size=size)
            revisions.append(rv(obj))
        await res.list()  # consistent: every change is in the cache
        async with res.watch(resource_version=first) as w:
            event = await next_event(w)
            assert event.type == "ERROR"
            status = event.object
            assert status["kind"] == "Status" and status["apiVersion"] == "v1"
            assert status["status"] == "Failure"
            assert status["code"] == 410 and status["reason"] == "Expired"
            await assert_ends(w)
            assert res.cache.watcher_count == 0
        # The 5 most recent changes are still replayable: from the rv just before them, exactly those.
        async with res.watch(resource_version=revisions[-6]) as w:
            replayed = await take(w, 5)
            assert [e.revision for e in replayed] == revisions[-5:]
            assert all(e.type == "MODIFIED" for e in replayed)
        # The chunked form: one ERROR line, then the end.
        w = res.watch(resource_version=first)
        lines = (await next_chunk(w)).splitlines()
        assert len(lines) == 1
        parsed = orjson.loads(lines[0])
        assert parsed["type"] == "ERROR" and parsed["object"]["code"] == 410
        assert await next_chunk(w) == b""
        w.close()


# -- 4. sendInitialEvents ------------------------------------------------------------------------------


async def test_send_initial_events_ends_with_annotated_bookmark(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """sendInitialEvents: ADDED for current objects, a BOOKMARK annotated initial-events-end, then live."""
    async with serving(etcd_endpoints, prefix) as res:
        a = await res.create(flunder("a"))
        b = await res.create(flunder("b", namespace="other"))
        async with res.watch(
            send_initial_events=True, resource_version_match="NotOlderThan", allow_bookmarks=True
        ) as w:
            initial = await take(w, 2)
            assert sorted(summary(initial)) == [("ADDED", "a", rv(a)), ("ADDED", "b", rv(b))]
            bookmark = await next_event(w)
            assert bookmark.type == "BOOKMARK"
            obj = bookmark.object
            assert obj["kind"] == "Flunder" and obj["apiVersion"] == V1ALPHA1
            assert obj["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
            mark = int(obj["metadata"]["resourceVersion"])
            assert mark == bookmark.revision
            assert mark >= rv(b)
            a2 = await update(res, a, size=4)
            live = await next_event(w)
            assert summary([live]) == [("MODIFIED", "a", rv(a2))]
            assert live.revision > mark


async def test_send_initial_events_with_resource_version(etcd_endpoints: list[str], prefix: str) -> None:
    """sendInitialEvents with resourceVersion=N (NotOlderThan): the state at N or newer, then the bookmark."""
    async with serving(etcd_endpoints, prefix) as res:
        a = await res.create(flunder("a"))
        async with res.watch(
            resource_version=rv(a),
            send_initial_events=True,
            resource_version_match="NotOlderThan",
            allow_bookmarks=True,
        ) as w:
            assert summary([await next_event(w)]) == [("ADDED", "a", rv(a))]
            bookmark = await next_event(w)
            assert bookmark.type == "BOOKMARK"
            assert bookmark.object["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
            assert bookmark.revision >= rv(a)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"send_initial_events": True, "allow_bookmarks": True}, id="no-match"),
        pytest.param(
            {
                "send_initial_events": True,
                "resource_version_match": "Exact",
                "allow_bookmarks": True,
                "resource_version": "1",
            },
            id="exact-match",
        ),
        pytest.param(
            {"send_initial_events": True, "resource_version_match": "NotOlderThan"}, id="no-bookmarks"
        ),
        pytest.param({"resource_version_match": "NotOlderThan", "resource_version": "0"}, id="match-alone"),
        pytest.param({"resource_version_match": "Exact", "resource_version": "1"}, id="exact-alone"),
        pytest.param({"resource_version": "abc"}, id="bad-rv"),
        pytest.param({"resource_version": "-1"}, id="negative-rv"),
        pytest.param({"label_selector": "a in (b"}, id="bad-label-selector"),
        pytest.param({"field_selector": "spec.size=1"}, id="unsupported-field"),
    ],
)
async def test_bad_watch_parameters_are_bad_request(
    etcd_endpoints: list[str], prefix: str, options: dict[str, Any]
) -> None:
    """Invalid watch parameter combinations raise BadRequestError (400) and register nothing."""
    async with serving(etcd_endpoints, prefix) as res:
        with pytest.raises(BadRequestError) as raised:
            async with res.watch(**options):
                pass
        assert raised.value.status()["code"] == 400
        assert res.cache.watcher_count == 0


# -- 5. periodic bookmarks ----------------------------------------------------------------------------


async def test_periodic_bookmarks_only_when_allowed(etcd_endpoints: list[str], prefix: str) -> None:
    """allow_bookmarks: an idle watch gets bare BOOKMARKs every interval, each at exactly the revision
    the watcher has been sent everything up to (never ahead of it, never behind); without it, nothing.

    Nothing else writes to the session etcd during the test, and nothing here makes the cache write
    its progress key (no consistent read: the cache is waited for by polling), so the cache's
    revision is that of the last write and every bookmark's revision is known exactly: no assertion
    depends on when a bookmark happens to be due (a bookmark one revision ahead is caught on the first).
    """
    async with serving(etcd_endpoints, prefix, bookmark_interval=0.2) as res:
        a = await res.create(flunder("a"))
        synced = rv(a)
        await wait_until(lambda: res.cache.revision >= synced, within=EVENT_WAIT, message="the cache has a")
        assert res.cache.revision == synced
        async with (
            res.watch(resource_version=synced, allow_bookmarks=True) as with_marks,
            res.watch(resource_version=synced) as without,
        ):
            for event in await take(with_marks, 2):
                assert event.type == "BOOKMARK"
                assert event.object == {
                    "kind": "Flunder",
                    "apiVersion": V1ALPHA1,
                    "metadata": {"resourceVersion": str(synced)},
                }
                assert event.revision == synced
            # After a change: any bookmark still queued before it is at the old revision, the
            # change follows, and the next bookmark is exactly at the change.
            a2 = await update(res, a, size=2)
            async with asyncio.timeout(EVENT_WAIT):
                event = await anext(with_marks)
                while event.type == "BOOKMARK":
                    assert event.revision == synced
                    event = await anext(with_marks)
                assert summary([event]) == [("MODIFIED", "a", rv(a2))]
                after = await anext(with_marks)
            assert after.type == "BOOKMARK" and after.revision == rv(a2)
            # Two bookmark intervals and more have passed: the watch without bookmarks was sent
            # nothing before the change.
            assert summary([await next_event(without)]) == [("MODIFIED", "a", rv(a2))]


# -- 6. selectors and namespaces -----------------------------------------------------------------------


async def test_label_selector_transitions(etcd_endpoints: list[str], prefix: str) -> None:
    """Starting to match is ADDED, matching is MODIFIED, stopping is DELETED with the previous content."""
    async with serving(etcd_endpoints, prefix) as res:
        x = await res.create(flunder("x", labels={"app": "db"}))
        async with res.watch(resource_version=rv(x), label_selector="app=web") as w:
            x_in = await update(res, x, labels={"app": "web"})
            event = await next_event(w)
            assert summary([event]) == [("ADDED", "x", rv(x_in))]
            assert event.object == x_in

            x_mod = await update(res, x_in, size=3)
            event = await next_event(w)
            assert summary([event]) == [("MODIFIED", "x", rv(x_mod))]
            assert event.object == x_mod

            x_out = await update(res, x_mod, labels={"app": "db"}, size=4)
            event = await next_event(w)
            assert summary([event]) == [("DELETED", "x", rv(x_out))]
            left = event.object
            assert left["metadata"]["labels"] == {"app": "web"}  # the content it last matched with
            assert left["spec"] == {"size": 3}
            assert left == {**x_mod, "metadata": {**x_mod["metadata"], "resourceVersion": str(rv(x_out))}}

            # Changes of a non-matching object are not sent: the next event is the matching one.
            await update(res, x_out, size=5)
            await res.create(flunder("y", labels={"app": "db"}))
            z = await res.create(flunder("z", labels={"app": "web"}))
            assert summary([await next_event(w)]) == [("ADDED", "z", rv(z))]
            await res.delete("y", namespace="default")
            z_gone = await res.delete("z", namespace="default")
            assert summary([await next_event(w)]) == [("DELETED", "z", rv(z_gone))]

        # Unset resourceVersion with a selector: only the matching objects come as initial ADDEDs.
        w2 = await res.create(flunder("w2", labels={"app": "web"}))
        async with res.watch(label_selector="app in (web)") as w:
            assert summary([await next_event(w)]) == [("ADDED", "w2", rv(w2))]
            marker = await res.create(flunder("marker", labels={"app": "web"}))
            assert summary([await next_event(w)]) == [("ADDED", "marker", rv(marker))]


async def test_replay_applies_selector_transitions(etcd_endpoints: list[str], prefix: str) -> None:
    """A replay from a past rv with a label selector yields the same ADDED/MODIFIED/DELETED as live."""
    async with serving(etcd_endpoints, prefix) as res:
        x = await res.create(flunder("x"))
        x_in = await update(res, x, labels={"app": "web"})
        x_mod = await update(res, x_in, size=2)
        x_out = await update(res, x_mod, labels={})
        await res.list()
        async with res.watch(resource_version=rv(x), label_selector="app=web") as w:
            events = await take(w, 3)
        assert summary(events) == [
            ("ADDED", "x", rv(x_in)),
            ("MODIFIED", "x", rv(x_mod)),
            ("DELETED", "x", rv(x_out)),
        ]
        assert events[2].object["metadata"]["labels"] == {"app": "web"}


async def test_field_selector_watches_one_object(etcd_endpoints: list[str], prefix: str) -> None:
    """fieldSelector metadata.name=target: only that object's events."""
    async with serving(etcd_endpoints, prefix) as res:
        start = (await res.list()).resource_version
        async with res.watch(resource_version=start, field_selector="metadata.name=target") as w:
            other = await res.create(flunder("other"))
            target = await res.create(flunder("target"))
            await update(res, other, size=2)
            target2 = await update(res, target, size=2)
            await res.create(flunder("target", namespace="elsewhere"))  # same name, other namespace
            await res.delete("other", namespace="default")
            gone = await res.delete("target", namespace="default")
            events = await take(w, 4)
        assert summary(events) == [
            ("ADDED", "target", rv(target)),
            ("MODIFIED", "target", rv(target2)),
            ("ADDED", "target", events[2].revision),
            ("DELETED", "target", rv(gone)),
        ]
        assert events[2].object["metadata"]["namespace"] == "elsewhere"
        # Both fields: one object in one namespace.
        async with res.watch(
            resource_version=start, field_selector="metadata.name=target,metadata.namespace=default"
        ) as w:
            assert [e.type for e in await take(w, 3)] == ["ADDED", "MODIFIED", "DELETED"]


async def test_namespace_watch_sees_only_its_namespace(etcd_endpoints: list[str], prefix: str) -> None:
    """A namespace-scoped watch gets that namespace's objects only (initial state and changes)."""
    async with serving(etcd_endpoints, prefix) as res:
        await res.create(flunder("a", namespace="ns-b"))
        mine = await res.create(flunder("a", namespace="ns-a"))
        async with res.watch(namespace="ns-a") as w:
            first = await next_event(w)
            assert summary([first]) == [("ADDED", "a", rv(mine))]
            assert first.object["metadata"]["namespace"] == "ns-a"
            await res.create(flunder("b", namespace="ns-b"))
            await res.delete("a", namespace="ns-b")
            mine2 = await res.create(flunder("b", namespace="ns-a"))
            event = await next_event(w)
            assert summary([event]) == [("ADDED", "b", rv(mine2))]
            assert event.object["metadata"]["namespace"] == "ns-a"
        # The same, replayed from a past resourceVersion.
        async with res.watch(namespace="ns-a", resource_version=rv(mine)) as w:
            assert summary([await next_event(w)]) == [("ADDED", "b", rv(mine2))]


# -- 7. apiVersion ----------------------------------------------------------------------------------------


async def test_watch_serves_the_requested_version(etcd_endpoints: list[str], prefix: str) -> None:
    """Through v1beta1 every event's object has apiVersion .../v1beta1; a v1alpha1 watch keeps its own."""
    async with serving(etcd_endpoints, prefix) as res:
        a = await res.create(flunder("a", labels={"app": "web"}))
        async with (
            res.watch(
                version="v1beta1",
                send_initial_events=True,
                resource_version_match="NotOlderThan",
                allow_bookmarks=True,
            ) as beta,
            res.watch(version="v1beta1", resource_version=rv(a), label_selector="app=web") as beta_sel,
            res.watch(version="v1alpha1", resource_version=rv(a)) as alpha,
        ):
            a2 = await update(res, a, size=2)
            a3 = await update(res, a2, labels={})
            gone = await res.delete("a", namespace="default")
            beta_events = await take(beta, 5)
            sel_events = await take(beta_sel, 2)
            alpha_events = await take(alpha, 3)
        assert [e.type for e in beta_events] == ["ADDED", "BOOKMARK", "MODIFIED", "MODIFIED", "DELETED"]
        assert [e.type for e in sel_events] == ["MODIFIED", "DELETED"]  # DELETED: it left the selector
        for event in beta_events + sel_events:
            assert event.object["apiVersion"] == V1BETA1, event
        for event in alpha_events:
            assert event.object["apiVersion"] == V1ALPHA1, event
        # Same content apart from apiVersion.
        assert [e.revision for e in alpha_events] == [rv(a2), rv(a3), rv(gone)]
        for beta_event, alpha_event in zip(beta_events[2:], alpha_events, strict=True):
            assert {**beta_event.object, "apiVersion": V1ALPHA1} == alpha_event.object
        with pytest.raises(NotFoundError):
            async with res.watch(version="v2"):
                pass


# -- 8. slow watchers -----------------------------------------------------------------------------------


async def test_slow_watcher_is_ended_without_hurting_others(etcd_endpoints: list[str], prefix: str) -> None:
    """watcher_buffer=3: a watcher that never reads is ended; a reading one gets every event in order."""
    writes = 8
    async with serving(etcd_endpoints, prefix, watcher_buffer=3) as res:
        start = (await res.list()).resource_version
        async with (
            res.watch(resource_version=start) as slow,
            res.watch(resource_version=start) as reader,
        ):
            assert res.cache.watcher_count == 2
            received: list[WatchEvent] = []

            async def read() -> None:
                async for event in reader:
                    received.append(event)

            task = asyncio.create_task(read())
            try:
                written: list[tuple[str, str, int]] = []
                for i in range(writes):
                    written.append(("ADDED", f"o{i}", rv(await res.create(flunder(f"o{i}")))))
                    # The reader keeps up (one event at a time); the slow one never reads.
                    await wait_until(
                        lambda: len(received) >= len(written), within=EVENT_WAIT, message="reader got it"
                    )
                assert summary(received) == written
                await wait_until(
                    lambda: res.cache.watcher_count == 1, within=EVENT_WAIT, message="slow watcher ended"
                )
                assert res.cache.stats.watchers_ended_slow == 1
                assert not task.done()  # the reader is still watching
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # The slow watch ends: at most its buffered events, then the end of the iteration.
            leftovers: list[WatchEvent] = []
            async with asyncio.timeout(EVENT_WAIT):
                async for event in slow:
                    leftovers.append(event)
            assert len(leftovers) <= 3
            assert summary(leftovers) == written[: len(leftovers)]
            assert await slow.next_events() == []
        # The client re-watches from the last resourceVersion it saw and loses nothing.
        async with res.watch(resource_version=slow.resource_version or start) as again:
            assert summary(await take(again, writes - len(leftovers))) == written[len(leftovers) :]
        assert res.cache.watcher_count == 0


# -- 9. future resourceVersion ----------------------------------------------------------------------------


async def test_watch_from_future_resource_version_times_out(etcd_endpoints: list[str], prefix: str) -> None:
    """A resourceVersion far ahead of the cache raises TimedOutError (504 Timeout) after wait_timeout."""
    async with serving(etcd_endpoints, prefix, wait_timeout=0.5) as res:
        await res.list()
        future = res.cache.revision + 1000
        began = time.monotonic()
        with pytest.raises(TimedOutError) as raised:
            async with asyncio.timeout(3.5), res.watch(resource_version=str(future)):
                pass
        elapsed = time.monotonic() - began
        assert 0.4 <= elapsed < 3.5
        status = raised.value.status()
        assert status["code"] == 504 and status["reason"] == "Timeout"
        assert res.cache.watcher_count == 0


async def test_watch_from_near_future_resource_version_waits_for_it(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """A resourceVersion the cache has not reached yet (written straight to etcd) is waited for."""
    async with serving(etcd_endpoints, prefix) as res:
        put = await etcd_kv.put(flunder_key(prefix, "a"), orjson.dumps(flunder("a")))
        # No consistent read before: the watch itself must wait until the cache has this revision.
        async with res.watch(resource_version=put.header.revision) as w:
            assert res.cache.revision >= put.header.revision
            b = await res.create(flunder("b"))
            assert summary([await next_event(w)]) == [("ADDED", "b", rv(b))]


# -- 10. closing ----------------------------------------------------------------------------------------


async def test_closing_a_watch_unregisters_it(etcd_endpoints: list[str], prefix: str) -> None:
    """Leaving `async with res.watch()` unregisters the watcher; the closed Watch yields nothing more."""
    async with serving(etcd_endpoints, prefix, bookmark_interval=0.2) as res:
        start = (await res.list()).resource_version
        assert res.cache.watcher_count == 0
        async with res.watch(resource_version=start, allow_bookmarks=True) as first:
            assert res.cache.watcher_count == 1
            async with res.watch(resource_version=start) as second:
                assert res.cache.watcher_count == 2
            assert res.cache.watcher_count == 1
            assert await second.next_events() == []
            assert await next_chunk(second) == b""
        assert res.cache.watcher_count == 0
        await res.create(flunder("a"))
        await assert_ends(first)
        # A watch that is never opened registers nothing; close() on it is harmless.
        unopened = res.watch(resource_version=start)
        unopened.close()
        assert res.cache.watcher_count == 0


async def test_storage_close_ends_open_watches(etcd_endpoints: list[str], prefix: str) -> None:
    """Storage.close() ends every open watch: an `async for` in another task terminates."""
    storage = Storage(etcd_endpoints, prefix=prefix)
    await storage.start()
    try:
        res = storage.resource(FLUNDERS)
        await res.wait_ready()
        a = await res.create(flunder("a"))
        seen: list[list[WatchEvent]] = [[], []]

        async def consume(w: Watch, into: list[WatchEvent]) -> None:
            async for event in w:
                into.append(event)

        tasks = [
            asyncio.create_task(consume(res.watch(), seen[0])),
            asyncio.create_task(consume(res.watch(resource_version=rv(a), allow_bookmarks=True), seen[1])),
        ]
        await wait_until(lambda: len(seen[0]) == 1, within=EVENT_WAIT, message="initial ADDED")
        await wait_until(lambda: res.cache.watcher_count == 2, within=EVENT_WAIT, message="both watching")
    finally:
        await storage.close()
    async with asyncio.timeout(EVENT_WAIT):
        await asyncio.gather(*tasks)
    assert summary(seen[0]) == [("ADDED", "a", rv(a))]
    assert seen[1] == []


async def test_storage_close_fails_a_watch_waiting_for_a_future_revision(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """A watch waiting for a future rv when Storage closes fails with a StatusError, not CancelledError."""
    storage = Storage(etcd_endpoints, prefix=prefix, settings=CacheSettings(wait_timeout=30))
    await storage.start()
    try:
        res = storage.resource(FLUNDERS)
        await res.wait_ready()
        await res.list()
        future = res.cache.revision + 1000

        async def open_watch() -> BaseException | None:
            try:
                async with res.watch(resource_version=future):
                    return None
            except BaseException as err:  # CancelledError included: that is what is checked
                return err

        task = asyncio.create_task(open_watch())
        await wait_until(lambda: res.cache.progress.waiting, within=EVENT_WAIT, message="watch waiting")
    finally:
        await storage.close()
    async with asyncio.timeout(EVENT_WAIT):
        error = await task
    assert not task.cancelled()
    # Nobody cancelled this task: a CancelledError here would be mistaken for its own cancellation
    # (by asyncio.timeout, TaskGroup, aiohttp handlers...). The wait should fail as a watchcache error.
    assert isinstance(error, StatusError), f"expected a StatusError, got {error!r}"


async def test_watch_opened_after_storage_close_does_not_hang(etcd_endpoints: list[str], prefix: str) -> None:
    """After Storage.close(), re-watching from a known rv fails or ends at once instead of hanging forever."""
    async with serving(etcd_endpoints, prefix) as res:
        a = await res.create(flunder("a"))
        await res.list()
    # A client whose stream ended re-watches from its last resourceVersion (SPEC): on a closed Storage
    # that must not park it forever, or a program re-watching in a loop never shuts down.
    for resource_version in (rv(a), 0):
        try:
            async with asyncio.timeout(2.0), res.watch(resource_version=resource_version) as w:
                async for _ in w:
                    pass
        except (StatusError, RuntimeError):
            pass  # refusing to watch a closed storage is as good as ending the watch
        except TimeoutError:
            pytest.fail(
                f"a watch from resourceVersion {resource_version!r} opened after Storage.close() "
                f"neither failed nor ended within 2 s (watchers registered: {res.cache.watcher_count})"
            )
        assert res.cache.watcher_count == 0


# -- 11. the wire form ----------------------------------------------------------------------------------


async def test_wire_lines_are_json_lines_matching_the_events(etcd_endpoints: list[str], prefix: str) -> None:
    """The REST front's wire form of a watch's events is newline-terminated {"type","object"} JSON
    lines equal to the events themselves.

    Each of the two sendInitialEvents watches is compared with what it is owed, not with the other:
    its initial state ends at the cache's revision when it opened, after its consistent read's sync,
    and the first sync may make the cache write its progress key (when the event of ``a`` had not
    arrived yet), which moves the second watch's end bookmark one revision further.
    """
    async with serving(etcd_endpoints, prefix) as res:
        a = await res.create(flunder("a", labels={"app": "web"}))
        async with (
            res.watch(
                send_initial_events=True, resource_version_match="NotOlderThan", allow_bookmarks=True
            ) as chunked,
            res.watch(
                send_initial_events=True, resource_version_match="NotOlderThan", allow_bookmarks=True
            ) as evented,
            res.watch(resource_version=rv(a), label_selector="app=web", version="v1beta1") as chunked_sel,
        ):
            b = await res.create(flunder("b"))
            a2 = await update(res, a, labels={"app": "db"})
            gone = await res.delete("b", namespace="default")
            expected_types = ["ADDED", "BOOKMARK", "ADDED", "MODIFIED", "DELETED"]

            async def lines_of(w: Watch, count: int) -> list[dict[str, Any]]:
                lines: list[dict[str, Any]] = []
                async with asyncio.timeout(EVENT_WAIT):
                    while len(lines) < count:
                        chunk = await next_chunk(w)
                        assert chunk, "the watch ended early"
                        assert chunk.endswith(b"\n")
                        lines.extend(orjson.loads(line) for line in chunk.split(b"\n")[:-1])
                return lines

            async def events_of(w: Watch, count: int) -> list[WatchEvent]:
                events: list[WatchEvent] = []
                async with asyncio.timeout(EVENT_WAIT):
                    while len(events) < count:
                        got = await w.next_events()
                        assert got, "the watch ended early"
                        events.extend(got)
                return events

            lines = await lines_of(chunked, 5)
            events = await events_of(evented, 5)
            sel_lines = await lines_of(chunked_sel, 1)

        def owed(end: int) -> list[dict[str, Any]]:
            """What a sendInitialEvents watch whose initial state ends at revision ``end`` is owed:
            etcd's state then (``a``: the watch opened after it was written, before ``b`` was), the
            end bookmark, then every change after it."""
            assert rv(a) <= end < rv(b)
            end_mark = {
                "kind": "Flunder",
                "apiVersion": V1ALPHA1,
                "metadata": {
                    "resourceVersion": str(end),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }
            objects = [a, end_mark, b, a2, gone]
            return [{"type": t, "object": o} for t, o in zip(expected_types, objects, strict=True)]

        assert lines == owed(int(lines[1]["object"]["metadata"]["resourceVersion"]))
        assert [{"type": e.type, "object": e.object} for e in events] == owed(events[1].revision)
        assert chunked.resource_version == str(rv(gone))
        # The object that left the selector: DELETED with its previous content, as v1beta1.
        assert sel_lines == [
            {
                "type": "DELETED",
                "object": {
                    **a,
                    "apiVersion": V1BETA1,
                    "metadata": {**a["metadata"], "resourceVersion": str(rv(a2))},
                },
            }
        ]
