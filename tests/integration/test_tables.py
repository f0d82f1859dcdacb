"""LIST, GET and WATCH as ``meta.k8s.io`` Tables (what ``kubectl get`` asks for), with the configured
printer columns or kube-apiserver's default ones, through a real socket and through kubectl itself."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.kubectl import Kubectl, read_lines

from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions

pytestmark = pytest.mark.etcd

GROUP = "wardle.example.com"
FLUNDERS = f"/apis/{GROUP}/v1alpha1/namespaces/default/flunders"
FISCHERS = f"/apis/{GROUP}/v1alpha1/fischers"
KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
    "application/json"
)
TABLE_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io"
AGE = re.compile(r"[0-9]+s")

CONFIG = r"""
resources:
  - group: wardle.example.com
    versions: [v1alpha1, v1beta1]
    resource: flunders
    kind: Flunder
    printerColumns:
      - {name: Size, type: integer, jsonPath: .spec.size}
      - {name: Weight, type: number, jsonPath: .spec.weight}
      - {name: Ready, type: boolean, jsonPath: .status.ready}
      - {name: First, type: string, jsonPath: ".spec.items[*].name"}
      - {name: Zeroth, type: string, jsonPath: ".spec.items[0]"}
      - {name: App, type: string, jsonPath: ".metadata.labels.app\\.kubernetes\\.io/name"}
      - {name: Color, type: string, jsonPath: .spec.color, priority: 1, description: "What it looks like"}
      - {name: Age, type: date, jsonPath: .metadata.creationTimestamp, format: date-time}
  - group: wardle.example.com
    versions: [v1alpha1]
    resource: fischers
    kind: Fischer
    namespaced: false
"""

FULL = {
    "metadata": {"name": "full", "labels": {"app.kubernetes.io/name": "web"}},
    "spec": {
        "size": 2.7,
        "weight": 2,
        "items": [{"id": 1, "tag": "<b>"}, {"name": "second"}, {"name": "third"}],
        "color": "red",
    },
    "status": {"ready": True},
}
BARE = {"metadata": {"name": "bare"}, "spec": {"size": "three", "weight": "heavy", "items": []}}


@pytest.fixture
async def service(etcd_endpoints: list[str], prefix: str) -> AsyncIterator[Service]:
    options = ServiceOptions(
        config=parse_config(CONFIG), etcd_servers=tuple(etcd_endpoints), etcd_prefix=prefix, port=0
    )
    async with Service(options) as svc:
        assert svc.storage is not None
        await svc.storage.wait_ready()
        yield svc


async def call(
    svc: Service, method: str, path: str, *, accept: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Accept": accept} if accept else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, svc.url + path, json=body, headers=headers) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("application/json")
        return resp.status, json.loads(await resp.read())


async def create(svc: Service, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    status, body = await call(svc, "POST", path, body=obj)
    assert status == 201, body
    created: dict[str, Any] = body
    return created


def column_names(table: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return [(c["name"], c["type"], c["format"], c["priority"]) for c in table["columnDefinitions"]]


async def test_list_is_a_table_with_the_configured_columns(service: Service) -> None:
    """kubectl's Accept gets a meta.k8s.io/v1 Table: Name, then each printer column's cell made as
    kube-apiserver makes it (integers truncated, a number from an integer, the first match of [*], a
    map printed as JSON, an escaped key, null where the path leads nowhere or the type does not
    fit), an age for the date column, and each row's object as PartialObjectMetadata."""
    full = await create(service, FLUNDERS, FULL)
    await create(service, FLUNDERS, BARE)
    status, table = await call(service, "GET", FLUNDERS, accept=KUBECTL_ACCEPT)
    assert status == 200
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert int(table["metadata"]["resourceVersion"]) >= int(full["metadata"]["resourceVersion"])
    assert column_names(table) == [
        ("Name", "string", "name", 0),
        ("Size", "integer", "", 0),
        ("Weight", "number", "", 0),
        ("Ready", "boolean", "", 0),
        ("First", "string", "", 0),
        ("Zeroth", "string", "", 0),
        ("App", "string", "", 0),
        ("Color", "string", "", 1),
        ("Age", "date", "date-time", 0),
    ]
    descriptions = [c["description"] for c in table["columnDefinitions"]]
    assert descriptions[1] == "Custom resource definition column (in JSONPath format): .spec.size"
    assert descriptions[7] == "What it looks like"
    bare, shown = table["rows"]  # in key order
    assert shown["cells"][:8] == [
        "full",
        2,
        2,
        True,
        "second",
        '{"id":1,"tag":"\\u003cb\\u003e"}',
        "web",
        "red",
    ]
    assert AGE.fullmatch(shown["cells"][8])
    assert bare["cells"][:8] == ["bare", None, None, None, None, None, None, None]
    assert shown["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": full["metadata"],
    }


async def test_include_object_and_table_versions(service: Service) -> None:
    """includeObject=Object embeds the object as served through the request's version, None embeds
    null, anything else is 400 as kube-apiserver words it; v1beta1 Tables are served too; a clause
    for a conversion not served is skipped, and a plain JSON clause first wins."""
    await create(service, FLUNDERS, FULL)
    v1beta1 = f"/apis/{GROUP}/v1beta1/namespaces/default/flunders"
    _, table = await call(service, "GET", v1beta1 + "?includeObject=Object", accept=TABLE_V1)
    [row] = table["rows"]
    assert row["object"]["apiVersion"] == f"{GROUP}/v1beta1" and row["object"]["spec"] == FULL["spec"]
    _, table = await call(service, "GET", FLUNDERS + "?includeObject=None", accept=TABLE_V1)
    assert table["rows"][0]["object"] is None
    status, body = await call(service, "GET", FLUNDERS + "?includeObject=All", accept=TABLE_V1)
    assert status == 400
    assert body["message"] == (
        'Unable to convert to Table as requested: includeObject: Invalid value: "All": '
        "must be 'Metadata', 'Object', 'None', or empty"
    )
    _, table = await call(
        service, "GET", FLUNDERS, accept="application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    )
    assert table["apiVersion"] == "meta.k8s.io/v1beta1"
    assert table["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    metadata_first = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io," + TABLE_V1
    _, table = await call(service, "GET", FLUNDERS, accept=metadata_first)
    assert table["kind"] == "Table"
    for accept in ("application/json," + TABLE_V1, None, "*/*"):
        _, plain = await call(service, "GET", FLUNDERS, accept=accept)
        assert plain["kind"] == "FlunderList", accept
    _, table = await call(service, "GET", FLUNDERS, accept=f"application/json;q=0.5,{TABLE_V1}")
    assert table["kind"] == "Table"


async def test_get_and_default_columns(service: Service) -> None:
    """GET is a one-row Table at the object's resourceVersion; a resource without printer columns
    has kube-apiserver's default ones, Name and Created At (RFC 3339 in UTC)."""
    full = await create(service, FLUNDERS, FULL)
    _, table = await call(service, "GET", FLUNDERS + "/full", accept=KUBECTL_ACCEPT)
    assert table["metadata"] == {"resourceVersion": full["metadata"]["resourceVersion"]}
    assert [row["cells"][0] for row in table["rows"]] == ["full"]
    fischer = await create(service, FISCHERS, {"metadata": {"name": "fi"}})
    _, table = await call(service, "GET", FISCHERS, accept=KUBECTL_ACCEPT)
    assert column_names(table) == [("Name", "string", "name", 0), ("Created At", "date", "", 0)]
    assert table["columnDefinitions"][1]["description"].startswith("CreationTimestamp is a timestamp")
    assert table["rows"][0]["cells"] == ["fi", fischer["metadata"]["creationTimestamp"]]


async def test_pages_and_large_lists_are_tables_too(service: Service) -> None:
    """A paged list's Table carries continue and remainingItemCount; a list larger than one written
    piece (streamed, chunked) is one valid Table with every row."""
    blob = "x" * 2048
    for i in range(160):
        await create(service, FLUNDERS, {"metadata": {"name": f"f{i:03}"}, "spec": {"size": i, "blob": blob}})
    _, page = await call(service, "GET", FLUNDERS + "?limit=50", accept=TABLE_V1)
    assert len(page["rows"]) == 50
    assert page["metadata"]["remainingItemCount"] == 110 and page["metadata"]["continue"]
    token = page["metadata"]["continue"]
    _, rest = await call(service, "GET", f"{FLUNDERS}?limit=200&continue={token}", accept=TABLE_V1)
    assert [row["cells"][1] for row in rest["rows"]] == list(range(50, 160))
    _, whole = await call(service, "GET", FLUNDERS + "?includeObject=Object", accept=TABLE_V1)
    assert [row["cells"][:2] for row in whole["rows"]] == [[f"f{i:03}", i] for i in range(160)]
    assert all(row["object"]["spec"]["blob"] == blob for row in whole["rows"])


async def test_watch_sends_tables_with_columns_once(service: Service) -> None:
    """A Table watch sends a Table per event: the first with the column definitions, the next ones
    with null, each at its event's resourceVersion; the bookmark ending the initial events is a
    Table whose row shows its metadata even to includeObject=Object."""
    await create(service, FLUNDERS, FULL)
    query = "?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    events: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            service.url + FLUNDERS + query + "&includeObject=Object", headers={"Accept": KUBECTL_ACCEPT}
        ) as resp,
    ):
        assert resp.status == 200
        async with asyncio.timeout(10):
            events.append(json.loads(await resp.content.readline()))  # the initial ADDED
            events.append(json.loads(await resp.content.readline()))  # the initial-events-end bookmark
            created = await create(service, FLUNDERS, BARE)
            events.append(json.loads(await resp.content.readline()))
    added, bookmark, later = events
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK", "ADDED"]
    assert all(e["object"]["kind"] == "Table" for e in events)
    assert len(added["object"]["columnDefinitions"]) == 9
    assert bookmark["object"]["columnDefinitions"] is None and later["object"]["columnDefinitions"] is None
    assert added["object"]["rows"][0]["object"]["spec"] == FULL["spec"]
    assert bookmark["object"]["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert bookmark["object"]["rows"][0]["object"]["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"
    }
    assert later["object"]["metadata"] == {"resourceVersion": created["metadata"]["resourceVersion"]}
    assert later["object"]["rows"][0]["cells"][0] == "bare"
    assert later["object"]["rows"][0]["object"]["metadata"] == created["metadata"]


kubectl_only = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def table_lines(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


@kubectl_only
@pytest.mark.clients
async def test_kubectl_get_prints_the_columns(service: Service, tmp_path: Path) -> None:
    """kubectl get prints the server's columns (upper-cased), -o wide adds those of priority > 0,
    -A adds NAMESPACE, and a resource without printer columns shows NAME and CREATED AT."""
    kubectl = Kubectl(service.url, tmp_path)
    await create(service, FLUNDERS, FULL)
    out = table_lines(await kubectl("get", "flunders", "-n", "default"))
    assert out[0] == ["NAME", "SIZE", "WEIGHT", "READY", "FIRST", "ZEROTH", "APP", "AGE"]
    assert out[1][:7] == ["full", "2", "2", "true", "second", '{"id":1,"tag":"\\u003cb\\u003e"}', "web"]
    assert AGE.fullmatch(out[1][7]) and len(out) == 2
    wide = table_lines(await kubectl("get", "flunders", "-n", "default", "-o", "wide"))
    assert wide[0] == ["NAME", "SIZE", "WEIGHT", "READY", "FIRST", "ZEROTH", "APP", "COLOR", "AGE"]
    assert wide[1][7] == "red"
    everywhere = table_lines(await kubectl("get", "flunders", "-A"))
    assert everywhere[0][:2] == ["NAMESPACE", "NAME"] and everywhere[1][:2] == ["default", "full"]
    fischer = await create(service, FISCHERS, {"metadata": {"name": "fi"}})
    assert table_lines(await kubectl("get", "fischers")) == [
        ["NAME", "CREATED", "AT"],
        ["fi", fischer["metadata"]["creationTimestamp"]],
    ]
    assert (
        table_lines(await kubectl("get", "flunder", "full", "-n", "default", "--no-headers"))[0][0] == "full"
    )


@kubectl_only
@pytest.mark.clients
async def test_kubectl_get_watch_prints_rows(service: Service, tmp_path: Path) -> None:
    """kubectl get --watch prints the header and the current rows, then one row per change (the
    columns arrive with the watch's first Table only), with the changed cells."""
    kubectl = Kubectl(service.url, tmp_path)
    await create(service, FLUNDERS, FULL)
    watcher = await kubectl.start("get", "flunders", "-n", "default", "--watch")
    assert watcher.stdout is not None
    try:
        first = await read_lines(watcher.stdout, "full")
        assert first[0].split() == ["NAME", "SIZE", "WEIGHT", "READY", "FIRST", "ZEROTH", "APP", "AGE"]
        await create(service, FLUNDERS, {"metadata": {"name": "later"}, "spec": {"size": 7}})
        [added] = await read_lines(watcher.stdout, "later")
        assert added.split()[:2] == ["later", "7"]
        status, _ = await call(
            service, "PUT", FLUNDERS + "/later", body={"metadata": {"name": "later"}, "spec": {"size": 8}}
        )
        assert status == 200
        [modified] = await read_lines(watcher.stdout, "later")
        assert modified.split()[:2] == ["later", "8"]
    finally:
        await Kubectl.stop(watcher)
