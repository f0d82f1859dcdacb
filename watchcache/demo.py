"""``watchcache demo``: the embedded API end to end, against a real etcd, in a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from .api.spec import ResourceSpec
from .api.storage import Storage
from .api.watch import WatchEvent
from .etcd.process import EmbeddedEtcd

FLUNDERS = ResourceSpec(
    group="wardle.example.com",
    resource="flunders",
    kind="Flunder",
    namespaced=True,
    versions=("v1alpha1", "v1beta1"),
)


def _show(event: WatchEvent) -> str:
    meta = event.object.get("metadata", {})
    return f"  watch: {event.type:<8} {meta.get('name', '')!s:<8} resourceVersion={event.revision}"


async def run_demo(etcd_servers: Sequence[str] | None, prefix: str) -> None:
    """Create, watch, update, list (consistently, and in pages) and delete a few objects."""
    async with contextlib.AsyncExitStack() as stack:
        if not etcd_servers:
            etcd = await stack.enter_async_context(EmbeddedEtcd())
            etcd_servers = etcd.endpoints
            print(f"started a private etcd at {etcd_servers[0]}")
        storage = await stack.enter_async_context(Storage(etcd_servers, prefix=prefix))
        flunders = storage.resource(FLUNDERS)
        await flunders.wait_ready()
        start = await flunders.list()
        print(f"{len(start.raw_items)} flunders at resourceVersion {start.resource_version}")

        seen: list[str] = []

        async def follow() -> None:
            async for event in flunders.watch(resource_version=start.resource_version):
                seen.append(_show(event))
                if event.type == "DELETED" and event.object["metadata"]["name"] == "demo-3":
                    return

        follower = asyncio.create_task(follow(), name="watchcache-demo-watch")
        for i in range(1, 4):
            await flunders.create(
                {"metadata": {"name": f"demo-{i}", "labels": {"app": "demo"}}, "spec": {"n": i}},
                namespace="default",
            )
        obj = await flunders.get("demo-2", namespace="default")
        obj["spec"]["n"] = 20
        await flunders.update(obj, namespace="default")
        page = await flunders.list(namespace="default", label_selector="app=demo", limit=2)
        print(f"consistent list, first page: {[i['metadata']['name'] for i in page.items]}")
        rest = await flunders.list(
            namespace="default", label_selector="app=demo", limit=2, continue_token=page.continue_token
        )
        print(f"second page of the same snapshot: {[i['metadata']['name'] for i in rest.items]}")
        for i in range(1, 4):
            await flunders.delete(f"demo-{i}", namespace="default")
        await asyncio.wait_for(follower, timeout=10)
        print("one watcher saw, in order:")
        print("\n".join(seen))
