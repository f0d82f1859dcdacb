"""The HTTP API through a real socket (aiohttp client → watchcache → the session etcd): every path of
the SPEC's "HTTP API" table, its query parameters, the WATCH stream, the writes, and every error
code that applies without tenants, each as a Kubernetes ``Status``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import aetcd
import aiohttp
import pytest
from support.certs import TestCA
from support.etcd import EtcdServer
from support.rest import EVENT_WAIT, Api, assert_status
from support.waiting import wait_until
from support.wardle import (
    EXAMPLE_CONFIG,
    FISCHERS_PATH,
    GROUP,
    V1A,
    fischer,
    flunder,
    flunder_path,
    flunders_path,
    names,
    rv,
)

from watchcache.cache.settings import CacheSettings
from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions

V1B = f"{GROUP}/v1beta1"
MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"
MIB = 1024 * 1024


def qualified(body: dict[str, Any]) -> list[str]:
    return [f"{item['metadata'].get('namespace')}/{item['metadata']['name']}" for item in body["items"]]


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["type"], e["object"]["metadata"]["name"], rv(e["object"])) for e in events]


async def etcdctl(endpoint: str, *args: str) -> bytes:
    """Run ``etcdctl`` (API v3) against ``endpoint``; its stdout."""
    proc = await asyncio.create_subprocess_exec(
        "etcdctl",
        "--endpoints",
        endpoint,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 0, f"etcdctl {' '.join(args)}: {err.decode()}"
    return out


def options(etcd_servers: tuple[str, ...], prefix: str, **kwargs: Any) -> ServiceOptions:
    return ServiceOptions(
        config=parse_config(EXAMPLE_CONFIG), etcd_servers=etcd_servers, etcd_prefix=prefix, port=0, **kwargs
    )


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, service.url)


# -- LIST ------------------------------------------------------------------------------------------


async def test_a_namespaced_list_holds_that_namespace_in_key_order(api: Api) -> None:
    """A namespaced LIST is a FlunderList of that namespace's objects only, in key order, with the
    path's apiVersion and a resourceVersion at least the last write's."""
    await api.create(flunder("two", "ns-a"))
    await api.create(flunder("one", "ns-a"))
    last = await api.create(flunder("three", "ns-b"))
    body = await api.list(flunders_path("ns-a"))
    assert set(body) == {"kind", "apiVersion", "metadata", "items"}
    assert body["kind"] == "FlunderList"
    assert body["apiVersion"] == V1A
    assert body["metadata"]["resourceVersion"].isdigit()
    assert rv(body) >= rv(last)
    assert "continue" not in body["metadata"] or not body["metadata"]["continue"]
    assert names(body) == ["one", "two"]
    for item in body["items"]:
        assert item["apiVersion"] == V1A
        assert item["kind"] == "Flunder"
        assert item["metadata"]["namespace"] == "ns-a"
        assert item["metadata"]["uid"] and item["metadata"]["creationTimestamp"]
        assert item["metadata"]["resourceVersion"].isdigit()


async def test_a_list_across_namespaces_holds_every_namespace(api: Api) -> None:
    """LIST on /apis/{group}/{version}/flunders returns the objects of every namespace."""
    await api.create(flunder("x", "ns-a"))
    await api.create(flunder("y", "ns-b"))
    await api.create(flunder("z", "ns-c"))
    body = await api.list(flunders_path())
    assert body["kind"] == "FlunderList"
    assert qualified(body) == ["ns-a/x", "ns-b/y", "ns-c/z"]


async def test_a_cluster_scoped_list_has_no_namespaces(api: Api) -> None:
    """LIST of the cluster-scoped fischers is a FischerList whose items have no namespace."""
    await api.create(fischer("f1"))
    await api.create(fischer("f2"))
    body = await api.list(FISCHERS_PATH)
    assert body["kind"] == "FischerList"
    assert body["apiVersion"] == V1A
    assert names(body) == ["f1", "f2"]
    for item in body["items"]:
        assert "namespace" not in item["metadata"]
        assert item["kind"] == "Fischer"
        assert item["disallowedFlunders"] == ["a"]


async def test_objects_carry_the_path_version(api: Api) -> None:
    """An object written through v1alpha1 is listed and read through v1beta1 as v1beta1 (one
    storage, no conversion), and through v1alpha1 as v1alpha1."""
    await api.create(flunder("versioned", "ns-v"))
    beta = await api.list(flunders_path("ns-v", "v1beta1"))
    assert beta["apiVersion"] == V1B
    assert [item["apiVersion"] for item in beta["items"]] == [V1B]
    assert (await api.list(flunders_path(None, "v1beta1")))["items"][0]["apiVersion"] == V1B
    got = await api.ok("GET", flunder_path("ns-v", "versioned", "v1beta1"))
    assert got["apiVersion"] == V1B
    assert got["spec"] == {"size": 1}
    got = await api.ok("GET", flunder_path("ns-v", "versioned"))
    assert got["apiVersion"] == V1A


async def test_list_resource_version_zero_and_not_older_than(api: Api) -> None:
    """resourceVersion=0 answers from the cache at once; resourceVersion=N (NotOlderThan, implied
    or explicit) answers a state at N or newer, so it holds the write made at N."""
    created = await api.create(flunder("a", "ns-rv"))
    zero = await api.list(flunders_path("ns-rv"), resourceVersion="0")
    assert zero["kind"] == "FlunderList"
    assert zero["metadata"]["resourceVersion"].isdigit()
    for params in ({}, {"resourceVersionMatch": "NotOlderThan"}):
        body = await api.list(flunders_path("ns-rv"), resourceVersion=str(rv(created)), **params)
        assert names(body) == ["a"], params
        assert rv(body) >= rv(created)
        assert rv(body["items"][0]) == rv(created)


async def test_an_exact_list_is_the_state_at_that_revision(api: Api) -> None:
    """resourceVersionMatch=Exact lists the state at exactly N: later writes are not in it."""
    a = await api.create(flunder("a", "ns-exact"))
    await api.create(flunder("b", "ns-exact"))
    await api.ok("PATCH", flunder_path("ns-exact", "a"), body={"spec": {"size": 9}}, content_type=MERGE)
    body = await api.list(flunders_path("ns-exact"), resourceVersion=str(rv(a)), resourceVersionMatch="Exact")
    assert body["metadata"]["resourceVersion"] == str(rv(a))
    assert names(body) == ["a"]
    assert body["items"][0]["spec"] == {"size": 1}
    assert rv(body["items"][0]) == rv(a)


async def test_a_list_at_a_future_revision_times_out_with_504(api: Api) -> None:
    """A LIST at a resourceVersion etcd has not reached waits at most about 3 s, then answers 504
    with a Status of reason Timeout."""
    current = await api.list(flunders_path("ns-new"))
    started = time.monotonic()
    reply = await api.call(
        "GET", flunders_path("ns-new"), query={"resourceVersion": str(rv(current) + 1_000_000)}
    )
    elapsed = time.monotonic() - started
    assert_status(reply, 504, "Timeout")
    assert elapsed <= 3.5, elapsed


async def test_a_watch_from_a_future_revision_times_out_with_504(api: Api) -> None:
    """A WATCH from a resourceVersion etcd has not reached is answered, after at most about 3 s,
    504 with a Status of reason Timeout (not a stream)."""
    current = await api.list(flunders_path("ns-new"))
    started = time.monotonic()
    params = {"watch": "true", "resourceVersion": str(rv(current) + 1_000_000)}
    reply = await api.call("GET", flunders_path("ns-new"), query=params)
    assert time.monotonic() - started <= 3.5
    assert_status(reply, 504, "Timeout")


async def test_compacted_continue_tokens_and_exact_reads_are_410(own_etcd: EtcdServer, prefix: str) -> None:
    """A continue token, or an Exact resourceVersion, whose state is neither kept in memory nor in
    etcd any more (compacted) is 410 with a Status of reason Expired."""
    settings = CacheSettings(window_events=1, max_snapshots=1)
    endpoint = own_etcd.endpoints[0]
    async with (
        Service(options((endpoint,), prefix, cache=settings)) as svc,
        aiohttp.ClientSession() as session,
    ):
        assert svc.storage is not None
        await svc.storage.wait_ready()
        api = Api(session, svc.url)
        for i in range(3):
            await api.create(flunder(f"e{i}", "ns-410"))
        first = await api.list(flunders_path("ns-410"), limit="1")
        token, at = first["metadata"]["continue"], first["metadata"]["resourceVersion"]
        assert names(first) == ["e0"]
        # Continue with resourceVersion is refused, as in Kubernetes.
        reply = await api.call(
            "GET", flunders_path("ns-410"), query={"continue": token, "resourceVersion": at}
        )
        assert_status(reply, 400, "BadRequest")
        for size in range(2, 5):
            last = await api.ok(
                "PATCH", flunder_path("ns-410", "e1"), body={"spec": {"size": size}}, content_type=MERGE
            )
        await api.list(flunders_path("ns-410"), limit="1")  # a newer snapshot replaces the first one
        await etcdctl(endpoint, "compaction", str(rv(last)))
        reply = await api.call("GET", flunders_path("ns-410"), query={"limit": "1", "continue": token})
        assert_status(reply, 410, "Expired")
        reply = await api.call(
            "GET", flunders_path("ns-410"), query={"resourceVersion": at, "resourceVersionMatch": "Exact"}
        )
        assert_status(reply, 410, "Expired")
        # The current state is still served.
        assert names(await api.list(flunders_path("ns-410"))) == ["e0", "e1", "e2"]


async def test_pages_of_a_list_are_one_snapshot(api: Api) -> None:
    """limit/continue pages through one snapshot: writes made between pages are not seen, every page
    has the first page's resourceVersion, remainingItemCount counts what is left, and the last page
    has no continue token."""
    for i in range(5):
        await api.create(flunder(f"p{i}", "ns-page"))
    first = await api.list(flunders_path("ns-page"), limit="2")
    assert names(first) == ["p0", "p1"]
    assert first["metadata"]["continue"]
    assert first["metadata"]["remainingItemCount"] == 3
    await api.ok("DELETE", flunder_path("ns-page", "p2"))
    await api.create(flunder("p3a", "ns-page"))
    second = await api.list(
        flunders_path("ns-page"), limit="2", **{"continue": first["metadata"]["continue"]}
    )
    assert names(second) == ["p2", "p3"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert second["metadata"]["remainingItemCount"] == 1
    last = await api.list(flunders_path("ns-page"), limit="2", **{"continue": second["metadata"]["continue"]})
    assert names(last) == ["p4"]
    assert last["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert not last["metadata"].get("continue")
    assert "remainingItemCount" not in last["metadata"]
    # The state now, unpaged, has both writes.
    assert names(await api.list(flunders_path("ns-page"))) == ["p0", "p1", "p3", "p3a", "p4"]


async def test_a_continue_token_not_ours_is_400(api: Api) -> None:
    """A continue token that is not one of ours is 400 BadRequest."""
    for token in ("garbage", "eyJ2IjoxfQ", "!!!"):
        reply = await api.call("GET", flunders_path("ns-x"), query={"limit": "1", "continue": token})
        assert_status(reply, 400, "BadRequest")


async def test_label_selectors_filter_a_list_with_every_operator(api: Api) -> None:
    """labelSelector filters a LIST with every operator: =, ==, !=, in, notin, exists, !key."""
    await api.create(flunder("a", "ns-lbl", labels={"app": "web", "tier": "fe"}))
    await api.create(flunder("b", "ns-lbl", labels={"app": "db", "tier": "be"}))
    await api.create(flunder("c", "ns-lbl", labels={"app": "web"}))
    await api.create(flunder("d", "ns-lbl", labels={}))
    cases = {
        "app=web": ["a", "c"],
        "app==web": ["a", "c"],
        "app!=web": ["b", "d"],
        "app in (web,db)": ["a", "b", "c"],
        "app notin (web)": ["b", "d"],
        "tier": ["a", "b"],
        "!tier": ["c", "d"],
        "app=web,tier": ["a"],
        "app in (web), tier notin (fe)": ["c"],
        "": ["a", "b", "c", "d"],
    }
    for selector, expected in cases.items():
        body = await api.list(flunders_path("ns-lbl"), labelSelector=selector)
        assert names(body) == expected, selector


async def test_field_selectors_filter_a_list_on_name_and_namespace(api: Api) -> None:
    """fieldSelector filters a LIST on metadata.name and metadata.namespace with =, == and !=."""
    await api.create(flunder("x", "ns-f1"))
    await api.create(flunder("y", "ns-f1"))
    await api.create(flunder("x", "ns-f2"))
    cases = {
        "metadata.name=x": ["ns-f1/x", "ns-f2/x"],
        "metadata.name==x": ["ns-f1/x", "ns-f2/x"],
        "metadata.name!=x": ["ns-f1/y"],
        "metadata.namespace=ns-f2": ["ns-f2/x"],
        "metadata.namespace==ns-f1": ["ns-f1/x", "ns-f1/y"],
        "metadata.namespace!=ns-f2,metadata.name=x": ["ns-f1/x"],
    }
    for selector, expected in cases.items():
        body = await api.list(flunders_path(), fieldSelector=selector)
        got = [q for q in qualified(body) if q.startswith("ns-f")]
        assert got == expected, selector
    assert names(await api.list(flunders_path("ns-f1"), fieldSelector="metadata.name=y")) == ["y"]


async def test_malformed_selectors_are_400(api: Api) -> None:
    """Malformed label selectors and unsupported or malformed field selectors are 400 BadRequest,
    on LIST and on WATCH."""
    bad = [
        {"labelSelector": "app in (web"},
        {"labelSelector": "=web"},
        {"labelSelector": "app notin web"},
        {"labelSelector": "a b=c"},
        {"labelSelector": "app=we b"},
        {"fieldSelector": "spec.size=1"},
        {"fieldSelector": "metadata.name"},
        {"fieldSelector": "metadata.name in (x)"},
    ]
    for params in bad:
        assert_status(await api.call("GET", flunders_path("ns-s"), query=params), 400, "BadRequest")
        watch = {**params, "watch": "true"}
        assert_status(await api.call("GET", flunders_path("ns-s"), query=watch), 400, "BadRequest")


# -- GET and not found -------------------------------------------------------------------------------


async def test_get_answers_the_object_as_created(api: Api) -> None:
    """GET answers the object as created, with its resourceVersion, uid and creationTimestamp."""
    created = await api.create(flunder("g", "ns-get", labels={"k": "v"}))
    got = await api.ok("GET", flunder_path("ns-get", "g"))
    assert got == created
    assert got["metadata"]["labels"] == {"k": "v"}
    cluster = await api.create(fischer("fg"))
    assert await api.ok("GET", f"{FISCHERS_PATH}/fg") == cluster


async def test_get_of_an_absent_object_is_404(api: Api) -> None:
    """GET of an absent object is 404 with a Status of reason NotFound naming it."""
    status = assert_status(await api.call("GET", flunder_path("ns-get", "nobody")), 404, "NotFound")
    assert "nobody" in status["message"]
    assert_status(await api.call("GET", f"{FISCHERS_PATH}/nobody"), 404, "NotFound")


@pytest.mark.parametrize(
    "path",
    [
        "/apis/nope.example.com/v1alpha1/namespaces/ns/flunders",
        "/apis/nope.example.com/v1alpha1/flunders",
        f"/apis/{GROUP}/v9/namespaces/ns/flunders",
        f"/apis/{GROUP}/v1beta1/fischers",
        f"/apis/{GROUP}/v1alpha1/namespaces/ns/widgets",
        f"/apis/{GROUP}/v1alpha1/widgets",
        f"/apis/{GROUP}/v1alpha1/namespaces/ns/flunders/x/status",
        f"/apis/{GROUP}/v1alpha1/fischers/x/status",
        f"/apis/{GROUP}/v1alpha1/namespaces/ns/fischers",
        f"/apis/{GROUP}/v1alpha1/namespaces/ns/fischers/x",
        f"/apis/{GROUP}/v1alpha1/flunders/x",
        "/apis/nope.example.com",
        "/apis/nope.example.com/v1",
        f"/apis/{GROUP}/v9",
        "/nothing-here",
    ],
)
async def test_unknown_paths_are_404(api: Api, path: str) -> None:
    """Unknown groups, versions, resources, subresources, and namespaced paths of a cluster-scoped
    resource are 404 NotFound Statuses."""
    assert_status(await api.call("GET", path), 404, "NotFound")


# -- WATCH -----------------------------------------------------------------------------------------


async def test_a_watch_is_chunked_json_lines(api: Api) -> None:
    """WATCH answers 200 with Transfer-Encoding: chunked and one JSON event per line."""
    await api.create(flunder("w1", "ns-wf"))
    await api.create(flunder("w2", "ns-wf"))
    async with api.session.get(api.url(flunders_path("ns-wf"), {"watch": "true"})) as resp:
        assert resp.status == 200
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.headers["Content-Type"].startswith("application/json")
        lines = []
        async with asyncio.timeout(EVENT_WAIT):
            while len(lines) < 2:
                lines.append(await resp.content.readline())
    for line in lines:
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        event = json.loads(line)
        assert event["type"] == "ADDED"
        assert event["object"]["kind"] == "Flunder"


async def test_a_watch_from_a_revision_gets_every_later_change_once_in_order(api: Api) -> None:
    """A watch from resourceVersion=N gets every change after N, in order, each with the
    resourceVersion its write answered, none lost and none repeated."""
    base = await api.create(flunder("m", "ns-wn"))
    async with api.events(flunders_path("ns-wn"), resourceVersion=str(rv(base))) as stream:
        other = await api.create(flunder("n", "ns-wn"))
        updated = await api.ok("PUT", flunder_path("ns-wn", "m"), body=flunder("m", "ns-wn", size=2))
        patched = await api.ok(
            "PATCH", flunder_path("ns-wn", "m"), body={"spec": {"size": 3}}, content_type=MERGE
        )
        deleted = await api.ok("DELETE", flunder_path("ns-wn", "m"))
        sentinel = await api.create(flunder("sentinel", "ns-wn"))
        events = await stream.take(5)
    assert summary(events) == [
        ("ADDED", "n", rv(other)),
        ("MODIFIED", "m", rv(updated)),
        ("MODIFIED", "m", rv(patched)),
        ("DELETED", "m", rv(deleted)),
        ("ADDED", "sentinel", rv(sentinel)),
    ]
    assert events[2]["object"]["spec"] == {"size": 3}
    assert all(e["object"]["apiVersion"] == V1A for e in events)


@pytest.mark.parametrize("resource_version", [None, "0"])
async def test_a_watch_without_a_revision_starts_with_the_current_objects(
    api: Api, resource_version: str | None
) -> None:
    """A watch with resourceVersion unset or 0 starts with ADDED for every current object, then
    sends changes."""
    a = await api.create(flunder("a", "ns-w0"))
    b = await api.create(flunder("b", "ns-w0"))
    params = {} if resource_version is None else {"resourceVersion": resource_version}
    async with api.events(flunders_path("ns-w0", "v1beta1"), **params) as stream:
        initial = await stream.take(2)
        assert sorted(summary(initial)) == [("ADDED", "a", rv(a)), ("ADDED", "b", rv(b))]
        assert all(e["object"]["apiVersion"] == V1B for e in initial)
        changed = await api.ok(
            "PATCH", flunder_path("ns-w0", "a"), body={"spec": {"size": 5}}, content_type=MERGE
        )
        assert summary(await stream.take(1)) == [("MODIFIED", "a", rv(changed))]


async def test_send_initial_events_ends_with_an_annotated_bookmark(api: Api) -> None:
    """sendInitialEvents=true with resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true
    sends the initial ADDEDs, then a BOOKMARK annotated k8s.io/initial-events-end: "true", then
    changes."""
    a = await api.create(flunder("a", "ns-wi"))
    b = await api.create(flunder("b", "ns-wi"))
    params = {
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
    }
    async with api.events(flunders_path("ns-wi"), **params) as stream:
        initial = await stream.take(2)
        assert sorted(summary(initial)) == [("ADDED", "a", rv(a)), ("ADDED", "b", rv(b))]
        bookmark = await stream.next()
        assert bookmark is not None and bookmark["type"] == "BOOKMARK", bookmark
        obj = bookmark["object"]
        assert obj["kind"] == "Flunder"
        assert obj["apiVersion"] == V1A
        assert obj["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert rv(obj) >= rv(b)
        c = await api.create(flunder("c", "ns-wi"))
        event = await stream.next()
        while event is not None and event["type"] == "BOOKMARK":
            event = await stream.next()
        assert event is not None
        assert summary([event]) == [("ADDED", "c", rv(c))]


async def test_a_watch_older_than_the_window_gets_410_expired(etcd_endpoints: list[str], prefix: str) -> None:
    """A watch from a resourceVersion older than the cache's window (here 3 events) gets one ERROR
    event carrying a Status of code 410, reason Expired, then the stream ends."""
    opts = options(tuple(etcd_endpoints), prefix, cache=CacheSettings(window_events=3))
    async with Service(opts) as svc, aiohttp.ClientSession() as session:
        assert svc.storage is not None
        await svc.storage.wait_ready()
        api = Api(session, svc.url)
        first = await api.create(flunder("old", "ns-exp"))
        for size in range(2, 8):
            await api.ok(
                "PATCH", flunder_path("ns-exp", "old"), body={"spec": {"size": size}}, content_type=MERGE
            )
        await api.list(flunders_path("ns-exp"))  # consistent: the cache has seen every write
        async with api.events(flunders_path("ns-exp"), resourceVersion=str(rv(first))) as stream:
            event = await stream.next()
            assert event is not None and event["type"] == "ERROR", event
            status = event["object"]
            assert status["kind"] == "Status"
            assert status["status"] == "Failure"
            assert status["code"] == 410
            assert status["reason"] == "Expired"
            await stream.assert_ends()


async def test_timeout_seconds_ends_a_watch_cleanly(api: Api) -> None:
    """timeoutSeconds=1 ends the watch stream cleanly after about one second."""
    started = time.monotonic()
    async with api.events(flunders_path("ns-wt"), timeoutSeconds="1") as stream:
        await stream.assert_ends(within=5)
    elapsed = time.monotonic() - started
    assert 0.8 <= elapsed <= 3.0, elapsed


async def test_idle_watches_get_bookmarks_when_allowed(etcd_endpoints: list[str], prefix: str) -> None:
    """allowWatchBookmarks=true brings BOOKMARK events to an idle watch (here every 0.2 s), whose
    object carries only kind, apiVersion and metadata.resourceVersion; without it, none come."""
    opts = options(tuple(etcd_endpoints), prefix, cache=CacheSettings(bookmark_interval=0.2))
    async with Service(opts) as svc, aiohttp.ClientSession() as session:
        assert svc.storage is not None
        await svc.storage.wait_ready()
        api = Api(session, svc.url)
        created = await api.create(flunder("b", "ns-bm"))
        async with api.events(
            flunders_path("ns-bm"), resourceVersion=str(rv(created)), allowWatchBookmarks="true"
        ) as stream:
            event = await stream.next()
            assert event is not None and event["type"] == "BOOKMARK", event
            assert event["object"] == {
                "kind": "Flunder",
                "apiVersion": V1A,
                "metadata": {"resourceVersion": event["object"]["metadata"]["resourceVersion"]},
            }
            assert rv(event["object"]) >= rv(created)
        async with api.events(
            flunders_path("ns-bm"), resourceVersion=str(rv(created)), timeoutSeconds="1"
        ) as stream:
            await stream.assert_ends()  # nothing but the end: no bookmarks unasked


async def test_watch_one_object_by_field_selector(api: Api) -> None:
    """fieldSelector=metadata.name=X watches only object X."""
    x = await api.create(flunder("x", "ns-w1"))
    await api.create(flunder("y", "ns-w1"))
    async with api.events(
        flunders_path("ns-w1"), fieldSelector="metadata.name=x", resourceVersion=str(rv(x))
    ) as stream:
        await api.ok("PATCH", flunder_path("ns-w1", "y"), body={"spec": {"size": 2}}, content_type=MERGE)
        x2 = await api.ok("PATCH", flunder_path("ns-w1", "x"), body={"spec": {"size": 2}}, content_type=MERGE)
        await api.ok("DELETE", flunder_path("ns-w1", "y"))
        gone = await api.ok("DELETE", flunder_path("ns-w1", "x"))
        again = await api.create(flunder("x", "ns-w1"))
        events = await stream.take(3)
    assert summary(events) == [
        ("MODIFIED", "x", rv(x2)),
        ("DELETED", "x", rv(gone)),
        ("ADDED", "x", rv(again)),
    ]


async def test_watch_label_selector_transitions(api: Api) -> None:
    """With a label selector, an object that starts matching arrives as ADDED and one that stops
    matching as DELETED; changes to non-matching objects are not sent."""
    mover = await api.create(flunder("mover", "ns-wl", labels={"app": "db"}))
    await api.create(flunder("stayer", "ns-wl", labels={"app": "web"}))
    async with api.events(
        flunders_path("ns-wl"), labelSelector="app=web", resourceVersion=str(rv(mover))
    ) as stream:
        assert [e["type"] for e in await stream.take(1)] == ["ADDED"]  # stayer, created after N
        await api.ok("PATCH", flunder_path("ns-wl", "mover"), body={"spec": {"size": 2}}, content_type=MERGE)
        joined = await api.ok(
            "PATCH",
            flunder_path("ns-wl", "mover"),
            body={"metadata": {"labels": {"app": "web"}}},
            content_type=MERGE,
        )
        left = await api.ok(
            "PATCH",
            flunder_path("ns-wl", "mover"),
            body={"metadata": {"labels": {"app": "db"}}},
            content_type=MERGE,
        )
        await api.ok("DELETE", flunder_path("ns-wl", "mover"))
        touched = await api.ok(
            "PATCH", flunder_path("ns-wl", "stayer"), body={"spec": {"size": 4}}, content_type=MERGE
        )
        events = await stream.take(3)
    assert summary(events) == [
        ("ADDED", "mover", rv(joined)),
        ("DELETED", "mover", rv(left)),
        ("MODIFIED", "stayer", rv(touched)),
    ]
    assert events[0]["object"]["metadata"]["labels"] == {"app": "web"}


async def test_watch_sees_a_write_made_with_etcdctl(api: Api, etcd_endpoints: list[str], prefix: str) -> None:
    """An object put straight into etcd with etcdctl, under the SPEC's key layout, arrives on a
    watch as ADDED with resourceVersion = the key's etcd mod_revision, and a consistent LIST has it."""
    start = await api.list(flunders_path("ns-direct"))
    key = f"{prefix}/{GROUP}/flunders/ns-direct/direct"
    value = json.dumps(
        {
            "apiVersion": V1A,
            "kind": "Flunder",
            "metadata": {"name": "direct", "namespace": "ns-direct", "labels": {"via": "etcdctl"}},
            "spec": {"size": 42},
        }
    )
    async with api.events(
        flunders_path("ns-direct"), resourceVersion=start["metadata"]["resourceVersion"]
    ) as stream:
        await etcdctl(etcd_endpoints[0], "put", key, value)
        event = await stream.next()
    got = json.loads(await etcdctl(etcd_endpoints[0], "get", key, "-w", "json"))
    mod_revision = got["kvs"][0]["mod_revision"]
    assert event is not None
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["name"] == "direct"
    assert event["object"]["spec"] == {"size": 42}
    assert event["object"]["metadata"]["resourceVersion"] == str(mod_revision)
    listed = await api.list(flunders_path("ns-direct"))
    assert [(i["metadata"]["name"], rv(i)) for i in listed["items"]] == [("direct", mod_revision)]


# -- writes ----------------------------------------------------------------------------------------


async def test_create_answers_201_then_409_for_the_same_name(api: Api) -> None:
    """POST creates: 201 with the stored object (uid, creationTimestamp, resourceVersion set);
    the same name again is 409 AlreadyExists."""
    reply = await api.call("POST", flunders_path("ns-c"), body=flunder("new", "ns-c", labels={"a": "b"}))
    assert reply.status == 201, reply.raw
    created = reply.body
    meta = created["metadata"]
    assert meta["name"] == "new" and meta["namespace"] == "ns-c"
    assert meta["uid"] and meta["creationTimestamp"]
    assert meta["resourceVersion"].isdigit()
    assert created["apiVersion"] == V1A and created["kind"] == "Flunder"
    status = assert_status(
        await api.call("POST", flunders_path("ns-c"), body=flunder("new", "ns-c")), 409, "AlreadyExists"
    )
    assert "new" in status["message"]
    # A body without namespace, kind or apiVersion takes them from the URL.
    bare = await api.ok("POST", flunders_path("ns-c"), 201, body={"metadata": {"name": "bare"}})
    assert bare["metadata"]["namespace"] == "ns-c" and bare["kind"] == "Flunder"
    charset = json.dumps({"metadata": {"name": "charset"}}).encode()
    await api.ok(
        "POST", flunders_path("ns-c"), 201, raw=charset, content_type="application/json; charset=utf-8"
    )
    cluster = await api.ok("POST", FISCHERS_PATH, 201, body=fischer("fc"))
    assert "namespace" not in cluster["metadata"]
    assert_status(await api.call("POST", FISCHERS_PATH, body=fischer("fc")), 409, "AlreadyExists")


async def test_update_keeps_identity_and_refuses_stale_versions(api: Api) -> None:
    """PUT replaces: 200 with a new resourceVersion, uid and creationTimestamp kept; a stale
    resourceVersion is 409 Conflict; an absent object is 404 NotFound."""
    created = await api.create(flunder("u", "ns-u"))
    body = {**created, "spec": {"size": 2}}
    updated = await api.ok("PUT", flunder_path("ns-u", "u"), body=body)
    assert rv(updated) > rv(created)
    assert updated["spec"] == {"size": 2}
    for field in ("uid", "creationTimestamp"):
        assert updated["metadata"][field] == created["metadata"][field]
    # The body's uid and creationTimestamp cannot change them.
    forged = {**updated, "metadata": {**updated["metadata"], "uid": "forged", "creationTimestamp": None}}
    kept = await api.ok("PUT", flunder_path("ns-u", "u"), body={**forged, "spec": {"size": 3}})
    assert kept["metadata"]["uid"] == created["metadata"]["uid"]
    assert kept["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    # Stale: created's resourceVersion is no longer current.
    stale = {**created, "spec": {"size": 9}}
    assert_status(await api.call("PUT", flunder_path("ns-u", "u"), body=stale), 409, "Conflict")
    assert (await api.ok("GET", flunder_path("ns-u", "u")))["spec"] == {"size": 3}
    # Without a resourceVersion the update is unconditional.
    free = flunder("u", "ns-u", size=4)
    assert (await api.ok("PUT", flunder_path("ns-u", "u"), body=free))["spec"] == {"size": 4}
    assert_status(
        await api.call("PUT", flunder_path("ns-u", "absent"), body=flunder("absent", "ns-u")), 404, "NotFound"
    )
    cluster = await api.create(fischer("fu"))
    cluster_updated = await api.ok("PUT", f"{FISCHERS_PATH}/fu", body={**cluster, "disallowedFlunders": []})
    assert cluster_updated["disallowedFlunders"] == []
    assert cluster_updated["metadata"]["uid"] == cluster["metadata"]["uid"]


async def test_merge_and_json_patches_apply_to_the_current_object(api: Api) -> None:
    """PATCH with a merge patch (RFC 7386) and a JSON patch (RFC 6902) applies to the current
    object and answers it with a new resourceVersion."""
    created = await api.create(flunder("p", "ns-p", labels={"app": "web", "tier": "fe"}))
    merged = await api.ok(
        "PATCH",
        flunder_path("ns-p", "p"),
        body={"metadata": {"labels": {"tier": None, "new": "yes"}}, "spec": {"size": 5}},
        content_type=MERGE,
    )
    assert merged["metadata"]["labels"] == {"app": "web", "new": "yes"}
    assert merged["spec"] == {"size": 5}
    assert rv(merged) > rv(created)
    assert merged["metadata"]["uid"] == created["metadata"]["uid"]
    patched = await api.ok(
        "PATCH",
        flunder_path("ns-p", "p"),
        body=[
            {"op": "test", "path": "/spec/size", "value": 5},
            {"op": "replace", "path": "/spec/size", "value": 7},
            {"op": "add", "path": "/metadata/labels/json", "value": "patch"},
        ],
        content_type=JSONPATCH,
    )
    assert patched["spec"] == {"size": 7}
    assert patched["metadata"]["labels"] == {"app": "web", "new": "yes", "json": "patch"}
    assert rv(patched) > rv(merged)
    assert await api.ok("GET", flunder_path("ns-p", "p")) == patched
    # A resourceVersion in a merge patch is a precondition.
    stale = {"metadata": {"resourceVersion": str(rv(merged))}, "spec": {"size": 0}}
    assert_status(
        await api.call("PATCH", flunder_path("ns-p", "p"), body=stale, content_type=MERGE), 409, "Conflict"
    )
    current = {"metadata": {"resourceVersion": str(rv(patched))}, "spec": {"size": 8}}
    assert (await api.ok("PATCH", flunder_path("ns-p", "p"), body=current, content_type=MERGE))["spec"] == {
        "size": 8
    }
    cluster = await api.create(fischer("fp"))
    fp = await api.ok("PATCH", f"{FISCHERS_PATH}/fp", body={"disallowedFlunders": ["z"]}, content_type=MERGE)
    assert fp["disallowedFlunders"] == ["z"] and rv(fp) > rv(cluster)


async def test_failed_and_unsupported_patches_are_statuses(api: Api) -> None:
    """A JSON patch whose test op fails is 422 Invalid; a strategic merge patch is 415
    UnsupportedMediaType; a patch of an absent object is 404 NotFound; nothing changes."""
    created = await api.create(flunder("pe", "ns-pe"))
    failing = [
        {"op": "test", "path": "/spec/size", "value": 999},
        {"op": "replace", "path": "/spec/size", "value": 1000},
    ]
    assert_status(
        await api.call("PATCH", flunder_path("ns-pe", "pe"), body=failing, content_type=JSONPATCH),
        422,
        "Invalid",
    )
    status = assert_status(
        await api.call(
            "PATCH",
            flunder_path("ns-pe", "pe"),
            body={"spec": {"size": 3}},
            content_type="application/strategic-merge-patch+json",
        ),
        415,
        "UnsupportedMediaType",
    )
    assert "strategic" in status["message"]
    assert_status(
        await api.call("PATCH", flunder_path("ns-pe", "absent"), body={"spec": {}}, content_type=MERGE),
        404,
        "NotFound",
    )
    assert await api.ok("GET", flunder_path("ns-pe", "pe")) == created


async def test_delete_answers_the_object_at_its_deletion_revision(api: Api) -> None:
    """DELETE answers 200 with the deleted object whose resourceVersion is the deletion's
    revision, the same as the DELETED watch event's; deleting again is 404 NotFound."""
    created = await api.create(flunder("d", "ns-d"))
    async with api.events(flunders_path("ns-d"), resourceVersion=str(rv(created))) as stream:
        deleted = await api.ok("DELETE", flunder_path("ns-d", "d"))
        event = await stream.next()
    assert deleted["metadata"]["name"] == "d"
    assert deleted["metadata"]["uid"] == created["metadata"]["uid"]
    assert deleted["kind"] == "Flunder" and deleted["apiVersion"] == V1A
    assert rv(deleted) > rv(created)
    assert event is not None and event["type"] == "DELETED"
    assert event["object"]["metadata"]["resourceVersion"] == deleted["metadata"]["resourceVersion"]
    assert_status(await api.call("DELETE", flunder_path("ns-d", "d")), 404, "NotFound")
    assert_status(await api.call("GET", flunder_path("ns-d", "d")), 404, "NotFound")
    await api.create(fischer("fd"))
    assert (await api.ok("DELETE", f"{FISCHERS_PATH}/fd"))["metadata"]["name"] == "fd"
    assert_status(await api.call("DELETE", f"{FISCHERS_PATH}/fd"), 404, "NotFound")


async def test_unmet_delete_preconditions_are_409_and_delete_nothing(api: Api) -> None:
    """DeleteOptions preconditions that do not hold (resourceVersion or uid) are 409 Conflict and
    delete nothing; matching ones delete."""
    created = await api.create(flunder("dp", "ns-dp"))
    path = flunder_path("ns-dp", "dp")
    options = {"kind": "DeleteOptions", "apiVersion": "v1"}
    stale = {**options, "preconditions": {"resourceVersion": str(rv(created) - 1)}}
    assert_status(await api.call("DELETE", path, body=stale), 409, "Conflict")
    wrong_uid = {**options, "preconditions": {"uid": "not-the-uid"}}
    assert_status(await api.call("DELETE", path, body=wrong_uid), 409, "Conflict")
    assert await api.ok("GET", path) == created
    right = {
        **options,
        "preconditions": {"resourceVersion": str(rv(created)), "uid": created["metadata"]["uid"]},
    }
    assert (await api.ok("DELETE", path, body=right))["metadata"]["uid"] == created["metadata"]["uid"]
    assert_status(await api.call("GET", path), 404, "NotFound")


async def test_dry_run_writes_nothing(api: Api, etcd_kv: aetcd.Client, prefix: str) -> None:
    """A write with dryRun=All (what `kubectl apply --dry-run=server` sends) changes nothing in
    etcd: Kubernetes simulates it, and a server that cannot must refuse it rather than write."""
    created = await api.create(flunder("real", "ns-dry"))
    before = await _object_keys(etcd_kv, prefix)
    dry = {"dryRun": "All"}
    await api.call("POST", flunders_path("ns-dry"), query=dry, body=flunder("dry", "ns-dry"))
    await api.call("PUT", flunder_path("ns-dry", "real"), query=dry, body=flunder("real", "ns-dry", size=9))
    await api.call(
        "PATCH", flunder_path("ns-dry", "real"), query=dry, body={"spec": {"size": 9}}, content_type=MERGE
    )
    await api.call("DELETE", flunder_path("ns-dry", "real"), query=dry)
    assert await _object_keys(etcd_kv, prefix) == before
    assert await api.ok("GET", flunder_path("ns-dry", "real")) == created


async def test_writes_are_seen_by_the_next_consistent_list(api: Api) -> None:
    """Every write response carries metadata.resourceVersion, and a consistent LIST issued right
    after it sees the write."""

    async def listed() -> dict[str, int]:
        body = await api.list(flunders_path("ns-rw"))
        return {item["metadata"]["name"]: rv(item) for item in body["items"]}

    for i in range(3):
        created = await api.create(flunder(f"o{i}", "ns-rw"))
        assert (await listed())[f"o{i}"] == rv(created)
        updated = await api.ok("PUT", flunder_path("ns-rw", f"o{i}"), body=flunder(f"o{i}", "ns-rw", size=2))
        assert (await listed())[f"o{i}"] == rv(updated)
        patched = await api.ok(
            "PATCH", flunder_path("ns-rw", f"o{i}"), body={"spec": {"size": 3}}, content_type=MERGE
        )
        assert (await listed())[f"o{i}"] == rv(patched)
        deleted = await api.ok("DELETE", flunder_path("ns-rw", f"o{i}"))
        assert deleted["metadata"]["resourceVersion"].isdigit()
        assert f"o{i}" not in await listed()
        assert rv(await api.list(flunders_path("ns-rw"))) >= rv(deleted)


# -- request errors --------------------------------------------------------------------------------


async def test_malformed_requests_are_400(api: Api) -> None:
    """Malformed JSON, a body whose apiVersion/kind/namespace/name disagrees with the URL, a bad
    resourceVersion, a bad limit and a bad watch flag are 400 BadRequest Statuses."""
    there = await api.create(flunder("there", "ns-bad"))
    coll, obj = flunders_path("ns-bad"), flunder_path("ns-bad", "there")
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", coll, {"raw": b'{"metadata": {"name": "x"'}),
        ("POST", coll, {"raw": b"not json at all"}),
        ("PUT", obj, {"raw": b"{,}"}),
        ("PATCH", obj, {"raw": b"{", "content_type": MERGE}),
        ("POST", coll, {"body": {**flunder("x", "ns-bad"), "apiVersion": "other.example.com/v1"}}),
        ("POST", coll, {"body": {**flunder("x", "ns-bad"), "kind": "Fischer"}}),
        ("POST", coll, {"body": flunder("x", "ns-elsewhere")}),
        ("PUT", obj, {"body": flunder("not-there", "ns-bad")}),
        ("PUT", obj, {"body": flunder("there", "ns-elsewhere")}),
        ("PUT", obj, {"body": {**flunder("there", "ns-bad"), "kind": "Other"}}),
        ("POST", FISCHERS_PATH, {"body": {**fischer("f"), "apiVersion": V1B}}),
        ("GET", coll, {"query": {"resourceVersion": "abc"}}),
        ("GET", coll, {"query": {"resourceVersion": "-1"}}),
        ("GET", obj, {"query": {"resourceVersion": "1.5"}}),
        ("GET", coll, {"query": {"watch": "true", "resourceVersion": "x"}}),
        ("GET", coll, {"query": {"resourceVersionMatch": "Exact"}}),
        ("GET", coll, {"query": {"resourceVersion": "0", "resourceVersionMatch": "Exact"}}),
        ("GET", coll, {"query": {"resourceVersion": "1", "resourceVersionMatch": "Sometimes"}}),
        ("GET", coll, {"query": {"limit": "abc"}}),
        ("GET", coll, {"query": {"limit": "-5"}}),
        ("GET", coll, {"query": {"watch": "maybe"}}),
        ("GET", coll, {"query": {"watch": "true", "allowWatchBookmarks": "sometimes"}}),
        ("GET", coll, {"query": {"watch": "true", "timeoutSeconds": "soon"}}),
        (
            "GET",
            coll,
            {"query": {"watch": "true", "sendInitialEvents": "true", "allowWatchBookmarks": "true"}},
        ),
        ("GET", coll, {"query": {"watch": "true", "resourceVersion": "1", "resourceVersionMatch": "Exact"}}),
    ]
    for method, path, kwargs in cases:
        reply = await api.call(method, path, **kwargs)
        assert_status(reply, 400, "BadRequest")
    assert await api.ok("GET", obj) == there  # unchanged
    assert names(await api.list(coll)) == ["there"]


async def test_unserved_methods_are_405(api: Api) -> None:
    """A method a path does not serve is 405 with a MethodNotAllowed Status."""
    await api.create(flunder("m", "ns-405"))
    cases = [
        ("DELETE", flunders_path("ns-405")),
        ("PUT", flunders_path("ns-405")),
        ("PATCH", flunders_path("ns-405")),
        ("POST", flunders_path()),  # a namespaced resource is created in a namespace
        ("DELETE", FISCHERS_PATH),
        ("POST", flunder_path("ns-405", "m")),
        ("POST", f"{FISCHERS_PATH}/x"),
    ]
    for method, path in cases:
        reply = await api.call(method, path, body={"metadata": {"name": "m"}})
        status = assert_status(reply, 405, "MethodNotAllowed")
        assert status["code"] == 405
    assert names(await api.list(flunders_path("ns-405"))) == ["m"]


async def test_bodies_that_are_not_json_are_415(api: Api) -> None:
    """A POST or PUT body that is not application/json is 415 UnsupportedMediaType."""
    created = await api.create(flunder("ct", "ns-415"))
    body = json.dumps(flunder("other", "ns-415")).encode()
    for content_type in ("text/plain", "application/yaml", "application/merge-patch+json"):
        reply = await api.call("POST", flunders_path("ns-415"), raw=body, content_type=content_type)
        assert_status(reply, 415, "UnsupportedMediaType")
    reply = await api.call(
        "PUT", flunder_path("ns-415", "ct"), raw=json.dumps(created).encode(), content_type="text/plain"
    )
    assert_status(reply, 415, "UnsupportedMediaType")
    assert names(await api.list(flunders_path("ns-415"))) == ["ct"]


def _big_body() -> tuple[bytes, bytes, int]:
    head = (
        b'{"apiVersion": "'
        + V1A.encode()
        + b'", "kind": "Flunder", "metadata": {"name": "big"}, "spec": {"data": "'
    )
    tail = b'"}}'
    return head, tail, 3 * MIB + 1024


async def test_a_body_over_3_mib_with_content_length_is_413(api: Api) -> None:
    """A body over 3 MiB sent with Content-Length is 413 RequestEntityTooLarge and is not stored."""
    head, tail, size = _big_body()
    data = head + b"x" * size + tail
    reply = await api.call("POST", flunders_path("ns-413"), raw=data)
    assert_status(reply, 413, "RequestEntityTooLarge")
    assert_status(await api.call("GET", flunder_path("ns-413", "big")), 404, "NotFound")


async def test_a_chunked_body_over_3_mib_is_413(api: Api) -> None:
    """A body over 3 MiB sent chunked (no Content-Length) is 413 RequestEntityTooLarge."""
    head, tail, size = _big_body()
    chunk = b"x" * 65536

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(size // len(chunk) + 1):
            yield chunk
        yield tail

    reply = await api.call("POST", flunders_path("ns-413"), raw=body())
    assert_status(reply, 413, "RequestEntityTooLarge")
    assert_status(await api.call("GET", flunder_path("ns-413", "big")), 404, "NotFound")
    # A large body within the limit (and within etcd's own request limit, 1.5 MiB by default) is fine.
    small = head + b"x" * MIB + tail
    assert (await api.ok("POST", flunders_path("ns-413"), 201, raw=small))["metadata"]["name"] == "big"


async def _object_keys(kv: aetcd.Client, prefix: str) -> list[bytes]:
    """Every key under ``prefix`` but the caches' progress keys (written for consistent reads)."""
    progress = {f"{prefix}/{GROUP}/{r}".encode() for r in ("flunders", "fischers")}
    return sorted(item.key for item in await kv.get_prefix(prefix.encode()) if item.key not in progress)


async def test_invalid_names_write_nothing(api: Api, etcd_kv: aetcd.Client, prefix: str) -> None:
    """Names that are not DNS-1123 subdomains (upper case, '..', '%2F' in the path, NUL, 254
    characters) and namespaces that are not DNS-1123 labels (Bad_NS) are 422 Invalid, and no key
    is written to etcd."""
    await api.create(flunder("fine", "ns-422"))
    before = await _object_keys(etcd_kv, prefix)
    assert before == [f"{prefix}/{GROUP}/flunders/ns-422/fine".encode()]
    bad_names = ["UPPER", "a..b", "..", "a/b", "a\x00b", "a" * 254, "-lead", "trail.", "sp ace"]
    for name in bad_names:
        reply = await api.call("POST", flunders_path("ns-422"), body=flunder(name, "ns-422"))
        assert_status(reply, 422, "Invalid")
        reply = await api.call("POST", FISCHERS_PATH, body=fischer(name))
        assert_status(reply, 422, "Invalid")
    for segment in ["UPPER", "..", "a%2Fb", "%2E%2E", "a%00b", "a" * 254, "..%2F..%2Fsecret"]:
        path = flunder_path("ns-422", segment)
        assert_status(await api.call("GET", path), 422, "Invalid")
        assert_status(await api.call("PUT", path, body={"spec": {"size": 2}}), 422, "Invalid")
        assert_status(await api.call("PATCH", path, body={"spec": {}}, content_type=MERGE), 422, "Invalid")
        assert_status(await api.call("DELETE", path), 422, "Invalid")
        assert_status(await api.call("PUT", f"{FISCHERS_PATH}/{segment}", body={}), 422, "Invalid")
    for namespace in ["Bad_NS", "a.b", "x" * 64, "ns%2Fother"]:
        reply = await api.call("POST", flunders_path(namespace), body={"metadata": {"name": "ok"}})
        assert_status(reply, 422, "Invalid")
        assert_status(await api.call("GET", flunders_path(namespace)), 422, "Invalid")
        assert_status(await api.call("GET", flunder_path(namespace, "ok")), 422, "Invalid")
    reply = await api.call(
        "POST", flunders_path("ns-422"), body={"metadata": {"name": "ok", "namespace": "Bad_NS"}}
    )
    assert reply.status in (400, 422), reply.raw  # disagrees with the URL, and invalid
    assert await _object_keys(etcd_kv, prefix) == before


async def test_errors_are_statuses(api: Api) -> None:
    """Every error answer, whatever the code, is a Kubernetes Status whose code equals the HTTP
    status."""
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("GET", flunders_path("ns-e"), {"query": {"labelSelector": "("}}, 400, "BadRequest"),
        ("GET", flunder_path("ns-e", "nobody"), {}, 404, "NotFound"),
        ("GET", "/apis/x.example.com/v1/things", {}, 404, "NotFound"),
        ("DELETE", flunders_path("ns-e"), {}, 405, "MethodNotAllowed"),
        (
            "POST",
            flunders_path("ns-e"),
            {"raw": b"x", "content_type": "text/plain"},
            415,
            "UnsupportedMediaType",
        ),
        ("POST", flunders_path("ns-e"), {"body": {"metadata": {"name": "Bad"}}}, 422, "Invalid"),
        ("POST", flunders_path("ns-e"), {"body": {"metadata": {}}}, 422, "Invalid"),
    ]
    for method, path, kwargs, code, reason in cases:
        assert_status(await api.call(method, path, **kwargs), code, reason)


# -- the service's other paths ---------------------------------------------------------------------


async def test_health_endpoints_answer_ok_once_ready(api: Api) -> None:
    """/healthz, /livez and /readyz answer 200 "ok" once the caches are ready."""
    for path in ("/healthz", "/livez", "/readyz"):
        reply = await api.call("GET", path)
        assert reply.status == 200, (path, reply.raw)
        assert reply.raw.decode().strip() == "ok", path


@pytest.mark.parametrize(
    "path",
    [
        "/version",
        "/api",
        "/apis",
        f"/apis/{GROUP}",
        f"/apis/{GROUP}/v1alpha1",
        f"/apis/{GROUP}/v1beta1",
        "/openapi/v2",
        "/openapi/v3",
    ],
)
async def test_discovery_and_openapi_documents_are_json(api: Api, path: str) -> None:
    """The discovery and OpenAPI documents answer 200 with a JSON object."""
    reply = await api.call("GET", path)
    assert reply.status == 200, reply.raw[:500]
    assert reply.headers["Content-Type"].startswith("application/json")
    assert isinstance(reply.body, dict)


def _samples(text: str, name: str) -> list[dict[str, str]]:
    """The label sets of every sample of metric ``name`` in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? \S+", line)
        if match:
            out.append(dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or "")))
    return out


async def scrape(api: Api) -> str:
    reply = await api.call("GET", "/metrics")
    assert reply.status == 200, reply.raw[:500]
    assert reply.headers["Content-Type"].startswith("text/plain")
    return reply.raw.decode()


def _watch_requests(text: str) -> list[dict[str, str]]:
    return [
        s
        for s in _samples(text, "watchcache_requests_total")
        if s.get("verb") == "WATCH" and s.get("resource") == "flunders"
    ]


async def test_metrics_count_requests_caches_and_watchers(api: Api) -> None:
    """/metrics is Prometheus text with request counts by verb, resource and code, and the cache
    and watcher metrics of every resource."""
    created = await api.create(flunder("mx", "ns-m"))
    await api.list(flunders_path("ns-m"))
    await api.call("GET", flunder_path("ns-m", "nobody"))
    async with api.events(flunders_path("ns-m"), resourceVersion=str(rv(created))) as stream:
        await api.ok("DELETE", flunder_path("ns-m", "mx"))
        await stream.take(1)
        open_watch = await scrape(api)
    async with api.events(flunders_path("ns-m"), timeoutSeconds="1") as stream:
        await stream.assert_ends()
    text = await scrape(api)
    requests = _samples(text, "watchcache_requests_total")
    for verb, code in (
        ("CREATE", "201"),
        ("LIST", "200"),
        ("GET", "404"),
        ("WATCH", "200"),
        ("DELETE", "200"),
    ):
        assert any(
            s.get("verb") == verb and s.get("resource") == "flunders" and s.get("code") == code
            for s in requests
        ), (verb, code, requests)
    for name in (
        "watchcache_watchers",
        "watchcache_events_received_total",
        "watchcache_events_dispatched_total",
        "watchcache_watchers_terminated_slow_total",
        "watchcache_cache_objects",
        "watchcache_window_events",
        "watchcache_etcd_watch_restarts_total",
    ):
        samples = _samples(text, name)
        assert {s.get("resource") for s in samples} >= {"flunders", "fischers"}, (name, samples)
        assert all(s.get("group") == GROUP for s in samples), (name, samples)
    assert re.search(r'^watchcache_watchers\{[^}]*resource="flunders"[^}]*\} 1\.0$', open_watch, re.M), (
        open_watch
    )
    received = [
        ln
        for ln in text.splitlines()
        if ln.startswith("watchcache_events_received_total{") and 'resource="flunders"' in ln
    ]
    assert received and float(received[0].rsplit(" ", 1)[1]) >= 2, received


async def test_metrics_count_a_watch_its_client_closed_as_served(api: Api) -> None:
    """A watch that was answered 200 and streamed until the client hung up is counted in
    watchcache_requests_total with code 200, not as a server error (500)."""
    async with api.events(flunders_path("ns-mc")) as stream:
        await api.create(flunder("seen", "ns-mc"))
        await stream.take(1)
    # The server notices the hang-up on its own time: poll the metrics until the watch is counted.
    counted = await wait_until(
        lambda: _counted_watches(api), within=10, message="the closed watch counted in the metrics"
    )
    assert [s["code"] for s in counted] == ["200"], counted


async def _counted_watches(api: Api) -> list[dict[str, str]]:
    return _watch_requests(await scrape(api))


async def test_metrics_watch_duration_is_setup_time(api: Api) -> None:
    """watchcache_request_duration_seconds observes, for WATCH, the time to set the watch up (as its
    help text says), not how long the stream stayed open."""
    async with api.events(flunders_path("ns-md"), timeoutSeconds="1") as stream:
        await stream.assert_ends()
    text = await scrape(api)
    assert "for WATCH: to set it up" in text
    sums = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("watchcache_request_duration_seconds_sum{") and 'verb="WATCH"' in line
    ]
    assert len(sums) == 1, sums
    assert sums[0] < 0.5, f"a 1 s watch was observed as {sums[0]:.3f} s of set-up"


async def test_lists_work_over_https(tls_service: Service, test_ca: TestCA) -> None:
    """Over HTTPS, a client trusting the test CA lists flunders."""
    context = ssl.create_default_context(cafile=test_ca.cert_file)
    async with aiohttp.ClientSession() as session:
        api = Api(session, tls_service.url, ssl_context=context)
        assert tls_service.url.startswith("https://")
        await api.create(flunder("secure", "ns-tls"))
        body = await api.list(flunders_path("ns-tls"))
    assert body["kind"] == "FlunderList"
    assert names(body) == ["secure"]


async def test_graceful_shutdown_ends_watches(etcd_endpoints: list[str], prefix: str) -> None:
    """Stopping the service with a watch open completes within a few seconds, and the client's
    watch stream ends cleanly (EOF, not an error)."""
    svc = Service(options(tuple(etcd_endpoints), prefix))
    await svc.start()
    try:
        assert svc.storage is not None
        await svc.storage.wait_ready()
        async with aiohttp.ClientSession() as session:
            api = Api(session, svc.url)
            async with api.events(flunders_path("ns-stop")) as stream:
                created = await api.create(flunder("s", "ns-stop"))
                assert summary(await stream.take(1)) == [("ADDED", "s", rv(created))]
                started = time.monotonic()
                async with asyncio.timeout(10):
                    await svc.stop()
                assert time.monotonic() - started < 5
                await stream.assert_ends()
    finally:
        await svc.stop()
