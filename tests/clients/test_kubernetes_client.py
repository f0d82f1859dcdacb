"""The official ``kubernetes`` Python client (synchronous) against the running service: CRUD of
namespaced flunders and cluster-scoped fischers with ``CustomObjectsApi``, its watch helper, its
errors, and HTTPS. The client blocks, so every call runs in a thread while the server keeps
serving on the test's event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from support.certs import TestCA
from support.wardle import GROUP, V1A, fischer, flunder, rv

from watchcache.service import Service

VERSION = "v1alpha1"
WATCH_DEADLINE = 10.0
"""Seconds a watch thread collects events before giving up."""


@contextmanager
def custom_objects(
    url: str, *, ca_file: str | None = None
) -> Iterator[tuple[client.CustomObjectsApi, list[dict[str, Any]]]]:
    """A CustomObjectsApi for ``url`` and the list of requests it sends (method, path, headers)."""
    configuration = client.Configuration(host=url)
    if ca_file is not None:
        configuration.ssl_ca_cert = ca_file
    with client.ApiClient(configuration) as api_client:
        sent: list[dict[str, Any]] = []
        rest = api_client.rest_client
        original = rest.request

        def recording(method: str, url: str, headers: Any = None, *args: Any, **kwargs: Any) -> Any:
            sent.append({"method": method, "url": url, "headers": dict(headers or {})})
            return original(method, url, headers, *args, **kwargs)

        rest.request = recording
        yield client.CustomObjectsApi(api_client), sent


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One blocking client call, in a thread, with a deadline."""
    async with asyncio.timeout(30):
        return await asyncio.to_thread(fn, *args, **kwargs)


async def api_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ApiException:
    with pytest.raises(ApiException) as info:
        await call(fn, *args, **kwargs)
    return info.value


@pytest.fixture
def flunders_api(service: Service) -> Iterator[tuple[client.CustomObjectsApi, list[dict[str, Any]]]]:
    with custom_objects(service.url) as pair:
        yield pair


async def test_flunder_crud(flunders_api: tuple[client.CustomObjectsApi, list[dict[str, Any]]]) -> None:
    """create / list / get / replace / patch (merge) / delete of a namespaced flunder work through
    CustomObjectsApi, each answer carrying the object and a new resourceVersion."""
    api, sent = flunders_api
    ns, plural = "k8s-crud", "flunders"
    created = await call(api.create_namespaced_custom_object, GROUP, VERSION, ns, plural, flunder("f", ns))
    assert created["metadata"]["name"] == "f" and created["metadata"]["uid"]
    await call(api.create_namespaced_custom_object, GROUP, VERSION, ns, plural, flunder("g", ns))

    listed = await call(api.list_namespaced_custom_object, GROUP, VERSION, ns, plural)
    assert listed["kind"] == "FlunderList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["f", "g"]
    selected = await call(
        api.list_namespaced_custom_object, GROUP, VERSION, ns, plural, field_selector="metadata.name=g"
    )
    assert [i["metadata"]["name"] for i in selected["items"]] == ["g"]
    everywhere = await call(api.list_cluster_custom_object, GROUP, VERSION, plural)
    assert {i["metadata"]["name"] for i in everywhere["items"]} == {"f", "g"}

    got = await call(api.get_namespaced_custom_object, GROUP, VERSION, ns, plural, "f")
    assert got == created

    got["spec"] = {"size": 2}
    replaced = await call(api.replace_namespaced_custom_object, GROUP, VERSION, ns, plural, "f", got)
    assert replaced["spec"] == {"size": 2}
    assert rv(replaced) > rv(created)
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]

    patch = {"metadata": {"labels": {"patched": "yes"}}, "spec": {"size": 3}}
    patched = await call(api.patch_namespaced_custom_object, GROUP, VERSION, ns, plural, "f", patch)
    assert patched["spec"] == {"size": 3}
    assert patched["metadata"]["labels"] == {"patched": "yes"}
    assert rv(patched) > rv(replaced)
    patch_request = next(r for r in sent if r["method"] == "PATCH")
    assert patch_request["headers"]["Content-Type"] == "application/merge-patch+json"

    # A JSON patch, with the content type asked for explicitly.
    ops = [{"op": "replace", "path": "/spec/size", "value": 4}]
    json_patched = await call(
        api.patch_namespaced_custom_object,
        GROUP,
        VERSION,
        ns,
        plural,
        "f",
        ops,
        _content_type="application/json-patch+json",
    )
    assert json_patched["spec"] == {"size": 4}

    deleted = await call(api.delete_namespaced_custom_object, GROUP, VERSION, ns, plural, "f")
    assert deleted["metadata"]["name"] == "f"
    assert rv(deleted) > rv(json_patched)
    # With DeleteOptions in the body, and preconditions that hold.
    g = await call(api.get_namespaced_custom_object, GROUP, VERSION, ns, plural, "g")
    options = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=g["metadata"]["resourceVersion"])
    )
    await call(api.delete_namespaced_custom_object, GROUP, VERSION, ns, plural, "g", body=options)
    listed = await call(api.list_namespaced_custom_object, GROUP, VERSION, ns, plural)
    assert listed["items"] == []


async def test_fischer_crud(flunders_api: tuple[client.CustomObjectsApi, list[dict[str, Any]]]) -> None:
    """create / list / get / replace / patch / delete of the cluster-scoped fischers work through
    the *_cluster_custom_object calls."""
    api, _ = flunders_api
    plural = "fischers"
    created = await call(api.create_cluster_custom_object, GROUP, VERSION, plural, fischer("fi"))
    assert created["metadata"]["name"] == "fi" and "namespace" not in created["metadata"]
    listed = await call(api.list_cluster_custom_object, GROUP, VERSION, plural)
    assert listed["kind"] == "FischerList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["fi"]
    got = await call(api.get_cluster_custom_object, GROUP, VERSION, plural, "fi")
    assert got == created
    got["disallowedFlunders"] = ["x"]
    replaced = await call(api.replace_cluster_custom_object, GROUP, VERSION, plural, "fi", got)
    assert replaced["disallowedFlunders"] == ["x"] and rv(replaced) > rv(created)
    patched = await call(
        api.patch_cluster_custom_object, GROUP, VERSION, plural, "fi", {"disallowedFlunders": ["y"]}
    )
    assert patched["disallowedFlunders"] == ["y"] and rv(patched) > rv(replaced)
    deleted = await call(api.delete_cluster_custom_object, GROUP, VERSION, plural, "fi")
    assert deleted["metadata"]["uid"] == created["metadata"]["uid"]
    assert (await call(api.list_cluster_custom_object, GROUP, VERSION, plural))["items"] == []
    error = await api_error(api.get_cluster_custom_object, GROUP, VERSION, plural, "fi")
    assert error.status == 404


async def test_errors_raise_api_exception(
    flunders_api: tuple[client.CustomObjectsApi, list[dict[str, Any]]],
) -> None:
    """A missing object raises ApiException 404 (get, replace, patch, delete), a name taken raises
    409, and a replace with a stale resourceVersion raises 409 Conflict."""
    api, _ = flunders_api
    ns, plural = "k8s-err", "flunders"
    for fn, args in [
        (api.get_namespaced_custom_object, ()),
        (api.replace_namespaced_custom_object, (flunder("nobody", ns),)),
        (api.patch_namespaced_custom_object, ({"spec": {}},)),
        (api.delete_namespaced_custom_object, ()),
    ]:
        error = await api_error(fn, GROUP, VERSION, ns, plural, "nobody", *args)
        assert error.status == 404, fn
        assert '"reason":"NotFound"' in error.body.replace(" ", "")
    created = await call(api.create_namespaced_custom_object, GROUP, VERSION, ns, plural, flunder("c", ns))
    error = await api_error(api.create_namespaced_custom_object, GROUP, VERSION, ns, plural, flunder("c", ns))
    assert error.status == 409 and "AlreadyExists" in error.body
    await call(api.patch_namespaced_custom_object, GROUP, VERSION, ns, plural, "c", {"spec": {"size": 2}})
    stale = {**created, "spec": {"size": 9}}
    error = await api_error(api.replace_namespaced_custom_object, GROUP, VERSION, ns, plural, "c", stale)
    assert error.status == 409 and "Conflict" in error.body
    error = await api_error(api.get_namespaced_custom_object, GROUP, "v9", ns, plural, "c")
    assert error.status == 404


def _collect(
    api: client.CustomObjectsApi, namespace: str, resource_version: str, count: int, started: threading.Event
) -> list[dict[str, Any]]:
    """In a thread: watch flunders from ``resource_version`` until ``count`` events or the deadline."""
    w = watch.Watch()
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + WATCH_DEADLINE
    stream = w.stream(
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        "flunders",
        resource_version=resource_version,
        timeout_seconds=5,
    )
    started.set()
    try:
        for event in stream:
            events.append(event)
            if len(events) >= count or time.monotonic() > deadline:
                break
    finally:
        w.stop()
        stream.close()
    return events


async def test_watch_stream(flunders_api: tuple[client.CustomObjectsApi, list[dict[str, Any]]]) -> None:
    """kubernetes.watch.Watch().stream over list_namespaced_custom_object, from a resourceVersion,
    receives ADDED, MODIFIED and DELETED for the changes made, in order."""
    api, _ = flunders_api
    ns, plural = "k8s-watch", "flunders"
    listed = await call(api.list_namespaced_custom_object, GROUP, VERSION, ns, plural)
    started = threading.Event()
    collector = asyncio.create_task(
        asyncio.to_thread(_collect, api, ns, listed["metadata"]["resourceVersion"], 3, started)
    )
    try:
        created = await call(
            api.create_namespaced_custom_object, GROUP, VERSION, ns, plural, flunder("w", ns)
        )
        patched = await call(
            api.patch_namespaced_custom_object, GROUP, VERSION, ns, plural, "w", {"spec": {"size": 5}}
        )
        deleted = await call(api.delete_namespaced_custom_object, GROUP, VERSION, ns, plural, "w")
        async with asyncio.timeout(WATCH_DEADLINE + 5):
            events = await collector
    finally:
        if not collector.done():
            collector.cancel()
    assert started.is_set()
    assert [(e["type"], e["object"]["metadata"]["name"], rv(e["object"])) for e in events] == [
        ("ADDED", "w", rv(created)),
        ("MODIFIED", "w", rv(patched)),
        ("DELETED", "w", rv(deleted)),
    ]
    assert events[1]["object"]["spec"] == {"size": 5}
    assert all(e["object"]["apiVersion"] == V1A for e in events)


async def test_https(tls_service: Service, test_ca: TestCA) -> None:
    """Over HTTPS, with the test CA as ssl_ca_cert, the client creates and lists flunders."""
    assert tls_service.url.startswith("https://")
    with custom_objects(tls_service.url, ca_file=test_ca.cert_file) as (api, _):
        await call(
            api.create_namespaced_custom_object,
            GROUP,
            VERSION,
            "k8s-tls",
            "flunders",
            flunder("s", "k8s-tls"),
        )
        listed = await call(api.list_namespaced_custom_object, GROUP, VERSION, "k8s-tls", "flunders")
    assert listed["kind"] == "FlunderList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["s"]
