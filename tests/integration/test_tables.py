"""LIST, GET and WATCH as ``meta.k8s.io`` Tables (what ``kubectl get`` asks for), with the configured
printer columns or kube-apiserver's default ones, through a real socket. kubectl's own printing of them
is tests/clients/test_kubectl_output.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from support import columns
from support.rest import Api, WatchStream, assert_status
from support.wardle import FISCHERS_PATH, GROUP, fischer, flunder, flunder_path, flunders_path

from watchcache.service import Service

KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
    "application/json"
)
TABLE_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io"
AGE = re.compile(r"[0-9]+s")
FLUNDERS = flunders_path("default")


@pytest.fixture
async def service(etcd_endpoints: list[str], prefix: str) -> AsyncIterator[Service]:
    async with columns.serve(etcd_endpoints, prefix) as svc:
        yield svc


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, service.url)


async def table(api: Api, path: str, accept: str | None = TABLE_V1, **query: str) -> dict[str, Any]:
    """A GET that must answer 200 with JSON."""
    reply = await api.call("GET", path, query=query or None, headers={"Accept": accept} if accept else None)
    assert reply.status == 200, reply.raw[:500]
    assert reply.headers["Content-Type"].startswith("application/json"), reply.headers
    body: dict[str, Any] = reply.body
    return body


def definitions(body: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return [(c["name"], c["type"], c["format"], c["priority"]) for c in body["columnDefinitions"]]


async def test_a_list_is_a_table_with_the_configured_columns(api: Api) -> None:
    """kubectl's Accept gets a meta.k8s.io/v1 Table: Name, then each printer column's cell as
    kube-apiserver makes it (null where the path leads nowhere or the type does not fit), an age
    for the date column, and each row's object as PartialObjectMetadata."""
    full = await api.create(columns.FULL)
    await api.create(columns.BARE)
    body = await table(api, FLUNDERS, KUBECTL_ACCEPT)
    assert (body["kind"], body["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert int(body["metadata"]["resourceVersion"]) >= int(full["metadata"]["resourceVersion"])
    assert definitions(body) == [
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
    described = [c["description"] for c in body["columnDefinitions"]]
    assert described[1] == "Custom resource definition column (in JSONPath format): .spec.size"
    assert described[7] == "What it looks like"
    bare, shown = body["rows"]  # in key order
    assert shown["cells"][:8] == columns.FULL_CELLS and AGE.fullmatch(shown["cells"][8])
    assert bare["cells"][:8] == ["bare", None, None, None, None, None, None, None]
    assert shown["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": full["metadata"],
    }


async def test_include_object_and_table_versions(api: Api) -> None:
    """includeObject=Object embeds the object as served through the request's version, None embeds
    null, anything else is 400 worded as kube-apiserver words it; v1beta1 Tables are served too; a
    clause asking for a conversion not served is skipped; a plain JSON clause first wins."""
    await api.create(columns.FULL)
    body = await table(api, flunders_path("default", "v1beta1"), includeObject="Object")
    [row] = body["rows"]
    assert row["object"]["apiVersion"] == f"{GROUP}/v1beta1" and row["object"]["spec"] == columns.FULL["spec"]
    assert (await table(api, FLUNDERS, includeObject="None"))["rows"][0]["object"] is None
    reply = await api.call("GET", FLUNDERS, query={"includeObject": "All"}, headers={"Accept": TABLE_V1})
    assert assert_status(reply, 400, "BadRequest")["message"] == (
        'Unable to convert to Table as requested: includeObject: Invalid value: "All": '
        "must be 'Metadata', 'Object', 'None', or empty"
    )
    body = await table(api, FLUNDERS, "application/json;as=Table;v=v1beta1;g=meta.k8s.io")
    assert body["apiVersion"] == "meta.k8s.io/v1beta1"
    assert body["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    metadata_list_first = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io," + TABLE_V1
    assert (await table(api, FLUNDERS, metadata_list_first))["kind"] == "Table"
    assert (await table(api, FLUNDERS, f"application/json;q=0.5,{TABLE_V1}"))["kind"] == "Table"
    for accept in ("application/json," + TABLE_V1, None, "*/*"):
        assert (await table(api, FLUNDERS, accept))["kind"] == "FlunderList", accept


async def test_get_and_the_default_columns(api: Api) -> None:
    """GET is a one-row Table at the object's resourceVersion; a resource without printer columns
    has kube-apiserver's default ones, Name and Created At (RFC 3339, UTC)."""
    full = await api.create(columns.FULL)
    body = await table(api, flunder_path("default", "full"), KUBECTL_ACCEPT)
    assert body["metadata"] == {"resourceVersion": full["metadata"]["resourceVersion"]}
    assert [row["cells"][0] for row in body["rows"]] == ["full"]
    created = await api.create(fischer("fi"))
    body = await table(api, FISCHERS_PATH, KUBECTL_ACCEPT)
    assert definitions(body) == [("Name", "string", "name", 0), ("Created At", "date", "", 0)]
    assert body["columnDefinitions"][1]["description"].startswith("CreationTimestamp is a timestamp")
    assert body["rows"][0]["cells"] == ["fi", created["metadata"]["creationTimestamp"]]


async def test_pages_and_large_lists_are_tables_too(api: Api) -> None:
    """A paged list's Table carries continue and remainingItemCount; a list larger than one written
    piece (streamed, chunked) is one valid Table with every row."""
    blob = "x" * 2048
    for i in range(160):
        await api.create(flunder(f"f{i:03}", size=i, blob=blob))
    page = await table(api, FLUNDERS, limit="50")
    assert len(page["rows"]) == 50
    assert page["metadata"]["remainingItemCount"] == 110 and page["metadata"]["continue"]
    rest = await table(api, FLUNDERS, limit="200", **{"continue": page["metadata"]["continue"]})
    assert [row["cells"][1] for row in rest["rows"]] == list(range(50, 160))
    whole = await table(api, FLUNDERS, includeObject="Object")
    assert [row["cells"][:2] for row in whole["rows"]] == [[f"f{i:03}", i] for i in range(160)]
    assert all(row["object"]["blob"] == blob for row in whole["rows"])


async def test_a_watch_sends_tables_with_the_columns_once(api: Api) -> None:
    """A Table watch sends a Table per event: the first with the column definitions, the next ones
    with null, each at its event's resourceVersion; the bookmark ending the initial events is a
    Table whose row shows its metadata even to includeObject=Object."""
    await api.create(columns.FULL)
    url = api.url(
        FLUNDERS,
        {
            "watch": "true",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "includeObject": "Object",
        },
    )
    async with api.session.get(url, headers={"Accept": KUBECTL_ACCEPT}) as resp:
        assert resp.status == 200
        stream = WatchStream(resp)
        added, bookmark = await stream.take(2)  # the initial ADDED, then the initial-events-end bookmark
        created = await api.create(columns.BARE)
        [later] = await stream.take(1)
    assert [e["type"] for e in (added, bookmark, later)] == ["ADDED", "BOOKMARK", "ADDED"]
    assert all(e["object"]["kind"] == "Table" for e in (added, bookmark, later))
    assert len(added["object"]["columnDefinitions"]) == 9
    assert bookmark["object"]["columnDefinitions"] is None and later["object"]["columnDefinitions"] is None
    assert added["object"]["rows"][0]["object"]["spec"] == columns.FULL["spec"]
    [mark] = bookmark["object"]["rows"]
    assert mark["object"]["kind"] == "PartialObjectMetadata"
    assert mark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert later["object"]["metadata"] == {"resourceVersion": created["metadata"]["resourceVersion"]}
    assert later["object"]["rows"][0]["cells"][0] == "bare"
    assert later["object"]["rows"][0]["object"]["metadata"] == created["metadata"]
