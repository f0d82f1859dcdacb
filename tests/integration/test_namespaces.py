"""The core v1 ``namespaces``, read-only and derived from the caches, against a real etcd over HTTP.

What a tenant sees (the namespaces of the resources it may read, and ``default``; never those that
hold only another tenant's objects), discovery (``/api``, ``/api/v1``, with and without a trailing
slash, as kube-apiserver answers both), the 405 for every write, LIST paging and selectors, and WATCH:
a namespace is ADDED with the first object in it and DELETED with the last, at that write's revision,
across several caches, exactly — a watch resumed from any resourceVersion it sent gets exactly the
rest — and 410 for a resourceVersion older than a cache's window. kubectl reads them too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from support.tenants import RESOURCES as WORLD_RESOURCES
from yarl import URL

from watchcache.cache.settings import CacheSettings
from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions

pytestmark = pytest.mark.etcd

NAMESPACES = "/api/v1/namespaces"
TOKENS = {"wardle": "wardle-token", "acme": "acme-token"}
FLUNDERS = ("wardle.example.com", "v1alpha1", "flunders")
WIDGETS = ("acme.example.com", "v1", "widgets")
GADGETS = ("shared.example.com", "v1", "gadgets")
Resource = tuple[str, str, str]


def config(*, tenants: bool) -> str:
    resources = [r.config for r in WORLD_RESOURCES]
    doc: dict[str, Any] = {"resources": resources}
    if tenants:
        doc["tenants"] = [
            {
                "name": "wardle",
                "groups": ["wardle.example.com"],
                "readGroups": ["shared.example.com"],
                "tokens": [TOKENS["wardle"]],
            },
            {
                "name": "acme",
                "groups": ["acme.example.com", "shared.example.com"],
                "tokens": [TOKENS["acme"]],
            },
        ]
    return yaml.safe_dump(doc)


@asynccontextmanager
async def serving(
    etcd_endpoints: list[str], prefix: str, *, tenants: bool, cache: CacheSettings | None = None
) -> AsyncIterator[Service]:
    options = ServiceOptions(
        config=parse_config(config(tenants=tenants)),
        etcd_servers=tuple(etcd_endpoints),
        etcd_prefix=prefix,
        port=0,
        cache=cache or CacheSettings(),
    )
    async with Service(options) as service:
        assert service.storage is not None
        await service.storage.wait_ready(20)
        yield service


class Client:
    """Raw HTTP to the service, as one tenant (or anonymous)."""

    def __init__(self, session: aiohttp.ClientSession, service: Service, tenant: str | None = None) -> None:
        self.session = session
        self.base = service.url
        self.headers = {"Authorization": f"Bearer {TOKENS[tenant]}"} if tenant else {}

    async def call(self, method: str, path: str, body: Any = None, **query: str) -> tuple[int, Any]:
        url = URL(self.base + path).with_query(query) if query else URL(self.base + path)
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = (
                "application/merge-patch+json" if method == "PATCH" else "application/json"
            )
        async with (
            asyncio.timeout(30),
            self.session.request(method, url, data=data, headers=headers) as reply,
        ):
            raw = await reply.read()
            return reply.status, orjson.loads(raw) if raw else None

    async def create(self, resource: Resource, namespace: str, name: str) -> int:
        group, version, plural = resource
        path = f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"
        status, body = await self.call("POST", path, {"metadata": {"name": name}})
        assert status == 201, body
        return int(body["metadata"]["resourceVersion"])

    async def delete(self, resource: Resource, namespace: str, name: str) -> int:
        group, version, plural = resource
        status, body = await self.call(
            "DELETE", f"/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}"
        )
        assert status == 200, body
        return int(body["metadata"]["resourceVersion"])

    async def names(self, **query: str) -> tuple[list[str], dict[str, Any]]:
        status, body = await self.call("GET", NAMESPACES, **query)
        assert status == 200, body
        assert (body["kind"], body["apiVersion"]) == ("NamespaceList", "v1")
        return [item["metadata"]["name"] for item in body["items"]], body["metadata"]

    @asynccontextmanager
    async def watch(self, path: str = NAMESPACES, **query: str) -> AsyncIterator[Events]:
        url = URL(self.base + path).with_query({"watch": "true", **query})
        async with asyncio.timeout(30):
            reply = await self.session.get(url, headers=self.headers)
        try:
            assert reply.status == 200, await reply.text()
            yield Events(reply)
        finally:
            reply.close()


class Events:
    """The events of one open watch, read on demand."""

    def __init__(self, reply: aiohttp.ClientResponse) -> None:
        self.reply = reply

    async def next(self, within: float = 20.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            line = await self.reply.content.readline()
        assert line, "the watch ended"
        event: dict[str, Any] = orjson.loads(line)
        return event

    async def changes(self, count: int) -> list[tuple[str, str, int]]:
        """The next ``count`` events other than bookmarks, as (type, name, resourceVersion)."""
        out: list[tuple[str, str, int]] = []
        while len(out) < count:
            event = await self.next()
            if event["type"] != "BOOKMARK":
                out.append(summary(event))
        return out

    async def rest(self) -> list[tuple[str, str, int]]:
        """Every event other than bookmarks until the stream ends (its timeoutSeconds)."""
        out = []
        async with asyncio.timeout(30):
            async for line in self.reply.content:
                event = orjson.loads(line)
                if event["type"] != "BOOKMARK":
                    out.append(summary(event))
        return out


def summary(event: dict[str, Any]) -> tuple[str, str, int]:
    obj = event["object"]
    if event["type"] == "ERROR":
        return "ERROR", obj["reason"], obj["code"]
    assert (obj["kind"], obj["apiVersion"]) == ("Namespace", "v1"), obj
    meta = obj["metadata"]
    assert meta["labels"] == {"kubernetes.io/metadata.name": meta["name"]}
    return event["type"], meta["name"], int(meta["resourceVersion"])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_discovery_lists_core_v1_namespaces(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """/api lists v1 and /api/v1 lists namespaces (get, list, watch; short name ns), with or without
    a trailing slash, as does /version — kube-apiserver answers both forms and kr8s asks the slashed
    one. Every caller sees them; without credentials they are 401 like any document."""
    async with serving(etcd_endpoints, prefix, tenants=True) as service:
        wardle = Client(session, service, "wardle")
        for path in ("/api", "/api/"):
            assert await wardle.call("GET", path) == (
                200,
                {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
            )
        for path in ("/api/v1", "/api/v1/"):
            status, doc = await wardle.call("GET", path)
            assert status == 200 and (doc["kind"], doc["groupVersion"]) == ("APIResourceList", "v1")
            assert doc["resources"] == [
                {
                    "name": "namespaces",
                    "singularName": "namespace",
                    "namespaced": False,
                    "kind": "Namespace",
                    "verbs": ["get", "list", "watch"],
                    "shortNames": ["ns"],
                }
            ]
        version = await Client(session, service).call("GET", "/version")
        assert await Client(session, service).call("GET", "/version/") == version
        assert version[0] == 200
        for path in ("/api", "/api/v1", NAMESPACES, NAMESPACES + "/default"):
            status, body = await Client(session, service).call("GET", path)
            assert (status, body["reason"]) == (401, "Unauthorized"), path
        for path in (
            "/api/v2",
            "/api/v1/pods",
            "/api/v1/namespaces/default/events",
            "/api/v1/namespaces/a/b/c",
        ):
            status, body = await wardle.call("GET", path)
            assert (status, body["reason"]) == (404, "NotFound"), path


async def test_writes_are_405(etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession) -> None:
    """create, update, patch, delete and deletecollection of namespaces are 405 MethodNotAllowed with a
    Status saying why; nothing changes."""
    async with serving(etcd_endpoints, prefix, tenants=False) as service:
        api = Client(session, service)
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
        for method, path, verb in [
            ("POST", NAMESPACES, "create"),
            ("PUT", NAMESPACES + "/default", "update"),
            ("PATCH", NAMESPACES + "/default", "patch"),
            ("DELETE", NAMESPACES + "/default", "delete"),
            ("DELETE", NAMESPACES, "deletecollection"),
        ]:
            status, body = await api.call(method, path, namespace if method != "DELETE" else None)
            assert (status, body["kind"], body["reason"], body["code"]) == (
                405,
                "Status",
                "MethodNotAllowed",
                405,
            )
            assert body["message"].startswith(
                f"{verb} is not allowed on namespaces: watchcache serves them read-only"
            )
        assert (await api.names())[0] == ["default"]


async def test_a_tenant_sees_the_namespaces_of_what_it_may_read(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """wardle (flunders; reads gadgets) and acme (widgets, gadgets) each see ``default`` and the
    namespaces holding objects they may read — never a namespace holding only the other's objects,
    by LIST, GET (404) or WATCH; a namespace goes when its last visible object is deleted."""
    async with serving(etcd_endpoints, prefix, tenants=True) as service:
        wardle, acme = Client(session, service, "wardle"), Client(session, service, "acme")
        await wardle.create(FLUNDERS, "w-ns", "f")
        await acme.create(WIDGETS, "a-ns", "w")
        await acme.create(GADGETS, "s-ns", "g")
        assert (await wardle.names())[0] == ["default", "s-ns", "w-ns"]
        assert (await acme.names())[0] == ["a-ns", "default", "s-ns"]
        status, body = await wardle.call("GET", NAMESPACES + "/a-ns")
        assert (status, body["reason"], body["message"]) == (404, "NotFound", 'namespaces "a-ns" not found')
        status, body = await wardle.call("GET", NAMESPACES + "/w-ns")
        assert status == 200 and body["metadata"]["name"] == "w-ns" and body["status"] == {"phase": "Active"}

        _, meta = await wardle.names()
        async with wardle.watch(resourceVersion=meta["resourceVersion"]) as events:
            await acme.create(WIDGETS, "a-ns2", "w")  # acme's own: not for wardle
            shared = await acme.create(GADGETS, "s-ns2", "g")
            own = await wardle.create(FLUNDERS, "w-ns2", "f")
            gone = await wardle.delete(FLUNDERS, "w-ns", "f")
            assert await events.changes(3) == [
                ("ADDED", "s-ns2", shared),
                ("ADDED", "w-ns2", own),
                ("DELETED", "w-ns", gone),
            ]
        assert (await wardle.names())[0] == ["default", "s-ns", "s-ns2", "w-ns2"]
        assert (await acme.names())[0] == ["a-ns", "a-ns2", "default", "s-ns", "s-ns2"]


async def test_list_pages_and_selectors(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """limit/continue page one revision; metadata.name and the kubernetes.io/metadata.name label
    select; resourceVersion=0 and Exact are served; a garbage continue token is 400."""
    async with serving(etcd_endpoints, prefix, tenants=False) as service:
        api = Client(session, service)
        for namespace in ("n1", "n2", "n3"):
            await api.create(FLUNDERS, namespace, "f")
        first, meta = await api.names(limit="2")
        assert first == ["default", "n1"] and meta["remainingItemCount"] == 2
        await api.create(FLUNDERS, "n0", "f")  # after the first page: not in the next
        rest, rest_meta = await api.names(limit="2", **{"continue": meta["continue"]})
        assert rest == ["n2", "n3"] and "continue" not in rest_meta
        assert rest_meta["resourceVersion"] == meta["resourceVersion"]
        assert (await api.names())[0] == ["default", "n0", "n1", "n2", "n3"]
        assert (await api.names(resourceVersion="0"))[0] == ["default", "n0", "n1", "n2", "n3"]
        exact = {"resourceVersion": meta["resourceVersion"], "resourceVersionMatch": "Exact"}
        assert (await api.names(**exact))[0] == ["default", "n1", "n2", "n3"]
        assert (await api.names(fieldSelector="metadata.name=n2"))[0] == ["n2"]
        assert (await api.names(labelSelector="kubernetes.io/metadata.name in (n1,n3)"))[0] == ["n1", "n3"]
        status, body = await api.call("GET", NAMESPACES, **{"continue": "garbage"})
        assert (status, body["reason"]) == (400, "BadRequest")


async def test_watch_merges_the_caches_exactly_and_resumes_exactly(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """Concurrent writes to three namespaced resources over a few namespaces: the watch sends, in
    revision order, exactly the appearances and disappearances that etcd's acknowledged writes imply,
    each at its write's revision; and a watch resumed from each resourceVersion sent gets exactly the
    events after it."""
    async with serving(etcd_endpoints, prefix, tenants=False) as service:
        api = Client(session, service)
        _, meta = await api.names()
        start = int(meta["resourceVersion"])
        writes: list[tuple[int, str, int]] = []  # (revision, namespace, +1/-1)

        async def created(resource: Resource, namespace: str, name: str) -> None:
            writes.append((await api.create(resource, namespace, name), namespace, 1))

        async def deleted(resource: Resource, namespace: str, name: str) -> None:
            writes.append((await api.delete(resource, namespace, name), namespace, -1))

        async def cycles(namespace: str, one: Resource, other: Resource) -> None:
            """The namespace filled by objects of two resources at once, then emptied, four times."""
            for i in range(4):
                await asyncio.gather(created(one, namespace, f"a{i}"), created(other, namespace, f"b{i}"))
                await asyncio.gather(deleted(one, namespace, f"a{i}"), deleted(other, namespace, f"b{i}"))

        async with api.watch(resourceVersion=str(start), allowWatchBookmarks="true") as events:
            await asyncio.gather(
                cycles("n1", FLUNDERS, WIDGETS),
                cycles("n2", WIDGETS, GADGETS),
                cycles("n3", GADGETS, FLUNDERS),
            )
            expected: list[tuple[str, str, int]] = []
            counts: dict[str, int] = {}
            for revision, namespace, delta in sorted(writes):
                before = counts.get(namespace, 0)
                counts[namespace] = before + delta
                if before == 0 and delta > 0:
                    expected.append(("ADDED", namespace, revision))
                elif before + delta == 0:
                    expected.append(("DELETED", namespace, revision))
            assert len(expected) == 24, expected  # each namespace came and went four times
            assert await events.changes(len(expected)) == expected

        async def resumed(revision: int) -> list[tuple[str, str, int]]:
            async with api.watch(resourceVersion=str(revision), timeoutSeconds="2") as stream:
                return await stream.rest()

        points = [start] + [revision for _, _, revision in expected]
        results = await asyncio.gather(*(resumed(point) for point in points))
        for point, got in zip(points, results, strict=True):
            assert got == [e for e in expected if e[2] > point], point


async def test_watch_from_before_the_window_is_410(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """A resourceVersion older than a cache's window: one ERROR event, 410 Expired, then the end; a
    watch with no resourceVersion starts with every namespace as ADDED."""
    async with serving(
        etcd_endpoints, prefix, tenants=False, cache=CacheSettings(window_events=3)
    ) as service:
        api = Client(session, service)
        _, meta = await api.names()
        for step in range(6):
            await api.create(FLUNDERS, f"w{step}", "f")
        async with api.watch(resourceVersion=meta["resourceVersion"]) as events:
            assert [summary(await events.next())] == [("ERROR", "Expired", 410)]
        async with api.watch() as events:
            initial = await events.changes(7)
        assert sorted(name for _, name, _ in initial) == ["default"] + [f"w{step}" for step in range(6)]
        assert {kind for kind, _, _ in initial} == {"ADDED"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_reads_namespaces(
    etcd_endpoints: list[str], prefix: str, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """kubectl get ns / get namespace NAME list what the caches hold (as Tables: NAME, STATUS);
    kubectl delete ns says why not."""
    async with serving(etcd_endpoints, prefix, tenants=False) as service:
        await Client(session, service).create(FLUNDERS, "kubectl-ns", "f")

        async def kubectl(*args: str) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                "kubectl",
                f"--server={service.url}",
                f"--cache-dir={tmp_path / 'cache'}",
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")},
            )
            async with asyncio.timeout(60):
                out, _ = await proc.communicate()
            assert proc.returncode is not None
            return proc.returncode, out.decode()

        assert await kubectl("get", "ns", "-o", "name") == (0, "namespace/default\nnamespace/kubectl-ns\n")
        code, out = await kubectl("get", "namespace", "kubectl-ns")
        assert code == 0 and [line.split() for line in out.splitlines()] == [
            ["NAME", "STATUS"],
            ["kubectl-ns", "Active"],
        ], out
        code, out = await kubectl("get", "ns")
        assert code == 0 and [line.split()[0] for line in out.splitlines()] == [
            "NAME",
            "default",
            "kubectl-ns",
        ]
        code, out = await kubectl("delete", "namespace", "kubectl-ns")
        assert code == 1 and "(MethodNotAllowed): delete is not allowed on namespaces" in out, out


async def test_bookmarks_resume_exactly(
    etcd_endpoints: list[str], prefix: str, session: aiohttp.ClientSession
) -> None:
    """With allowWatchBookmarks, an idle namespace watch gets BOOKMARKs at a revision at least as new
    as its last event; a watch resumed from a bookmark's resourceVersion gets exactly what follows."""
    settings = CacheSettings(bookmark_interval=0.2)
    async with serving(etcd_endpoints, prefix, tenants=False, cache=settings) as service:
        api = Client(session, service)
        _, meta = await api.names()
        async with api.watch(resourceVersion=meta["resourceVersion"], allowWatchBookmarks="true") as events:
            first = await api.create(FLUNDERS, "b1", "f")
            assert await events.changes(1) == [("ADDED", "b1", first)]
            while (event := await events.next())["type"] != "BOOKMARK":
                pass
        mark = int(event["object"]["metadata"]["resourceVersion"])
        assert mark >= first
        second = await api.create(WIDGETS, "b2", "w")
        async with api.watch(resourceVersion=str(mark)) as events:
            assert await events.changes(1) == [("ADDED", "b2", second)]
