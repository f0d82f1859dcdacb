"""LIST, GET and writes through the embedded API, against the session etcd."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aetcd
import orjson
import pytest
from support.wardle import FISCHERS, FLUNDERS, flunder, flunder_key, names

from watchcache import (
    AlreadyExistsError,
    BadRequestError,
    CacheSettings,
    ConflictError,
    ExpiredError,
    InvalidError,
    NotFoundError,
    Resource,
    Storage,
)
from watchcache.cache.store import Materialized


@pytest.fixture
async def storage(etcd_endpoints: list[str], prefix: str) -> AsyncIterator[Storage]:
    async with Storage(etcd_endpoints, prefix=prefix, settings=CacheSettings(wait_timeout=0.5)) as st:
        yield st


@pytest.fixture
async def flunders(storage: Storage) -> Resource:
    res = storage.resource(FLUNDERS)
    await res.wait_ready()
    return res


@pytest.fixture
async def fischers(storage: Storage) -> Resource:
    res = storage.resource(FISCHERS)
    await res.wait_ready()
    return res


async def test_create_sets_uid_timestamp_and_resource_version(flunders: Resource) -> None:
    """create returns the object with uid, creationTimestamp and resourceVersion = etcd revision."""
    obj = await flunders.create(flunder("a"), namespace="default")
    meta = obj["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["namespace"] == "default"
    assert obj["apiVersion"] == "wardle.example.com/v1alpha1" and obj["kind"] == "Flunder"
    got = await flunders.get("a", namespace="default")
    assert got["metadata"]["resourceVersion"] == meta["resourceVersion"]
    assert got["metadata"]["uid"] == meta["uid"]


async def test_stored_value_has_no_resource_version(
    flunders: Resource, prefix: str, etcd_kv: aetcd.Client
) -> None:
    """etcd holds the object's JSON without metadata.resourceVersion, under the SPEC's key layout."""
    await flunders.create(flunder("a"), namespace="default")
    stored = await etcd_kv.get(flunder_key(prefix, "a"))
    assert stored is not None
    value = orjson.loads(stored.value)
    assert "resourceVersion" not in value["metadata"]
    assert value["metadata"]["name"] == "a"


async def test_writes_store_a_value_the_cache_splices(flunders: Resource, prefix: str) -> None:
    """What watchcache writes (a body with its fields in any order, a nested ``metadata`` first) is
    stored with ``apiVersion``, ``kind`` and ``metadata`` first, so the cache serves it spliced from
    etcd's bytes (no second copy), through both versions, as the object with its resourceVersion."""
    body = {"spec": {"template": {"metadata": {"name": "t"}}}, **flunder("a", size=None)}
    created = await flunders.create(body, namespace="default")
    got = orjson.loads(await flunders.get_raw("a", namespace="default", version="v1beta1"))  # consistent
    assert got == {**created, "apiVersion": "wardle.example.com/v1beta1"}
    entry = flunders.cache.get(flunder_key(prefix, "a"))
    assert entry is not None and entry.served and not isinstance(entry, Materialized)
    assert list(orjson.loads(entry.value))[:3] == ["apiVersion", "kind", "metadata"]


async def test_create_twice_is_already_exists(flunders: Resource) -> None:
    """A second create of the same name is 409 AlreadyExists."""
    await flunders.create(flunder("a"), namespace="default")
    with pytest.raises(AlreadyExistsError) as err:
        await flunders.create(flunder("a"), namespace="default")
    assert err.value.code == 409 and err.value.status()["reason"] == "AlreadyExists"


async def test_generate_name(flunders: Resource) -> None:
    """generateName yields a fresh name with that prefix."""
    obj = await flunders.create({"metadata": {"generateName": "gen-"}}, namespace="default")
    assert obj["metadata"]["name"].startswith("gen-") and len(obj["metadata"]["name"]) == 9


@pytest.mark.parametrize("name", ["Upper", "a_b", "..", "a/b", "%2F", "a\0b", "x" * 254, ""])
async def test_invalid_names_are_rejected(flunders: Resource, name: str) -> None:
    """Names that are not DNS-1123 subdomains are 422 Invalid (400 when missing) and nothing is written."""
    with pytest.raises((InvalidError, BadRequestError)):
        await flunders.create(flunder(name), namespace="default")
    assert (await flunders.list()).raw_items == []


async def test_invalid_namespace_is_rejected(flunders: Resource) -> None:
    """A namespace that is not a DNS-1123 label is 422 Invalid."""
    with pytest.raises(InvalidError):
        await flunders.create(flunder("a", "Bad_NS"), namespace="Bad_NS")


async def test_namespace_mismatch_is_bad_request(flunders: Resource) -> None:
    """A body namespace that disagrees with the request's is 400."""
    obj = flunder("a")
    obj["metadata"]["namespace"] = "other"
    with pytest.raises(BadRequestError):
        await flunders.create(obj, namespace="default")


async def test_update_keeps_uid_and_checks_resource_version(flunders: Resource) -> None:
    """update keeps uid/creationTimestamp, bumps resourceVersion; a stale resourceVersion is 409 Conflict."""
    created = await flunders.create(flunder("a"), namespace="default")
    change = flunder("a")
    change["metadata"]["uid"] = "forged"
    change["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    change["spec"]["size"] = 2
    updated = await flunders.update(change, namespace="default")
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert updated["spec"]["size"] == 2
    with pytest.raises(ConflictError) as err:
        await flunders.update(change, namespace="default")  # still carries the old resourceVersion
    assert err.value.status()["reason"] == "Conflict"


async def test_update_without_resource_version_is_unconditional(flunders: Resource) -> None:
    """An update without resourceVersion overwrites whatever is current."""
    await flunders.create(flunder("a"), namespace="default")
    obj = flunder("a")
    obj["spec"]["size"] = 7
    assert (await flunders.update(obj, namespace="default"))["spec"]["size"] == 7


async def test_update_absent_is_not_found(flunders: Resource) -> None:
    """Updating an object that does not exist is 404 NotFound."""
    with pytest.raises(NotFoundError):
        await flunders.update(flunder("ghost"), namespace="default")


async def test_noop_update_keeps_resource_version(flunders: Resource) -> None:
    """An update that changes nothing writes nothing: the resourceVersion stays."""
    created = await flunders.create(flunder("a"), namespace="default")
    again = await flunders.update(created, namespace="default")
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_guaranteed_update_applies_to_current(flunders: Resource) -> None:
    """guaranteed_update applies the mutation to the current object, even when the cache lags."""
    await flunders.create(flunder("a"), namespace="default")

    def grow(obj: dict[str, Any]) -> dict[str, Any]:
        obj["spec"]["size"] += 1
        return obj

    for _ in range(3):
        result = await flunders.guaranteed_update("a", grow, namespace="default")
    assert result["spec"]["size"] == 4


async def test_guaranteed_update_conflicts_on_resource_version_in_result(flunders: Resource) -> None:
    """A mutation that pins an outdated resourceVersion gets 409 Conflict."""
    await flunders.create(flunder("a"), namespace="default")

    def pin(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = "1"
        return obj

    with pytest.raises(ConflictError):
        await flunders.guaranteed_update("a", pin, namespace="default")


async def test_delete_returns_object_at_deletion_revision(flunders: Resource) -> None:
    """delete returns the deleted object whose resourceVersion is the deletion's revision."""
    created = await flunders.create(flunder("a"), namespace="default")
    deleted = await flunders.delete("a", namespace="default")
    assert int(deleted["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert deleted["metadata"]["uid"] == created["metadata"]["uid"]
    page = await flunders.list()
    assert int(page.resource_version) >= int(deleted["metadata"]["resourceVersion"])
    assert page.raw_items == []
    with pytest.raises(NotFoundError) as err:
        await flunders.delete("a", namespace="default")
    assert err.value.status()["code"] == 404


async def test_delete_preconditions(flunders: Resource) -> None:
    """Delete preconditions (resourceVersion, uid) that do not hold are 409 and delete nothing."""
    created = await flunders.create(flunder("a"), namespace="default")
    with pytest.raises(ConflictError):
        await flunders.delete("a", namespace="default", resource_version="1")
    with pytest.raises(ConflictError):
        await flunders.delete("a", namespace="default", uid="not-the-uid")
    assert await flunders.get("a", namespace="default")
    await flunders.delete(
        "a",
        namespace="default",
        resource_version=created["metadata"]["resourceVersion"],
        uid=created["metadata"]["uid"],
    )
    with pytest.raises(NotFoundError):
        await flunders.get("a", namespace="default")


async def test_get_absent_is_not_found(flunders: Resource) -> None:
    """GET of an absent object is 404 with the Kubernetes message."""
    with pytest.raises(NotFoundError) as err:
        await flunders.get("nope", namespace="default")
    assert err.value.message == 'flunders.wardle.example.com "nope" not found'


async def test_list_selectors_and_namespaces(flunders: Resource) -> None:
    """Lists filter by namespace, label and field selectors, in key order."""
    await flunders.create(flunder("b", "ns1", labels={"app": "web", "tier": "front"}), namespace="ns1")
    await flunders.create(flunder("a", "ns1", labels={"app": "db"}), namespace="ns1")
    await flunders.create(flunder("c", "ns2", labels={"app": "web"}), namespace="ns2")
    assert names((await flunders.list()).items) == ["a", "b", "c"]
    assert names((await flunders.list(namespace="ns1")).items) == ["a", "b"]
    assert names((await flunders.list(label_selector="app=web")).items) == ["b", "c"]
    assert names((await flunders.list(label_selector="app in (db,web),tier")).items) == ["b"]
    assert names((await flunders.list(label_selector="!tier")).items) == ["a", "c"]
    assert names((await flunders.list(label_selector="app!=web")).items) == ["a"]
    assert names((await flunders.list(field_selector="metadata.name=c")).items) == ["c"]
    assert names((await flunders.list(field_selector="metadata.namespace!=ns1")).items) == ["c"]


async def test_list_serves_every_version(flunders: Resource) -> None:
    """Objects are returned with the apiVersion of the version they were read through."""
    await flunders.create(flunder("a"), namespace="default")
    [item] = (await flunders.list(version="v1beta1")).items
    assert item["apiVersion"] == "wardle.example.com/v1beta1"
    with pytest.raises(NotFoundError):
        await flunders.list(version="v9")


async def test_cluster_scoped_resource(fischers: Resource) -> None:
    """A cluster-scoped resource has no namespace; asking for one is 400."""
    obj = await fischers.create({"metadata": {"name": "x"}})
    assert "namespace" not in obj["metadata"]
    assert names((await fischers.list()).items) == ["x"]
    assert (await fischers.get("x"))["metadata"]["name"] == "x"
    with pytest.raises(BadRequestError):
        await fischers.list(namespace="default")


async def test_pages_are_one_snapshot(flunders: Resource) -> None:
    """limit/continue pages come from the first page's snapshot, whatever changes in between."""
    for i in range(7):
        await flunders.create(flunder(f"o{i}"), namespace="default")
    first = await flunders.list(limit=3)
    assert names(first.items) == ["o0", "o1", "o2"]
    assert first.remaining_item_count == 4 and first.continue_token
    await flunders.delete("o4", namespace="default")
    await flunders.create(flunder("o35"), namespace="default")
    second = await flunders.list(limit=3, continue_token=first.continue_token)
    assert names(second.items) == ["o3", "o4", "o5"]
    assert second.resource_version == first.resource_version
    third = await flunders.list(limit=3, continue_token=second.continue_token)
    assert names(third.items) == ["o6"] and third.continue_token is None
    fresh = await flunders.list()
    assert "o35" in names(fresh.items) and "o4" not in names(fresh.items)


async def test_pages_with_selector(flunders: Resource) -> None:
    """Paging with a label selector returns only matches and no remainingItemCount."""
    for i in range(6):
        await flunders.create(flunder(f"o{i}", labels={"parity": str(i % 2)}), namespace="default")
    seen: list[str] = []
    token = None
    while True:
        page = await flunders.list(label_selector="parity=0", limit=2, continue_token=token)
        assert page.remaining_item_count is None
        seen += names(page.items)
        token = page.continue_token
        if not token:
            break
    assert seen == ["o0", "o2", "o4"]


@pytest.mark.parametrize("token", ["garbage", "eyJ2IjoxfQ", "%%%", "e30", "eyJ2Ijoid2F0Y2hjYWNoZS92MSJ9"])
async def test_garbage_continue_token_is_bad_request(flunders: Resource, token: str) -> None:
    """A continue token that is not one of ours is 400 BadRequest."""
    with pytest.raises(BadRequestError):
        await flunders.list(limit=1, continue_token=token)


async def test_continue_with_resource_version_is_bad_request(flunders: Resource) -> None:
    """continue together with resourceVersion is 400, as in Kubernetes."""
    for i in range(3):
        await flunders.create(flunder(f"o{i}"), namespace="default")
    page = await flunders.list(limit=1)
    with pytest.raises(BadRequestError):
        await flunders.list(limit=1, continue_token=page.continue_token, resource_version="0")


async def test_expired_continue_token_is_gone(
    etcd_endpoints: list[str], prefix: str, etcd_kv: aetcd.Client
) -> None:
    """A continue token whose snapshot is neither kept nor in the window, and compacted in etcd, is 410."""
    settings = CacheSettings(window_events=2, max_snapshots=1)
    async with Storage(etcd_endpoints, prefix=prefix, settings=settings) as storage:
        res = storage.resource(FLUNDERS)
        await res.wait_ready()
        for i in range(3):
            await res.create(flunder(f"o{i}"), namespace="default")
        page = await res.list(limit=1)
        for i in range(3, 8):  # push the page's revision out of the window
            await res.create(flunder(f"o{i}"), namespace="default")
        await res.list(limit=1)  # another snapshot evicts the first (max_snapshots=1)
        revision = int((await res.list()).resource_version)
        await etcd_kv.compact(revision)
        with pytest.raises(ExpiredError) as err:
            await res.list(limit=1, continue_token=page.continue_token)
        assert err.value.status()["code"] == 410


async def test_continue_past_window_reads_etcd(etcd_endpoints: list[str], prefix: str) -> None:
    """A continue token older than the window (not compacted) is served from etcd at its revision."""
    settings = CacheSettings(window_events=2, max_snapshots=1)
    async with Storage(etcd_endpoints, prefix=prefix, settings=settings) as storage:
        res = storage.resource(FLUNDERS)
        await res.wait_ready()
        for i in range(4):
            await res.create(flunder(f"o{i}"), namespace="default")
        page = await res.list(limit=2)
        await res.delete("o3", namespace="default")
        for i in range(4, 8):
            await res.create(flunder(f"o{i}"), namespace="default")
        await res.list(limit=1)
        rest = await res.list(limit=5, continue_token=page.continue_token)
        assert names(rest.items) == ["o2", "o3"]
        assert rest.resource_version == page.resource_version


@pytest.mark.parametrize("rv", ["abc", "-1", "1.5", "١٢"])
async def test_bad_resource_version_is_bad_request(flunders: Resource, rv: str) -> None:
    """A resourceVersion that is not a non-negative integer is 400."""
    with pytest.raises(BadRequestError):
        await flunders.list(resource_version=rv)


async def test_resource_version_match_rules(flunders: Resource) -> None:
    """resourceVersionMatch needs a resourceVersion; Exact is forbidden for 0; unknown values are 400."""
    with pytest.raises(BadRequestError):
        await flunders.list(resource_version_match="Exact")
    with pytest.raises(BadRequestError):
        await flunders.list(resource_version="0", resource_version_match="Exact")
    with pytest.raises(BadRequestError):
        await flunders.list(resource_version="1", resource_version_match="Newest")


async def test_exact_list_is_the_state_at_that_revision(flunders: Resource) -> None:
    """resourceVersionMatch=Exact returns the state at exactly N, from the window."""
    await flunders.create(flunder("a"), namespace="default")
    at = (await flunders.list()).resource_version
    await flunders.create(flunder("b"), namespace="default")
    await flunders.delete("a", namespace="default")
    then = await flunders.list(resource_version=at, resource_version_match="Exact")
    assert then.resource_version == at and names(then.items) == ["a"]
    now = await flunders.list(resource_version=at, resource_version_match="NotOlderThan")
    assert names(now.items) == ["b"]


async def test_bad_selectors_are_bad_request(flunders: Resource) -> None:
    """Malformed label or field selectors are 400 with a message."""
    with pytest.raises(BadRequestError):
        await flunders.list(label_selector="app in (a")
    with pytest.raises(BadRequestError):
        await flunders.list(field_selector="spec.size=1")
