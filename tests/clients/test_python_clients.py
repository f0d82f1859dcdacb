"""Other real Python clients against a running service: kubernetes_asyncio, lightkube, kr8s and kopf.

Each is used as its documentation shows, against the service over a real socket and a real etcd:
custom objects created, read, listed and deleted, the core namespaces read, and a watch. For
kubernetes_asyncio and lightkube, whose watches resume by themselves, the service ends every watch
after about a second (``min_request_timeout``) while writes go on across several reconnects: each
client must see every change exactly once, in order (it resumes from the last resourceVersion it
saw). kr8s connects (it asks ``/version/`` and ``/api/`` with a trailing slash) and watches. kopf runs
a real operator (``kopf run``, a handler on flunders): it waits for core v1 namespaces in discovery,
follows them, and handles a flunder created before it started and one created afterwards in a new
namespace, which it can only see by watching namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.waiting import wait_until

from watchcache.config import parse_config
from watchcache.http.settings import ServerSettings
from watchcache.service import Service, ServiceOptions

GROUP, VERSION, PLURAL = "wardle.example.com", "v1alpha1", "flunders"
API_VERSION = f"{GROUP}/{VERSION}"
EXAMPLE_CONFIG = (Path(__file__).parents[2] / "examples" / "watchcache.yaml").read_text()
OPERATOR = Path(__file__).parents[1] / "support" / "kopf_operator.py"

Change = tuple[str, str, int]
"""A watch event as (type, object name, resourceVersion)."""


@asynccontextmanager
async def serving(
    etcd_endpoints: list[str], prefix: str, *, watch_seconds: float = 1800.0
) -> AsyncIterator[Service]:
    """The example resources; a watch without timeoutSeconds ends after ``watch_seconds`` to twice
    that (kube-apiserver's --min-request-timeout)."""
    options = ServiceOptions(
        config=parse_config(EXAMPLE_CONFIG),
        etcd_servers=tuple(etcd_endpoints),
        etcd_prefix=prefix,
        port=0,
        server=ServerSettings(min_request_timeout=watch_seconds),
    )
    async with Service(options) as service:
        assert service.storage is not None
        await service.storage.wait_ready(20)
        yield service


def flunder(name: str, namespace: str, size: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Flunder",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"size": size},
    }


class Writer:
    """Writes flunders of one namespace through the service's REST API (as another client would),
    recording the watch events each acknowledged write must produce."""

    def __init__(self, session: aiohttp.ClientSession, service: Service, namespace: str) -> None:
        self.session = session
        self.service = service
        self.namespace = namespace
        self.expected: list[Change] = []

    def path(self, name: str = "") -> str:
        return f"{self.service.url}/apis/{API_VERSION}/namespaces/{self.namespace}/{PLURAL}/{name}".rstrip(
            "/"
        )

    async def _send(self, method: str, url: str, body: Any, content_type: str = "application/json") -> Any:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type}
        async with (
            asyncio.timeout(30),
            self.session.request(method, url, data=data, headers=headers) as reply,
        ):
            answer = orjson.loads(await reply.read())
            assert reply.status in (200, 201), answer
            return answer

    async def create(self, name: str, size: int = 1) -> int:
        obj = await self._send("POST", self.path(), flunder(name, self.namespace, size))
        return self._expect("ADDED", obj)

    async def resize(self, name: str, size: int) -> int:
        patch = {"spec": {"size": size}}
        obj = await self._send("PATCH", self.path(name), patch, "application/merge-patch+json")
        return self._expect("MODIFIED", obj)

    async def delete(self, name: str) -> int:
        obj = await self._send("DELETE", self.path(name), None)
        return self._expect("DELETED", obj)

    def _expect(self, kind: str, obj: dict[str, Any]) -> int:
        revision = int(obj["metadata"]["resourceVersion"])
        self.expected.append((kind, obj["metadata"]["name"], revision))
        return revision

    async def get(self, name: str) -> dict[str, Any]:
        async with asyncio.timeout(30), self.session.get(self.path(name)) as reply:
            assert reply.status == 200
            obj: dict[str, Any] = orjson.loads(await reply.read())
            return obj


async def requests_served(session: aiohttp.ClientSession, service: Service, verb: str, resource: str) -> int:
    """How many ``verb`` requests on ``resource`` the service has answered, from its /metrics."""
    async with asyncio.timeout(30), session.get(service.url + "/metrics") as reply:
        text = await reply.text()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "watchcache_requests_total"
                and sample.labels.get("verb") == verb
                and sample.labels.get("resource") == resource
            ):
                total += sample.value
    return int(total)


async def writes_across_reconnects(
    session: aiohttp.ClientSession, service: Service, writer: Writer, *, reconnects: int = 4
) -> None:
    """Rounds of writes (create, resize, delete), each followed by the service ending the client's
    watch and the client watching again: ``reconnects`` of them."""
    for round_ in range(reconnects):
        watches = await requests_served(session, service, "WATCH", PLURAL)
        await writer.create(f"r{round_}", size=round_)
        await writer.resize(f"r{round_}", size=round_ + 10)
        if round_:
            await writer.delete(f"r{round_ - 1}")
        await wait_until(
            lambda seen=watches: _more(session, service, seen),  # type: ignore[misc]
            within=20,
            message=f"the client's watch number {round_ + 2}",
        )
    await writer.create("last")


async def _more(session: aiohttp.ClientSession, service: Service, seen: int) -> bool:
    return await requests_served(session, service, "WATCH", PLURAL) > seen


async def follow(
    reader: Callable[[], Awaitable[None]],
    received: list[Change],
    writes: Callable[[], Awaitable[None]],
    writer: Writer,
) -> None:
    """Run ``reader`` (a client's watch filling ``received``) while ``writes`` run; return once they
    are done and ``received`` holds as many events as they were to produce."""
    reading = asyncio.create_task(reader(), name="client watch reader")
    writing = asyncio.create_task(writes(), name="writes across reconnects")
    try:
        await wait_until(
            lambda: (
                reading.done()
                or (
                    writing.done()
                    and (writing.exception() is not None or len(received) >= len(writer.expected))
                )
            ),
            within=60,
            message="every event",
        )
        for task in (writing, reading):
            if task.done():
                task.result()  # a failure: say which
    finally:
        for task in (reading, writing):
            task.cancel()
        for task in (reading, writing):
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- kubernetes_asyncio --------------------------------------------------------------------------------


async def test_kubernetes_asyncio(etcd_endpoints: list[str], prefix: str) -> None:
    """kubernetes_asyncio: custom objects CRUD and list, the core namespaces (list, read, watch), and
    a watch kept by ``Watch.stream`` across the service ending it several times: every change once,
    in order."""
    from kubernetes_asyncio import client, watch  # noqa: PLC0415 - one client per test
    from kubernetes_asyncio.client.exceptions import ApiException  # noqa: PLC0415

    ns = "k8s-asyncio"
    async with (
        serving(etcd_endpoints, prefix, watch_seconds=0.5) as service,
        aiohttp.ClientSession() as session,
        client.ApiClient(client.Configuration(host=service.url)) as api_client,
    ):
        custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
        created = await custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, flunder("a", ns))
        assert created["metadata"]["uid"]
        listed = await custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
        assert [item["metadata"]["name"] for item in listed["items"]] == ["a"]
        got = await custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "a")
        assert got == created

        namespaces = await core.list_namespace()
        assert [n.metadata.name for n in namespaces.items] == ["default", ns]
        assert (await core.read_namespace(ns)).status.phase == "Active"
        with pytest.raises(ApiException) as refused:
            await core.delete_namespace(ns)
        assert refused.value.status == 405

        # A Watch holds an ApiClient of its own: closed on leaving the block.
        async with watch.Watch() as seen_namespaces:
            stream = seen_namespaces.stream(
                core.list_namespace, resource_version=namespaces.metadata.resource_version
            )
            await custom.create_namespaced_custom_object(
                GROUP, VERSION, "k8s-asyncio-2", PLURAL, flunder("b", "k8s-asyncio-2")
            )
            async with asyncio.timeout(20):
                event = await stream.__anext__()
        assert (event["type"], event["object"].metadata.name) == ("ADDED", "k8s-asyncio-2")

        await custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "a")
        listed = await custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
        start = listed["metadata"]["resourceVersion"]
        writer = Writer(session, service, ns)
        received: list[Change] = []

        async with watch.Watch() as follower:

            async def reader() -> None:
                async for event in follower.stream(
                    custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, resource_version=start
                ):
                    meta = event["object"]["metadata"]
                    received.append((event["type"], meta["name"], int(meta["resourceVersion"])))

            async def write() -> None:
                await writes_across_reconnects(session, service, writer)

            await follow(reader, received, write, writer)
        assert len(writer.expected) == 12
        assert received == writer.expected


# -- lightkube ------------------------------------------------------------------------------------------


async def test_lightkube(etcd_endpoints: list[str], prefix: str) -> None:
    """lightkube (generic namespaced resource): create, get, list, patch, delete; the core
    namespaces; and ``watch`` across the service ending it several times: every change once, in order."""
    from lightkube import AsyncClient, KubeConfig  # noqa: PLC0415 - one client per test
    from lightkube.core.exceptions import ApiError  # noqa: PLC0415
    from lightkube.generic_resource import create_namespaced_resource  # noqa: PLC0415
    from lightkube.models.meta_v1 import ObjectMeta  # noqa: PLC0415
    from lightkube.resources.core_v1 import Namespace  # noqa: PLC0415
    from lightkube.types import PatchType  # noqa: PLC0415

    flunders = create_namespaced_resource(GROUP, VERSION, "Flunder", PLURAL)
    ns = "lightkube"
    async with (
        serving(etcd_endpoints, prefix, watch_seconds=0.5) as service,
        aiohttp.ClientSession() as session,
    ):
        config = KubeConfig.from_dict(
            {
                "clusters": [{"name": "watchcache", "cluster": {"server": service.url}}],
                # Authentication is off in this service: any token does (lightkube wants a user).
                "users": [{"name": "user", "user": {"token": "unused"}}],
                "contexts": [{"name": "watchcache", "context": {"cluster": "watchcache", "user": "user"}}],
                "current-context": "watchcache",
            }
        )
        client = AsyncClient(config=config)
        try:
            created = await client.create(
                flunders(metadata=ObjectMeta(name="a", namespace=ns), spec={"size": 1})
            )
            assert created.metadata is not None and created.metadata.uid
            got = await client.get(flunders, "a", namespace=ns)
            assert (
                got.metadata is not None and got.metadata.resourceVersion == created.metadata.resourceVersion
            )
            patched = await client.patch(
                flunders, "a", {"spec": {"size": 2}}, namespace=ns, patch_type=PatchType.MERGE
            )
            assert patched["spec"] == {"size": 2}
            assert [f.metadata.name async for f in client.list(flunders, namespace=ns) if f.metadata] == ["a"]
            assert [n.metadata.name async for n in client.list(Namespace) if n.metadata] == ["default", ns]
            default = await client.get(Namespace, "default")
            assert default.status is not None and default.status.phase == "Active"
            with pytest.raises(ApiError) as refused:
                await client.delete(Namespace, ns)
            assert refused.value.status.code == 405
            await client.delete(flunders, "a", namespace=ns)

            listing = client.list(flunders, namespace=ns)
            assert [f async for f in listing] == []
            start = listing.resourceVersion
            writer = Writer(session, service, ns)
            received: list[Change] = []

            async def reader() -> None:
                async for kind, obj in client.watch(flunders, namespace=ns, resource_version=start):
                    assert obj.metadata is not None and obj.metadata.name and obj.metadata.resourceVersion
                    received.append((kind, obj.metadata.name, int(obj.metadata.resourceVersion)))

            async def write() -> None:
                await writes_across_reconnects(session, service, writer)

            await follow(reader, received, write, writer)
            assert len(writer.expected) == 12
            assert received == writer.expected
        finally:
            await client.close()


# -- kr8s ------------------------------------------------------------------------------------------------


async def test_kr8s(
    etcd_endpoints: list[str], prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kr8s connects (``/version/``, ``/api/``: both forms answered), lists the API resources (the
    core namespaces among them), creates and gets a flunder as an object class of its own, lists
    namespaces, and watches flunders from a resourceVersion."""
    import kr8s.asyncio  # noqa: PLC0415 - one client per test
    from kr8s.asyncio.objects import new_class  # noqa: PLC0415

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))  # the URL is all kr8s is given
    ns = "kr8s"
    async with serving(etcd_endpoints, prefix) as service:
        api = await kr8s.asyncio.api(url=service.url)
        assert (await api.version())["gitVersion"].startswith("v1.32.0+watchcache")
        resources = {(r["version"], r["name"]) for r in await api.api_resources()}
        assert {("v1", "namespaces"), (API_VERSION, "flunders")} <= resources

        flunder_class = new_class(
            kind="Flunder", version=API_VERSION, namespaced=True, plural=PLURAL, asyncio=True
        )
        first = await flunder_class(flunder("a", ns), api=api)
        await first.create()
        assert first.metadata.resourceVersion
        names = [f.name async for f in api.async_get(f"{PLURAL}.{GROUP}", namespace=ns)]
        assert names == ["a"]
        assert [n.name async for n in api.async_get("namespaces")] == ["default", ns]

        events = api.async_watch(f"{PLURAL}.{GROUP}", namespace=ns, since=first.metadata.resourceVersion)
        second = await flunder_class(flunder("b", ns, size=2), api=api)
        await second.create()
        async with asyncio.timeout(20):
            kind, obj = await events.__anext__()
        await events.aclose()
        assert (kind, obj.name, obj.metadata.resourceVersion) == (
            "ADDED",
            "b",
            second.metadata.resourceVersion,
        )
        assert obj.raw["spec"] == {"size": 2}


# -- kopf ------------------------------------------------------------------------------------------------


async def test_kopf_operator(etcd_endpoints: list[str], prefix: str) -> None:
    """``kopf run --standalone --namespace=kopf-*`` with a handler on flunders: kopf finds core v1
    namespaces in discovery, lists and watches them, handles a flunder that existed before it started
    and one created later in a namespace that did not exist yet (seen only through the namespace
    watch), stores its progress on the objects, logs no error, and stops cleanly on SIGTERM."""
    async with serving(etcd_endpoints, prefix) as service, aiohttp.ClientSession() as session:
        early, late = Writer(session, service, "kopf-early"), Writer(session, service, "kopf-late")
        await early.create("x", size=1)
        lines: list[str] = []
        operator = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kopf",
            "run",
            "--standalone",
            "--namespace=kopf-*",
            str(OPERATOR),
            env={**os.environ, "WATCHCACHE_URL": service.url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

        async def read() -> None:
            assert operator.stdout is not None
            async for line in operator.stdout:
                lines.append(line.decode(errors="replace").rstrip())

        reading = asyncio.create_task(read(), name="kopf output")
        try:

            def said(text: str) -> bool:
                return any(text in line for line in lines)

            await wait_until(lambda: said("HANDLED create kopf-early/x size=1"), within=60, message="kopf")
            await wait_until(
                lambda: requests_served(session, service, "WATCH", "namespaces"),
                within=30,
                message="kopf watching namespaces",
            )
            await late.create("y", size=2)
            await wait_until(lambda: said("HANDLED create kopf-late/y size=2"), within=30, message="kopf")
            await wait_until(lambda: said("[kopf-late/y] Creation is processed"), within=30, message="kopf")
            handled = await late.get("y")
            assert "kopf.zalando.org/last-handled-configuration" in handled["metadata"]["annotations"]
            assert handled["status"] == {"created": {"seen": True}}
            operator.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                code = await operator.wait()
                await reading
        finally:
            if operator.returncode is None:
                operator.kill()
                await operator.wait()
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        output = "\n".join(lines)
        assert code == 0, output
        assert "ERROR" not in output and "Traceback" not in output, output
