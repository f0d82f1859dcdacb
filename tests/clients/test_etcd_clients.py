"""Real etcd clients against an etcd API: the Go clientv3 (3.4) replaying what k8s.io/apiserver's etcd3
store sends, and etcdctl 3.4.

Each test asserts what the apiserver (or an etcdctl user) relies on, against every target in
``conftest.TARGET_KINDS``: today a real etcd 3.4, where these pin down the reference behaviour; the
etcd front (``watchcache serve --etcd-listen-port``) must then pass them unchanged. What each check is
for is in /work/notes/etcd-front-research.md (§1: the apiserver's calls, §4: etcd's answers).

The driver's scenarios and the JSON lines they print are described in
``tests/clients/etcd3driver/main.go``; keys are ``PREFIX/flunders/default/NAME``.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from typing import Any

import pytest
from support.etcd3driver import Etcd3Driver
from support.etcd_target import AUTH_NOT_ENABLED, ClientTLS, EtcdTarget
from support.etcdctl import EtcdctlResult, EtcdctlStream, etcdctl

pytestmark = pytest.mark.clients

COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE_REVISION = "etcdserver: mvcc: required revision is a future revision"
SEMVER = re.compile(r"\d+\.\d+\.\d+")


def obj(target: EtcdTarget, name: str) -> str:
    """The key of object ``name`` in the driver's layout."""
    return target.key("flunders", "default", name)


def kv(key: str, value: str, create: int, mod: int, version: int, *, lease: int = 0) -> dict[str, Any]:
    """A KeyValue as the driver prints it."""
    return {
        "key": key,
        "value": value,
        "create_revision": create,
        "mod_revision": mod,
        "version": version,
        "lease": lease,
    }


def put_op(revision: int) -> dict[str, Any]:
    """A Txn's ResponsePut (no prev_kv: the apiserver never asks)."""
    return {"type": "put", "revision": revision, "prev_kv": None}


def range_op(revision: int, *kvs: dict[str, Any]) -> dict[str, Any]:
    """A Txn's ResponseRange holding ``kvs``."""
    return {"type": "range", "revision": revision, "kvs": list(kvs), "count": len(kvs), "more": False}


def assert_quiet(target: EtcdTarget, result: EtcdctlResult) -> None:
    """etcdctl wrote nothing on stderr, except, with ``--user`` against a target without auth, clientv3's
    log line about etcd refusing Authenticate (the client then goes on without a token)."""
    lines = result.stderr.splitlines()
    if target.user is not None and not target.auth:
        assert lines and all(AUTH_NOT_ENABLED in line for line in lines), result.describe()
    else:
        assert lines == [], result.describe()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def txn_json(result: EtcdctlResult) -> Any:
    """The JSON answer of ``txn -i -w json`` (its prompts come first on stdout)."""
    return EtcdctlResult(result.argv, result.returncode, result.stdout.splitlines()[-1], "").json()


# -- the Go clientv3 driver: the apiserver's calls -------------------------------------------------------


async def test_create_is_a_txn_on_mod_zero(etcd3driver: Etcd3Driver, etcd_target: EtcdTarget) -> None:
    """Create = Txn(If MOD(k)==0, Then Put): the first succeeds (its header revision is the object's
    revision); the second fails with no responses at all, writes nothing; the object reads back."""
    run = await etcd3driver.run("create", etcd_target)
    created, again, got = run.step("create"), run.step("create-again"), run.step("get")
    rev = created["revision"]
    assert created["succeeded"] is True and rev > 0
    assert created["responses"] == [put_op(rev)]
    assert again["succeeded"] is False and again["responses"] == []
    assert again["revision"] >= rev
    assert got["revision"] >= rev and (got["count"], got["more"]) == (1, False)
    value = '{"name":"created","generation":1}'
    assert got["kvs"] == [kv(obj(etcd_target, "created"), value, rev, rev, 1)]


async def test_create_with_a_lease(etcd3driver: Etcd3Driver, etcd_target: EtcdTarget) -> None:
    """A TTL'd object: Grant, then the create Txn's Put carries the lease; the object reads back with it."""
    run = await etcd3driver.run("create", etcd_target, "--ttl=30")
    grant = run.step("grant")
    assert grant["id"] > 0 and grant["ttl"] == 30
    [stored] = run.step("get")["kvs"]
    assert stored["lease"] == grant["id"]


async def test_guaranteed_update(etcd3driver: Etcd3Driver, etcd_target: EtcdTarget) -> None:
    """Update = Txn(If MOD(k)==rev, Then Put, Else Get(k)): a stale revision fails and returns the current
    object in Responses[0].ResponseRange.Kvs (GuaranteedUpdate retries with it); the retry succeeds; an
    absent object fails with an empty range."""
    run = await etcd3driver.run("update", etcd_target)
    key = obj(etcd_target, "updated")
    created, updated = run.step("create")["revision"], run.step("update")["revision"]
    assert updated > created and run.step("update")["responses"] == [put_op(updated)]

    stale = run.step("update-stale")
    assert stale["succeeded"] is False and stale["revision"] >= updated
    assert stale["responses"] == [range_op(stale["revision"], kv(key, "v2", created, updated, 2))]

    retried = run.step("update-retry")
    assert retried["succeeded"] is True and retried["revision"] > updated
    assert run.step("get")["kvs"] == [kv(key, "v3", created, retried["revision"], 3)]

    missing = run.step("update-missing")
    assert missing["succeeded"] is False
    assert missing["responses"] == [range_op(missing["revision"])]


async def test_conditional_delete(etcd3driver: Etcd3Driver, etcd_target: EtcdTarget) -> None:
    """Delete = Txn(If MOD(k)==rev, Then Delete(k), Else Get(k)): a stale revision fails and Responses[0]
    is a range with the current object (the apiserver indexes it unchecked); the right one deletes; a
    delete of the deleted object fails with an empty range."""
    run = await etcd3driver.run("delete", etcd_target)
    key = obj(etcd_target, "deleted")
    created, updated = run.step("create")["revision"], run.step("update")["revision"]

    stale = run.step("delete-stale")
    assert stale["succeeded"] is False
    assert stale["responses"] == [range_op(stale["revision"], kv(key, "v2", created, updated, 2))]

    deleted = run.step("delete")
    rev = deleted["revision"]
    assert deleted["succeeded"] is True and rev > updated
    assert deleted["responses"] == [{"type": "delete_range", "revision": rev, "deleted": 1, "prev_kvs": []}]

    got = run.step("get")
    assert got["revision"] >= rev and (got["kvs"], got["count"]) == ([], 0)
    again = run.step("delete-again")
    assert again["succeeded"] is False and again["responses"] == [range_op(again["revision"])]


async def test_paged_list_at_one_revision(etcd3driver: Etcd3Driver, etcd_target: EtcdTarget) -> None:
    """GetList's paging: `count` is every key in [key, range_end) at the read revision whatever the limit,
    `more` says whether the page was cut; later pages (from lastKey+"\\x00", WithRev(first page's
    revision)) see the keyspace as of the first page even though an object was created and another
    deleted in between; count-only, keys-only and GetCurrentResourceVersion read the current state."""
    run = await etcd3driver.run("list", etcd_target, "--count=7", "--limit=3")
    setup = run.steps("setup")
    names = [f"item-{i:02d}" for i in range(7)]
    keys = [obj(etcd_target, name) for name in names]
    expected = [
        kv(key, f"v{i}", line["revision"], line["revision"], 1)
        for i, (key, line) in enumerate(zip(keys, setup, strict=True))
    ]

    pages = run.steps("page")
    first = pages[0]
    assert first["start"] == etcd_target.key("flunders") + "/"
    assert first["kvs"] == expected[:3] and (first["count"], first["more"]) == (7, True)
    changed = run.step("changed-delete")["revision"]
    assert run.step("changed-create")["revision"] > first["revision"]

    assert [item for page in pages for item in page["kvs"]] == expected
    for page in pages:
        assert 0 < len(page["kvs"]) <= 3
        assert page["count"] == len(keys) - keys.index(page["kvs"][0]["key"])
        assert page["more"] == (len(page["kvs"]) < page["count"])
    for page in pages[1:]:
        assert page["start"] == pages[pages.index(page) - 1]["kvs"][-1]["key"] + "\x00"
        assert page["revision"] >= changed  # the header is the current revision, not the one read

    now = [*keys[:6], obj(etcd_target, "zz-late")]  # item-06 deleted, zz-late created after page 0
    counted = run.step("count-only")
    assert (counted["count"], counted["kvs"], counted["more"]) == (7, [], False)
    assert counted["revision"] >= changed
    keys_only = run.step("keys-only")
    assert [item["key"] for item in keys_only["kvs"]] == now and keys_only["count"] == 7
    assert {item["value"] for item in keys_only["kvs"]} == {""}

    # GetCurrentResourceVersion: Get(PREFIX/flunders, limit 1); only the header matters, and no object
    # may be found at that exact key (the apiserver would try to decode it).
    current = run.step("current-revision")
    assert current["revision"] >= changed and (current["kvs"], current["count"]) == ([], 0)


async def test_cacher_watch(etcd3driver: Etcd3Driver, etcd_target: EtcdTarget) -> None:
    """The cacher's watch (require leader, prefix, from the list revision + 1, prev_kv, progress notify):
    a create (IsCreate, no prev_kv), an update and a delete (both with prev_kv: the apiserver fails the
    watch without it), nothing from another resource; then RequestProgress on the same stream gives a
    progress notification at or after the last event."""
    run = await etcd3driver.run("watch", etcd_target)
    key = obj(etcd_target, "b")
    listed = run.step("list")
    assert run.step("watching")["start_revision"] == listed["revision"] + 1
    created = run.step("write-create")["revision"]
    updated = run.step("write-update")["revision"]
    deleted = run.step("write-delete")["revision"]

    events = run.steps("event")
    assert [(e["type"], e["key"], e["mod_revision"]) for e in events] == [
        ("PUT", key, created),
        ("PUT", key, updated),
        ("DELETE", key, deleted),
    ]
    create, update, delete = events
    assert create["is_create"] is True and (create["create_revision"], create["version"]) == (created, 1)
    assert create["value"] == "b1" and create["prev_kv"] is None
    assert update["is_create"] is False and update["is_modify"] is True
    assert (update["create_revision"], update["version"], update["value"]) == (created, 2, "b2")
    assert update["prev_kv"] == kv(key, "b1", created, created, 1)
    # A DELETE's kv is the key and the deletion revision only; the object is in prev_kv.
    assert (delete["create_revision"], delete["version"], delete["value"]) == (0, 0, "")
    assert delete["is_create"] is False and delete["prev_kv"] == kv(key, "b2", created, updated, 2)
    assert all(e["response_revision"] >= e["mod_revision"] for e in events)
    for response in run.steps("response"):
        assert (response["err"], response["canceled"], response["compact_revision"]) == (None, False, 0)

    [progress] = run.steps("progress")
    assert progress["is_progress_notify"] is True and progress["revision"] >= deleted


async def test_watch_from_a_compacted_revision(
    etcd3driver: Etcd3Driver, private_etcd_target: EtcdTarget
) -> None:
    """After Compact, a watch from before the compaction gets one canceled response with a non-zero
    CompactRevision, which clientv3 turns into ErrCompacted (the apiserver's 410), then the channel
    closes.

    etcd's CompactRevision is the compacted revision. The front's Compact does nothing; what it
    cannot replay is what its cache's window no longer holds (the private front keeps one change), and
    it answers a watch from there as etcd answers a compacted one, with the oldest revision the window
    replays from: past the start, and no later than the last change (the delete) it still holds."""
    run = await etcd3driver.run("watch", private_etcd_target, "--compacted")
    compact = run.step("compact")
    answer = run.step("watch-compacted")
    assert answer["start_revision"] < compact["revision"]
    assert answer["err"] == COMPACTED
    assert answer["canceled"] is True and answer["events"] == 0
    assert answer["compact_revision"] > answer["start_revision"]
    if private_etcd_target.name == "front":
        assert answer["compact_revision"] <= run.step("write-delete")["revision"]
    else:
        assert answer["compact_revision"] == compact["revision"]
    assert run.step("watch-compacted-closed")["closed"] is True
    assert run.steps("watch-compacted-more") == []


async def test_lease_round_trip(etcd3driver: Etcd3Driver, etcd_target: EtcdTarget) -> None:
    """Grant, a key put with the lease, TimeToLive with its keys, KeepAliveOnce, Leases, Revoke (which
    deletes the key); afterwards TimeToLive says -1 and Leases no longer lists it."""
    run = await etcd3driver.run("lease", etcd_target, "--ttl=60")
    key = obj(etcd_target, "leased")
    grant = run.step("grant")
    lease = grant["id"]
    assert lease > 0 and grant["ttl"] == 60
    put = run.step("put")["revision"]
    assert run.step("get")["kvs"] == [kv(key, "leased", put, put, 1, lease=lease)]

    alive = run.step("timetolive")
    assert (alive["id"], alive["granted_ttl"], alive["keys"]) == (lease, 60, [key])
    assert 0 < alive["ttl"] <= 60
    kept = run.step("keepalive")
    assert (kept["id"], kept["ttl"]) == (lease, 60)
    assert lease in run.step("leases")["ids"]

    revoked = run.step("revoke")
    assert revoked["revision"] > put  # the attached key was deleted
    gone = run.step("get-after-revoke")
    assert (gone["kvs"], gone["count"]) == ([], 0) and gone["revision"] >= revoked["revision"]
    assert run.step("timetolive-after-revoke")["ttl"] == -1
    assert lease not in run.step("leases-after-revoke")["ids"]


async def test_compactor_rounds(etcd3driver: Etcd3Driver, private_etcd_target: EtcdTarget) -> None:
    """The apiserver's compactor: Txn(If VERSION(compact_rev_key)==t, Then Put(rev), Else Get). Round 1
    records a revision, round 2 compacts it; a second apiserver starting at t=0 fails and learns the clock
    from Responses[0].ResponseRange.Kvs[0].Version (indexed unchecked), and its next round succeeds."""
    run = await etcd3driver.run("compactor", private_etcd_target)
    first, second, other, others_next = run.steps("compactor")

    assert (first["t"], first["rev"], first["succeeded"], first["version"]) == (0, 0, True, 1)
    assert first["responses"] == [put_op(first["revision"])] and first["compacted"] == 0

    assert (second["t"], second["rev"]) == (1, first["revision"])
    assert (second["succeeded"], second["version"]) == (True, 2)
    assert second["compacted"] == first["revision"] and "compact_error" not in second

    assert (other["t"], other["succeeded"], other["version"]) == (0, False, 2)
    stored = kv("compact_rev_key", str(first["revision"]), first["revision"], second["revision"], 2)
    assert other["responses"] == [range_op(other["revision"], stored)]

    assert (others_next["t"], others_next["succeeded"], others_next["version"]) == (2, True, 3)
    assert others_next["compacted"] == other["revision"] and "compact_error" not in others_next


async def test_health_probe_and_status(etcd3driver: Etcd3Driver, etcd_target: EtcdTarget) -> None:
    """The health probe is a plain Get(PREFIX/health) whose error alone matters; Maintenance.Status (over a
    separate connection, per endpoint) gives a semver version and the DB size."""
    run = await etcd3driver.run("health", etcd_target)
    assert run.step("health")["revision"] > 0
    statuses = run.steps("status")
    assert [status["endpoint"] for status in statuses] == list(etcd_target.endpoints)
    for status in statuses:
        assert SEMVER.fullmatch(status["version"]), status
        assert status["db_size"] > 0 and status["revision"] > 0
        assert status["member_id"] and status["leader"]


async def test_driver_without_a_client_certificate_fails(
    etcd3driver: Etcd3Driver, tls_etcd_target: EtcdTarget
) -> None:
    """Over TLS, a client without a certificate reads nothing: etcd (``--client-cert-auth``) never
    gives it a connection. The front completes the handshake, as it lets a client without a certificate
    authenticate as an etcd user instead, so without one its first call is refused in etcd's words —
    and with ``--user`` it is the tenant."""
    assert tls_etcd_target.tls is not None
    no_cert = dataclasses.replace(tls_etcd_target, tls=ClientTLS(cacert=tls_etcd_target.tls.cacert))
    run = await etcd3driver.run("health", no_cert, "--dial-timeout=2s", timeout=10, check=False)
    assert run.returncode == 1 and run.error is not None, run.describe()
    if tls_etcd_target.name != "front":
        assert run.error["at"] == "connect", run.describe()
        return
    assert (run.error["at"], run.error["error"]) == ("health", "etcdserver: user name is empty")
    by_user = await etcd3driver.run("health", no_cert.with_user("wardle:s3cr3t-wardle"), timeout=10)
    assert by_user.step("health")["revision"] > 0


# -- etcdctl ---------------------------------------------------------------------------------------------


async def test_etcdctl_put_get_del(etcd_target: EtcdTarget) -> None:
    """put, get (simple, JSON, --prefix --keys-only, --limit), del."""
    t, a, b = etcd_target, obj(etcd_target, "a"), obj(etcd_target, "b")
    put = await etcdctl(t, "put", a, "v1")
    assert put.stdout == "OK\n"
    assert_quiet(t, put)
    await etcdctl(t, "put", b, "v2")

    got = await etcdctl(t, "get", a)
    assert got.stdout == f"{a}\nv1\n"
    assert_quiet(t, got)
    answer = (await etcdctl(t, "get", a, "-w", "json")).json()
    [item] = answer["kvs"]
    assert (unb64(item["key"]), unb64(item["value"]), item["version"]) == (a, "v1", 1)
    assert item["create_revision"] == item["mod_revision"] <= answer["header"]["revision"]
    assert answer["count"] == 1

    resource = t.key("flunders") + "/"
    keys = await etcdctl(t, "get", "--prefix", "--keys-only", resource)
    assert keys.stdout == f"{a}\n\n{b}\n\n"
    limited = (await etcdctl(t, "get", "--prefix", "--limit=1", resource, "-w", "json")).json()
    assert [unb64(i["key"]) for i in limited["kvs"]] == [a]
    assert (limited["count"], limited["more"]) == (2, True)

    deleted = await etcdctl(t, "del", a)
    assert deleted.stdout == "1\n"
    assert_quiet(t, deleted)
    assert (await etcdctl(t, "del", a)).stdout == "0\n"
    assert (await etcdctl(t, "get", a)).stdout == ""
    assert (await etcdctl(t, "del", "--prefix", resource)).stdout == "1\n"


async def test_etcdctl_txn_interactive(etcd_target: EtcdTarget) -> None:
    """txn -i (compares, success ops, failure ops on stdin, each list ended by an empty line) in the
    apiserver's three shapes: create, stale update, delete at the right revision."""
    t, key = etcd_target, obj(etcd_target, "txn")
    create = f'mod("{key}") = "0"\n\nput {key} v1\n\n\n'
    done = await etcdctl(t, "txn", "-i", stdin=create)
    assert done.stdout.endswith("SUCCESS\n\nOK\n"), done.describe()
    assert_quiet(t, done)
    again = await etcdctl(t, "txn", "-i", stdin=create)
    assert again.stdout.endswith("FAILURE\n"), again.describe()

    answer = txn_json(await etcdctl(t, "txn", "-i", "-w", "json", stdin=create))
    assert answer.get("succeeded", False) is False and answer.get("responses", []) == []

    current = (await etcdctl(t, "get", key, "-w", "json")).json()["kvs"][0]["mod_revision"]
    stale = f'mod("{key}") = "{current - 1}"\n\nput {key} v2\n\nget {key}\n\n'
    answer = txn_json(await etcdctl(t, "txn", "-i", "-w", "json", stdin=stale))
    assert answer.get("succeeded", False) is False
    [response] = answer["responses"]
    [item] = response["Response"]["ResponseRange"]["kvs"]
    assert (unb64(item["key"]), unb64(item["value"]), item["mod_revision"]) == (key, "v1", current)

    delete = f'mod("{key}") = "{current}"\n\ndel {key}\n\nget {key}\n\n'
    done = await etcdctl(t, "txn", "-i", stdin=delete)
    assert done.stdout.endswith("SUCCESS\n\n1\n"), done.describe()
    assert (await etcdctl(t, "get", key)).stdout == ""


async def test_etcdctl_watch(etcd_target: EtcdTarget) -> None:
    """watch --rev --prev-kv -w json replays a put, an update and a delete; a plain watch (start revision
    0, i.e. from now) prints events written after it started."""
    t, key = etcd_target, obj(etcd_target, "w")
    first = (await etcdctl(t, "put", key, "v1", "-w", "json")).json()["header"]["revision"]
    await etcdctl(t, "put", key, "v2")
    await etcdctl(t, "del", key)
    prefix = t.key("flunders") + "/"
    replay = ["--prefix", prefix, f"--rev={first}", "--prev-kv", "-w", "json"]
    async with EtcdctlStream(t, "watch", *replay) as watch:
        events = await watch.read_json_events(3)
    # etcd's JSON leaves out the zero enum: PUT events have no "type", DELETE ones have 1.
    assert [(e.get("type", 0), unb64(e["kv"]["key"])) for e in events] == [(0, key), (0, key), (1, key)]
    put, update, delete = events
    assert (unb64(put["kv"]["value"]), put["kv"]["mod_revision"], "prev_kv" in put) == ("v1", first, False)
    assert unb64(update["kv"]["value"]) == "v2" and unb64(update["prev_kv"]["value"]) == "v1"
    assert unb64(delete["prev_kv"]["value"]) == "v2" and delete["kv"]["mod_revision"] > first

    async with EtcdctlStream(t, "watch", key) as watch:
        # The watch starts in the background: write until its first event shows.
        for attempt in range(40):
            await etcdctl(t, "put", key, f"live-{attempt}")
            line = await watch.poll_line(0.25)
            if line is not None:
                break
        assert line == "PUT"
        assert await watch.readline() == key
        assert (await watch.readline()).startswith("live-")
    await etcdctl(t, "del", key)


async def test_etcdctl_watch_from_a_compacted_revision(private_etcd_target: EtcdTarget) -> None:
    """etcdctl compact, then a watch from before it ends at once: canceled, "required revision has been
    compacted"; compacting a future revision is an error, and so, on etcd, is compacting the same
    revision again. (The front's Compact does nothing: the watch is compacted because the private
    front's window has moved past it, and a second Compact is accepted as the first was.)"""
    t, key = private_etcd_target, obj(private_etcd_target, "c")
    first = (await etcdctl(t, "put", key, "v1", "-w", "json")).json()["header"]["revision"]
    last = (await etcdctl(t, "put", key, "v2", "-w", "json")).json()["header"]["revision"]
    compacted = await etcdctl(t, "compact", str(last))
    assert compacted.stdout == f"compacted revision {last}\n"
    async with EtcdctlStream(t, "watch", key, f"--rev={first}") as watch:
        code = await watch.wait()
    assert code != 0 and f"watch was canceled ({COMPACTED})" in watch.stderr, watch.stderr
    future = await etcdctl(t, "compact", str(last + 1000), check=False)
    assert future.returncode != 0 and FUTURE_REVISION in future.stderr, future.describe()
    again = await etcdctl(t, "compact", str(last), check=False)
    if t.name == "front":  # Compact is accepted and does nothing: there is nothing to compact twice
        assert again.stdout == f"compacted revision {last}\n", again.describe()
    else:
        assert again.returncode != 0 and COMPACTED in again.stderr


async def test_etcdctl_lease(etcd_target: EtcdTarget) -> None:
    """lease grant, put --lease, keep-alive --once, timetolive --keys, list, revoke (the key goes), and
    what timetolive and revoke say afterwards."""
    t, key = etcd_target, obj(etcd_target, "leased")
    grant = await etcdctl(t, "lease", "grant", "60")
    assert_quiet(t, grant)
    match = re.fullmatch(r"lease ([0-9a-f]+) granted with TTL\(60s\)\n", grant.stdout)
    assert match, grant.describe()
    lease = match.group(1)
    await etcdctl(t, "put", key, "v", f"--lease={lease}")
    assert (await etcdctl(t, "get", key, "-w", "json")).json()["kvs"][0]["lease"] == int(lease, 16)

    kept = await etcdctl(t, "lease", "keep-alive", "--once", lease)
    assert kept.stdout == f"lease {lease} keepalived with TTL(60)\n"
    alive = await etcdctl(t, "lease", "timetolive", lease, "--keys")
    pattern = (
        rf"lease {lease} granted with TTL\(60s\), remaining\((\d+)s\), "
        rf"attached keys\(\[{re.escape(key)}\]\)\n"
    )
    assert re.fullmatch(pattern, alive.stdout), alive.describe()
    assert lease in (await etcdctl(t, "lease", "list")).stdout.splitlines()

    revoked = await etcdctl(t, "lease", "revoke", lease)
    assert revoked.stdout == f"lease {lease} revoked\n"
    assert (await etcdctl(t, "get", key)).stdout == ""
    assert (await etcdctl(t, "lease", "timetolive", lease)).stdout == f"lease {lease} already expired\n"
    again = await etcdctl(t, "lease", "revoke", lease, check=False)
    assert again.returncode != 0 and "etcdserver: requested lease not found" in again.stderr


async def test_etcdctl_endpoint_status_and_health(etcd_target: EtcdTarget) -> None:
    """endpoint status (simple and JSON: version, DB size) and endpoint health (etcdctl 3.4 prints its
    simple form on stderr; JSON on stdout)."""
    t = etcd_target
    statuses = (await etcdctl(t, "endpoint", "status", "-w", "json")).json()
    assert [s["Endpoint"] for s in statuses] == list(t.endpoints)
    for entry in statuses:
        status = entry["Status"]
        assert SEMVER.fullmatch(status["version"]) and status["dbSize"] > 0, status
        assert status["header"]["revision"] > 0
    simple = await etcdctl(t, "endpoint", "status")
    assert simple.stdout.startswith(f"{t.endpoints[0]}, ")
    assert statuses[0]["Status"]["version"] in simple.stdout
    assert_quiet(t, simple)

    health = await etcdctl(t, "endpoint", "health")
    assert health.stdout == ""
    assert f"{t.endpoints[0]} is healthy: successfully committed proposal" in health.stderr, health.describe()
    answer = (await etcdctl(t, "endpoint", "health", "-w", "json")).json()
    assert [(h["endpoint"], h["health"]) for h in answer] == [(ep, True) for ep in t.endpoints]


async def test_etcdctl_without_a_client_certificate_fails(tls_etcd_target: EtcdTarget) -> None:
    """Over TLS, etcdctl without a client certificate fails (within its dial timeout) and reads nothing."""
    assert tls_etcd_target.tls is not None
    no_cert = dataclasses.replace(tls_etcd_target, tls=ClientTLS(cacert=tls_etcd_target.tls.cacert))
    prefix = no_cert.prefix + "/"
    result = await etcdctl(
        no_cert, "--command-timeout=2s", "get", "--prefix", prefix, dial_timeout=2, check=False
    )
    assert result.returncode != 0 and result.stdout == "" and "Error:" in result.stderr, result.describe()
